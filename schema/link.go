package schema

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"strings"
	"time"
)

// Device linking adds a new device's own key to the account's device list
// (link v3): the new device shows a code made of a lookup part, which the
// server sees, and a secret part, which it never sees. The lookup part
// commits to the secret and to the new device's keys, so the approving
// primary can tell a server-substituted key; the answer the primary seals
// to the new device is keyed with the secret too, so a server cannot
// forge it. No private key moves. docs/api.md ("Device linking") has the
// whole flow and the byte-exact crypto.
const (
	// LinkCodeContext labels the commitment hashed into a link code's
	// lookup part.
	LinkCodeContext = "mayfly link v3 code"
	// LinkBundleInfo is the HKDF info string of the key that seals the
	// link answer (schema.LinkKeys) to the new device.
	LinkBundleInfo = "mayfly link v3 answer"
	// LinkCodeLen is the length of a link code's lookup part, the code the
	// server knows: 10 base32 characters, 50 bits.
	LinkCodeLen = 10
	// LinkCodeSecretLen is the length of a link code's secret part: 15
	// base32 characters, 75 bits, made on the new device and never sent.
	LinkCodeSecretLen = 15
	// LinkTTL is how long a link request can be approved and its bundle fetched.
	LinkTTL = 10 * time.Minute
	// LinkSecretPrefix starts every link poll secret (LinkCreated.Secret).
	LinkSecretPrefix = "mfl_"
	// MaxLinkBundleCiphertext bounds the sealed bundle's ciphertext, in bytes.
	MaxLinkBundleCiphertext = 4096
)

// Link request states in [LinkStatus].
const (
	LinkPending  = "pending"  // not approved yet: poll again
	LinkApproved = "approved" // the sealed bundle is in the answer, which was its only delivery
)

var linkEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewLinkCodeSecret returns a fresh secret part of a link code:
// LinkCodeSecretLen random characters of the base32 alphabet (A-Z, 2-7).
func NewLinkCodeSecret() string {
	b := make([]byte, LinkCodeSecretLen)
	rand.Read(b)
	for i := range b {
		b[i] = base32Alphabet[b[i]&31]
	}
	return string(b)
}

const base32Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

// LinkCode returns the lookup part of a link code: the first 50 bits of
// SHA-256(lp(LinkCodeContext) || lp(secret) || lp(pub) || lp(deviceKey)) in
// RFC 4648 base32, 10 characters, where secret is the code's secret part
// (its ASCII characters), pub the new device's raw 32-byte X25519 link key
// and deviceKey its raw 32-byte Ed25519 device key; lp(x) is x prefixed
// with its length as a big-endian uint32. The approving primary recomputes
// it from the typed secret and the keys the server hands out and refuses on
// a mismatch; a server that does not know the secret cannot make a key of
// its own match.
func LinkCode(secret string, pub, deviceKey []byte) string {
	h := sha256.New()
	for _, part := range [][]byte{[]byte(LinkCodeContext), []byte(secret), pub, deviceKey} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	sum := h.Sum(nil)
	return linkEncoding.EncodeToString(sum[:7])[:LinkCodeLen]
}

// normalize drops spaces and dashes and upper-cases s; ok is false unless
// the result is n characters of the base32 alphabet.
func normalize(s string, n int) (string, bool) {
	code := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(s))
	if len(code) != n {
		return "", false
	}
	for i := 0; i < len(code); i++ {
		if c := code[i]; !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return "", false
		}
	}
	return code, true
}

// NormalizeLinkCode returns the canonical form of a link code's lookup
// part: upper case, without spaces and dashes. ok is false unless the
// result is LinkCodeLen characters of the base32 alphabet.
func NormalizeLinkCode(s string) (code string, ok bool) {
	return normalize(s, LinkCodeLen)
}

// SplitLinkCode returns the lookup and secret parts of a whole link code a
// person typed (25 characters, dashes and spaces ignored, any case). ok is
// false for anything else.
func SplitLinkCode(s string) (lookup, secret string, ok bool) {
	code, ok := normalize(s, LinkCodeLen+LinkCodeSecretLen)
	if !ok {
		return "", "", false
	}
	return code[:LinkCodeLen], code[LinkCodeLen:], true
}

// FormatLinkCode returns code (a lookup part, or a whole code) as people
// read it: groups of five characters joined by dashes ("ABCDE-FGHIJ-...").
// Other input is returned as is.
func FormatLinkCode(code string) string {
	if len(code) == 0 || len(code)%5 != 0 {
		return code
	}
	var b strings.Builder
	for i := 0; i < len(code); i += 5 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(code[i : i+5])
	}
	return b.String()
}

// LinkRequest is the body of POST /v1/link: the new device's ephemeral
// X25519 public key and its Ed25519 device signing key, base64url without
// padding, and the lookup part of its link code (LinkCode), which the
// server cannot check: it knows no secret part.
type LinkRequest struct {
	PublicKey string `json:"public_key"`
	DeviceKey string `json:"device_key"`
	Code      string `json:"code"`
}

// LinkCreated answers POST /v1/link. Code is the request's lookup code;
// Secret authenticates the new device's polls of the bundle and must not be
// shown or logged.
type LinkCreated struct {
	Code      string    `json:"code"`
	Secret    string    `json:"secret"`
	ExpiresAt time.Time `json:"expires_at"`
}

// LinkInfo answers GET /v1/link/{code}: the keys the code should commit to.
// The approving device checks LinkCode(secret, PublicKey, DeviceKey) ==
// Code itself, with the secret part the user typed.
type LinkInfo struct {
	Code      string    `json:"code"`
	PublicKey string    `json:"public_key"`
	DeviceKey string    `json:"device_key"`
	ExpiresAt time.Time `json:"expires_at"`
}

// SealedBundle is the link answer (LinkKeys) sealed to the new device's ephemeral
// public key: EPK is the sealer's ephemeral X25519 public key (32 bytes), N
// the AES-GCM nonce (12 bytes), CT the ciphertext with its tag (16 to
// MaxLinkBundleCiphertext bytes); all base64url without padding.
type SealedBundle struct {
	EPK string `json:"epk"`
	N   string `json:"n"`
	CT  string `json:"ct"`
}

// LinkApproveRequest is the body of POST /v1/link/{code}/approve.
type LinkApproveRequest struct {
	Bundle SealedBundle `json:"bundle"`
}

// LinkStatus answers GET /v1/link/{code}/bundle. While Status is
// LinkPending only ExpiresAt is set. Once LinkApproved, UserID and Handle
// name the approving user and Bundle holds the sealed keys; the request is
// deleted with this answer, so it is given once.
type LinkStatus struct {
	Status    string        `json:"status"`
	ExpiresAt time.Time     `json:"expires_at"`
	UserID    string        `json:"user_id,omitempty"`
	Handle    string        `json:"handle,omitempty"`
	Bundle    *SealedBundle `json:"bundle,omitempty"`
}

// LinkKeys is the plaintext of a sealed bundle in v3: who the new device
// now belongs to and the account's identity key (base64url), which the new
// device pins. No private key moves; the primary has listed the new
// device's own key (docs/envelope.md, "Link a device").
type LinkKeys struct {
	V      int    `json:"v"`
	UserID string `json:"user_id"`
	Handle string `json:"handle"`
	IK     string `json:"ik"`
}
