package account

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
	"github.com/mayfly-im/mayfly/store"
)

// Device linking (docs/api.md, "Device linking"). The service stores the new
// device's ephemeral public key and, once a device of the user approves, the
// identity keys sealed to it; it cannot open them.

var errNoLink = schema.Errorf(schema.CodeNotFound, "no such link request")

// linkError maps store conditions of link requests to client errors.
func (s *Service) linkError(op string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errNoLink
	case errors.Is(err, store.ErrLinkExpired):
		return schema.Errorf(schema.CodeLinkExpired, "link request expired; start linking again on the new device")
	case errors.Is(err, store.ErrLinkApproved):
		return schema.Errorf(schema.CodeNotFound, "link request was approved already")
	}
	return s.internal(op, err)
}

// CreateLink stores a link request for a new device's ephemeral X25519
// public key and its device signing key under the lookup code the device
// chose (it commits to a secret the server never sees), and returns the
// code, a poll secret and the expiry (LinkTTL). Errors: invalid_key,
// bad_request (no well-formed code, or a request with these keys or this
// code exists already).
func (s *Service) CreateLink(ctx context.Context, req schema.LinkRequest) (schema.LinkCreated, error) {
	pub, err := decodeKey("public_key", req.PublicKey, envelope.KexKeySize)
	if err != nil {
		return schema.LinkCreated{}, err
	}
	// Only the X25519 half is checked (length, not a low-order point).
	if err := (envelope.PublicKeys{Sign: make([]byte, envelope.SignKeySize), Kex: pub}).Validate(); err != nil {
		return schema.LinkCreated{}, schema.Errorf(schema.CodeInvalidKey, "public_key is not a usable X25519 public key")
	}
	dk, err := decodeKey("device_key", req.DeviceKey, envelope.SignKeySize)
	if err != nil {
		return schema.LinkCreated{}, err
	}
	code, ok := schema.NormalizeLinkCode(req.Code)
	if !ok {
		return schema.LinkCreated{}, schema.Errorf(schema.CodeBadRequest,
			"code must be the link code's 10-character lookup part (link v3, docs/api.md); update the client")
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	tok := schema.LinkSecretPrefix + b64.EncodeToString(secret)
	l, err := s.cfg.DB.CreateLink(ctx, code, pub, dk, hashSecret(tok), time.Now().Add(schema.LinkTTL).Truncate(time.Millisecond))
	if errors.Is(err, store.ErrLinkExists) {
		return schema.LinkCreated{}, schema.Errorf(schema.CodeBadRequest, "a link request for this public key exists already; make a new key pair")
	}
	if err != nil {
		return schema.LinkCreated{}, s.internal("create link", err)
	}
	return schema.LinkCreated{Code: code, Secret: tok, ExpiresAt: l.ExpiresAt}, nil
}

func hashSecret(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// LinkInfo returns the public key of the pending link request with code, for
// p's device to check against the code and seal the keys to. Errors:
// not_found (unknown, malformed or already approved), link_expired.
func (s *Service) LinkInfo(ctx context.Context, p Principal, code string) (schema.LinkInfo, error) {
	code, ok := schema.NormalizeLinkCode(code)
	if !ok {
		return schema.LinkInfo{}, errNoLink
	}
	l, err := s.cfg.DB.PendingLink(ctx, code)
	if err != nil {
		return schema.LinkInfo{}, s.linkError("link info", err)
	}
	return schema.LinkInfo{Code: l.Code, PublicKey: b64.EncodeToString(l.PublicKey),
		DeviceKey: b64.EncodeToString(l.DeviceKey), ExpiresAt: l.ExpiresAt}, nil
}

// ApproveLink attaches p's user's sealed keys to the pending link request
// with code. Only the shape of the bundle is checked. Errors: bad_request (a
// malformed bundle), not_found, link_expired.
func (s *Service) ApproveLink(ctx context.Context, p Principal, code string, req schema.LinkApproveRequest) error {
	code, ok := schema.NormalizeLinkCode(code)
	if !ok {
		return errNoLink
	}
	b, err := decodeBundle(req.Bundle)
	if err != nil {
		return err
	}
	if err := s.cfg.DB.ApproveLink(ctx, code, p.UserID, p.DeviceID, b); err != nil {
		return s.linkError("approve link", err)
	}
	s.log.Info("device link approved", "user_id", p.UserID, "device_id", p.DeviceID)
	return nil
}

func decodeBundle(sb schema.SealedBundle) (store.SealedBundle, error) {
	bad := func(what string) error {
		return schema.Errorf(schema.CodeBadRequest, "bundle."+what)
	}
	var b store.SealedBundle
	var err error
	if b.EPK, err = b64.DecodeString(sb.EPK); err != nil || len(b.EPK) != envelope.KexKeySize {
		return b, bad(fmt.Sprintf("epk must be %d bytes, base64url without padding", envelope.KexKeySize))
	}
	if b.Nonce, err = b64.DecodeString(sb.N); err != nil || len(b.Nonce) != envelope.NonceSize {
		return b, bad(fmt.Sprintf("n must be %d bytes, base64url without padding", envelope.NonceSize))
	}
	if b.CT, err = b64.DecodeString(sb.CT); err != nil || len(b.CT) < 16 || len(b.CT) > schema.MaxLinkBundleCiphertext {
		return b, bad(fmt.Sprintf("ct must be 16 to %d bytes, base64url without padding", schema.MaxLinkBundleCiphertext))
	}
	return b, nil
}

// LinkBundle answers the new device's poll: pending, or approved with the
// sealed keys and the approving user (given once; the request is deleted).
// secret is the one CreateLink returned. Errors: not_found (unknown code or
// wrong secret), link_expired.
func (s *Service) LinkBundle(ctx context.Context, code, secret string) (schema.LinkStatus, error) {
	code, ok := schema.NormalizeLinkCode(code)
	if !ok || secret == "" || len(secret) > 128 {
		return schema.LinkStatus{}, errNoLink
	}
	l, err := s.cfg.DB.TakeLinkBundle(ctx, code, hashSecret(secret))
	if err != nil {
		return schema.LinkStatus{}, s.linkError("link bundle", err)
	}
	if l.ApprovedBy == "" {
		return schema.LinkStatus{Status: schema.LinkPending, ExpiresAt: l.ExpiresAt}, nil
	}
	s.log.Info("device link bundle delivered", "user_id", l.ApprovedBy)
	return schema.LinkStatus{
		Status: schema.LinkApproved, ExpiresAt: l.ExpiresAt, UserID: l.ApprovedBy, Handle: l.ApprovedHandle,
		Bundle: &schema.SealedBundle{
			EPK: b64.EncodeToString(l.Bundle.EPK), N: b64.EncodeToString(l.Bundle.Nonce), CT: b64.EncodeToString(l.Bundle.CT),
		},
	}, nil
}
