package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrResetPending is an identity reset by a device other than the primary
// that has not waited out its delay (or was never requested, or was
// cancelled): the identity key stays.
var ErrResetPending = errors.New("store: identity reset still pending")

// PendingReset is a linked device's request to replace the account's
// identity key, which it may complete from NotBefore on.
type PendingReset struct {
	UserID      string
	DeviceID    string
	IK          []byte
	RequestedAt time.Time
	NotBefore   time.Time
}

// PrimaryDevice returns the id of userID's primary device, the one holding
// the identity key; "" when the account has none (no list yet, or the
// primary revoked itself). ErrNotFound: no such user.
func (db *DB) PrimaryDevice(ctx context.Context, userID string) (string, error) {
	var id *string
	err := db.pool.QueryRow(ctx, `SELECT primary_device FROM users WHERE id = $1`, userID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("primary device: %w", err)
	}
	if id == nil {
		return "", nil
	}
	return *id, nil
}

// RequestIdentityReset records that userID's active device deviceID asks to
// make ik the identity key, no earlier than delay from now. A request of the
// same device for the same key is kept as it was (created false); any other
// replaces the pending one and starts its delay anew. A revoked or unknown
// device is ErrDeviceRevoked.
func (db *DB) RequestIdentityReset(ctx context.Context, userID, deviceID string, ik []byte, delay time.Duration) (r PendingReset, created bool, err error) {
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, userID); err != nil {
			return fmt.Errorf("lock user: %w", err)
		}
		if err := checkActiveDevice(ctx, tx, userID, deviceID); err != nil {
			return err
		}
		old, err := scanReset(tx.QueryRow(ctx, resetSelect+` WHERE user_id = $1`, userID))
		if err == nil && old.DeviceID == deviceID && bytes.Equal(old.IK, ik) {
			r, created = old, false
			return nil
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		r, err = scanReset(tx.QueryRow(ctx, `
			INSERT INTO identity_resets (user_id, device_id, ik, requested_at, not_before)
			VALUES ($1, $2, $3, now(), now() + $4::bigint * interval '1 millisecond')
			ON CONFLICT (user_id) DO UPDATE SET device_id = excluded.device_id, ik = excluded.ik,
				requested_at = excluded.requested_at, not_before = excluded.not_before
			RETURNING user_id, device_id, ik, requested_at, not_before`, userID, deviceID, ik, delay.Milliseconds()))
		created = true
		return err
	})
	return r, created, err
}

// PendingIdentityReset returns userID's pending identity reset, or
// ErrNotFound.
func (db *DB) PendingIdentityReset(ctx context.Context, userID string) (PendingReset, error) {
	return scanReset(db.pool.QueryRow(ctx, resetSelect+` WHERE user_id = $1`, userID))
}

// CancelIdentityReset deletes userID's pending identity reset and returns
// it; ErrNotFound if there was none.
func (db *DB) CancelIdentityReset(ctx context.Context, userID string) (PendingReset, error) {
	return scanReset(db.pool.QueryRow(ctx, `DELETE FROM identity_resets WHERE user_id = $1
		RETURNING user_id, device_id, ik, requested_at, not_before`, userID))
}

const resetSelect = `SELECT user_id, device_id, ik, requested_at, not_before FROM identity_resets`

func scanReset(row pgx.Row) (PendingReset, error) {
	var r PendingReset
	err := row.Scan(&r.UserID, &r.DeviceID, &r.IK, &r.RequestedAt, &r.NotBefore)
	if errors.Is(err, pgx.ErrNoRows) {
		return PendingReset{}, ErrNotFound
	}
	if err != nil {
		return PendingReset{}, fmt.Errorf("identity reset: %w", err)
	}
	return r, nil
}

// checkResetDue refuses p's identity reset unless p.ByDevice is the primary
// or its pending request for p.NewIK has waited out its delay; a completed
// reset consumes the request. mu: the user's row must be locked by tx.
func checkResetDue(ctx context.Context, tx pgx.Tx, p ListParams, primary *string) error {
	if primary != nil && *primary == p.ByDevice {
		return nil
	}
	var due bool
	err := tx.QueryRow(ctx, `SELECT not_before <= now() FROM identity_resets WHERE user_id = $1 AND device_id = $2 AND ik = $3`,
		p.UserID, p.ByDevice, p.NewIK).Scan(&due)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && !due {
		return ErrResetPending
	}
	if err != nil {
		return fmt.Errorf("check identity reset: %w", err)
	}
	return nil
}
