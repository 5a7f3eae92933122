// Package envelope provides Mayfly's end-to-end encrypted message envelope
// and the identity formats around it (docs/envelope.md).
//
// Version 2 (v2.go, devicelist.go, prekey.go) is what clients and the
// server speak: device ids derived from device signing keys, device lists
// signed by the account's identity key, prekeys signed by their device,
// prekey bundles, and envelopes whose content key is wrapped for every
// listed device with an X3DH-style combination of an ephemeral key, the
// device's signed prekey and a one-time prekey, signed by the sending
// device. [SealV2], [ParseV2], [CheckV2] (the server's check),
// [EnvelopeV2.Open], [SignDeviceList], [ParseDeviceList], [SignPrekey],
// [ParsePrekey], [NewBundle], [ParseBundle], [Bundle.Verify],
// [IdentityFingerprint] and [IdentitySafetyNumber].
//
// Version 1 ([Seal], [Parse], [Check], [Open], [Keys], [Fingerprint]) is the
// retired format: one key pair shared by all of a user's devices, wrapped
// for the recipient's and the sender's long-term X25519 key, signed by the
// shared Ed25519 key. The server refuses it since identity v2; it stays
// until the browser client is ported.
//
// Only primitives available in browser WebCrypto are used. The package
// imports no other package of this module and holds no state. All
// functions are safe for concurrent use. Parsed values are immutable once
// returned and may be read from many goroutines; only
// [Envelope.UnmarshalJSON] modifies one.
package envelope

import (
	"encoding/base64"
	"errors"
	"time"
)

// Version is the envelope format version this package writes and accepts.
const Version = 1

// Limits enforced by [Seal] and [Parse].
const (
	// MaxPlaintext is the largest payload, in bytes, that can be sealed.
	MaxPlaintext = 64 << 10
	// MaxEncoded is the largest encoded envelope, in bytes, that Parse accepts.
	// A sealed MaxPlaintext payload encodes to about 88 KiB.
	MaxEncoded = 96 << 10
	// MaxIDLen is the maximum length of a user id or client message id.
	MaxIDLen = 64
	// MaxSentAtMillis is the largest sent-at time in unix milliseconds,
	// 2^53-1, the largest integer a JavaScript number holds exactly.
	MaxSentAtMillis = 1<<53 - 1
)

// Sizes of the fixed-length byte fields of an envelope.
const (
	// KeyIDSize is the size of a wrap's key id: the first 8 bytes of
	// SHA-256 over the recipient's raw X25519 public key.
	KeyIDSize = 8
	// KexKeySize is the size of a raw X25519 public key.
	KexKeySize = 32
	// SignKeySize is the size of a raw Ed25519 public key.
	SignKeySize = 32
	// NonceSize is the size of every AES-256-GCM nonce.
	NonceSize = 12
	// WrappedKeySize is the size of a wrapped content key: 32 bytes of key
	// and a 16-byte GCM tag.
	WrappedKeySize = contentKeySize + tagSize
	// SignatureSize is the size of an Ed25519 signature.
	SignatureSize = 64

	contentKeySize = 32
	tagSize        = 16
	numWraps       = 2
)

// Errors returned, wrapped with context, by this package. Callers test for
// them with [errors.Is].
var (
	// ErrMalformed reports an envelope, header or id that is not well formed:
	// bad JSON, a missing, unknown or duplicate field, bad base64url, a field
	// of the wrong length, a bad id, an out-of-range time or the wrong number
	// of wraps.
	ErrMalformed = errors.New("envelope: malformed")
	// ErrVersion reports an envelope whose "v" is not [Version].
	ErrVersion = errors.New("envelope: unsupported version")
	// ErrTooLarge reports an encoded envelope over [MaxEncoded] bytes or a
	// payload over [MaxPlaintext] bytes.
	ErrTooLarge = errors.New("envelope: too large")
	// ErrKey reports a key of the wrong size or type, or an X25519 public key
	// of low order.
	ErrKey = errors.New("envelope: invalid key")
	// ErrSignature reports a signature that does not verify under the given
	// sender key: the envelope was forged, altered in transit, or signed by
	// another key.
	ErrSignature = errors.New("envelope: bad signature")
	// ErrNoWrap reports that the envelope has no wrap for the reader's X25519
	// key: the reader is neither the recipient nor the sender.
	ErrNoWrap = errors.New("envelope: no wrap for this key")
	// ErrDecrypt reports that a correctly signed envelope could not be
	// decrypted with the reader's key. Only a faulty or malicious sender
	// produces one.
	ErrDecrypt = errors.New("envelope: decryption failed")
)

// Header is the plaintext metadata of an envelope. It is visible to the
// server, bound to the ciphertext as associated data, and signed.
type Header struct {
	// From is the sender's user id: 1 to MaxIDLen characters of
	// [A-Za-z0-9_-].
	From string
	// To is the recipient's user id, same alphabet. It may equal From.
	To string
	// MsgID is the sender's client message id, same alphabet, used by the
	// server to deduplicate retries.
	MsgID string
	// SentAt is the sender's clock at sealing time. Only millisecond
	// precision is carried; it must lie in (1970-01-01, MaxSentAtMillis].
	SentAt time.Time
}

// Validate reports whether h can be sealed: every id well formed and SentAt
// in range. The error wraps [ErrMalformed].
func (h Header) Validate() error {
	if err := validateIDs(h.From, h.To, h.MsgID); err != nil {
		return err
	}
	return validateSentAt(h.SentAt.UnixMilli())
}

// Envelope is a parsed envelope whose shape has been checked but whose
// signature has not. Obtain one from [Parse] or [Envelope.UnmarshalJSON];
// the zero value is not a valid envelope.
type Envelope struct {
	from, to, msgID string
	sentAt          int64 // unix milliseconds
	wraps           [numWraps]wrap
	nonce           [NonceSize]byte
	ciphertext      []byte
	sig             [SignatureSize]byte
}

// wrap is one encryption of the content key for one X25519 public key.
type wrap struct {
	keyID     [KeyIDSize]byte
	ephemeral [KexKeySize]byte
	nonce     [NonceSize]byte
	key       [WrappedKeySize]byte
}

// Header returns the envelope's header. SentAt is in UTC.
func (e *Envelope) Header() Header {
	return Header{
		From:   e.from,
		To:     e.to,
		MsgID:  e.msgID,
		SentAt: time.UnixMilli(e.sentAt).UTC(),
	}
}

// MarshalJSON returns the canonical JSON encoding of e: fields in the
// documented order, no whitespace, base64url without padding. [Parse]
// accepts the result and [Open] opens it exactly as it opens the bytes e was
// parsed from, so a server may relay either.
func (e *Envelope) MarshalJSON() ([]byte, error) {
	return e.appendCanonical(make([]byte, 0, e.encodedLen())), nil
}

// UnmarshalJSON replaces *e with the envelope parsed from b, with the same
// checks and errors as [Parse]. Unlike most decoders it rejects JSON null
// with [ErrMalformed]; use a *Envelope field for an optional envelope. On
// error *e is left unchanged.
func (e *Envelope) UnmarshalJSON(b []byte) error {
	p, err := Parse(b)
	if err != nil {
		return err
	}
	*e = *p
	return nil
}

// EncodeKey returns b as base64url without padding, the encoding of every
// key and byte field in the envelope and the HTTP API.
func EncodeKey(b []byte) string {
	return base64.RawURLEncoding.EncodeToString(b)
}
