package envelope

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Prekey kinds.
const (
	// KindSPK is a device's signed medium-term prekey, rotated at least
	// hourly; every wrap for the device uses the current one.
	KindSPK = "spk"
	// KindOPK is a one-time prekey: the server hands each out once, and the
	// device deletes its private part once the message that used it burned.
	KindOPK = "opk"
)

// Prekey is a device's signed X25519 prekey as it travels: its kind, public
// key and creation time, signed by the device's signing key for one user
// and device. Obtain one from [ParsePrekey]; make one with [SignPrekey].
type Prekey struct {
	// Kind is KindSPK or KindOPK.
	Kind string
	// Public is the raw 32-byte X25519 public key, not of low order.
	Public []byte
	// CreatedAt is the device's clock when it made the key.
	CreatedAt time.Time

	sig [SignatureSize]byte
}

// KeyID returns the prekey's key id: the first 8 bytes of SHA-256 over the
// public key, which names it in a wrap.
func (p *Prekey) KeyID() [KeyIDSize]byte {
	var id [KeyIDSize]byte
	copy(id[:], keyID(p.Public))
	return id
}

// SignPrekey signs the X25519 public key of priv as a prekey of kind for
// userID's device deviceID with that device's signing key, and returns its
// canonical encoding. Errors wrap [ErrMalformed] or [ErrKey].
func SignPrekey(userID, deviceID, kind string, priv *ecdh.PrivateKey, at time.Time, deviceKey ed25519.PrivateKey) ([]byte, error) {
	if err := checkKexPrivate(priv, "prekey"); err != nil {
		return nil, fmt.Errorf("sign prekey: %w", err)
	}
	if len(deviceKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign prekey: device key %d bytes: %w", len(deviceKey), ErrKey)
	}
	p := &Prekey{Kind: kind, Public: priv.PublicKey().Bytes(), CreatedAt: time.UnixMilli(at.UnixMilli()).UTC()}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("sign prekey: %w", err)
	}
	for _, id := range []string{userID, deviceID} {
		if err := validateID(id); err != nil {
			return nil, fmt.Errorf("sign prekey: id %.64q: %v: %w", id, err, ErrMalformed)
		}
	}
	copy(p.sig[:], ed25519.Sign(deviceKey, p.signedBytes(userID, deviceID)))
	return p.appendCanonical(nil), nil
}

var prekeyFields = []string{"kind", "pub", "ts", "sig"}

// ParsePrekey checks the shape of an encoded prekey without any key: exact
// members, a known kind, a usable X25519 public key, the time range and the
// signature's length. Errors wrap [ErrTooLarge], [ErrMalformed] or [ErrKey].
func ParsePrekey(b []byte) (*Prekey, error) {
	if len(b) > MaxPrekeyEncoded {
		return nil, fmt.Errorf("parse prekey: %d bytes, limit %d: %w", len(b), MaxPrekeyEncoded, ErrTooLarge)
	}
	p, err := parsePrekey(b)
	if err != nil {
		return nil, fmt.Errorf("parse prekey: %w", err)
	}
	return p, nil
}

func parsePrekey(b []byte) (*Prekey, error) {
	m, err := readObject(b)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrMalformed)
	}
	if err := checkFields(m, prekeyFields); err != nil {
		return nil, err
	}
	p := new(Prekey)
	if p.Kind, err = decodeString(m["kind"], "kind"); err != nil {
		return nil, err
	}
	p.Public = make([]byte, KexKeySize)
	if err := decodeFixed(m["pub"], "pub", p.Public); err != nil {
		return nil, err
	}
	ts, err := decodeInt(m["ts"], "ts")
	if err != nil {
		return nil, err
	}
	p.CreatedAt = time.UnixMilli(ts).UTC()
	if err := decodeFixed(m["sig"], "sig", p.sig[:]); err != nil {
		return nil, err
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Prekey) validate() error {
	if p.Kind != KindSPK && p.Kind != KindOPK {
		return fmt.Errorf("field \"kind\": %.16q is not %q or %q: %w", p.Kind, KindSPK, KindOPK, ErrMalformed)
	}
	if _, err := kexPublic(p.Public); err != nil {
		return fmt.Errorf("field \"pub\": %w", err)
	}
	return validateSentAt(p.CreatedAt.UnixMilli())
}

// Verify checks p's signature by the device signing key deviceKey for
// userID's device deviceID. Errors wrap [ErrKey] or [ErrSignature].
func (p *Prekey) Verify(userID, deviceID string, deviceKey ed25519.PublicKey) error {
	if len(deviceKey) != SignKeySize {
		return fmt.Errorf("verify prekey: device key %d bytes: %w", len(deviceKey), ErrKey)
	}
	if !ed25519.Verify(deviceKey, p.signedBytes(userID, deviceID), p.sig[:]) {
		return fmt.Errorf("verify prekey: %w", ErrSignature)
	}
	return nil
}

// MarshalJSON returns the canonical encoding of p.
func (p *Prekey) MarshalJSON() ([]byte, error) { return p.appendCanonical(nil), nil }

// AppendCanonical appends the canonical encoding of p to dst.
func (p *Prekey) AppendCanonical(dst []byte) []byte { return p.appendCanonical(dst) }

// signedBytes returns PK_INPUT (docs/envelope.md).
func (p *Prekey) signedBytes(userID, deviceID string) []byte {
	b := appendLP(nil, []byte(prekeyDomain))
	b = appendLP(b, []byte(userID))
	b = appendLP(b, []byte(deviceID))
	b = appendLP(b, []byte(p.Kind))
	b = appendLP(b, p.Public)
	return binary.BigEndian.AppendUint64(b, uint64(p.CreatedAt.UnixMilli()))
}

func (p *Prekey) appendCanonical(dst []byte) []byte {
	enc := base64.RawURLEncoding
	dst = append(dst, `{"kind":"`...)
	dst = append(dst, p.Kind...)
	dst = append(dst, `","pub":"`...)
	dst = enc.AppendEncode(dst, p.Public)
	dst = append(dst, `","ts":`...)
	dst = strconv.AppendInt(dst, p.CreatedAt.UnixMilli(), 10)
	dst = append(dst, `,"sig":"`...)
	dst = enc.AppendEncode(dst, p.sig[:])
	return append(dst, `"}`...)
}

// Bundle is what a sender fetches (claims) before sealing to a user: the
// user's signed device list and, for each listed device that has published
// one, its current signed prekey and at most one one-time prekey, which the
// server handed out to this caller only. Obtain one from [ParseBundle]; the
// server builds one with [NewBundle].
type Bundle struct {
	// List is the user's device list.
	List *DeviceList
	// Devices are the prekeys per device, in list order.
	Devices []BundleDevice
}

// BundleDevice is one device's prekeys in a [Bundle].
type BundleDevice struct {
	// ID is the device id, a listed one.
	ID string
	// SPK is the device's current signed prekey.
	SPK *Prekey
	// OPK is a one-time prekey, or nil when the device has none left.
	OPK *Prekey
}

var (
	bundleFields       = []string{"list", "devices"}
	bundleDeviceFields = []string{"id", "spk", "opk"}
)

// NewBundle returns the canonical encoding of a bundle from the stored
// canonical device list and, per device, its stored canonical prekeys
// (opk nil when none). It re-parses every part, so a corrupt row cannot
// reach a client. Errors are those of [ParseBundle].
func NewBundle(list []byte, devices []BundleParts) ([]byte, error) {
	b := append([]byte(`{"list":`), list...)
	b = append(b, `,"devices":[`...)
	for i, d := range devices {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":"`...)
		b = append(b, d.ID...)
		b = append(b, `","spk":`...)
		b = append(b, d.SPK...)
		b = append(b, `,"opk":`...)
		if d.OPK == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, d.OPK...)
		}
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	if _, err := ParseBundle(b); err != nil {
		return nil, fmt.Errorf("new bundle: %w", err)
	}
	return b, nil
}

// BundleParts are one device's stored canonical prekeys, for [NewBundle].
type BundleParts struct {
	ID       string
	SPK, OPK []byte
}

// ParseBundle checks the shape of an encoded bundle without any key: the
// list as [ParseDeviceList] checks it, at most one entry per listed device
// and none for an unlisted one, an SPK of kind spk and an OPK of kind opk
// or null. Errors wrap [ErrTooLarge], [ErrVersion], [ErrMalformed] or
// [ErrKey].
func ParseBundle(b []byte) (*Bundle, error) {
	if len(b) > MaxBundleEncoded {
		return nil, fmt.Errorf("parse bundle: %d bytes, limit %d: %w", len(b), MaxBundleEncoded, ErrTooLarge)
	}
	bu, err := parseBundle(b)
	if err != nil {
		return nil, fmt.Errorf("parse bundle: %w", err)
	}
	return bu, nil
}

func parseBundle(b []byte) (*Bundle, error) {
	m, err := readObject(b)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrMalformed)
	}
	if err := checkFields(m, bundleFields); err != nil {
		return nil, err
	}
	bu := new(Bundle)
	if bu.List, err = parseDeviceList(m["list"]); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(m["devices"], &raws); err != nil || raws == nil {
		return nil, fmt.Errorf("field \"devices\": not an array: %w", ErrMalformed)
	}
	if len(raws) > len(bu.List.Devices) {
		return nil, fmt.Errorf("field \"devices\": %d entries for %d devices: %w", len(raws), len(bu.List.Devices), ErrMalformed)
	}
	for i, raw := range raws {
		d, err := parseBundleDevice(raw)
		if err != nil {
			return nil, fmt.Errorf("devices[%d]: %w", i, err)
		}
		if _, ok := bu.List.Key(d.ID); !ok {
			return nil, fmt.Errorf("devices[%d]: device not in the list: %w", i, ErrMalformed)
		}
		for _, e := range bu.Devices {
			if e.ID == d.ID {
				return nil, fmt.Errorf("devices[%d]: device given twice: %w", i, ErrMalformed)
			}
		}
		bu.Devices = append(bu.Devices, d)
	}
	return bu, nil
}

func parseBundleDevice(raw json.RawMessage) (BundleDevice, error) {
	var d BundleDevice
	m, err := readObject(raw)
	if err != nil {
		return d, fmt.Errorf("%v: %w", err, ErrMalformed)
	}
	if err := checkFields(m, bundleDeviceFields); err != nil {
		return d, err
	}
	if d.ID, err = decodeString(m["id"], "id"); err != nil {
		return d, err
	}
	if d.SPK, err = parsePrekey(m["spk"]); err != nil {
		return d, fmt.Errorf("spk: %w", err)
	}
	if d.SPK.Kind != KindSPK {
		return d, fmt.Errorf("spk: kind %q: %w", d.SPK.Kind, ErrMalformed)
	}
	if string(m["opk"]) == "null" {
		return d, nil
	}
	if d.OPK, err = parsePrekey(m["opk"]); err != nil {
		return d, fmt.Errorf("opk: %w", err)
	}
	if d.OPK.Kind != KindOPK {
		return d, fmt.Errorf("opk: kind %q: %w", d.OPK.Kind, ErrMalformed)
	}
	return d, nil
}

// Target is one device to wrap a content key for: its id, its current
// signed prekey and, if it had one left, a one-time prekey (raw X25519
// public keys).
type Target struct {
	DeviceID string
	SPK      []byte
	OPK      []byte // nil: none
}

// Verify checks bu for userID against the identity key ik the caller
// trusts: the list is userID's and signed by ik, and every prekey is signed
// by its listed device. It returns one [Target] per device with prekeys, in
// list order, skipping the device skip (the sender's own, "" for none).
// Errors wrap [ErrIdentity] or [ErrSignature]; on error nothing may be
// sealed to any key of bu.
func (bu *Bundle) Verify(userID string, ik ed25519.PublicKey, skip string) ([]Target, error) {
	if err := bu.List.VerifyFor(userID, ik); err != nil {
		return nil, fmt.Errorf("verify bundle: %w", err)
	}
	var out []Target
	for _, d := range bu.Devices {
		key, _ := bu.List.Key(d.ID)
		if err := d.SPK.Verify(userID, d.ID, key); err != nil {
			return nil, fmt.Errorf("verify bundle: device %s spk: %w", d.ID, err)
		}
		t := Target{DeviceID: d.ID, SPK: d.SPK.Public}
		if d.OPK != nil {
			if err := d.OPK.Verify(userID, d.ID, key); err != nil {
				return nil, fmt.Errorf("verify bundle: device %s opk: %w", d.ID, err)
			}
			t.OPK = d.OPK.Public
		}
		if d.ID != skip {
			out = append(out, t)
		}
	}
	return out, nil
}
