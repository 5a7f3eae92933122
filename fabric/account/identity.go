package account

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
	"github.com/mayfly-im/mayfly/store"
)

// Identity v2 (docs/envelope.md): signed device lists, prekeys and bundles.

// parseList parses a device list from a request body field.
func parseList(raw json.RawMessage) (*envelope.DeviceList, error) {
	if len(raw) == 0 {
		return nil, schema.Errorf(schema.CodeBadRequest, "list is required")
	}
	l, err := envelope.ParseDeviceList(raw)
	switch {
	case errors.Is(err, envelope.ErrVersion):
		return nil, schema.Errorf(schema.CodeUnsupportedVersion, "device list version must be 2")
	case err != nil:
		return nil, schema.Errorf(schema.CodeInvalidKey, "device list is malformed (docs/envelope.md, Device list)")
	}
	return l, nil
}

// PublishList stores a new device list signed by the account's identity
// key; the signature is the authority, so no token is needed. Devices the
// list drops are revoked and their live connections closed. Errors:
// bad_request, unsupported_version, invalid_key (malformed, or a key
// another user lists), not_found (no such user), bad_signature (not signed
// by the account's identity key), stale_device_list, device_revoked (a
// revoked key listed again).
func (s *Service) PublishList(ctx context.Context, req schema.DeviceListRequest) (schema.DeviceListStored, error) {
	l, err := parseList(req.List)
	if err != nil {
		return schema.DeviceListStored{}, err
	}
	if !schema.ValidUserID(l.UserID) {
		return schema.DeviceListStored{}, schema.Errorf(schema.CodeNotFound, "no such user")
	}
	u, err := s.cfg.DB.UserByID(ctx, l.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return schema.DeviceListStored{}, schema.Errorf(schema.CodeNotFound, "no such user")
	}
	if err != nil {
		return schema.DeviceListStored{}, s.internal("publish list", err)
	}
	if l.VerifyFor(u.ID, u.IK) != nil {
		return schema.DeviceListStored{}, schema.Errorf(schema.CodeBadSignature, "the list is not signed by the account's identity key")
	}
	_, perr := s.cfg.DB.PendingIdentityReset(ctx, u.ID)
	out, err := s.storeList(ctx, store.ListParams{UserID: u.ID}, l)
	if err == nil && perr == nil {
		s.log.Warn("identity reset cancelled by a list from the identity key", "user_id", u.ID)
		s.publish(u.ID, schema.Event{Type: schema.EventIdentityResetCancelled})
	}
	return out, err
}

// storeList stores verified list l with the fields of base, then ends the
// connections of every device it revoked.
func (s *Service) storeList(ctx context.Context, base store.ListParams, l *envelope.DeviceList) (schema.DeviceListStored, error) {
	base.Version, base.List = l.Version, l.AppendCanonical(nil)
	for _, d := range l.Devices {
		base.Devices = append(base.Devices, store.ListedDevice{ID: d.ID, Key: d.Key})
	}
	revoked, err := s.cfg.DB.PublishDeviceList(ctx, base)
	switch {
	case errors.Is(err, store.ErrStaleList):
		return schema.DeviceListStored{}, schema.Errorf(schema.CodeStaleDeviceList, "the list's version must be above the stored one")
	case errors.Is(err, store.ErrListVersionJump):
		return schema.DeviceListStored{}, schema.Errorf(schema.CodeBadRequest,
			fmt.Sprintf("the list's version may be at most %d above the stored one", store.MaxListVersionStep))
	case errors.Is(err, store.ErrDeviceRevoked):
		return schema.DeviceListStored{}, schema.Errorf(schema.CodeDeviceRevoked, "the list names a revoked device key (or the calling device is revoked)")
	case errors.Is(err, store.ErrKeyTaken):
		return schema.DeviceListStored{}, schema.Errorf(schema.CodeInvalidKey, "a listed device key belongs to another account")
	case errors.Is(err, store.ErrNotFound):
		return schema.DeviceListStored{}, schema.Errorf(schema.CodeNotFound, "no such user")
	case errors.Is(err, store.ErrResetPending):
		return schema.DeviceListStored{}, errResetPending
	case err != nil:
		return schema.DeviceListStored{}, s.internal("store device list", err)
	}
	s.log.Info("device list stored", "user_id", base.UserID, "version", base.Version, "revoked", len(revoked))
	for _, id := range revoked {
		s.revoked(base.UserID, id, 0)
	}
	return schema.DeviceListStored{Version: base.Version, Revoked: revoked}, nil
}

// PutPrekeys stores p's device's new signed prekey and one-time prekeys,
// each checked against the device's listed key. Errors: bad_request (more
// than MaxOPKsPerUpload), invalid_key (malformed, wrong kind),
// bad_signature, prekey_limit.
func (s *Service) PutPrekeys(ctx context.Context, p Principal, req schema.PrekeysUpload) (schema.PrekeyStatus, error) {
	if len(req.OPKs) > schema.MaxOPKsPerUpload {
		return schema.PrekeyStatus{}, schema.Errorf(schema.CodeBadRequest, fmt.Sprintf("at most %d one-time prekeys per upload", schema.MaxOPKsPerUpload))
	}
	key, _, err := s.cfg.DB.DeviceKey(ctx, p.UserID, p.DeviceID)
	if err != nil {
		return schema.PrekeyStatus{}, s.internal("put prekeys", err)
	}
	var spk *store.Prekey
	if len(req.SPK) > 0 {
		pk, err := s.checkPrekey(p, key, req.SPK, envelope.KindSPK)
		if err != nil {
			return schema.PrekeyStatus{}, err
		}
		spk = &pk
	}
	opks := make([]store.Prekey, 0, len(req.OPKs))
	for _, raw := range req.OPKs {
		pk, err := s.checkPrekey(p, key, raw, envelope.KindOPK)
		if err != nil {
			return schema.PrekeyStatus{}, err
		}
		opks = append(opks, pk)
	}
	_, err = s.cfg.DB.PutPrekeys(ctx, p.DeviceID, spk, opks)
	if errors.Is(err, store.ErrPrekeyLimit) {
		return schema.PrekeyStatus{}, schema.Errorf(schema.CodePrekeyLimit, fmt.Sprintf("at most %d unclaimed one-time prekeys per device", store.MaxOPKs))
	}
	if err != nil {
		return schema.PrekeyStatus{}, s.internal("put prekeys", err)
	}
	return s.PrekeyStatus(ctx, p)
}

func (s *Service) checkPrekey(p Principal, deviceKey []byte, raw json.RawMessage, kind string) (store.Prekey, error) {
	pk, err := envelope.ParsePrekey(raw)
	if err != nil || pk.Kind != kind {
		return store.Prekey{}, schema.Errorf(schema.CodeInvalidKey, fmt.Sprintf("a %s is malformed or of another kind (docs/envelope.md, Prekeys)", kind))
	}
	if pk.Verify(p.UserID, p.DeviceID, deviceKey) != nil {
		return store.Prekey{}, schema.Errorf(schema.CodeBadSignature, "a prekey is not signed by this device's key")
	}
	kid := pk.KeyID()
	return store.Prekey{KID: kid[:], Body: pk.AppendCanonical(nil)}, nil
}

// PrekeyStatus reports whether p's device has a signed prekey stored and
// the key ids of its unclaimed one-time prekeys.
func (s *Service) PrekeyStatus(ctx context.Context, p Principal) (schema.PrekeyStatus, error) {
	kids, hasSPK, err := s.cfg.DB.UnclaimedOPKs(ctx, p.DeviceID)
	if err != nil {
		return schema.PrekeyStatus{}, s.internal("prekey status", err)
	}
	out := schema.PrekeyStatus{HasSPK: hasSPK, OPKs: make([]string, len(kids))}
	for i, k := range kids {
		out.OPKs[i] = b64.EncodeToString(k)
	}
	return out, nil
}

// ClaimBundle returns userID's prekey bundle for p to seal to: the signed
// device list and, per device with a signed prekey, that prekey and one
// one-time prekey, which no later claim gets (none when the device's pool
// is down to its reserve and p's user took its share: Config.ClaimLimits).
// Only the user and their friends may claim, within Config.ClaimLimits,
// counted in Postgres across transports and processes. Errors: not_found
// (no such user, or no device list yet), not_friend, rate_limited.
func (s *Service) ClaimBundle(ctx context.Context, p Principal, userID string) (json.RawMessage, error) {
	if !schema.ValidUserID(userID) {
		return nil, schema.Errorf(schema.CodeNotFound, "no such user")
	}
	if userID != p.UserID {
		ok, err := s.cfg.DB.AreFriends(ctx, p.UserID, userID)
		if err != nil {
			return nil, s.internal("claim bundle", err)
		}
		if !ok {
			return nil, schema.Errorf(schema.CodeNotFriend, "only friends may fetch a user's prekeys")
		}
	}
	list, devs, err := s.cfg.DB.ClaimBundle(ctx, p.UserID, userID, s.cfg.ClaimLimits)
	if errors.Is(err, store.ErrNotFound) {
		return nil, schema.Errorf(schema.CodeNotFound, "no such user, or the user has no devices yet")
	}
	if errors.Is(err, store.ErrClaimQuota) {
		return nil, schema.Errorf(schema.CodeRateLimited, "too many prekey claims of this user; slow down")
	}
	if err != nil {
		return nil, s.internal("claim bundle", err)
	}
	b, err := bundle(list, devs)
	if err != nil {
		return nil, s.internal("claim bundle", err)
	}
	return b, nil
}

// bundle encodes a claimed bundle with its devices in list order.
func bundle(list []byte, devs []store.BundleDevice) ([]byte, error) {
	l, err := envelope.ParseDeviceList(list)
	if err != nil {
		return nil, fmt.Errorf("stored list: %w", err)
	}
	byID := make(map[string]store.BundleDevice, len(devs))
	for _, d := range devs {
		byID[d.ID] = d
	}
	var parts []envelope.BundleParts
	for _, e := range l.Devices {
		if d, ok := byID[e.ID]; ok {
			parts = append(parts, envelope.BundleParts{ID: d.ID, SPK: d.SPK, OPK: d.OPK})
		}
	}
	return envelope.NewBundle(list, parts)
}

// DeviceListOf returns userID's newest signed device list. Lists are public:
// anyone may fetch one to verify it against an identity key they trust.
// Errors: not_found (no such user, or no list yet).
func (s *Service) DeviceListOf(ctx context.Context, userID string) (schema.DeviceListRequest, error) {
	if !schema.ValidUserID(userID) {
		return schema.DeviceListRequest{}, schema.Errorf(schema.CodeNotFound, "no such user")
	}
	u, err := s.cfg.DB.UserByID(ctx, userID)
	if errors.Is(err, store.ErrNotFound) || err == nil && u.DeviceList == nil {
		return schema.DeviceListRequest{}, schema.Errorf(schema.CodeNotFound, "no such user, or no device list yet")
	}
	if err != nil {
		return schema.DeviceListRequest{}, s.internal("device list", err)
	}
	return schema.DeviceListRequest{List: u.DeviceList}, nil
}
