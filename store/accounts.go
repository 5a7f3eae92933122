package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// User is a stored account: a handle, the identity key and the newest
// signed device list.
type User struct {
	ID     string
	Handle string
	IK     []byte // Ed25519 identity public key
	// DeviceList is the newest signed device list (canonical JSON), nil
	// until the first is published; ListVersion its version, 0 before.
	DeviceList  []byte
	ListVersion int64
	CreatedAt   time.Time
}

// Device is one of a user's devices. Generation changes whenever every
// session of the device must end (revocation, refresh-token reuse, re-login).
type Device struct {
	ID         string
	UserID     string
	Name       string
	Generation int
	CreatedAt  time.Time
	LastSeenAt time.Time
	RevokedAt  *time.Time
}

// CreateUser stores a new user. It returns ErrHandleTaken if the handle is
// registered already, case-insensitively; exactly one of two concurrent
// registrations of a handle succeeds.
func (db *DB) CreateUser(ctx context.Context, u User) (User, error) {
	err := db.pool.QueryRow(ctx,
		`INSERT INTO users (id, handle, ik) VALUES ($1, $2, $3) RETURNING created_at`,
		u.ID, u.Handle, u.IK).Scan(&u.CreatedAt)
	if isUniqueViolation(err, "users_handle_key") {
		return User{}, ErrHandleTaken
	}
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

const userColumns = `id, handle, ik, device_list, list_version, created_at`

func scanUser(row pgx.Row) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Handle, &u.IK, &u.DeviceList, &u.ListVersion, &u.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	return u, err
}

// UserByHandle returns the user with handle h (case-insensitively) or ErrNotFound.
func (db *DB) UserByHandle(ctx context.Context, h string) (User, error) {
	u, err := scanUser(db.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE lower(handle) = lower($1)`, h))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return User{}, fmt.Errorf("user by handle: %w", err)
	}
	return u, err
}

// UserByID returns the user with id or ErrNotFound.
func (db *DB) UserByID(ctx context.Context, id string) (User, error) {
	u, err := scanUser(db.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return User{}, fmt.Errorf("user by id: %w", err)
	}
	return u, err
}

// maxOpenChallenges bounds the unused, unexpired challenges a user may have,
// so unauthenticated callers cannot grow the table without bound.
const maxOpenChallenges = 16

// CreateChallenge stores a single-use login challenge for userID. First it
// removes the user's expired challenges and, beyond the newest
// maxOpenChallenges-1 open ones, the oldest open ones, so a user never has
// more than maxOpenChallenges open. Evicting rather than refusing means
// that requesting challenges for someone else's handle can never lock them
// out of logging in. Used, unexpired challenges are kept so a replay reads
// as used.
func (db *DB) CreateChallenge(ctx context.Context, id, userID string, nonce []byte, expires time.Time) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, userID); err != nil {
			return fmt.Errorf("lock user: %w", err)
		}
		if _, err := tx.Exec(ctx, `
			DELETE FROM login_challenges WHERE user_id = $1 AND (expires_at < now() OR
				(used_at IS NULL AND id NOT IN (
					SELECT id FROM login_challenges WHERE user_id = $1 AND used_at IS NULL
					ORDER BY expires_at DESC, id DESC LIMIT $2)))`,
			userID, maxOpenChallenges-1); err != nil {
			return fmt.Errorf("prune challenges: %w", err)
		}
		if _, err := tx.Exec(ctx,
			`INSERT INTO login_challenges (id, user_id, nonce, expires_at) VALUES ($1, $2, $3, $4)`,
			id, userID, nonce, expires); err != nil {
			return fmt.Errorf("insert challenge: %w", err)
		}
		return nil
	})
}

// Challenge is a stored login challenge.
type Challenge struct {
	ID        string
	UserID    string
	Handle    string
	Nonce     []byte
	ExpiresAt time.Time
	Used      bool
}

// ChallengeByID returns the challenge or ErrNotFound. It does not check
// expiry or use; [DB.Login] does, atomically.
func (db *DB) ChallengeByID(ctx context.Context, id string) (Challenge, error) {
	var c Challenge
	err := db.pool.QueryRow(ctx, `
		SELECT c.id, c.user_id, u.handle, c.nonce, c.expires_at, c.used_at IS NOT NULL
		FROM login_challenges c JOIN users u ON u.id = c.user_id WHERE c.id = $1`, id).
		Scan(&c.ID, &c.UserID, &c.Handle, &c.Nonce, &c.ExpiresAt, &c.Used)
	if errors.Is(err, pgx.ErrNoRows) {
		return Challenge{}, ErrNotFound
	}
	if err != nil {
		return Challenge{}, fmt.Errorf("challenge by id: %w", err)
	}
	return c, nil
}

// LoginParams describes a login whose challenge signature the caller has
// verified already.
type LoginParams struct {
	ChallengeID    string
	DeviceID       string // a listed device of the challenge's user
	DeviceName     string
	RefreshHash    []byte // SHA-256 of the new refresh token
	RefreshExpires time.Time
}

// Login consumes the challenge and starts a session on the device, all in
// one transaction: the device's generation is bumped (ending its previous
// session) and its name set. The device must be one of the challenge's
// user's devices: ErrNotFound if it is not (never listed), ErrDeviceRevoked
// if it was revoked; the challenge then stays unused. ErrChallengeUsed and
// ErrChallengeExpired report a challenge that cannot be used.
func (db *DB) Login(ctx context.Context, p LoginParams) (Device, error) {
	var d Device
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		d = Device{}
		// Lock order is user, then challenge, as in CreateChallenge.
		err := tx.QueryRow(ctx, `SELECT user_id FROM login_challenges WHERE id = $1`, p.ChallengeID).Scan(&d.UserID)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("find challenge: %w", err)
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, d.UserID); err != nil {
			return fmt.Errorf("lock user: %w", err)
		}
		if err := lockChallenge(ctx, tx, p.ChallengeID); err != nil {
			return err
		}
		if err := startDeviceSession(ctx, tx, &d, p); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE login_challenges SET used_at = now() WHERE id = $1`, p.ChallengeID); err != nil {
			return fmt.Errorf("use challenge: %w", err)
		}
		return insertRefresh(ctx, tx, p.RefreshHash, d.ID, d.Generation, p.RefreshExpires)
	})
	return d, err
}

// lockChallenge locks challenge id and checks it can still be used. The
// user's row must be locked by the caller.
func lockChallenge(ctx context.Context, tx pgx.Tx, id string) error {
	var used bool
	var expires time.Time
	err := tx.QueryRow(ctx,
		`SELECT used_at IS NOT NULL, expires_at FROM login_challenges WHERE id = $1 FOR UPDATE`, id).
		Scan(&used, &expires)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ErrNotFound // evicted since the caller read it
	case err != nil:
		return fmt.Errorf("lock challenge: %w", err)
	case used:
		return ErrChallengeUsed
	case !time.Now().Before(expires):
		return ErrChallengeExpired
	}
	return nil
}

// startDeviceSession starts a session on a listed device of d.UserID. The
// user row must be locked by the caller.
func startDeviceSession(ctx context.Context, tx pgx.Tx, d *Device, p LoginParams) error {
	var revoked *time.Time
	err := tx.QueryRow(ctx, `SELECT revoked_at FROM devices WHERE id = $1 AND user_id = $2 FOR UPDATE`,
		p.DeviceID, d.UserID).Scan(&revoked)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ErrNotFound
	case err != nil:
		return fmt.Errorf("find device: %w", err)
	case revoked != nil:
		return ErrDeviceRevoked
	}
	err = tx.QueryRow(ctx, `
		UPDATE devices SET generation = generation + 1, last_seen_at = now(), name = $2
		WHERE id = $1
		RETURNING id, name, generation, created_at, last_seen_at`, p.DeviceID, p.DeviceName).
		Scan(&d.ID, &d.Name, &d.Generation, &d.CreatedAt, &d.LastSeenAt)
	if err != nil {
		return fmt.Errorf("start device session: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM refresh_tokens WHERE device_id = $1`, d.ID); err != nil {
		return fmt.Errorf("drop old refresh tokens: %w", err)
	}
	return nil
}

// keptUsedRefresh is how many used refresh tokens of a device are kept to
// recognise their reuse. A device refreshes every 15 minutes, so the newest
// 16 cover about four hours; an older stolen token then reads as unknown
// (refresh_invalid) rather than reused. Without the bound a device would
// keep ~2,900 rows a month, billions at 10M users.
const keptUsedRefresh = 16

// pruneUsedRefresh drops the device's used refresh tokens beyond the newest
// keptUsedRefresh.
func pruneUsedRefresh(ctx context.Context, tx pgx.Tx, deviceID string) error {
	_, err := tx.Exec(ctx, `
		DELETE FROM refresh_tokens WHERE device_id = $1 AND used_at IS NOT NULL AND hash NOT IN (
			SELECT hash FROM refresh_tokens WHERE device_id = $1 AND used_at IS NOT NULL
			ORDER BY used_at DESC, hash LIMIT $2)`, deviceID, keptUsedRefresh)
	if err != nil {
		return fmt.Errorf("prune used refresh tokens: %w", err)
	}
	return nil
}

func insertRefresh(ctx context.Context, tx pgx.Tx, hash []byte, deviceID string, gen int, expires time.Time) error {
	_, err := tx.Exec(ctx,
		`INSERT INTO refresh_tokens (hash, device_id, generation, expires_at) VALUES ($1, $2, $3, $4)`,
		hash, deviceID, gen, expires)
	if err != nil {
		return fmt.Errorf("insert refresh token: %w", err)
	}
	return nil
}

// Refresh rotates a refresh token: the token with oldHash is marked used and
// newHash takes its place in the same chain. Reusing a used token bumps the
// device's generation, which ends the whole chain and every access token of
// it (ErrRefreshReused). An unknown, expired or revoked token gives
// ErrRefreshInvalid.
func (db *DB) Refresh(ctx context.Context, oldHash, newHash []byte, expires time.Time) (Device, error) {
	var d Device
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var tokGen int
		var used bool
		var tokExpires time.Time
		err := tx.QueryRow(ctx, `
			SELECT r.generation, r.used_at IS NOT NULL, r.expires_at,
			       d.id, d.user_id, d.name, d.generation, d.created_at, d.last_seen_at, d.revoked_at
			FROM refresh_tokens r JOIN devices d ON d.id = r.device_id
			WHERE r.hash = $1 FOR UPDATE`, oldHash).
			Scan(&tokGen, &used, &tokExpires, &d.ID, &d.UserID, &d.Name, &d.Generation, &d.CreatedAt, &d.LastSeenAt, &d.RevokedAt)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return ErrRefreshInvalid
		case err != nil:
			return fmt.Errorf("lock refresh token: %w", err)
		case d.RevokedAt != nil || tokGen != d.Generation || !time.Now().Before(tokExpires):
			return ErrRefreshInvalid
		case used:
			if _, err := tx.Exec(ctx, `UPDATE devices SET generation = generation + 1 WHERE id = $1`, d.ID); err != nil {
				return fmt.Errorf("revoke chain: %w", err)
			}
			if _, err := tx.Exec(ctx, `DELETE FROM refresh_tokens WHERE device_id = $1`, d.ID); err != nil {
				return fmt.Errorf("revoke chain: %w", err)
			}
			d.Generation++
			return commitErr{ErrRefreshReused}
		}
		if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET used_at = now() WHERE hash = $1`, oldHash); err != nil {
			return fmt.Errorf("use refresh token: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE devices SET last_seen_at = now() WHERE id = $1`, d.ID); err != nil {
			return fmt.Errorf("touch device: %w", err)
		}
		if err := pruneUsedRefresh(ctx, tx, d.ID); err != nil {
			return err
		}
		return insertRefresh(ctx, tx, newHash, d.ID, d.Generation, expires)
	})
	return d, err
}

const deviceColumns = `id, user_id, name, generation, created_at, last_seen_at, revoked_at`

func scanDevice(row pgx.Row) (Device, error) {
	var d Device
	err := row.Scan(&d.ID, &d.UserID, &d.Name, &d.Generation, &d.CreatedAt, &d.LastSeenAt, &d.RevokedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Device{}, ErrNotFound
	}
	return d, err
}

// DeviceByID returns the device or ErrNotFound, revoked or not.
func (db *DB) DeviceByID(ctx context.Context, id string) (Device, error) {
	d, err := scanDevice(db.pool.QueryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = $1`, id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Device{}, fmt.Errorf("device by id: %w", err)
	}
	return d, err
}

// TouchDevice moves an active device's last_seen_at to now, unless it moved
// less than minGap ago (so a device that connects often costs one write per
// minGap). A revoked or unknown device is left alone.
func (db *DB) TouchDevice(ctx context.Context, id string, minGap time.Duration) error {
	_, err := db.pool.Exec(ctx, `
		UPDATE devices SET last_seen_at = now()
		WHERE id = $1 AND revoked_at IS NULL AND last_seen_at < now() - make_interval(secs => $2)`,
		id, minGap.Seconds())
	if err != nil {
		return fmt.Errorf("touch device: %w", err)
	}
	return nil
}

// Devices returns the user's active (not revoked) devices, oldest first.
func (db *DB) Devices(ctx context.Context, userID string) ([]Device, error) {
	rows, err := db.pool.Query(ctx,
		`SELECT `+deviceColumns+` FROM devices WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	var out []Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// RevokeDevice revokes one of userID's active devices: its generation is
// bumped and its refresh tokens removed, so every token of it is refused.
// It returns ErrNotFound if userID has no such active device.
func (db *DB) RevokeDevice(ctx context.Context, userID, deviceID string) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			UPDATE devices SET revoked_at = now(), generation = generation + 1
			WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL`, deviceID, userID)
		if err != nil {
			return fmt.Errorf("revoke device: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return dropRevoked(ctx, tx, userID, []string{deviceID})
	})
}

// dropRevoked records the keys of userID's revoked devices ids as revoked
// for good and deletes their refresh tokens and prekeys. The devices must
// be marked revoked by the caller, in the same transaction.
func dropRevoked(ctx context.Context, tx pgx.Tx, userID string, ids []string) error {
	if _, err := tx.Exec(ctx, `
		INSERT INTO revoked_device_keys (user_id, sign_key)
		SELECT user_id, sign_key FROM devices WHERE id = ANY($1) AND user_id = $2 AND sign_key IS NOT NULL
		ON CONFLICT DO NOTHING`, ids, userID); err != nil {
		return fmt.Errorf("record revoked keys: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM refresh_tokens WHERE device_id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("revoke device tokens: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM prekeys WHERE device_id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("drop revoked prekeys: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM identity_resets WHERE device_id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("drop revoked devices' identity resets: %w", err)
	}
	return nil
}
