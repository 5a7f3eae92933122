package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Account lifecycle: suspension and deletion (store/migrations/006).
// Suspending or asking for a deletion ends every session of the user in the
// database at once (each active device's generation goes up, so its access
// and refresh tokens are refused); the running mayflyd then ends the live
// connections (PendingAnnouncements) and carries out deletions
// (PendingDeletions, DeleteUser).

// SuspendUser suspends the user with userID and ends every session of its
// devices. Suspending a suspended user ends the sessions again (a login
// racing the first suspension cannot outlive the second) and reports
// already = true. Errors: ErrNotFound.
func (db *DB) SuspendUser(ctx context.Context, userID string) (already bool, err error) {
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		already, err = suspendLocked(ctx, tx, userID)
		return err
	})
	return already, err
}

// suspendLocked suspends userID inside tx, locking the user's row first.
func suspendLocked(ctx context.Context, tx pgx.Tx, userID string) (already bool, err error) {
	var id string
	err = tx.QueryRow(ctx, `SELECT id FROM users WHERE id = $1 FOR UPDATE`, userID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, ErrNotFound
	}
	if err != nil {
		return false, fmt.Errorf("lock user: %w", err)
	}
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM user_suspensions WHERE user_id = $1)`, userID).Scan(&already); err != nil {
		return false, fmt.Errorf("suspend user: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO user_suspensions (user_id) VALUES ($1)
		ON CONFLICT (user_id) DO UPDATE SET announced_at = NULL`, userID); err != nil {
		return false, fmt.Errorf("suspend user: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE devices SET generation = generation + 1 WHERE user_id = $1 AND revoked_at IS NULL`, userID); err != nil {
		return false, fmt.Errorf("end sessions: %w", err)
	}
	return already, nil
}

// UnsuspendUser lifts userID's suspension; the user may log in again (its
// ended sessions stay ended). It reports whether the user was suspended.
// Errors: ErrNotFound (no such user).
func (db *DB) UnsuspendUser(ctx context.Context, userID string) (was bool, err error) {
	if _, err := db.UserByID(ctx, userID); err != nil {
		return false, err
	}
	tag, err := db.pool.Exec(ctx, `DELETE FROM user_suspensions WHERE user_id = $1`, userID)
	if err != nil {
		return false, fmt.Errorf("unsuspend user: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// Suspended reports whether userID is suspended (a pending deletion
// suspends too).
func (db *DB) Suspended(ctx context.Context, userID string) (bool, error) {
	var n int
	err := db.pool.QueryRow(ctx, `SELECT count(*) FROM user_suspensions WHERE user_id = $1`, userID).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("check suspension: %w", err)
	}
	return n > 0, nil
}

// RequestDeletion records that userID is to be deleted and suspends it, in
// one transaction: from then on it cannot log in, and its sessions are
// ended. Asking twice is not an error. Errors: ErrNotFound.
func (db *DB) RequestDeletion(ctx context.Context, userID string) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := suspendLocked(ctx, tx, userID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO user_deletions (user_id) VALUES ($1) ON CONFLICT DO NOTHING`, userID); err != nil {
			return fmt.Errorf("request deletion: %w", err)
		}
		return nil
	})
}

// Announcement is a suspension whose live connections are still to be
// ended: the user's active devices with their new generations.
type Announcement struct {
	UserID  string
	Devices []Device
}

// PendingAnnouncements returns at most limit suspensions not yet announced.
func (db *DB) PendingAnnouncements(ctx context.Context, limit int) ([]Announcement, error) {
	rows, err := db.pool.Query(ctx, `SELECT user_id FROM user_suspensions WHERE announced_at IS NULL
		ORDER BY suspended_at LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("pending suspensions: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pending suspensions: %w", err)
	}
	out := make([]Announcement, 0, len(ids))
	for _, id := range ids {
		ds, err := db.Devices(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, Announcement{UserID: id, Devices: ds})
	}
	return out, nil
}

// MarkAnnounced records that userID's suspension was announced.
func (db *DB) MarkAnnounced(ctx context.Context, userID string) error {
	if _, err := db.pool.Exec(ctx, `UPDATE user_suspensions SET announced_at = now() WHERE user_id = $1`, userID); err != nil {
		return fmt.Errorf("mark suspension announced: %w", err)
	}
	return nil
}

// PendingDeletions returns at most limit user ids whose deletion was
// requested, oldest request first.
func (db *DB) PendingDeletions(ctx context.Context, limit int) ([]string, error) {
	rows, err := db.pool.Query(ctx, `SELECT user_id FROM user_deletions ORDER BY requested_at LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("pending deletions: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pending deletions: %w", err)
	}
	return ids, nil
}

// DeleteUser deletes userID and, by cascade, everything stored about it:
// keys, devices, tokens, challenges, friendships, friend requests either
// way, blocks either way, link requests, suspension and deletion rows. It
// returns the devices it had (for ending their connections). Deleting an
// unknown user returns ErrNotFound.
func (db *DB) DeleteUser(ctx context.Context, userID string) ([]Device, error) {
	var ds []Device
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `DELETE FROM devices WHERE user_id = $1 RETURNING id, user_id, name, generation, created_at, last_seen_at, revoked_at`, userID)
		if err != nil {
			return fmt.Errorf("delete devices: %w", err)
		}
		ds, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Device, error) {
			var d Device
			err := r.Scan(&d.ID, &d.UserID, &d.Name, &d.Generation, &d.CreatedAt, &d.LastSeenAt, &d.RevokedAt)
			return d, err
		})
		if err != nil {
			return fmt.Errorf("delete devices: %w", err)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM users WHERE id = $1`, userID)
		if err != nil {
			return fmt.Errorf("delete user: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return nil
	})
	return ds, err
}
