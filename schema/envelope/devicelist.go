package envelope

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Version2 is the version of the v2 formats: device lists, prekeys and v2
// envelopes (docs/envelope.md, version 2).
const Version2 = 2

// Limits of the v2 formats.
const (
	// MaxDevices is the most devices a device list may hold.
	MaxDevices = 5
	// MaxWraps is the most wraps a v2 envelope may hold: every listed device
	// of the recipient and every other listed device of the sender.
	MaxWraps = 2 * MaxDevices
	// MaxVersion is the largest device list version, 2^53-1.
	MaxVersion = 1<<53 - 1
	// MaxListEncoded bounds an encoded device list, in bytes.
	MaxListEncoded = 2048
	// MaxPrekeyEncoded bounds an encoded prekey, in bytes.
	MaxPrekeyEncoded = 512
	// MaxBundleEncoded bounds an encoded prekey bundle, in bytes.
	MaxBundleEncoded = 8192
)

// Domain-separation labels of the v2 formats; see docs/envelope.md.
const (
	deviceIDDomain     = "mayfly device id v2"
	deviceListDomain   = "mayfly device list v2"
	prekeyDomain       = "mayfly prekey v2"
	fingerprintDomain2 = "mayfly fingerprint v2"
)

// ErrIdentity reports a device list or bundle that is well formed and
// correctly signed, but by an identity key other than the one the caller
// trusts (pinned), or for another user. A client must stop and ask its user
// to verify the new safety number.
var ErrIdentity = errors.New("envelope: signed by an untrusted identity key")

// deviceIDEncoding is lower-case base32 without padding, the alphabet of
// Mayfly's opaque ids.
var deviceIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// DeviceID returns the device id of a device signing key: "d" followed by
// the first 16 bytes of SHA-256(lp("mayfly device id v2") || key) in
// lower-case base32 without padding, 27 characters in all. It is the same
// shape as every other Mayfly id, so it is safe in a NATS subject.
func DeviceID(key ed25519.PublicKey) string {
	var msg []byte
	msg = appendLP(msg, []byte(deviceIDDomain))
	msg = appendLP(msg, key)
	sum := sha256.Sum256(msg)
	return "d" + deviceIDEncoding.EncodeToString(sum[:16])
}

// DeviceEntry is one device of a device list: its id and its Ed25519
// signing key. ID is always [DeviceID](Key).
type DeviceEntry struct {
	ID  string
	Key ed25519.PublicKey
}

// DeviceList is a user's signed list of devices: the only statement of
// which device keys belong to the user that clients trust, because only the
// account's identity key (IK) signs it. Obtain one from [ParseDeviceList];
// sign one with [SignDeviceList]. It is immutable once returned.
type DeviceList struct {
	// UserID is the user the list belongs to.
	UserID string
	// Version increases with every list the IK holder signs; the server
	// refuses a list whose version is not above the stored one.
	Version int64
	// IssuedAt is the signer's clock, millisecond precision.
	IssuedAt time.Time
	// IK is the account's identity public key that signed the list.
	IK ed25519.PublicKey
	// Devices are the listed devices, 1 to MaxDevices, in signed order.
	Devices []DeviceEntry

	sig [SignatureSize]byte
}

// Key returns the signing key of the listed device id.
func (l *DeviceList) Key(deviceID string) (ed25519.PublicKey, bool) {
	for _, d := range l.Devices {
		if d.ID == deviceID {
			return d.Key, true
		}
	}
	return nil, false
}

// Has reports whether key is a listed device key.
func (l *DeviceList) Has(key ed25519.PublicKey) bool {
	for _, d := range l.Devices {
		if bytes.Equal(d.Key, key) {
			return true
		}
	}
	return false
}

// SignDeviceList signs a list of device keys for userID with the identity
// key ik and returns its canonical encoding. version must be 1 to
// [MaxVersion]; keys must be 1 to [MaxDevices] distinct Ed25519 public keys.
// Errors wrap [ErrMalformed] or [ErrKey].
func SignDeviceList(userID string, version int64, at time.Time, keys []ed25519.PublicKey, ik ed25519.PrivateKey) ([]byte, error) {
	if len(ik) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign device list: identity key %d bytes: %w", len(ik), ErrKey)
	}
	l := &DeviceList{UserID: userID, Version: version, IssuedAt: time.UnixMilli(at.UnixMilli()).UTC(),
		IK: ik.Public().(ed25519.PublicKey)}
	for _, k := range keys {
		l.Devices = append(l.Devices, DeviceEntry{ID: DeviceID(k), Key: append(ed25519.PublicKey(nil), k...)})
	}
	if err := l.validate(); err != nil {
		return nil, fmt.Errorf("sign device list: %w", err)
	}
	copy(l.sig[:], ed25519.Sign(ik, l.signedBytes()))
	return l.appendCanonical(nil), nil
}

// ParseDeviceList checks the shape of an encoded device list without any
// key: exact members, ids, version and time range, 1 to MaxDevices distinct
// devices whose ids match their keys, byte lengths. It does not verify the
// signature; see [DeviceList.Verify]. Errors wrap [ErrTooLarge],
// [ErrVersion] or [ErrMalformed].
func ParseDeviceList(b []byte) (*DeviceList, error) {
	if len(b) > MaxListEncoded {
		return nil, fmt.Errorf("parse device list: %d bytes, limit %d: %w", len(b), MaxListEncoded, ErrTooLarge)
	}
	l, err := parseDeviceList(b)
	if err != nil {
		return nil, fmt.Errorf("parse device list: %w", err)
	}
	return l, nil
}

var deviceListFields = []string{"v", "uid", "ver", "ts", "ik", "devices", "sig"}

func parseDeviceList(b []byte) (*DeviceList, error) {
	m, err := readObject(b)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrMalformed)
	}
	if err := checkVersionIs(m, Version2); err != nil {
		return nil, err
	}
	if err := checkFields(m, deviceListFields); err != nil {
		return nil, err
	}
	l := new(DeviceList)
	if l.UserID, err = decodeString(m["uid"], "uid"); err != nil {
		return nil, err
	}
	if l.Version, err = decodeInt(m["ver"], "ver"); err != nil {
		return nil, err
	}
	ts, err := decodeInt(m["ts"], "ts")
	if err != nil {
		return nil, err
	}
	l.IssuedAt = time.UnixMilli(ts).UTC()
	l.IK = make(ed25519.PublicKey, SignKeySize)
	if err := decodeFixed(m["ik"], "ik", l.IK); err != nil {
		return nil, err
	}
	if err := decodeFixed(m["sig"], "sig", l.sig[:]); err != nil {
		return nil, err
	}
	if l.Devices, err = decodeDevices(m["devices"]); err != nil {
		return nil, err
	}
	if err := l.validate(); err != nil {
		return nil, err
	}
	return l, nil
}

var deviceEntryFields = []string{"id", "key"}

func decodeDevices(raw json.RawMessage) ([]DeviceEntry, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil || list == nil {
		return nil, fmt.Errorf("field \"devices\": not an array: %w", ErrMalformed)
	}
	if len(list) > MaxDevices {
		return nil, fmt.Errorf("field \"devices\": %d devices, limit %d: %w", len(list), MaxDevices, ErrMalformed)
	}
	out := make([]DeviceEntry, 0, len(list))
	for i, raw := range list {
		m, err := readObject(raw)
		if err != nil {
			return nil, fmt.Errorf("devices[%d]: %v: %w", i, err, ErrMalformed)
		}
		if err := checkFields(m, deviceEntryFields); err != nil {
			return nil, fmt.Errorf("devices[%d]: %w", i, err)
		}
		var d DeviceEntry
		if d.ID, err = decodeString(m["id"], "id"); err != nil {
			return nil, fmt.Errorf("devices[%d]: %w", i, err)
		}
		d.Key = make(ed25519.PublicKey, SignKeySize)
		if err := decodeFixed(m["key"], "key", d.Key); err != nil {
			return nil, fmt.Errorf("devices[%d]: %w", i, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// validate checks everything but the signature.
func (l *DeviceList) validate() error {
	if err := validateID(l.UserID); err != nil {
		return fmt.Errorf("field \"uid\": %v: %w", err, ErrMalformed)
	}
	if l.Version < 1 || l.Version > MaxVersion {
		return fmt.Errorf("field \"ver\": %d out of range 1 to %d: %w", l.Version, int64(MaxVersion), ErrMalformed)
	}
	if err := validateSentAt(l.IssuedAt.UnixMilli()); err != nil {
		return err
	}
	if len(l.IK) != SignKeySize {
		return fmt.Errorf("field \"ik\": %d bytes: %w", len(l.IK), ErrKey)
	}
	if len(l.Devices) < 1 || len(l.Devices) > MaxDevices {
		return fmt.Errorf("field \"devices\": %d devices, want 1 to %d: %w", len(l.Devices), MaxDevices, ErrMalformed)
	}
	for i, d := range l.Devices {
		if len(d.Key) != SignKeySize {
			return fmt.Errorf("devices[%d]: key %d bytes: %w", i, len(d.Key), ErrKey)
		}
		if d.ID != DeviceID(d.Key) {
			return fmt.Errorf("devices[%d]: id does not match its key: %w", i, ErrMalformed)
		}
		for _, e := range l.Devices[:i] {
			if e.ID == d.ID {
				return fmt.Errorf("devices[%d]: listed twice: %w", i, ErrMalformed)
			}
		}
	}
	return nil
}

// Verify checks l's signature with the identity key it names. It says
// nothing about whether that key is the right one: compare l.IK with the
// pinned key, or use [DeviceList.VerifyFor]. Errors wrap [ErrSignature].
func (l *DeviceList) Verify() error {
	if !ed25519.Verify(l.IK, l.signedBytes(), l.sig[:]) {
		return fmt.Errorf("verify device list: %w", ErrSignature)
	}
	return nil
}

// VerifyFor checks that l is userID's list, signed by the identity key ik
// the caller trusts. Errors wrap [ErrIdentity] (another user or another
// identity key) or [ErrSignature].
func (l *DeviceList) VerifyFor(userID string, ik ed25519.PublicKey) error {
	if l.UserID != userID {
		return fmt.Errorf("verify device list: list of %q, want %q: %w", l.UserID, userID, ErrIdentity)
	}
	if !bytes.Equal(l.IK, ik) {
		return fmt.Errorf("verify device list: %w", ErrIdentity)
	}
	return l.Verify()
}

// MarshalJSON returns the canonical encoding of l.
func (l *DeviceList) MarshalJSON() ([]byte, error) { return l.appendCanonical(nil), nil }

// AppendCanonical appends the canonical encoding of l to dst.
func (l *DeviceList) AppendCanonical(dst []byte) []byte { return l.appendCanonical(dst) }

// signedBytes returns DL_INPUT (docs/envelope.md).
func (l *DeviceList) signedBytes() []byte {
	b := appendLP(nil, []byte(deviceListDomain))
	b = appendLP(b, []byte(l.UserID))
	b = binary.BigEndian.AppendUint64(b, uint64(l.Version))
	b = binary.BigEndian.AppendUint64(b, uint64(l.IssuedAt.UnixMilli()))
	b = appendLP(b, l.IK)
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Devices)))
	for _, d := range l.Devices {
		b = appendLP(b, []byte(d.ID))
		b = appendLP(b, d.Key)
	}
	return b
}

func (l *DeviceList) appendCanonical(dst []byte) []byte {
	enc := base64.RawURLEncoding
	dst = append(dst, `{"v":2,"uid":"`...)
	dst = append(dst, l.UserID...)
	dst = append(dst, `","ver":`...)
	dst = strconv.AppendInt(dst, l.Version, 10)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, l.IssuedAt.UnixMilli(), 10)
	dst = append(dst, `,"ik":"`...)
	dst = enc.AppendEncode(dst, l.IK)
	dst = append(dst, `","devices":[`...)
	for i, d := range l.Devices {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":"`...)
		dst = append(dst, d.ID...)
		dst = append(dst, `","key":"`...)
		dst = enc.AppendEncode(dst, d.Key)
		dst = append(dst, `"}`...)
	}
	dst = append(dst, `],"sig":"`...)
	dst = enc.AppendEncode(dst, l.sig[:])
	return append(dst, `"}`...)
}

// checkVersionIs reports a missing or non-integer "v" as ErrMalformed and
// another integer as ErrVersion.
func checkVersionIs(m map[string]json.RawMessage, want int) error {
	raw, ok := m["v"]
	if !ok {
		return fmt.Errorf("missing field \"v\": %w", ErrMalformed)
	}
	var v int
	if err := json.Unmarshal(raw, &v); err != nil || bytes.Equal(raw, []byte("null")) {
		return fmt.Errorf("field \"v\": not an integer: %w", ErrMalformed)
	}
	if v != want {
		return fmt.Errorf("version %d, want %d: %w", v, want, ErrVersion)
	}
	return nil
}

// decodeInt decodes a JSON integer in 1..2^53-1.
func decodeInt(raw json.RawMessage, name string) (int64, error) {
	var v int64
	if bytes.Equal(raw, []byte("null")) || json.Unmarshal(raw, &v) != nil {
		return 0, fmt.Errorf("field %q: not an integer: %w", name, ErrMalformed)
	}
	if v < 1 || v > MaxVersion {
		return 0, fmt.Errorf("field %q: %d out of range 1 to %d: %w", name, v, int64(MaxVersion), ErrMalformed)
	}
	return v, nil
}

// IdentityFingerprint returns the fingerprint of an account identity key:
// 30 decimal digits in 6 groups of 5, from
// SHA-256(lp("mayfly fingerprint v2") || lp(ik)) as for v1's [Fingerprint].
func IdentityFingerprint(ik ed25519.PublicKey) string {
	return groups(identityDigits(ik))
}

// IdentitySafetyNumber returns the number two users compare to confirm
// each other's identity keys: both fingerprints sorted and concatenated, 60
// digits in 12 groups of 5. It is symmetric.
func IdentitySafetyNumber(a, b ed25519.PublicKey) string {
	fa, fb := identityDigits(a), identityDigits(b)
	if fb < fa {
		fa, fb = fb, fa
	}
	return groups(fa + fb)
}

func identityDigits(ik ed25519.PublicKey) string {
	var msg []byte
	msg = appendLP(msg, []byte(fingerprintDomain2))
	msg = appendLP(msg, ik)
	return digitsOf(sha256.Sum256(msg))
}
