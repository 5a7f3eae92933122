// Package account provides Mayfly's identity service (identity v2,
// docs/envelope.md): registration with a handle and an identity key, device
// lists signed by it, passwordless login by a listed device signing a
// single-use challenge, access and refresh tokens, device revocation that
// locks a device's key out for good, signed prekeys and one-time prekey
// claims, identity reset, and public key lookup.
//
// Methods take and return schema wire types and fail with *schema.Error
// values from the closed client error set, so any transport (HTTP,
// WebSocket, NATS services) can pass them on unchanged. A [Service] is safe
// for concurrent use.
package account

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/fabric"
	"github.com/mayfly-im/mayfly/fabric/token"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
	"github.com/mayfly-im/mayfly/store"
)

// Defaults for [Config].
const (
	DefaultChallengeTTL = time.Minute
	DefaultRefreshTTL   = 30 * 24 * time.Hour
)

// Config configures a Service.
type Config struct {
	DB     *store.DB     // required
	Tokens *token.Issuer // required
	NATS   *nats.Conn    // required: device revocations are published on it
	Logger *slog.Logger  // default discards
	// ChallengeTTL is how long a login challenge may be answered; default DefaultChallengeTTL.
	ChallengeTTL time.Duration
	// RefreshTTL is how long an unused refresh token stays valid; default DefaultRefreshTTL.
	RefreshTTL time.Duration
}

// Service implements accounts, login and devices.
type Service struct {
	cfg Config
	log *slog.Logger
}

// New returns a Service for cfg.
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Tokens == nil || cfg.NATS == nil {
		return nil, errors.New("account: config needs DB, Tokens and NATS")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ChallengeTTL <= 0 {
		cfg.ChallengeTTL = DefaultChallengeTTL
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = DefaultRefreshTTL
	}
	return &Service{cfg: cfg, log: cfg.Logger}, nil
}

// Principal is an authenticated device of a user.
type Principal struct {
	UserID   string
	DeviceID string
	// Generation is the device generation the token was issued for.
	Generation int
	// ExpiresAt is when the presented access token expires.
	ExpiresAt time.Time
}

// LogValue logs the ids only.
func (p Principal) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user_id", p.UserID), slog.String("device_id", p.DeviceID))
}

var b64 = base64.RawURLEncoding

// internal logs err, a failure with no client code of its own, and
// returns what the client sees of it (schema.ClientError): unavailable
// when a dependency did not answer, internal otherwise.
func (s *Service) internal(op string, err error) error {
	s.log.Error("account service failure", "op", op, "err", err)
	return schema.AsError(err)
}

func decodeKey(field, v string, n int) ([]byte, error) {
	b, err := b64.DecodeString(v)
	if err != nil || len(b) != n {
		return nil, schema.Errorf(schema.CodeInvalidKey, fmt.Sprintf("%s must be %d bytes, base64url without padding", field, n))
	}
	return b, nil
}

// Register creates an account for an identity key made on the registering
// device (the primary). The account has no devices until the primary
// publishes its first device list ([Service.PublishList]). Errors:
// invalid_handle, invalid_key, handle_taken.
func (s *Service) Register(ctx context.Context, req schema.RegisterRequest) (schema.User, error) {
	if !schema.ValidHandle(req.Handle) {
		return schema.User{}, schema.Errorf(schema.CodeInvalidHandle, "handle must be 3-32 letters, digits or underscores")
	}
	ik, err := decodeKey("ik", req.IK, schema.SignKeyLen)
	if err != nil {
		return schema.User{}, err
	}
	u, err := s.cfg.DB.CreateUser(ctx, store.User{ID: schema.NewUserID(), Handle: req.Handle, IK: ik})
	if errors.Is(err, store.ErrHandleTaken) {
		return schema.User{}, schema.Errorf(schema.CodeHandleTaken, "handle is taken")
	}
	if err != nil {
		return schema.User{}, s.internal("register", err)
	}
	s.log.Info("user registered", "user_id", u.ID)
	return PublicUser(u), nil
}

// PublicUser renders a stored user as its public wire form: identity key,
// its fingerprint and the newest signed device list.
func PublicUser(u store.User) schema.User {
	return schema.User{
		UserID:      u.ID,
		Handle:      u.Handle,
		IK:          b64.EncodeToString(u.IK),
		Fingerprint: envelope.IdentityFingerprint(u.IK),
		CreatedAt:   u.CreatedAt,
		DeviceList:  u.DeviceList,
	}
}

// Lookup returns the public keys and fingerprint of the user with handle.
// Errors: invalid_handle, not_found.
func (s *Service) Lookup(ctx context.Context, handle string) (schema.User, error) {
	if !schema.ValidHandle(handle) {
		return schema.User{}, schema.Errorf(schema.CodeInvalidHandle, "handle must be 3-32 letters, digits or underscores")
	}
	u, err := s.cfg.DB.UserByHandle(ctx, handle)
	if errors.Is(err, store.ErrNotFound) {
		return schema.User{}, schema.Errorf(schema.CodeNotFound, "no such user")
	}
	if err != nil {
		return schema.User{}, s.internal("lookup", err)
	}
	return PublicUser(u), nil
}

// challengeKind is the id prefix of login challenges.
const challengeKind = 'c'

// Challenge issues a single-use login challenge for handle, valid for
// ChallengeTTL. A user has at most a few open challenges; a new one replaces
// the oldest (see store.DB.CreateChallenge), so nobody can lock a user out
// by requesting challenges for them. Errors: invalid_handle, not_found.
func (s *Service) Challenge(ctx context.Context, req schema.ChallengeRequest) (schema.Challenge, error) {
	if !schema.ValidHandle(req.Handle) {
		return schema.Challenge{}, schema.Errorf(schema.CodeInvalidHandle, "handle must be 3-32 letters, digits or underscores")
	}
	u, err := s.cfg.DB.UserByHandle(ctx, req.Handle)
	if errors.Is(err, store.ErrNotFound) {
		return schema.Challenge{}, schema.Errorf(schema.CodeNotFound, "no such user")
	}
	if err != nil {
		return schema.Challenge{}, s.internal("challenge", err)
	}
	nonce := make([]byte, 32)
	rand.Read(nonce)
	id := schema.NewID(challengeKind)
	exp := time.Now().Add(s.cfg.ChallengeTTL).Truncate(time.Millisecond)
	if err := s.cfg.DB.CreateChallenge(ctx, id, u.ID, nonce, exp); err != nil {
		return schema.Challenge{}, s.internal("challenge", err)
	}
	return schema.Challenge{ChallengeID: id, Nonce: b64.EncodeToString(nonce), ExpiresAt: exp}, nil
}

// newRefresh returns a fresh opaque refresh token and its stored hash.
func newRefresh() (tok string, hash []byte) {
	b := make([]byte, 32)
	rand.Read(b)
	tok = "mfr_" + b64.EncodeToString(b)
	h := sha256.Sum256([]byte(tok))
	return tok, h[:]
}

func hashRefresh(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// validDeviceName reports whether n is 1 to schema.DeviceNameMaxLen bytes
// of UTF-8 without control characters (Postgres text cannot hold NUL, and
// names are shown to people).
func validDeviceName(n string) bool {
	if n == "" || len(n) > schema.DeviceNameMaxLen || !utf8.ValidString(n) {
		return false
	}
	return !strings.ContainsFunc(n, unicode.IsControl)
}

// Login verifies the device's signature over the challenge and starts a
// session on that device, which must be in the user's current device list.
// The checks run in this order, and a failed one changes nothing:
// invalid_device (name), bad_request (no challenge_id or device_id),
// not_found (unknown or malformed challenge id), device_revoked (the
// device's key was revoked), bad_signature (the device is not listed or the
// signature does not verify with its key), then, atomically with the
// session start, challenge_used, challenge_expired and device_revoked.
func (s *Service) Login(ctx context.Context, req schema.LoginRequest) (schema.Session, error) {
	if !validDeviceName(req.DeviceName) {
		return schema.Session{}, schema.Errorf(schema.CodeInvalidDevice,
			fmt.Sprintf("device_name must be 1-%d bytes of UTF-8 without control characters", schema.DeviceNameMaxLen))
	}
	if req.ChallengeID == "" || req.DeviceID == "" {
		return schema.Session{}, schema.Errorf(schema.CodeBadRequest, "challenge_id and device_id are required")
	}
	if !schema.ValidID(challengeKind, req.ChallengeID) {
		return schema.Session{}, schema.Errorf(schema.CodeNotFound, "no such challenge")
	}
	sig, err := b64.DecodeString(req.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return schema.Session{}, schema.Errorf(schema.CodeBadSignature, "signature must be 64 bytes, base64url without padding")
	}
	ch, err := s.cfg.DB.ChallengeByID(ctx, req.ChallengeID)
	if errors.Is(err, store.ErrNotFound) {
		return schema.Session{}, schema.Errorf(schema.CodeNotFound, "no such challenge")
	}
	if err != nil {
		return schema.Session{}, s.internal("login", err)
	}
	if err := s.checkDeviceSignature(ctx, ch, req.DeviceID, sig); err != nil {
		return schema.Session{}, err
	}
	refresh, hash := newRefresh()
	d, err := s.cfg.DB.Login(ctx, store.LoginParams{
		ChallengeID:    ch.ID,
		DeviceID:       req.DeviceID,
		DeviceName:     req.DeviceName,
		RefreshHash:    hash,
		RefreshExpires: time.Now().Add(s.cfg.RefreshTTL),
	})
	switch {
	case errors.Is(err, store.ErrChallengeUsed):
		return schema.Session{}, schema.Errorf(schema.CodeChallengeUsed, "challenge was already used")
	case errors.Is(err, store.ErrChallengeExpired):
		return schema.Session{}, schema.Errorf(schema.CodeChallengeExpired, "challenge expired; request a new one")
	case errors.Is(err, store.ErrDeviceRevoked):
		return schema.Session{}, errDeviceRevoked
	case errors.Is(err, store.ErrNotFound):
		return schema.Session{}, schema.Errorf(schema.CodeNotFound, "no such challenge")
	case err != nil:
		return schema.Session{}, s.internal("login", err)
	}
	if err := s.refuseSuspended(ctx, d.UserID); err != nil {
		return schema.Session{}, err
	}
	s.log.Info("device logged in", "user_id", d.UserID, "device_id", d.ID)
	if d.Generation > 1 {
		// A re-login of an existing device: its earlier sessions ended,
		// and their live connections must not outlive them.
		s.revoked(d.UserID, d.ID, d.Generation)
	}
	return s.session(ch.Handle, d, refresh)
}

var errDeviceRevoked = schema.Errorf(schema.CodeDeviceRevoked, "this device was revoked; it cannot log in again")

// checkDeviceSignature checks that deviceID is a listed, unrevoked device of
// the challenge's user and that sig is its signature over the challenge.
func (s *Service) checkDeviceSignature(ctx context.Context, ch store.Challenge, deviceID string, sig []byte) error {
	notListed := schema.Errorf(schema.CodeBadSignature, "the device is not in the account's device list, or the signature does not verify with its key")
	if !schema.ValidDeviceID(deviceID) {
		return notListed
	}
	key, revoked, err := s.cfg.DB.DeviceKey(ctx, ch.UserID, deviceID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notListed
	case err != nil:
		return s.internal("login", err)
	case revoked:
		return errDeviceRevoked
	case !ed25519.Verify(key, schema.LoginMessage(ch.ID, deviceID, ch.Nonce), sig):
		return notListed
	}
	return nil
}

func (s *Service) session(handle string, d store.Device, refresh string) (schema.Session, error) {
	at, exp, err := s.cfg.Tokens.Issue(token.Claims{UserID: d.UserID, DeviceID: d.ID, Generation: d.Generation})
	if err != nil {
		return schema.Session{}, s.internal("issue token", err)
	}
	return schema.Session{
		UserID: d.UserID, Handle: handle, DeviceID: d.ID,
		AccessToken: at, ExpiresAt: exp, RefreshToken: refresh,
	}, nil
}

// Refresh rotates a refresh token and returns a new session. Reusing an old
// refresh token ends the device's whole session chain: every token of it is
// refused from then on. Errors: refresh_invalid, refresh_reused.
func (s *Service) Refresh(ctx context.Context, req schema.RefreshRequest) (schema.Session, error) {
	if req.RefreshToken == "" || len(req.RefreshToken) > 256 {
		return schema.Session{}, schema.Errorf(schema.CodeRefreshInvalid, "refresh token is invalid")
	}
	refresh, hash := newRefresh()
	d, err := s.cfg.DB.Refresh(ctx, hashRefresh(req.RefreshToken), hash, time.Now().Add(s.cfg.RefreshTTL))
	if e := s.refuseSuspendedRefresh(ctx, d, err); e != nil {
		return schema.Session{}, e
	}
	switch {
	case errors.Is(err, store.ErrRefreshReused):
		s.log.Warn("refresh token reused; session chain revoked", "user_id", d.UserID, "device_id", d.ID)
		s.revoked(d.UserID, d.ID, d.Generation)
		return schema.Session{}, schema.Errorf(schema.CodeRefreshReused, "refresh token was already used; the session is revoked, log in again")
	case errors.Is(err, store.ErrRefreshInvalid):
		return schema.Session{}, schema.Errorf(schema.CodeRefreshInvalid, "refresh token is invalid, expired or revoked")
	case err != nil:
		return schema.Session{}, s.internal("refresh", err)
	}
	u, err := s.cfg.DB.UserByID(ctx, d.UserID)
	if err != nil {
		return schema.Session{}, s.internal("refresh", err)
	}
	return s.session(u.Handle, d, refresh)
}

// Authenticate checks an access token and that its device is still active in
// the generation the token was issued for. Errors: unauthorized (empty),
// token_invalid, token_expired, token_revoked.
func (s *Service) Authenticate(ctx context.Context, accessToken string) (Principal, error) {
	if accessToken == "" {
		return Principal{}, schema.Errorf(schema.CodeUnauthorized, "an access token is required")
	}
	c, err := s.cfg.Tokens.Verify(accessToken)
	if errors.Is(err, token.ErrExpired) {
		return Principal{}, schema.Errorf(schema.CodeTokenExpired, "access token expired; refresh it")
	}
	if err != nil {
		return Principal{}, schema.Errorf(schema.CodeTokenInvalid, "access token is invalid")
	}
	d, err := s.cfg.DB.DeviceByID(ctx, c.DeviceID)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, schema.Errorf(schema.CodeTokenRevoked, "device is not active")
	}
	if err != nil {
		return Principal{}, s.internal("authenticate", err)
	}
	if d.UserID != c.UserID || d.RevokedAt != nil || d.Generation != c.Generation {
		return Principal{}, schema.Errorf(schema.CodeTokenRevoked, "device session has ended; log in again")
	}
	return Principal{UserID: c.UserID, DeviceID: c.DeviceID, Generation: c.Generation, ExpiresAt: c.ExpiresAt}, nil
}

// Active reports whether p's device is still active in p's generation. A
// connection holder calls it to find out whether to keep a connection open.
func (s *Service) Active(ctx context.Context, p Principal) (bool, error) {
	d, err := s.cfg.DB.DeviceByID(ctx, p.DeviceID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check device: %w", err)
	}
	return d.RevokedAt == nil && d.Generation == p.Generation && d.UserID == p.UserID, nil
}

// seenGap is how stale a device's last_seen_at may be before Seen moves it.
const seenGap = time.Minute

// Seen records that p's device is in use now (its last_seen_at, which logins
// and refreshes move too), at most once a minute per device.
func (s *Service) Seen(ctx context.Context, p Principal) error {
	return s.cfg.DB.TouchDevice(ctx, p.DeviceID, seenGap)
}

// Devices lists p's user's active devices, marking the caller's own.
func (s *Service) Devices(ctx context.Context, p Principal) (schema.DeviceList, error) {
	ds, err := s.cfg.DB.Devices(ctx, p.UserID)
	if err != nil {
		return schema.DeviceList{}, s.internal("devices", err)
	}
	out := schema.DeviceList{Devices: make([]schema.Device, 0, len(ds))}
	for _, d := range ds {
		out.Devices = append(out.Devices, schema.Device{
			DeviceID: d.ID, Name: d.Name, CreatedAt: d.CreatedAt, LastSeenAt: d.LastSeenAt,
			RevokedAt: d.RevokedAt, Current: d.ID == p.DeviceID,
		})
	}
	return out, nil
}

// RevokeDevice revokes one of p's user's devices (possibly p's own): its
// tokens are refused from now on and its live connections are told to close
// through a device_revoked event. Errors: not_found.
func (s *Service) RevokeDevice(ctx context.Context, p Principal, deviceID string) error {
	if !schema.ValidDeviceID(deviceID) {
		return schema.Errorf(schema.CodeNotFound, "no such device")
	}
	err := s.cfg.DB.RevokeDevice(ctx, p.UserID, deviceID)
	if errors.Is(err, store.ErrNotFound) {
		return schema.Errorf(schema.CodeNotFound, "no such device")
	}
	if err != nil {
		return s.internal("revoke device", err)
	}
	s.log.Info("device revoked", "user_id", p.UserID, "device_id", deviceID, "by_device_id", p.DeviceID)
	s.revoked(p.UserID, deviceID, 0)
	return nil
}

// revoked tells the fabric (NATS connections) and the user's devices
// (WebSockets) that deviceID's sessions below generation ended (all of
// them for 0), so their live connections close.
func (s *Service) revoked(userID, deviceID string, generation int) {
	r := fabric.Revocation{DeviceID: deviceID, Generation: generation}
	if err := fabric.PublishRevoked(s.cfg.NATS, userID, r); err != nil {
		s.log.Error("publish revocation", "user_id", userID, "device_id", deviceID, "err", err)
	}
	s.publish(userID, schema.Event{Type: schema.EventDeviceRevoked, DeviceID: deviceID, Generation: generation})
}

func (s *Service) publish(userID string, ev schema.Event) {
	if err := fabric.PublishEvent(s.cfg.NATS, userID, ev); err != nil {
		s.log.Error("publish event", "user_id", userID, "type", ev.Type, "err", err)
	}
}
