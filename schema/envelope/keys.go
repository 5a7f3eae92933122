package envelope

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strings"
)

// Keys are a user's private identity keys of envelope version 1, retired by
// version 2 (kept for the web client until it is ported). Every device of
// the user holds the same Keys, so each can open both received envelopes and the sender's
// copy of sent ones. Keys never leave the client. They are safe for
// concurrent use; do not modify them after construction.
type Keys struct {
	// Sign is the Ed25519 key that signs envelopes.
	Sign ed25519.PrivateKey
	// Kex is the X25519 key that unwraps content keys.
	Kex *ecdh.PrivateKey
}

// NewKeys generates fresh identity keys from crypto/rand. The error is
// reserved; with the standard library's random source it is always nil.
func NewKeys() (Keys, error) {
	_, sign, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Keys{}, fmt.Errorf("generate signing key: %w", err)
	}
	kex, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return Keys{}, fmt.Errorf("generate key-exchange key: %w", err)
	}
	return Keys{Sign: sign, Kex: kex}, nil
}

// Public returns the public halves of k. A missing or malformed key yields
// a nil field rather than a panic.
func (k Keys) Public() PublicKeys {
	var p PublicKeys
	if len(k.Sign) == ed25519.PrivateKeySize {
		p.Sign = k.Sign.Public().(ed25519.PublicKey)
	}
	if k.Kex != nil {
		p.Kex = k.Kex.PublicKey().Bytes()
	}
	return p
}

// LogValue implements [slog.LogValuer] so that private keys are never
// logged: only the key-exchange key id appears.
func (k Keys) LogValue() slog.Value {
	p := k.Public()
	return slog.GroupValue(slog.String("kid", EncodeKey(keyID(p.Kex))))
}

// String implements [fmt.Stringer] with the private keys redacted.
func (k Keys) String() string {
	return "envelope.Keys{kid:" + EncodeKey(keyID(k.Public().Kex)) + "}"
}

// GoString implements [fmt.GoStringer] with the private keys redacted.
func (k Keys) GoString() string { return k.String() }

func (k Keys) check(role string) error {
	if len(k.Sign) != ed25519.PrivateKeySize {
		return fmt.Errorf("%s signing key: %d bytes, want %d: %w", role, len(k.Sign), ed25519.PrivateKeySize, ErrKey)
	}
	return checkKexPrivate(k.Kex, role)
}

func checkKexPrivate(kex *ecdh.PrivateKey, role string) error {
	if kex == nil || kex.Curve() != ecdh.X25519() {
		return fmt.Errorf("%s key-exchange key: not an X25519 private key: %w", role, ErrKey)
	}
	return nil
}

// PublicKeys are a user's public identity keys as raw bytes, the form in
// which the HTTP API carries them (base64url, see [EncodeKey]).
type PublicKeys struct {
	// Sign is the raw 32-byte Ed25519 public key.
	Sign ed25519.PublicKey
	// Kex is the raw 32-byte X25519 public key.
	Kex []byte
}

// NewPublicKeys validates raw public keys, for example when a user
// registers them: sign must be [SignKeySize] bytes and kex [KexKeySize]
// bytes and not a low-order X25519 point (which would make every shared
// secret zero). It copies its arguments. Errors wrap [ErrKey].
func NewPublicKeys(sign, kex []byte) (PublicKeys, error) {
	p := PublicKeys{
		Sign: append(ed25519.PublicKey(nil), sign...),
		Kex:  append([]byte(nil), kex...),
	}
	if err := p.Validate(); err != nil {
		return PublicKeys{}, err
	}
	return p, nil
}

// Validate reports whether p holds a well-formed Ed25519 public key and an
// X25519 public key that is not of low order. Errors wrap [ErrKey].
func (p PublicKeys) Validate() error {
	if len(p.Sign) != SignKeySize {
		return fmt.Errorf("signing key: %d bytes, want %d: %w", len(p.Sign), SignKeySize, ErrKey)
	}
	_, err := kexPublic(p.Kex)
	return err
}

// lowOrderProbe is a fixed X25519 private key used only to detect low-order
// public keys: X25519 yields all zeros for them whatever the scalar.
var lowOrderProbe, _ = ecdh.X25519().NewPrivateKey(make([]byte, 32))

// kexPublic converts a raw X25519 public key, rejecting low-order points.
func kexPublic(raw []byte) (*ecdh.PublicKey, error) {
	pub, err := ecdh.X25519().NewPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("key-exchange key: %d bytes, want %d: %w", len(raw), KexKeySize, ErrKey)
	}
	if _, err := lowOrderProbe.ECDH(pub); err != nil {
		return nil, fmt.Errorf("key-exchange key: low-order point: %w", ErrKey)
	}
	return pub, nil
}

// keyID returns the wrap key id of a raw X25519 public key: the first
// KeyIDSize bytes of its SHA-256.
func keyID(kex []byte) []byte {
	sum := sha256.Sum256(kex)
	return sum[:KeyIDSize]
}

// Fingerprint returns a human-comparable fingerprint of one user's public
// keys: 30 decimal digits in 6 space-separated groups of 5, like one half
// of a Signal safety number. It is derived from
//
//	d = SHA-256(lp("mayfly fingerprint v1") || lp(p.Sign) || lp(p.Kex))
//
// where lp(x) is x's length as a 4-byte big-endian integer followed by x;
// group i (0..5) is the 5-byte big-endian integer d[5i:5i+5] modulo 100000,
// zero-padded. Any change to either key changes the fingerprint. It hashes
// the bytes as given and never fails; validate keys first with
// [PublicKeys.Validate].
func Fingerprint(p PublicKeys) string {
	return groups(fingerprintDigits(p))
}

// SafetyNumber returns the number two users compare out of band to confirm
// they hold each other's real keys: the two 30-digit fingerprints of a and
// b, sorted and concatenated, as 60 digits in 12 space-separated groups of
// 5. SafetyNumber(a, b) == SafetyNumber(b, a).
func SafetyNumber(a, b PublicKeys) string {
	fa, fb := fingerprintDigits(a), fingerprintDigits(b)
	if fb < fa {
		fa, fb = fb, fa
	}
	return groups(fa + fb)
}

const (
	fingerprintDomain = "mayfly fingerprint v1"
	fingerprintGroups = 6
)

// fingerprintDigits returns the 30 fingerprint digits without spaces.
func fingerprintDigits(p PublicKeys) string {
	var msg []byte
	msg = appendLP(msg, []byte(fingerprintDomain))
	msg = appendLP(msg, p.Sign)
	msg = appendLP(msg, p.Kex)
	return digitsOf(sha256.Sum256(msg))
}

// digitsOf returns the 30 fingerprint digits of a digest: group i is
// d[5i:5i+5] as a big-endian integer modulo 100000, zero-padded.
func digitsOf(d [sha256.Size]byte) string {
	var sb strings.Builder
	for i := range fingerprintGroups {
		var chunk [8]byte
		copy(chunk[3:], d[5*i:5*i+5])
		fmt.Fprintf(&sb, "%05d", binary.BigEndian.Uint64(chunk[:])%100000)
	}
	return sb.String()
}

// groups splits digits into space-separated groups of 5.
func groups(digits string) string {
	var sb strings.Builder
	for i := 0; i < len(digits); i += 5 {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(digits[i:min(i+5, len(digits))])
	}
	return sb.String()
}
