package schema

import (
	"encoding/json"
	"time"
)

// Public keys travel as base64url without padding. Both are 32 bytes.
const (
	SignKeyLen = 32 // Ed25519 public key
	KexKeyLen  = 32 // X25519 public key
)

// Device limits.
const (
	MaxDevices       = 5  // active devices per user
	DeviceNameMaxLen = 64 // bytes
)

// LoginContext is prefixed to the challenge bytes before signing, so a login
// signature can never be replayed as any other kind of signature.
const LoginContext = "mayfly login v2\x00"

// LoginMessage returns the exact bytes device deviceID signs with its device
// signing key to answer challenge nonce (the raw bytes, not their base64
// form): LoginContext || challenge id || 0 || device id || 0 || nonce.
func LoginMessage(challengeID, deviceID string, nonce []byte) []byte {
	m := make([]byte, 0, len(LoginContext)+len(challengeID)+len(deviceID)+2+len(nonce))
	m = append(m, LoginContext...)
	m = append(m, challengeID...)
	m = append(m, 0)
	m = append(m, deviceID...)
	m = append(m, 0)
	return append(m, nonce...)
}

// RegisterRequest is the body of POST /v1/register.
type RegisterRequest struct {
	Handle string `json:"handle"`
	IK     string `json:"ik"` // Ed25519 identity public key, base64url
}

// User is a user's public identity: what anyone logged in may look up.
// DeviceList is the newest signed device list (docs/envelope.md), absent
// until the first one is published.
type User struct {
	UserID      string          `json:"user_id"`
	Handle      string          `json:"handle"`
	IK          string          `json:"ik"`
	Fingerprint string          `json:"fingerprint"`
	CreatedAt   time.Time       `json:"created_at"`
	DeviceList  json.RawMessage `json:"device_list,omitempty"`
}

// DeviceListRequest is the body of POST /v1/devicelist: a device list
// signed by the account's identity key.
type DeviceListRequest struct {
	List json.RawMessage `json:"list"`
}

// IdentityResetRequest is the body of POST /v1/identity/reset: a new
// identity key and a device list signed by it.
type IdentityResetRequest struct {
	IK   string          `json:"ik"`
	List json.RawMessage `json:"list"`
}

// DeviceListStored answers POST /v1/devicelist, and POST
// /v1/identity/reset once the reset took effect.
type DeviceListStored struct {
	Version int64    `json:"version"`
	Revoked []string `json:"revoked,omitempty"` // devices the list dropped, now revoked
}

// Identity reset states in [IdentityReset].
const (
	ResetPending = "pending" // waiting for NotBefore; the primary may cancel it
	ResetDone    = "done"    // the new identity key and list are stored
)

// IdentityReset answers POST /v1/identity/reset (200 when done, 202 while
// pending) and GET /v1/identity/reset (the pending reset). A reset by the
// primary device is done at once; one by a linked device is pending until
// NotBefore, every other device of the user is told (event
// identity_reset_requested), and the primary cancels it by publishing any
// device list or with DELETE /v1/identity/reset. Posting the same request
// again from NotBefore on completes it.
type IdentityReset struct {
	Status string `json:"status"`
	// DeviceID is the device that asked for the reset.
	DeviceID string `json:"device_id"`
	// IKFingerprint is the fingerprint of the identity key it asks for, for
	// the other devices to show.
	IKFingerprint string     `json:"ik_fingerprint,omitempty"`
	RequestedAt   *time.Time `json:"requested_at,omitempty"`
	NotBefore     *time.Time `json:"not_before,omitempty"`
	// Version and Revoked are set once done, as in DeviceListStored.
	Version int64    `json:"version,omitempty"`
	Revoked []string `json:"revoked,omitempty"`
}

// PrekeysUpload is the body of PUT /v1/prekeys: an optional new signed
// prekey and one-time prekeys to add, each a signed prekey object.
type PrekeysUpload struct {
	SPK  json.RawMessage   `json:"spk,omitempty"`
	OPKs []json.RawMessage `json:"opks,omitempty"`
}

// MaxOPKsPerUpload bounds the one-time prekeys of one PUT /v1/prekeys (50
// fit the 16 KiB body limit with room to spare).
const MaxOPKsPerUpload = 50

// PrekeyStatus answers GET and PUT /v1/prekeys: whether the caller's
// device has a signed prekey on the server and the key ids (base64url) of
// its unclaimed one-time prekeys.
type PrekeyStatus struct {
	HasSPK bool     `json:"has_spk"`
	OPKs   []string `json:"opks"`
}

// ChallengeRequest is the body of POST /v1/login/challenge.
type ChallengeRequest struct {
	Handle string `json:"handle"`
}

// Challenge is a single-use login challenge.
type Challenge struct {
	ChallengeID string    `json:"challenge_id"`
	Nonce       string    `json:"nonce"` // 32 random bytes, base64url
	ExpiresAt   time.Time `json:"expires_at"`
}

// LoginRequest is the body of POST /v1/login: the device's signature over
// LoginMessage(challenge_id, device_id, nonce) and the device's name.
type LoginRequest struct {
	ChallengeID string `json:"challenge_id"`
	DeviceID    string `json:"device_id"`
	Signature   string `json:"signature"` // Ed25519 signature, base64url
	DeviceName  string `json:"device_name"`
}

// Session is the answer to a login or a refresh.
type Session struct {
	UserID       string    `json:"user_id"`
	Handle       string    `json:"handle"`
	DeviceID     string    `json:"device_id"`
	AccessToken  string    `json:"access_token"`
	ExpiresAt    time.Time `json:"expires_at"`
	RefreshToken string    `json:"refresh_token"`
}

// RefreshRequest is the body of POST /v1/refresh.
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// Device is one of a user's logged-in devices.
type Device struct {
	DeviceID   string     `json:"device_id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastSeenAt time.Time  `json:"last_seen_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	Current    bool       `json:"current,omitempty"`
}

// DeviceList is the answer to GET /v1/devices.
type DeviceList struct {
	Devices []Device `json:"devices"`
}
