package envelope

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

var updateVectors = flag.Bool("update", false, "rewrite testdata/v2-vectors.json")

// v2Vectors are the byte-exact test vectors of docs/envelope.md (v2). A
// second implementation (the browser client) reproduces every output from
// the inputs; the Go code must keep producing exactly these bytes.
type v2Vectors struct {
	Note              string `json:"note"`
	AliceIKSeed       string `json:"alice_ik_seed_hex"`
	BobIKSeed         string `json:"bob_ik_seed_hex"`
	AliceDeviceSeed   string `json:"alice_device_seed_hex"`
	Bob1DeviceSeed    string `json:"bob1_device_seed_hex"`
	Bob1SPKPrivate    string `json:"bob1_spk_private_hex"`
	Bob1OPKPrivate    string `json:"bob1_opk_private_hex"`
	Bob2DeviceSeed    string `json:"bob2_device_seed_hex"`
	Bob2SPKPrivate    string `json:"bob2_spk_private_hex"`
	Bob2OPKPrivate    string `json:"bob2_opk_private_hex"`
	AliceDeviceID     string `json:"alice_device_id"`
	Bob1DeviceID      string `json:"bob1_device_id"`
	Bob2DeviceID      string `json:"bob2_device_id"`
	BobList           string `json:"bob_device_list"`
	BobBundle         string `json:"bob_bundle"`
	Bob1SPKSignedHex  string `json:"bob1_spk_signed_bytes_hex"`
	BobListSignedHex  string `json:"bob_list_signed_bytes_hex"`
	Plaintext         string `json:"plaintext"`
	Randomness        string `json:"randomness"`
	Envelope          string `json:"envelope"`
	EnvelopeSignedHex string `json:"envelope_signed_bytes_hex"`
	EnvelopeAADHex    string `json:"envelope_aad_hex"`
	AliceFingerprint  string `json:"alice_fingerprint"`
	SafetyNumber      string `json:"safety_number"`
}

func computeV2Vectors(t *testing.T) v2Vectors {
	w := newV2World(t)
	env := w.seal(t, []byte("hello bob"))
	e, err := ParseV2(env)
	if err != nil {
		t.Fatal(err)
	}
	bu, err := ParseBundle(w.bobBundle)
	if err != nil {
		t.Fatal(err)
	}
	rep := func(b byte) string { return strings.Repeat(hex.EncodeToString([]byte{b}), 32) }
	return v2Vectors{
		Note: "docs/envelope.md (version 2), Test vectors. Seeds are 32 repeated bytes; " +
			"randomness is the byte stream 00 01 02 ... read as: content key (32), payload nonce (12), " +
			"then one ephemeral X25519 private key (32) per wrap in wrap order.",
		AliceIKSeed: rep(0x01), BobIKSeed: rep(0x02),
		AliceDeviceSeed: rep(0x10),
		Bob1DeviceSeed:  rep(0x20), Bob1SPKPrivate: rep(0x21), Bob1OPKPrivate: rep(0x22),
		Bob2DeviceSeed: rep(0x30), Bob2SPKPrivate: rep(0x31), Bob2OPKPrivate: rep(0x32),
		AliceDeviceID: w.alice.id(), Bob1DeviceID: w.bob1.id(), Bob2DeviceID: w.bob2.id(),
		BobList:           string(bu.List.appendCanonical(nil)),
		BobBundle:         string(w.bobBundle),
		Bob1SPKSignedHex:  hex.EncodeToString(bu.Devices[0].SPK.signedBytes("ubob", w.bob1.id())),
		BobListSignedHex:  hex.EncodeToString(bu.List.signedBytes()),
		Plaintext:         "hello bob",
		Randomness:        "counter",
		Envelope:          string(env),
		EnvelopeSignedHex: hex.EncodeToString(e.signedBytes()),
		EnvelopeAADHex:    hex.EncodeToString(e.aad()),
		AliceFingerprint:  IdentityFingerprint(w.aliceIK.Public().(ed25519.PublicKey)),
		SafetyNumber:      IdentitySafetyNumber(w.aliceIK.Public().(ed25519.PublicKey), w.bobIK.Public().(ed25519.PublicKey)),
	}
}

func TestEnvelopeV2Vectors(t *testing.T) {
	got := computeV2Vectors(t)
	const path = "testdata/v2-vectors.json"
	if *updateVectors {
		b, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want v2Vectors
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if got != want {
		gb, _ := json.MarshalIndent(got, "", "  ")
		t.Fatalf("vectors changed (run with -update only if the format changed on purpose):\n%s", gb)
	}
}

func TestEnvelopeV2RoundTrip(t *testing.T) {
	w := newV2World(t)
	for _, pt := range [][]byte{nil, []byte("hi"), bytes.Repeat([]byte{7}, MaxPlaintext)} {
		env := w.seal(t, pt)
		if len(env) > MaxEncoded {
			t.Fatalf("%d bytes over MaxEncoded", len(env))
		}
		e, err := ParseV2(env)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []v2Device{w.bob1, w.bob2} {
			got, err := e.Open(d.id(), w.alice.pub(), d.spk, d.opk)
			if err != nil {
				t.Fatalf("open as %s: %v", d.id(), err)
			}
			if !bytes.Equal(got, pt) {
				t.Fatal("plaintext differs")
			}
		}
		if e.Header() != w.header {
			t.Fatalf("header %+v", e.Header())
		}
	}
}

// TestEnvelopeV2DeletedKeysOpenNothing attacks an envelope with every key
// but the one-time prekey its wrap used, as a device that burned the
// message and deleted it would hold.
func TestEnvelopeV2DeletedKeysOpenNothing(t *testing.T) {
	w := newV2World(t)
	e, err := ParseV2(w.seal(t, []byte("secret")))
	if err != nil {
		t.Fatal(err)
	}
	other := newV2Device(t, "ubob", 0x40)
	for _, opk := range []*ecdh.PrivateKey{nil, w.bob1.spk, w.bob2.opk, other.opk} {
		if _, err := e.Open(w.bob1.id(), w.alice.pub(), w.bob1.spk, opk); err == nil {
			t.Fatal("opened without the right one-time prekey")
		}
	}
	// Even a forged "wrap needs no OPK" header cannot help: the signature
	// covers the key ids, and the KEK mixes both DH results.
	if _, err := e.Open(w.bob1.id(), w.alice.pub(), w.bob1.opk, w.bob1.opk); err == nil {
		t.Fatal("opened with the OPK in the SPK's place")
	}
	if _, err := e.Open(other.id(), w.alice.pub(), other.spk, other.opk); !errors.Is(err, ErrNoWrap) {
		t.Fatalf("unlisted device: %v, want ErrNoWrap", err)
	}
}

func TestEnvelopeV2SPKOnlyWrap(t *testing.T) {
	w := newV2World(t)
	list := listBytes(t, "ubob", 1, w.bobIK, w.bob1)
	w.bobBundle = bundleBytes(t, list, false, w.bob1)
	e, err := ParseV2(w.seal(t, []byte("no opk left")))
	if err != nil {
		t.Fatal(err)
	}
	if wi, _ := e.WrapFor(w.bob1.id()); wi.HasOPK {
		t.Fatal("wrap names an OPK")
	}
	if _, err := e.Open(w.bob1.id(), w.alice.pub(), w.bob1.spk, nil); err != nil {
		t.Fatal(err)
	}
}

func TestEnvelopeV2Tampering(t *testing.T) {
	w := newV2World(t)
	env := w.seal(t, []byte("x"))
	e, _ := ParseV2(env)
	if err := e.Verify(w.bob1.pub()); !errors.Is(err, ErrSignature) {
		t.Fatalf("verify with another device key: %v", err)
	}
	for _, mut := range []struct{ from, to string }{
		{`"mid":"m-0001"`, `"mid":"m-0002"`},
		{`"to":"ubob"`, `"to":"ucarol"`},
		{`"ts":1700000000123`, `"ts":1700000000124`},
	} {
		b := bytes.Replace(env, []byte(mut.from), []byte(mut.to), 1)
		e, err := ParseV2(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Open(w.bob1.id(), w.alice.pub(), w.bob1.spk, w.bob1.opk); !errors.Is(err, ErrSignature) {
			t.Fatalf("%s: %v, want ErrSignature", mut.to, err)
		}
	}
}

func TestEnvelopeV2RefusesV1(t *testing.T) {
	if _, err := ParseV2(sealTest(t, []byte("old"))); !errors.Is(err, ErrVersion) {
		t.Fatalf("v1 envelope: %v, want ErrVersion", err)
	}
	w := newV2World(t)
	if _, err := Parse(w.seal(t, nil)); !errors.Is(err, ErrVersion) {
		t.Fatalf("v1 parser on v2: %v, want ErrVersion", err)
	}
}

func TestEnvelopeV2CheckCanonical(t *testing.T) {
	w := newV2World(t)
	env := w.seal(t, []byte("c"))
	h, canon, err := CheckV2(env)
	if err != nil || &canon[0] != &env[0] || h != w.header {
		t.Fatalf("canonical: %v %v", err, h)
	}
	spaced := bytes.Replace(env, []byte(`,"n":`), []byte(`, "n" : `), 1)
	_, canon, err = CheckV2(spaced)
	if err != nil || !bytes.Equal(canon, env) {
		t.Fatalf("re-encoded: %v", err)
	}
}

func TestEnvelopeV2BundleVerify(t *testing.T) {
	w := newV2World(t)
	bu, err := ParseBundle(w.bobBundle)
	if err != nil {
		t.Fatal(err)
	}
	bobIK := w.bobIK.Public().(ed25519.PublicKey)
	if _, err := bu.Verify("ubob", w.aliceIK.Public().(ed25519.PublicKey), ""); !errors.Is(err, ErrIdentity) {
		t.Fatalf("other pinned IK: %v, want ErrIdentity", err)
	}
	if _, err := bu.Verify("ualice", bobIK, ""); !errors.Is(err, ErrIdentity) {
		t.Fatalf("other user: %v, want ErrIdentity", err)
	}
	ts, err := bu.Verify("ubob", bobIK, w.bob2.id())
	if err != nil || len(ts) != 1 || ts[0].DeviceID != w.bob1.id() {
		t.Fatalf("skip: %v %v", ts, err)
	}
	// A server that swaps one device's prekey for its own is caught by the
	// prekey signature.
	evil := newV2Device(t, "ubob", 0x50)
	swapped := bytes.Replace(w.bobBundle, w.bob2.prekeyBytes(t, KindOPK),
		mustPrekeyFor(t, w.bob2, evil.opk), 1)
	bu2, err := ParseBundle(swapped)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bu2.Verify("ubob", bobIK, ""); !errors.Is(err, ErrSignature) {
		t.Fatalf("swapped opk: %v, want ErrSignature", err)
	}
	// A list the server made with its own identity key is refused.
	evilList := listBytes(t, "ubob", 2, seedIK(0x66), w.bob1, evil)
	bu3, err := ParseBundle(bundleBytes(t, evilList, true, w.bob1, evil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bu3.Verify("ubob", bobIK, ""); !errors.Is(err, ErrIdentity) {
		t.Fatalf("server-made list: %v, want ErrIdentity", err)
	}
}

// mustPrekeyFor signs pub as d's OPK with another key than d's, the way a
// server forging a prekey would have to.
func mustPrekeyFor(t *testing.T, d v2Device, priv *ecdh.PrivateKey) []byte {
	b, err := SignPrekey(d.userID, d.id(), KindOPK, priv, v2Time, seedIK(0x77))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEnvelopeV2DeviceListRules(t *testing.T) {
	w := newV2World(t)
	ik := w.bobIK
	tests := []struct {
		name string
		keys []ed25519.PublicKey
		ver  int64
	}{
		{"empty", nil, 1},
		{"six", []ed25519.PublicKey{seedIK(1).Public().(ed25519.PublicKey), seedIK(2).Public().(ed25519.PublicKey),
			seedIK(3).Public().(ed25519.PublicKey), seedIK(4).Public().(ed25519.PublicKey),
			seedIK(5).Public().(ed25519.PublicKey), seedIK(6).Public().(ed25519.PublicKey)}, 1},
		{"twice", []ed25519.PublicKey{w.bob1.pub(), w.bob1.pub()}, 1},
		{"version 0", []ed25519.PublicKey{w.bob1.pub()}, 0},
	}
	for _, tt := range tests {
		if _, err := SignDeviceList("ubob", tt.ver, v2Time, tt.keys, ik); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", tt.name, err)
		}
	}
	good := listBytes(t, "ubob", 3, ik, w.bob1)
	for _, bad := range [][]byte{
		bytes.Replace(good, []byte(`"ver":3`), []byte(`"ver":4`), 1),
		bytes.Replace(good, []byte(w.bob1.id()), []byte(w.bob2.id()), 1),
	} {
		l, err := ParseDeviceList(bad)
		if err == nil {
			err = l.Verify()
		}
		if err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	l, err := ParseDeviceList(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.VerifyFor("ubob", ik.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	if l.IssuedAt != v2Time || l.Version != 3 || !l.Has(w.bob1.pub()) || l.Has(w.bob2.pub()) {
		t.Fatalf("parsed %+v", l)
	}
}

func TestEnvelopeV2DeviceIDShape(t *testing.T) {
	id := DeviceID(make([]byte, 32))
	if len(id) != 27 || id[0] != 'd' || strings.Trim(id[1:], "abcdefghijklmnopqrstuvwxyz234567") != "" {
		t.Fatalf("device id %q", id)
	}
}

func TestEnvelopeV2SealErrors(t *testing.T) {
	w := newV2World(t)
	t1 := Target{DeviceID: w.bob1.id(), SPK: w.bob1.spk.PublicKey().Bytes()}
	tests := []struct {
		name    string
		targets []Target
		want    error
	}{
		{"none", nil, ErrMalformed},
		{"twice", []Target{t1, t1}, ErrMalformed},
		{"low order spk", []Target{{DeviceID: "dx", SPK: make([]byte, 32)}}, ErrKey},
		{"eleven", make([]Target, 11), ErrMalformed},
	}
	for _, tt := range tests {
		if _, err := SealV2(w.header, w.alice.key, tt.targets, nil); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	h := w.header
	h.SentAt = time.Time{}
	if _, err := SealV2(h, w.alice.key, []Target{t1}, nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("zero time: %v", err)
	}
}
