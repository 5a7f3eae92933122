package envelope

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Domain-separation labels of the v2 envelope; see docs/envelope.md.
const (
	wrapInfo2     = "mayfly envelope v2 wrap"
	aadDomain2    = "mayfly envelope v2 aad"
	signedDomain2 = "mayfly envelope v2 sig"
)

// HeaderV2 is the plaintext metadata of a v2 envelope: visible to the
// server, bound to the ciphertext as associated data, and signed.
type HeaderV2 struct {
	// From is the sender's user id.
	From string
	// FromDevice is the sending device's id; its key in From's device list
	// signs the envelope.
	FromDevice string
	// To is the recipient's user id.
	To string
	// MsgID is the sender's client message id, for deduplication.
	MsgID string
	// SentAt is the sender's clock, millisecond precision.
	SentAt time.Time
}

// Validate reports whether h can be sealed. Errors wrap [ErrMalformed].
func (h HeaderV2) Validate() error {
	if err := validateIDs(h.From, h.To, h.MsgID); err != nil {
		return err
	}
	if err := validateID(h.FromDevice); err != nil {
		return fmt.Errorf("field \"fd\": %v: %w", err, ErrMalformed)
	}
	return validateSentAt(h.SentAt.UnixMilli())
}

// EnvelopeV2 is a parsed v2 envelope whose shape has been checked but whose
// signature has not. Obtain one from [ParseV2]. It is immutable.
type EnvelopeV2 struct {
	from, fromDevice, to, msgID string
	sentAt                      int64
	wraps                       []wrapV2
	nonce                       [NonceSize]byte
	ciphertext                  []byte
	sig                         [SignatureSize]byte
}

// wrapV2 is the content key encrypted for one device.
type wrapV2 struct {
	WrapInfo
	ephemeral [KexKeySize]byte
	key       [WrappedKeySize]byte
}

// WrapInfo names the keys one wrap was made for: the target device, the key
// id of its signed prekey and, if one was used, of its one-time prekey.
type WrapInfo struct {
	DeviceID string
	SPK      [KeyIDSize]byte
	OPK      [KeyIDSize]byte
	HasOPK   bool
}

// Header returns e's header, SentAt in UTC.
func (e *EnvelopeV2) Header() HeaderV2 {
	return HeaderV2{From: e.from, FromDevice: e.fromDevice, To: e.to, MsgID: e.msgID, SentAt: time.UnixMilli(e.sentAt).UTC()}
}

// Wraps returns what each wrap of e was made for, in envelope order. A
// device reads its own entry to find which prekeys it needs, and keeps a
// one-time prekey while a live envelope names it.
func (e *EnvelopeV2) Wraps() []WrapInfo {
	out := make([]WrapInfo, len(e.wraps))
	for i := range e.wraps {
		out[i] = e.wraps[i].WrapInfo
	}
	return out
}

// WrapFor returns the wrap made for deviceID, if any.
func (e *EnvelopeV2) WrapFor(deviceID string) (WrapInfo, bool) {
	for i := range e.wraps {
		if e.wraps[i].DeviceID == deviceID {
			return e.wraps[i].WrapInfo, true
		}
	}
	return WrapInfo{}, false
}

// SealV2 encrypts plaintext under a fresh content key, wraps that key for
// every target (each the X3DH-style combination of a fresh ephemeral key
// with the target's signed prekey and one-time prekey) and signs the
// envelope with the sending device's key. targets come from verified
// bundles ([Bundle.Verify]) of the recipient and of the sender's other
// devices: 1 to [MaxWraps], distinct devices. Errors wrap [ErrMalformed],
// [ErrTooLarge] or [ErrKey].
func SealV2(h HeaderV2, deviceKey ed25519.PrivateKey, targets []Target, plaintext []byte) ([]byte, error) {
	e, err := sealV2(rand.Reader, h, deviceKey, targets, plaintext)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return e.appendCanonical(nil), nil
}

// sealV2 seals reading every random byte from rnd, in this order: the
// content key (32), the payload nonce (12), then each wrap's ephemeral
// private key (32) in target order. The test vectors rely on it.
func sealV2(rnd io.Reader, h HeaderV2, deviceKey ed25519.PrivateKey, targets []Target, plaintext []byte) (*EnvelopeV2, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	if len(plaintext) > MaxPlaintext {
		return nil, fmt.Errorf("plaintext %d bytes, limit %d: %w", len(plaintext), MaxPlaintext, ErrTooLarge)
	}
	if len(deviceKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("device key %d bytes: %w", len(deviceKey), ErrKey)
	}
	if len(targets) < 1 || len(targets) > MaxWraps {
		return nil, fmt.Errorf("%d targets, want 1 to %d: %w", len(targets), MaxWraps, ErrMalformed)
	}
	e := &EnvelopeV2{from: h.From, fromDevice: h.FromDevice, to: h.To, msgID: h.MsgID, sentAt: h.SentAt.UnixMilli()}
	contentKey := make([]byte, contentKeySize)
	if _, err := io.ReadFull(rnd, contentKey); err != nil {
		return nil, fmt.Errorf("random: %w", err)
	}
	if _, err := io.ReadFull(rnd, e.nonce[:]); err != nil {
		return nil, fmt.Errorf("random: %w", err)
	}
	e.wraps = make([]wrapV2, len(targets))
	for i, t := range targets {
		if err := validateID(t.DeviceID); err != nil {
			return nil, fmt.Errorf("target %d: %v: %w", i, err, ErrMalformed)
		}
		if _, dup := e.WrapFor(t.DeviceID); dup {
			return nil, fmt.Errorf("target %d: device given twice: %w", i, ErrMalformed)
		}
		w, err := wrapKeyV2(rnd, contentKey, t)
		if err != nil {
			return nil, fmt.Errorf("target %d: %w", i, err)
		}
		e.wraps[i] = w
	}
	e.ciphertext = newGCM(contentKey).Seal(nil, e.nonce[:], plaintext, e.aad())
	copy(e.sig[:], ed25519.Sign(deviceKey, e.signedBytes()))
	return e, nil
}

// wrapKeyV2 wraps contentKey for one target device.
func wrapKeyV2(rnd io.Reader, contentKey []byte, t Target) (wrapV2, error) {
	w := wrapV2{WrapInfo: WrapInfo{DeviceID: t.DeviceID}}
	spk, err := kexPublic(t.SPK)
	if err != nil {
		return w, fmt.Errorf("spk: %w", err)
	}
	copy(w.SPK[:], keyID(t.SPK))
	var opk *ecdh.PublicKey
	if t.OPK != nil {
		if opk, err = kexPublic(t.OPK); err != nil {
			return w, fmt.Errorf("opk: %w", err)
		}
		copy(w.OPK[:], keyID(t.OPK))
		w.HasOPK = true
	}
	seed := make([]byte, KexKeySize)
	if _, err := io.ReadFull(rnd, seed); err != nil {
		return w, fmt.Errorf("random: %w", err)
	}
	eph, err := ecdh.X25519().NewPrivateKey(seed)
	if err != nil {
		return w, fmt.Errorf("ephemeral key: %w", err)
	}
	copy(w.ephemeral[:], eph.PublicKey().Bytes())
	kek, err := kekV2(eph, w.ephemeral[:], spk, opk)
	if err != nil {
		return w, err
	}
	newGCM(kek).Seal(w.key[:0], zeroNonce[:], contentKey, nil)
	return w, nil
}

// zeroNonce is the nonce of every v2 wrap: each wrapping key is derived
// from a fresh ephemeral key and encrypts exactly one content key.
var zeroNonce [NonceSize]byte

// kekV2 derives a wrap's key-encryption key from our X25519 private key
// and the other side's public keys:
//
//	ikm  = X25519(priv, spk) || X25519(priv, opk)   (the second only with an OPK)
//	salt = E || SPK || OPK                          (raw public keys)
//	KEK  = HKDF-SHA256(ikm, salt, "mayfly envelope v2 wrap", 32)
//
// The sender calls it with the ephemeral private key and the device's
// prekeys; the reader with its prekeys' private keys and the ephemeral
// public key (X25519 is symmetric), through openWrap.
func kekV2(eph *ecdh.PrivateKey, ephPub []byte, spk, opk *ecdh.PublicKey) ([]byte, error) {
	dh1, err := eph.ECDH(spk)
	if err != nil {
		return nil, fmt.Errorf("wrap: %v: %w", err, ErrKey)
	}
	ikm, salt := dh1, append(append([]byte(nil), ephPub...), spk.Bytes()...)
	if opk != nil {
		dh2, err := eph.ECDH(opk)
		if err != nil {
			return nil, fmt.Errorf("wrap: %v: %w", err, ErrKey)
		}
		ikm = append(ikm, dh2...)
		salt = append(salt, opk.Bytes()...)
	}
	return deriveKEK(ikm, salt)
}

func deriveKEK(ikm, salt []byte) ([]byte, error) {
	kek, err := hkdf.Key(sha256.New, ikm, salt, wrapInfo2, contentKeySize)
	if err != nil {
		return nil, fmt.Errorf("derive wrapping key: %w", err)
	}
	return kek, nil
}

// Verify checks e's signature with the sending device's key, which the
// caller takes from the sender's verified device list (the entry for
// Header().FromDevice). Errors wrap [ErrKey] or [ErrSignature].
func (e *EnvelopeV2) Verify(deviceKey ed25519.PublicKey) error {
	if len(deviceKey) != SignKeySize {
		return fmt.Errorf("verify: device key %d bytes: %w", len(deviceKey), ErrKey)
	}
	if !ed25519.Verify(deviceKey, e.signedBytes(), e.sig[:]) {
		return fmt.Errorf("verify: %w", ErrSignature)
	}
	return nil
}

// Open verifies e with the sending device's key, then unwraps the content
// key of deviceID's wrap with that device's signed prekey spk and one-time
// prekey opk (nil when the wrap names none) and decrypts the payload,
// which the caller owns. Errors wrap [ErrKey], [ErrSignature], [ErrNoWrap]
// (no wrap for deviceID, or a prekey that is not the one the wrap names:
// deleted keys open nothing) or [ErrDecrypt].
func (e *EnvelopeV2) Open(deviceID string, senderDeviceKey ed25519.PublicKey, spk, opk *ecdh.PrivateKey) ([]byte, error) {
	if err := e.Verify(senderDeviceKey); err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	w, ok := e.wrapFor(deviceID)
	if !ok {
		return nil, fmt.Errorf("open: no wrap for device %s: %w", deviceID, ErrNoWrap)
	}
	contentKey, err := w.open(spk, opk)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	plaintext, err := newGCM(contentKey).Open(nil, e.nonce[:], e.ciphertext, e.aad())
	if err != nil {
		return nil, fmt.Errorf("open: payload: %w", ErrDecrypt)
	}
	return plaintext, nil
}

func (e *EnvelopeV2) wrapFor(deviceID string) (*wrapV2, bool) {
	for i := range e.wraps {
		if e.wraps[i].DeviceID == deviceID {
			return &e.wraps[i], true
		}
	}
	return nil, false
}

// open unwraps the content key with the device's prekey private keys.
func (w *wrapV2) open(spk, opk *ecdh.PrivateKey) ([]byte, error) {
	if err := checkKexPrivate(spk, "spk"); err != nil {
		return nil, err
	}
	if !bytes.Equal(keyID(spk.PublicKey().Bytes()), w.SPK[:]) {
		return nil, fmt.Errorf("wrap needs another signed prekey: %w", ErrNoWrap)
	}
	if w.HasOPK {
		if opk == nil {
			return nil, fmt.Errorf("wrap needs a one-time prekey: %w", ErrNoWrap)
		}
		if err := checkKexPrivate(opk, "opk"); err != nil {
			return nil, err
		}
		if !bytes.Equal(keyID(opk.PublicKey().Bytes()), w.OPK[:]) {
			return nil, fmt.Errorf("wrap needs another one-time prekey: %w", ErrNoWrap)
		}
	}
	eph, err := ecdh.X25519().NewPublicKey(w.ephemeral[:])
	if err != nil {
		return nil, fmt.Errorf("content key: %w", ErrDecrypt)
	}
	dh1, err := spk.ECDH(eph)
	if err != nil {
		return nil, fmt.Errorf("content key: %w", ErrDecrypt)
	}
	ikm := dh1
	salt := append(append([]byte(nil), w.ephemeral[:]...), spk.PublicKey().Bytes()...)
	if w.HasOPK {
		dh2, err := opk.ECDH(eph)
		if err != nil {
			return nil, fmt.Errorf("content key: %w", ErrDecrypt)
		}
		ikm = append(ikm, dh2...)
		salt = append(salt, opk.PublicKey().Bytes()...)
	}
	kek, err := deriveKEK(ikm, salt)
	if err != nil {
		return nil, err
	}
	key, err := newGCM(kek).Open(nil, zeroNonce[:], w.key[:], nil)
	if err != nil {
		return nil, fmt.Errorf("content key: %w", ErrDecrypt)
	}
	return key, nil
}

// appendHeaderV2 appends the domain, version and header fields shared by
// the AAD and the signed bytes.
func (e *EnvelopeV2) appendHeader(b []byte, domain string) []byte {
	b = appendLP(b, []byte(domain))
	b = binary.BigEndian.AppendUint32(b, Version2)
	b = appendLP(b, []byte(e.from))
	b = appendLP(b, []byte(e.fromDevice))
	b = appendLP(b, []byte(e.to))
	b = appendLP(b, []byte(e.msgID))
	return binary.BigEndian.AppendUint64(b, uint64(e.sentAt))
}

func (e *EnvelopeV2) aad() []byte { return e.appendHeader(nil, aadDomain2) }

// signedBytes returns SIG_INPUT v2 (docs/envelope.md).
func (e *EnvelopeV2) signedBytes() []byte {
	b := make([]byte, 0, 256+len(e.wraps)*140+len(e.ciphertext))
	b = e.appendHeader(b, signedDomain2)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.wraps)))
	for i := range e.wraps {
		w := &e.wraps[i]
		b = appendLP(b, []byte(w.DeviceID))
		b = appendLP(b, w.SPK[:])
		b = appendLP(b, w.opkBytes())
		b = appendLP(b, w.ephemeral[:])
		b = appendLP(b, w.key[:])
	}
	b = appendLP(b, e.nonce[:])
	return appendLP(b, e.ciphertext)
}

func (w *wrapV2) opkBytes() []byte {
	if !w.HasOPK {
		return nil
	}
	return w.OPK[:]
}

// MarshalJSON returns the canonical encoding of e.
func (e *EnvelopeV2) MarshalJSON() ([]byte, error) { return e.appendCanonical(nil), nil }

func (e *EnvelopeV2) appendCanonical(dst []byte) []byte {
	enc := base64.RawURLEncoding
	dst = append(dst, `{"v":2,"from":"`...)
	dst = append(dst, e.from...)
	dst = append(dst, `","fd":"`...)
	dst = append(dst, e.fromDevice...)
	dst = append(dst, `","to":"`...)
	dst = append(dst, e.to...)
	dst = append(dst, `","mid":"`...)
	dst = append(dst, e.msgID...)
	dst = append(dst, `","ts":`...)
	dst = strconv.AppendInt(dst, e.sentAt, 10)
	dst = append(dst, `,"wraps":[`...)
	for i := range e.wraps {
		w := &e.wraps[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"d":"`...)
		dst = append(dst, w.DeviceID...)
		dst = append(dst, `","spk":"`...)
		dst = enc.AppendEncode(dst, w.SPK[:])
		dst = append(dst, `","opk":"`...)
		dst = enc.AppendEncode(dst, w.opkBytes())
		dst = append(dst, `","epk":"`...)
		dst = enc.AppendEncode(dst, w.ephemeral[:])
		dst = append(dst, `","k":"`...)
		dst = enc.AppendEncode(dst, w.key[:])
		dst = append(dst, `"}`...)
	}
	dst = append(dst, `],"n":"`...)
	dst = enc.AppendEncode(dst, e.nonce[:])
	dst = append(dst, `","ct":"`...)
	dst = enc.AppendEncode(dst, e.ciphertext)
	dst = append(dst, `","sig":"`...)
	dst = enc.AppendEncode(dst, e.sig[:])
	return append(dst, `"}`...)
}

var (
	envelopeFieldsV2 = []string{"v", "from", "fd", "to", "mid", "ts", "wraps", "n", "ct", "sig"}
	wrapFieldsV2     = []string{"d", "spk", "opk", "epk", "k"}
)

// ParseV2 checks the shape of an encoded v2 envelope without any key, as
// the server does before storing or relaying it. A v1 envelope (or any
// other version) fails with [ErrVersion]. Errors wrap [ErrTooLarge],
// [ErrVersion] or [ErrMalformed].
func ParseV2(b []byte) (*EnvelopeV2, error) {
	if len(b) > MaxEncoded {
		return nil, fmt.Errorf("parse: %d bytes, limit %d: %w", len(b), MaxEncoded, ErrTooLarge)
	}
	e, err := parseV2(b)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	return e, nil
}

func parseV2(b []byte) (*EnvelopeV2, error) {
	m, err := readObject(b)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrMalformed)
	}
	if err := checkVersionIs(m, Version2); err != nil {
		return nil, err
	}
	if err := checkFields(m, envelopeFieldsV2); err != nil {
		return nil, err
	}
	e := new(EnvelopeV2)
	for _, f := range []struct {
		name string
		dst  *string
	}{{"from", &e.from}, {"fd", &e.fromDevice}, {"to", &e.to}, {"mid", &e.msgID}} {
		if *f.dst, err = decodeString(m[f.name], f.name); err != nil {
			return nil, err
		}
	}
	if e.sentAt, err = decodeInt(m["ts"], "ts"); err != nil {
		return nil, err
	}
	if err := e.Header().Validate(); err != nil {
		return nil, err
	}
	if err := e.decodeWraps(m["wraps"]); err != nil {
		return nil, err
	}
	if err := decodeFixed(m["n"], "n", e.nonce[:]); err != nil {
		return nil, err
	}
	if err := decodeFixed(m["sig"], "sig", e.sig[:]); err != nil {
		return nil, err
	}
	ct, err := decodeBytes(m["ct"], "ct")
	if err != nil {
		return nil, err
	}
	switch {
	case len(ct) < tagSize:
		return nil, fmt.Errorf("field \"ct\": %d bytes, minimum %d: %w", len(ct), tagSize, ErrMalformed)
	case len(ct) > MaxPlaintext+tagSize:
		return nil, fmt.Errorf("field \"ct\": %d bytes, limit %d: %w", len(ct), MaxPlaintext+tagSize, ErrTooLarge)
	}
	e.ciphertext = ct
	return e, nil
}

func (e *EnvelopeV2) decodeWraps(raw json.RawMessage) error {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil || list == nil {
		return fmt.Errorf("field \"wraps\": not an array: %w", ErrMalformed)
	}
	if len(list) < 1 || len(list) > MaxWraps {
		return fmt.Errorf("field \"wraps\": %d wraps, want 1 to %d: %w", len(list), MaxWraps, ErrMalformed)
	}
	e.wraps = make([]wrapV2, 0, len(list))
	for i, raw := range list {
		w, err := decodeWrapV2(raw)
		if err != nil {
			return fmt.Errorf("wraps[%d]: %w", i, err)
		}
		if _, dup := e.WrapFor(w.DeviceID); dup {
			return fmt.Errorf("wraps[%d]: device given twice: %w", i, ErrMalformed)
		}
		e.wraps = append(e.wraps, w)
	}
	return nil
}

func decodeWrapV2(raw json.RawMessage) (wrapV2, error) {
	var w wrapV2
	m, err := readObject(raw)
	if err != nil {
		return w, fmt.Errorf("%v: %w", err, ErrMalformed)
	}
	if err := checkFields(m, wrapFieldsV2); err != nil {
		return w, err
	}
	if w.DeviceID, err = decodeString(m["d"], "d"); err != nil {
		return w, err
	}
	if err := validateID(w.DeviceID); err != nil {
		return w, fmt.Errorf("field \"d\": %v: %w", err, ErrMalformed)
	}
	opk, err := decodeBytes(m["opk"], "opk")
	if err != nil {
		return w, err
	}
	switch len(opk) {
	case 0:
	case KeyIDSize:
		copy(w.OPK[:], opk)
		w.HasOPK = true
	default:
		return w, fmt.Errorf("field \"opk\": %d bytes, want 0 or %d: %w", len(opk), KeyIDSize, ErrMalformed)
	}
	for _, f := range []struct {
		name string
		dst  []byte
	}{{"spk", w.SPK[:]}, {"epk", w.ephemeral[:]}, {"k", w.key[:]}} {
		if err := decodeFixed(m[f.name], f.name, f.dst); err != nil {
			return w, err
		}
	}
	return w, nil
}

// CheckV2 checks an encoded v2 envelope as [ParseV2] does and returns its
// header and canonical encoding (b itself when b is canonical already).
// It is the server's check before storing or relaying an envelope: a
// canonical envelope, as [SealV2] writes it, is checked in one pass
// without decoding anything; anything else is parsed and re-encoded.
func CheckV2(b []byte) (HeaderV2, []byte, error) {
	if h, ok := checkCanonicalV2(b); ok {
		return h, b, nil
	}
	e, err := ParseV2(b)
	if err != nil {
		return HeaderV2{}, nil, err
	}
	canon := e.appendCanonical(make([]byte, 0, len(b)))
	if bytes.Equal(canon, b) {
		canon = b
	}
	return e.Header(), canon, nil
}

// checkCanonicalV2 reports whether b is a canonical v2 envelope ParseV2
// accepts, and returns its header, in one pass without decoding anything.
// A false result says nothing about b: ParseV2 decides. v2_test.go and
// FuzzParseV2 check that the two agree.
func checkCanonicalV2(b []byte) (HeaderV2, bool) {
	if len(b) > MaxEncoded {
		return HeaderV2{}, false
	}
	s := canonScanner{b: b, ok: true}
	s.lit(`{"v":2,"from":"`)
	from := s.id()
	s.lit(`","fd":"`)
	fd := s.id()
	s.lit(`","to":"`)
	to := s.id()
	s.lit(`","mid":"`)
	mid := s.id()
	s.lit(`","ts":`)
	ts := s.millis()
	s.lit(`,"wraps":[`)
	var devices [MaxWraps][]byte
	n := 0
	for s.ok {
		if n == MaxWraps {
			return HeaderV2{}, false
		}
		devices[n] = s.wrapV2()
		for _, d := range devices[:n] {
			if string(d) == string(devices[n]) {
				return HeaderV2{}, false
			}
		}
		n++
		if s.i < len(s.b) && s.b[s.i] == ',' {
			s.i++
			continue
		}
		break
	}
	s.lit(`],"n":"`)
	s.bytes(NonceSize, NonceSize)
	s.lit(`","ct":"`)
	s.bytes(tagSize, MaxPlaintext+tagSize)
	s.lit(`","sig":"`)
	s.bytes(SignatureSize, SignatureSize)
	s.lit(`"}`)
	if !s.ok || s.i != len(b) {
		return HeaderV2{}, false
	}
	return HeaderV2{From: string(from), FromDevice: string(fd), To: string(to), MsgID: string(mid),
		SentAt: time.UnixMilli(ts).UTC()}, true
}

// wrapV2 reads one v2 wrap object and returns its device id.
func (s *canonScanner) wrapV2() []byte {
	s.lit(`{"d":"`)
	d := s.id()
	s.lit(`","spk":"`)
	s.bytes(KeyIDSize, KeyIDSize)
	s.lit(`","opk":"`)
	if s.ok && s.i < len(s.b) && s.b[s.i] != '"' {
		s.bytes(KeyIDSize, KeyIDSize)
	}
	s.lit(`","epk":"`)
	s.bytes(KexKeySize, KexKeySize)
	s.lit(`","k":"`)
	s.bytes(WrappedKeySize, WrappedKeySize)
	s.lit(`"}`)
	return d
}
