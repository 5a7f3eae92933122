package schema

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"
	"time"
)

// Device linking adds a new device's own key to the account's device list:
// the code commits to the new device's keys, and the primary device seals
// who the user is to the new device's ephemeral key; no private key moves. docs/api.md ("Device linking") has the whole flow
// and the byte-exact crypto.
const (
	// LinkCodeContext is hashed in front of the new device's ephemeral
	// X25519 public key and device signing key to derive the link code.
	LinkCodeContext = "mayfly link v2"
	// LinkBundleInfo is the HKDF info string of the key that seals the
	// link answer (schema.LinkKeys) to the new device.
	LinkBundleInfo = "mayfly link v1 bundle"
	// LinkCodeLen is the length of a link code: 10 base32 characters, 50 bits.
	LinkCodeLen = 10
	// LinkTTL is how long a link request can be approved and its bundle fetched.
	LinkTTL = 10 * time.Minute
	// LinkSecretPrefix starts every link secret.
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

// LinkCode returns the link code that commits to the new device's raw
// 32-byte X25519 link key pub and its raw 32-byte Ed25519 device signing key
// deviceKey: the first 50 bits of SHA-256(LinkCodeContext || pub ||
// deviceKey) in RFC 4648 base32 (A-Z, 2-7), 10 characters. The primary
// device approving a link recomputes it from the keys the server hands out
// and refuses on a mismatch, so the server cannot substitute a key of its
// own unnoticed.
func LinkCode(pub, deviceKey []byte) string {
	h := sha256.New()
	h.Write([]byte(LinkCodeContext))
	h.Write(pub)
	h.Write(deviceKey)
	sum := h.Sum(nil)
	return linkEncoding.EncodeToString(sum[:7])[:LinkCodeLen]
}

// NormalizeLinkCode returns the canonical form of a code a person typed:
// upper case, without spaces and dashes. ok is false unless the result is
// LinkCodeLen characters of the base32 alphabet.
func NormalizeLinkCode(s string) (code string, ok bool) {
	code = strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(s))
	if len(code) != LinkCodeLen {
		return "", false
	}
	for i := 0; i < len(code); i++ {
		if c := code[i]; !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return "", false
		}
	}
	return code, true
}

// FormatLinkCode returns code as people read it: two groups of five
// characters joined by a dash ("ABCDE-FGHIJ"). Other input is returned as is.
func FormatLinkCode(code string) string {
	if len(code) != LinkCodeLen {
		return code
	}
	return code[:5] + "-" + code[5:]
}

// LinkRequest is the body of POST /v1/link: the new device's ephemeral
// X25519 public key and its Ed25519 device signing key, base64url without
// padding.
type LinkRequest struct {
	PublicKey string `json:"public_key"`
	DeviceKey string `json:"device_key"`
}

// LinkCreated answers POST /v1/link. Code is LinkCode(public key), to show
// to the user; Secret authenticates the new device's polls of the bundle and
// must not be shown or logged.
type LinkCreated struct {
	Code      string    `json:"code"`
	Secret    string    `json:"secret"`
	ExpiresAt time.Time `json:"expires_at"`
}

// LinkInfo answers GET /v1/link/{code}: the public key the code should
// commit to. The approving device checks LinkCode(PublicKey) == Code itself.
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

// LinkKeys is the plaintext of a sealed bundle in v2: who the new device
// now belongs to. No private key moves; the primary has listed the new
// device's own key (docs/envelope.md, "Link a device").
type LinkKeys struct {
	V      int    `json:"v"`
	UserID string `json:"user_id"`
	Handle string `json:"handle"`
}
