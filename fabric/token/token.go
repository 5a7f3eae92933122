// Package token issues and verifies Mayfly access tokens: short-lived JWTs
// signed with the server's Ed25519 key (EdDSA). The algorithm is pinned, and
// exp, iat, iss, aud and sub are required, so a token signed with "none",
// HS256 or any other key or algorithm is refused.
//
// An access token says who (user id), which device, and which device
// generation it was issued for; whether that device is still active is the
// caller's question (see fabric/account). An [Issuer] is immutable and safe
// for concurrent use.
package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mayfly-im/mayfly/schema"
)

// Errors returned by [Issuer.Verify].
var (
	ErrExpired = errors.New("token: expired")
	ErrInvalid = errors.New("token: invalid")
)

// Defaults for [Config].
const (
	DefaultIssuer   = "mayfly"
	DefaultAudience = "mayfly"
	DefaultTTL      = 15 * time.Minute
)

// Config configures an Issuer. Zero values take the documented defaults.
type Config struct {
	Key      ed25519.PrivateKey // required: the server's signing key
	Issuer   string             // iss; default DefaultIssuer
	Audience string             // aud; default DefaultAudience
	TTL      time.Duration      // lifetime of access tokens; default DefaultTTL
}

// Claims are what an access token asserts.
type Claims struct {
	UserID     string
	DeviceID   string
	Generation int
	ExpiresAt  time.Time
}

type jwtClaims struct {
	jwt.RegisteredClaims
	DeviceID   string `json:"did"`
	Generation int    `json:"gen"`
}

// Issuer signs and verifies access tokens.
type Issuer struct {
	cfg    Config
	pub    ed25519.PublicKey
	parser *jwt.Parser
}

// New returns an Issuer for cfg.
func New(cfg Config) (*Issuer, error) {
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("token: config needs an Ed25519 private key")
	}
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	return &Issuer{
		cfg: cfg,
		pub: cfg.Key.Public().(ed25519.PublicKey),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(Leeway),
			// Refuse non-canonical base64 (set trailing bits, padding): a
			// token that verifies has exactly one spelling, the issued one.
			jwt.WithStrictDecoding(),
		),
	}, nil
}

// TTL returns the lifetime of the tokens this Issuer makes.
func (is *Issuer) TTL() time.Duration { return is.cfg.TTL }

// Issue returns a signed access token for c (ExpiresAt is set from the TTL)
// and its expiry.
func (is *Issuer) Issue(c Claims) (string, time.Time, error) {
	now := time.Now()
	exp := now.Add(is.cfg.TTL)
	jc := jwtClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    is.cfg.Issuer,
			Subject:   c.UserID,
			Audience:  jwt.ClaimStrings{is.cfg.Audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        schema.NewID('t'),
		},
		DeviceID:   c.DeviceID,
		Generation: c.Generation,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jc).SignedString(is.cfg.Key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign access token: %w", err)
	}
	return s, exp.Truncate(time.Second), nil
}

// maxTokenLen bounds what Verify will parse.
const maxTokenLen = 4096

// Leeway is the clock skew Verify tolerates on exp and iat, for gateways
// whose clocks differ slightly from the issuing one.
const Leeway = 5 * time.Second

// Verify checks tok's signature (EdDSA with the Issuer's key, no other
// algorithm), issuer, audience, issue time and expiry (each with [Leeway]),
// that its subject and device are well-formed ids and that its base64 is
// canonical. It returns ErrExpired for an expired token that is otherwise
// valid (signed by this Issuer's key), and ErrInvalid (wrapped) for anything
// else: a forged or tampered token never reads as merely expired.
func (is *Issuer) Verify(tok string) (Claims, error) {
	if len(tok) > maxTokenLen {
		return Claims{}, fmt.Errorf("%w: too long", ErrInvalid)
	}
	var jc jwtClaims
	_, err := is.parser.ParseWithClaims(tok, &jc, func(*jwt.Token) (any, error) { return is.pub, nil })
	if errors.Is(err, jwt.ErrTokenExpired) && onlyExpired(err) {
		return Claims{}, ErrExpired
	}
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if jc.IssuedAt == nil {
		return Claims{}, fmt.Errorf("%w: no iat", ErrInvalid)
	}
	if !schema.ValidUserID(jc.Subject) || !schema.ValidDeviceID(jc.DeviceID) || jc.Generation < 1 {
		return Claims{}, fmt.Errorf("%w: bad subject or device", ErrInvalid)
	}
	return Claims{UserID: jc.Subject, DeviceID: jc.DeviceID, Generation: jc.Generation, ExpiresAt: jc.ExpiresAt.Time}, nil
}

// onlyExpired reports whether expiry is the only reason err was returned: a
// forged token that is also expired must still read as invalid. (jwt/v5
// checks the signature before the claims, and reports every failing claim.)
func onlyExpired(err error) bool {
	for _, other := range []error{
		jwt.ErrTokenSignatureInvalid, jwt.ErrTokenMalformed, jwt.ErrTokenUnverifiable,
		jwt.ErrTokenInvalidIssuer, jwt.ErrTokenInvalidAudience, jwt.ErrTokenUsedBeforeIssued,
		jwt.ErrTokenNotValidYet, jwt.ErrTokenRequiredClaimMissing, jwt.ErrTokenInvalidSubject,
		jwt.ErrTokenInvalidId,
	} {
		if errors.Is(err, other) {
			return false
		}
	}
	return true
}

// LoadOrCreateKey reads the PKCS#8 PEM Ed25519 key at path, or, if the file
// does not exist, makes a new key and writes it there with mode 0600.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read token key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("read token key %s: not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("read token key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("read token key %s: not an Ed25519 key", path)
	}
	return ek, nil
}

func createKey(path string) (ed25519.PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate token key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode token key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create token key dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create token key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return nil, fmt.Errorf("write token key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write token key: %w", err)
	}
	return k, nil
}
