package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Device linking conditions callers branch on.
var (
	// ErrLinkExists means a link request with the same code is stored already.
	ErrLinkExists = errors.New("store: link code in use")
	// ErrLinkExpired means the link request is past its expiry.
	ErrLinkExpired = errors.New("store: link request expired")
	// ErrLinkApproved means the link request was approved already.
	ErrLinkApproved = errors.New("store: link request already approved")
)

// linkKeep is how long an expired link request is kept, so that late polls
// and approvals read as expired rather than unknown.
const linkKeep = time.Hour

// Link is a stored device link request.
type Link struct {
	Code      string
	PublicKey []byte // the new device's ephemeral X25519 public key
	DeviceKey []byte // the new device's Ed25519 signing key
	CreatedAt time.Time
	ExpiresAt time.Time
	// ApprovedBy is the approving user's id; empty while pending.
	ApprovedBy string
	// ApprovedHandle is that user's handle (set by TakeLinkBundle).
	ApprovedHandle string
	Bundle         SealedBundle
}

// SealedBundle is the identity keys sealed to a link request's public key.
type SealedBundle struct {
	EPK   []byte // 32 bytes
	Nonce []byte // 12 bytes
	CT    []byte // 16 to 4096 bytes
}

// CreateLink stores a pending link request valid until expires. It first
// deletes requests that expired more than linkKeep ago. It returns
// ErrLinkExists if a request with code is stored (even an expired one).
func (db *DB) CreateLink(ctx context.Context, code string, pub, deviceKey, secretHash []byte, expires time.Time) (Link, error) {
	if _, err := db.pool.Exec(ctx, `DELETE FROM link_requests WHERE expires_at < $1`, time.Now().Add(-linkKeep)); err != nil {
		return Link{}, fmt.Errorf("prune link requests: %w", err)
	}
	l := Link{Code: code, PublicKey: pub, DeviceKey: deviceKey}
	err := db.pool.QueryRow(ctx, `
		INSERT INTO link_requests (code, public_key, device_key, secret_hash, expires_at) VALUES ($1, $2, $3, $4, $5)
		RETURNING created_at, expires_at`, code, pub, deviceKey, secretHash, expires).Scan(&l.CreatedAt, &l.ExpiresAt)
	if isUniqueViolation(err, "link_requests_pkey") {
		return Link{}, ErrLinkExists
	}
	if err != nil {
		return Link{}, fmt.Errorf("create link request: %w", err)
	}
	return l, nil
}

// PendingLink returns the link request with code if it can still be
// approved. It returns ErrNotFound (unknown), ErrLinkExpired or
// ErrLinkApproved.
func (db *DB) PendingLink(ctx context.Context, code string) (Link, error) {
	l := Link{Code: code}
	var approvedBy *string
	err := db.pool.QueryRow(ctx,
		`SELECT public_key, device_key, created_at, expires_at, approved_by FROM link_requests WHERE code = $1`, code).
		Scan(&l.PublicKey, &l.DeviceKey, &l.CreatedAt, &l.ExpiresAt, &approvedBy)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Link{}, ErrNotFound
	case err != nil:
		return Link{}, fmt.Errorf("pending link: %w", err)
	case !time.Now().Before(l.ExpiresAt):
		return Link{}, ErrLinkExpired
	case approvedBy != nil:
		return Link{}, ErrLinkApproved
	}
	return l, nil
}

// ApproveLink attaches the sealed bundle of userID's keys, made on deviceID,
// to the pending request with code. Only the first approval of an unexpired
// request succeeds; others get ErrNotFound, ErrLinkExpired or
// ErrLinkApproved.
func (db *DB) ApproveLink(ctx context.Context, code, userID, deviceID string, b SealedBundle) error {
	tag, err := db.pool.Exec(ctx, `
		UPDATE link_requests SET approved_by = $2, approved_device = $3, approved_at = now(),
			bundle_epk = $4, bundle_nonce = $5, bundle_ct = $6
		WHERE code = $1 AND approved_by IS NULL AND expires_at > $7`,
		code, userID, deviceID, b.EPK, b.Nonce, b.CT, time.Now())
	if err != nil {
		return fmt.Errorf("approve link: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	// Tell the caller why; the state cannot go back to approvable.
	_, err = db.PendingLink(ctx, code)
	if err == nil {
		// Impossible: an unexpired pending row would have matched, and a
		// request never becomes approvable again.
		return fmt.Errorf("approve link: request %s still pending", code)
	}
	return err
}

// TakeLinkBundle returns the link request with code to the holder of its
// secret. A pending request is returned without bundle and stays. An
// approved one is returned with its bundle and the approver's handle, and
// deleted in the same transaction: the bundle is delivered once. An unknown
// code or a wrong secret gives ErrNotFound; an expired request
// ErrLinkExpired.
func (db *DB) TakeLinkBundle(ctx context.Context, code string, secretHash []byte) (Link, error) {
	var l Link
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		l = Link{Code: code}
		var approvedBy *string
		// No join here: a row locked while an approval commits is re-read
		// (EvalPlanQual), but a joined row would not be, so the approver's
		// handle is read separately below.
		err := tx.QueryRow(ctx, `
			SELECT public_key, created_at, expires_at, approved_by, bundle_epk, bundle_nonce, bundle_ct
			FROM link_requests WHERE code = $1 AND secret_hash = $2 FOR UPDATE`, code, secretHash).
			Scan(&l.PublicKey, &l.CreatedAt, &l.ExpiresAt, &approvedBy, &l.Bundle.EPK, &l.Bundle.Nonce, &l.Bundle.CT)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return fmt.Errorf("take link bundle: %w", err)
		case !time.Now().Before(l.ExpiresAt):
			return ErrLinkExpired
		case approvedBy == nil:
			return nil
		}
		l.ApprovedBy = *approvedBy
		if err := tx.QueryRow(ctx, `SELECT handle FROM users WHERE id = $1`, l.ApprovedBy).Scan(&l.ApprovedHandle); err != nil {
			return fmt.Errorf("take link bundle: approver: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM link_requests WHERE code = $1`, code); err != nil {
			return fmt.Errorf("take link bundle: delete: %w", err)
		}
		return nil
	})
	if err != nil {
		return Link{}, err
	}
	return l, nil
}
