package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ListedDevice is one device of a device list: its id and signing key.
type ListedDevice struct {
	ID  string
	Key []byte
}

// ListParams is a device list the caller has parsed and verified against
// the account's identity key.
type ListParams struct {
	UserID  string
	Version int64
	List    []byte // canonical signed JSON
	Devices []ListedDevice
	// NewIK, when set, replaces the account's identity key (an identity
	// reset); the list must then be signed by it. ByDevice must be an
	// active device of the user.
	NewIK    []byte
	ByDevice string
}

// MaxListVersionStep is how far above the stored version a new device list's
// version may be. Clients count up by one; without a bound one list at
// version 2^53-1 (the largest) would freeze the account's list for ever: no
// link, no revocation by list, no identity reset.
const MaxListVersionStep = 1 << 20

// PublishDeviceList stores a new device list for p.UserID in one
// transaction: the version must be above the stored one (ErrStaleList) by at
// most MaxListVersionStep (ErrListVersionJump), no
// listed key may ever have been revoked for this user (ErrDeviceRevoked) or
// be listed by another user (ErrKeyTaken). Devices new to the list get a
// row; active devices that are not in it are revoked (their keys recorded
// as revoked, their tokens and prekeys dropped) and returned, for the
// caller to end their live connections. A new device's row has
// generation 0 until its first login. An unknown user is ErrNotFound.
func (db *DB) PublishDeviceList(ctx context.Context, p ListParams) (revoked []string, err error) {
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		revoked = nil
		var stored int64
		var primary *string
		err := tx.QueryRow(ctx, `SELECT list_version, primary_device FROM users WHERE id = $1 FOR UPDATE`, p.UserID).Scan(&stored, &primary)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("lock user: %w", err)
		}
		if p.Version <= stored {
			return ErrStaleList
		}
		if p.Version-stored > MaxListVersionStep {
			return ErrListVersionJump
		}
		if p.NewIK != nil {
			if err := checkActiveDevice(ctx, tx, p.UserID, p.ByDevice); err != nil {
				return err
			}
			if err := checkResetDue(ctx, tx, p, primary); err != nil {
				return err
			}
		}
		if err := checkListable(ctx, tx, p); err != nil {
			return err
		}
		if revoked, err = revokeUnlisted(ctx, tx, p); err != nil {
			return err
		}
		for _, d := range p.Devices {
			if _, err := tx.Exec(ctx, `
				INSERT INTO devices (id, user_id, name, sign_key, generation) VALUES ($1, $2, $1, $3, 0)
				ON CONFLICT (id) DO NOTHING`, d.ID, p.UserID, d.Key); err != nil {
				return fmt.Errorf("insert device: %w", err)
			}
		}
		_, err = tx.Exec(ctx, `UPDATE users SET device_list = $2, list_version = $3, ik = coalesce($4, ik),
			primary_device = CASE WHEN $4::bytea IS NOT NULL THEN $5 ELSE coalesce(primary_device, $6) END WHERE id = $1`,
			p.UserID, p.List, p.Version, p.NewIK, p.ByDevice, firstDevice(p.Devices))
		if err != nil {
			return fmt.Errorf("store device list: %w", err)
		}
		// A list signed by the identity key shows its holder is alive: any
		// pending reset by a linked device ends (and a completed one is done).
		if _, err := tx.Exec(ctx, `DELETE FROM identity_resets WHERE user_id = $1`, p.UserID); err != nil {
			return fmt.Errorf("end pending identity reset: %w", err)
		}
		return nil
	})
	return revoked, err
}

// firstDevice returns the id of the first listed device: the primary of a
// user's first list.
func firstDevice(ds []ListedDevice) *string {
	if len(ds) == 0 {
		return nil
	}
	return &ds[0].ID
}

func checkActiveDevice(ctx context.Context, tx pgx.Tx, userID, deviceID string) error {
	var ok bool
	err := tx.QueryRow(ctx, `SELECT revoked_at IS NULL FROM devices WHERE id = $1 AND user_id = $2`, deviceID, userID).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && !ok {
		return ErrDeviceRevoked
	}
	if err != nil {
		return fmt.Errorf("check device: %w", err)
	}
	return nil
}

// checkListable refuses keys revoked for the user or owned by another.
func checkListable(ctx context.Context, tx pgx.Tx, p ListParams) error {
	for _, d := range p.Devices {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM revoked_device_keys WHERE user_id = $1 AND sign_key = $2`,
			p.UserID, d.Key).Scan(&n); err != nil {
			return fmt.Errorf("check revoked keys: %w", err)
		}
		if n > 0 {
			return ErrDeviceRevoked
		}
		var owner string
		var key []byte
		var revokedAt any
		err := tx.QueryRow(ctx, `SELECT user_id, sign_key, revoked_at FROM devices WHERE id = $1`, d.ID).Scan(&owner, &key, &revokedAt)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("check device owner: %w", err)
		case owner != p.UserID || !bytes.Equal(key, d.Key):
			return ErrKeyTaken
		case revokedAt != nil:
			return ErrDeviceRevoked
		}
	}
	return nil
}

// revokeUnlisted revokes the user's active devices that p does not list.
func revokeUnlisted(ctx context.Context, tx pgx.Tx, p ListParams) ([]string, error) {
	ids := make([]string, len(p.Devices))
	for i, d := range p.Devices {
		ids[i] = d.ID
	}
	rows, err := tx.Query(ctx, `
		UPDATE devices SET revoked_at = now(), generation = generation + 1
		WHERE user_id = $1 AND revoked_at IS NULL AND NOT (id = ANY($2)) RETURNING id`, p.UserID, ids)
	if err != nil {
		return nil, fmt.Errorf("revoke unlisted devices: %w", err)
	}
	gone, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("revoke unlisted devices: %w", err)
	}
	if len(gone) == 0 {
		return nil, nil
	}
	return gone, dropRevoked(ctx, tx, p.UserID, gone)
}

// DeviceKey returns the signing key of userID's device, and whether the
// device is revoked. ErrNotFound if the user has no such device, or it has
// no key (a v1 device).
func (db *DB) DeviceKey(ctx context.Context, userID, deviceID string) (key []byte, revoked bool, err error) {
	err = db.pool.QueryRow(ctx, `SELECT sign_key, revoked_at IS NOT NULL FROM devices WHERE id = $1 AND user_id = $2`,
		deviceID, userID).Scan(&key, &revoked)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && key == nil {
		return nil, false, ErrNotFound
	}
	if err != nil {
		return nil, false, fmt.Errorf("device key: %w", err)
	}
	return key, revoked, nil
}

// MaxOPKs is the most unclaimed one-time prekeys a device may have stored.
const MaxOPKs = 100

// Prekey is one stored prekey: its key id and canonical signed JSON.
type Prekey struct {
	KID  []byte
	Body []byte
}

// PutPrekeys stores deviceID's new signed prekey (replacing the old one;
// spk may be nil to keep it) and adds opks to its pool. More than MaxOPKs
// unclaimed afterwards is ErrPrekeyLimit and stores nothing; an OPK already
// stored is kept once.
func (db *DB) PutPrekeys(ctx context.Context, deviceID string, spk *Prekey, opks []Prekey) (unclaimed int, err error) {
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM devices WHERE id = $1 FOR UPDATE`, deviceID); err != nil {
			return fmt.Errorf("lock device: %w", err)
		}
		if spk != nil {
			if _, err := tx.Exec(ctx, `DELETE FROM prekeys WHERE device_id = $1 AND kind = 'spk'`, deviceID); err != nil {
				return fmt.Errorf("drop old spk: %w", err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO prekeys (device_id, kind, kid, body) VALUES ($1, 'spk', $2, $3)
				ON CONFLICT (device_id, kid) DO UPDATE SET kind = 'spk', body = excluded.body`, deviceID, spk.KID, spk.Body); err != nil {
				return fmt.Errorf("store spk: %w", err)
			}
		}
		for _, o := range opks {
			if _, err := tx.Exec(ctx, `INSERT INTO prekeys (device_id, kind, kid, body) VALUES ($1, 'opk', $2, $3)
				ON CONFLICT DO NOTHING`, deviceID, o.KID, o.Body); err != nil {
				return fmt.Errorf("store opk: %w", err)
			}
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM prekeys WHERE device_id = $1 AND kind = 'opk'`, deviceID).Scan(&unclaimed); err != nil {
			return fmt.Errorf("count opks: %w", err)
		}
		if unclaimed > MaxOPKs {
			return ErrPrekeyLimit
		}
		return nil
	})
	return unclaimed, err
}

// UnclaimedOPKs returns the key ids of deviceID's unclaimed one-time
// prekeys, and whether it has a signed prekey.
func (db *DB) UnclaimedOPKs(ctx context.Context, deviceID string) (kids [][]byte, hasSPK bool, err error) {
	rows, err := db.pool.Query(ctx, `SELECT kind, kid FROM prekeys WHERE device_id = $1 ORDER BY created_at, kid`, deviceID)
	if err != nil {
		return nil, false, fmt.Errorf("list prekeys: %w", err)
	}
	var kind string
	var kid []byte
	_, err = pgx.ForEachRow(rows, []any{&kind, &kid}, func() error {
		if kind == "spk" {
			hasSPK = true
		} else {
			kids = append(kids, append([]byte(nil), kid...))
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("list prekeys: %w", err)
	}
	return kids, hasSPK, nil
}

// BundleDevice is one device's prekeys in a claimed bundle; OPK is nil when
// its pool was empty.
type BundleDevice struct {
	ID       string
	SPK, OPK []byte
}

// ClaimLimits bound bundle claims (docs/envelope.md, "One-time prekeys").
// They are counted in Postgres, so they hold across transports and
// processes. Zero fields mean no limit.
type ClaimLimits struct {
	// Window and PerWindow: one claimer claims one user's bundle at most
	// PerWindow times per fixed Window (ErrClaimQuota beyond).
	Window    time.Duration
	PerWindow int
	// Reserve and Share: once a device has Reserve or fewer unclaimed
	// one-time prekeys, a claimer gets one of them only if it took fewer
	// than Share of that device's one-time prekeys within Held; otherwise
	// its bundle has the signed prekey alone. So no single friend drains a
	// pool: its last Reserve keys go to the claimers that took few.
	Reserve, Share int
	Held           time.Duration
}

// ErrClaimQuota is a claim over ClaimLimits.PerWindow.
var ErrClaimQuota = errors.New("store: bundle claim quota exceeded")

// ClaimBundle returns userID's stored device list and, for each active
// device with a signed prekey, that prekey and one one-time prekey, which
// it deletes, so no other claim gets it (none, within lim's reserve).
// claimerID is the claiming user. Devices come ordered by id; the caller
// puts them in list order. ErrNotFound: no such user, or no list yet;
// ErrClaimQuota.
func (db *DB) ClaimBundle(ctx context.Context, claimerID, userID string, lim ClaimLimits) (list []byte, devs []BundleDevice, err error) {
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		devs = nil
		err := tx.QueryRow(ctx, `SELECT device_list FROM users WHERE id = $1`, userID).Scan(&list)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && list == nil {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read device list: %w", err)
		}
		if err := countClaim(ctx, tx, claimerID, userID, lim); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			SELECT d.id, p.body FROM devices d JOIN prekeys p ON p.device_id = d.id AND p.kind = 'spk'
			WHERE d.user_id = $1 AND d.revoked_at IS NULL ORDER BY d.id`, userID)
		if err != nil {
			return fmt.Errorf("read spks: %w", err)
		}
		if devs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (BundleDevice, error) {
			var d BundleDevice
			return d, r.Scan(&d.ID, &d.SPK)
		}); err != nil {
			return fmt.Errorf("read spks: %w", err)
		}
		for i := range devs {
			if devs[i].OPK, err = claimOPK(ctx, tx, claimerID, devs[i].ID, lim); err != nil {
				return err
			}
		}
		return nil
	})
	return list, devs, err
}

// countClaim counts one claim of target's bundle by claimer in the current
// window: ErrClaimQuota beyond lim.PerWindow.
func countClaim(ctx context.Context, tx pgx.Tx, claimer, target string, lim ClaimLimits) error {
	if lim.PerWindow <= 0 || lim.Window <= 0 {
		return nil
	}
	var n int
	err := tx.QueryRow(ctx, `
		INSERT INTO claim_windows AS w (claimer_id, target_id, window_start, claims) VALUES ($1, $2, now(), 1)
		ON CONFLICT (claimer_id, target_id) DO UPDATE SET
			claims = CASE WHEN w.window_start <= now() - $3::bigint * interval '1 millisecond' THEN 1 ELSE w.claims + 1 END,
			window_start = CASE WHEN w.window_start <= now() - $3::bigint * interval '1 millisecond' THEN now() ELSE w.window_start END
		RETURNING claims`, claimer, target, lim.Window.Milliseconds()).Scan(&n)
	if err != nil {
		return fmt.Errorf("count claim: %w", err)
	}
	if n > lim.PerWindow {
		return ErrClaimQuota
	}
	return nil
}

// claimOPK takes one of device's one-time prekeys for claimer, within lim's
// reserve; nil when there is none for it.
func claimOPK(ctx context.Context, tx pgx.Tx, claimer, device string, lim ClaimLimits) ([]byte, error) {
	if lim.Reserve > 0 {
		var pool, mine int
		err := tx.QueryRow(ctx, `
			SELECT (SELECT count(*) FROM prekeys WHERE device_id = $1 AND kind = 'opk'),
			       (SELECT count(*) FROM opk_claims WHERE device_id = $1 AND claimer_id = $2
			            AND claimed_at > now() - $3::bigint * interval '1 millisecond')`,
			device, claimer, lim.Held.Milliseconds()).Scan(&pool, &mine)
		if err != nil {
			return nil, fmt.Errorf("count opks: %w", err)
		}
		if pool <= lim.Reserve && mine >= lim.Share {
			return nil, nil
		}
	}
	var body []byte
	err := tx.QueryRow(ctx, `
		DELETE FROM prekeys WHERE (device_id, kid) = (
			SELECT device_id, kid FROM prekeys WHERE device_id = $1 AND kind = 'opk'
			ORDER BY created_at, kid LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING body`, device).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("claim opk: %w", err)
	}
	if lim.Reserve > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM opk_claims WHERE device_id = $1 AND claimed_at <= now() - $2::bigint * interval '1 millisecond'`,
			device, lim.Held.Milliseconds()); err != nil {
			return nil, fmt.Errorf("forget old opk claims: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO opk_claims (device_id, claimer_id) VALUES ($1, $2)`, device, claimer); err != nil {
			return nil, fmt.Errorf("record opk claim: %w", err)
		}
	}
	return body, nil
}
