package envelope

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"testing"
	"time"
)

// counterReader yields the bytes next, next+1, … (mod 256): the fixed
// "randomness" of the test vectors.
type counterReader struct{ next byte }

func (r *counterReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.next
		r.next++
	}
	return len(p), nil
}

// v2Device is one test device: its signing key and prekeys, all from
// fixed seeds.
type v2Device struct {
	userID   string
	key      ed25519.PrivateKey
	spk, opk *ecdh.PrivateKey
}

func (d v2Device) id() string { return DeviceID(d.key.Public().(ed25519.PublicKey)) }

func (d v2Device) pub() ed25519.PublicKey { return d.key.Public().(ed25519.PublicKey) }

func newV2Device(tb testing.TB, userID string, seed byte) v2Device {
	tb.Helper()
	x := func(b byte) *ecdh.PrivateKey {
		k, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{b}, 32))
		if err != nil {
			tb.Fatal(err)
		}
		return k
	}
	return v2Device{userID: userID, key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32)), spk: x(seed + 1), opk: x(seed + 2)}
}

var v2Time = time.UnixMilli(1_700_000_000_000).UTC()

// prekeyBytes signs d's SPK or OPK.
func (d v2Device) prekeyBytes(tb testing.TB, kind string) []byte {
	tb.Helper()
	priv := d.spk
	if kind == KindOPK {
		priv = d.opk
	}
	b, err := SignPrekey(d.userID, d.id(), kind, priv, v2Time, d.key)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// listBytes signs a device list of devs for userID with the seed ik.
func listBytes(tb testing.TB, userID string, version int64, ik ed25519.PrivateKey, devs ...v2Device) []byte {
	tb.Helper()
	var keys []ed25519.PublicKey
	for _, d := range devs {
		keys = append(keys, d.pub())
	}
	b, err := SignDeviceList(userID, version, v2Time, keys, ik)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// bundleBytes builds userID's bundle: list plus every device's SPK and,
// when withOPK, its OPK.
func bundleBytes(tb testing.TB, list []byte, withOPK bool, devs ...v2Device) []byte {
	tb.Helper()
	var parts []BundleParts
	for _, d := range devs {
		p := BundleParts{ID: d.id(), SPK: d.prekeyBytes(tb, KindSPK)}
		if withOPK {
			p.OPK = d.prekeyBytes(tb, KindOPK)
		}
		parts = append(parts, p)
	}
	b, err := NewBundle(list, parts)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func seedIK(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
}

// v2World is alice (one device) writing to bob (two devices), every key
// from a fixed seed.
type v2World struct {
	aliceIK, bobIK ed25519.PrivateKey
	alice          v2Device
	bob1, bob2     v2Device
	bobBundle      []byte
	header         HeaderV2
}

func newV2World(tb testing.TB) v2World {
	w := v2World{aliceIK: seedIK(0x01), bobIK: seedIK(0x02)}
	w.alice = newV2Device(tb, "ualice", 0x10)
	w.bob1 = newV2Device(tb, "ubob", 0x20)
	w.bob2 = newV2Device(tb, "ubob", 0x30)
	list := listBytes(tb, "ubob", 1, w.bobIK, w.bob1, w.bob2)
	w.bobBundle = bundleBytes(tb, list, true, w.bob1, w.bob2)
	w.header = HeaderV2{From: "ualice", FromDevice: w.alice.id(), To: "ubob", MsgID: "m-0001", SentAt: time.UnixMilli(1_700_000_000_123).UTC()}
	return w
}

// seal seals plaintext from alice to bob's verified bundle.
func (w v2World) seal(tb testing.TB, plaintext []byte) []byte {
	tb.Helper()
	bu, err := ParseBundle(w.bobBundle)
	if err != nil {
		tb.Fatal(err)
	}
	targets, err := bu.Verify("ubob", w.bobIK.Public().(ed25519.PublicKey), "")
	if err != nil {
		tb.Fatal(err)
	}
	e, err := sealV2(&counterReader{}, w.header, w.alice.key, targets, plaintext)
	if err != nil {
		tb.Fatal(err)
	}
	return e.appendCanonical(nil)
}
