package account

import (
	"context"
	"crypto/ed25519"
	"errors"
	"time"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
	"github.com/mayfly-im/mayfly/store"
)

// Identity reset (docs/envelope.md, "Identity reset"): the primary replaces
// the identity key at once; any other device only after a delay during
// which every device of the user is told and the primary can cancel.

var errResetPending = schema.Errorf(schema.CodeForbidden,
	"only the primary device resets the identity at once; a reset by another device takes effect after its delay (GET /v1/identity/reset)")

// ResetIdentity replaces p's account identity key with req.IK and stores a
// device list signed by it, which must list p's device. From the primary
// device it is done at once. From any other device the first call records
// a pending reset (Status pending, NotBefore IdentityResetDelay from now)
// and tells every device of the user; the same call again from NotBefore on
// completes it, unless the primary published a list or cancelled it
// meanwhile, or p's device was revoked. p's device is then the primary.
// Friends' clients see the key change. Errors: those of PublishList,
// bad_request if the list does not name the calling device, device_revoked,
// forbidden (a pending reset that was cancelled or replaced while waiting).
func (s *Service) ResetIdentity(ctx context.Context, p Principal, req schema.IdentityResetRequest) (schema.IdentityReset, error) {
	ik, err := decodeKey("ik", req.IK, schema.SignKeyLen)
	if err != nil {
		return schema.IdentityReset{}, err
	}
	l, err := parseList(req.List)
	if err != nil {
		return schema.IdentityReset{}, err
	}
	if l.VerifyFor(p.UserID, ed25519.PublicKey(ik)) != nil {
		return schema.IdentityReset{}, schema.Errorf(schema.CodeBadSignature, "the list is not the caller's, signed by the new identity key")
	}
	if _, ok := l.Key(p.DeviceID); !ok {
		return schema.IdentityReset{}, schema.Errorf(schema.CodeBadRequest, "the new list must name the calling device")
	}
	primary, err := s.cfg.DB.PrimaryDevice(ctx, p.UserID)
	if err != nil {
		return schema.IdentityReset{}, s.internal("identity reset", err)
	}
	if primary != p.DeviceID {
		r, created, err := s.cfg.DB.RequestIdentityReset(ctx, p.UserID, p.DeviceID, ik, s.cfg.IdentityResetDelay)
		if errors.Is(err, store.ErrDeviceRevoked) {
			return schema.IdentityReset{}, schema.Errorf(schema.CodeDeviceRevoked, "this device was revoked")
		}
		if err != nil {
			return schema.IdentityReset{}, s.internal("identity reset", err)
		}
		if created {
			s.log.Warn("identity reset requested", "user_id", p.UserID, "device_id", p.DeviceID, "not_before", r.NotBefore)
			s.publish(p.UserID, schema.Event{Type: schema.EventIdentityResetRequested, DeviceID: p.DeviceID})
		}
		if time.Now().Before(r.NotBefore) {
			return pendingReset(r), nil
		}
	}
	out, err := s.storeList(ctx, store.ListParams{UserID: p.UserID, NewIK: ik, ByDevice: p.DeviceID}, l)
	if err != nil {
		return schema.IdentityReset{}, err
	}
	s.log.Warn("identity reset", "user_id", p.UserID, "device_id", p.DeviceID)
	return schema.IdentityReset{Status: schema.ResetDone, DeviceID: p.DeviceID,
		IKFingerprint: envelope.IdentityFingerprint(ik), Version: out.Version, Revoked: out.Revoked}, nil
}

func pendingReset(r store.PendingReset) schema.IdentityReset {
	return schema.IdentityReset{Status: schema.ResetPending, DeviceID: r.DeviceID,
		IKFingerprint: envelope.IdentityFingerprint(r.IK), RequestedAt: &r.RequestedAt, NotBefore: &r.NotBefore}
}

// PendingIdentityReset returns p's user's pending identity reset, for every
// device to show. Errors: not_found (none pending).
func (s *Service) PendingIdentityReset(ctx context.Context, p Principal) (schema.IdentityReset, error) {
	r, err := s.cfg.DB.PendingIdentityReset(ctx, p.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return schema.IdentityReset{}, schema.Errorf(schema.CodeNotFound, "no identity reset is pending")
	}
	if err != nil {
		return schema.IdentityReset{}, s.internal("identity reset status", err)
	}
	return pendingReset(r), nil
}

// CancelIdentityReset ends p's user's pending identity reset; only the
// primary device may, and every device is told. Errors: forbidden,
// not_found (none pending).
func (s *Service) CancelIdentityReset(ctx context.Context, p Principal) error {
	primary, err := s.cfg.DB.PrimaryDevice(ctx, p.UserID)
	if err != nil {
		return s.internal("cancel identity reset", err)
	}
	if primary != p.DeviceID {
		return schema.Errorf(schema.CodeForbidden, "only the primary device cancels an identity reset; revoking the asking device ends it too")
	}
	r, err := s.cfg.DB.CancelIdentityReset(ctx, p.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return schema.Errorf(schema.CodeNotFound, "no identity reset is pending")
	}
	if err != nil {
		return s.internal("cancel identity reset", err)
	}
	s.log.Warn("identity reset cancelled", "user_id", p.UserID, "device_id", r.DeviceID)
	s.publish(p.UserID, schema.Event{Type: schema.EventIdentityResetCancelled, DeviceID: r.DeviceID})
	return nil
}
