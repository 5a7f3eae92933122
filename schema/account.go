package schema

import "time"

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
const LoginContext = "mayfly login v1\x00"

// LoginMessage returns the exact bytes a device signs with its Ed25519 key to
// answer challenge nonce (the raw bytes, not their base64 form).
func LoginMessage(challengeID string, nonce []byte) []byte {
	m := make([]byte, 0, len(LoginContext)+len(challengeID)+1+len(nonce))
	m = append(m, LoginContext...)
	m = append(m, challengeID...)
	m = append(m, 0)
	return append(m, nonce...)
}

// RegisterRequest is the body of POST /v1/register.
type RegisterRequest struct {
	Handle  string `json:"handle"`
	SignKey string `json:"sign_key"` // Ed25519 public key, base64url
	KexKey  string `json:"kex_key"`  // X25519 public key, base64url
}

// User is a user's public identity: what anyone logged in may look up.
type User struct {
	UserID      string    `json:"user_id"`
	Handle      string    `json:"handle"`
	SignKey     string    `json:"sign_key"`
	KexKey      string    `json:"kex_key"`
	Fingerprint string    `json:"fingerprint"`
	CreatedAt   time.Time `json:"created_at"`
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

// LoginRequest is the body of POST /v1/login: the signature over
// LoginMessage(challenge_id, nonce) and the name of the logging-in device.
type LoginRequest struct {
	ChallengeID string `json:"challenge_id"`
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
