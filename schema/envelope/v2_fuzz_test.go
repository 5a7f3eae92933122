package envelope

import (
	"bytes"
	"crypto/ed25519"
	"testing"
)

// v2FuzzSeeds returns real v2 encodings of every kind and broken variants.
func v2FuzzSeeds(tb testing.TB) [][]byte {
	w := newV2World(tb)
	env := w.seal(tb, []byte("fuzz"))
	bu, err := ParseBundle(w.bobBundle)
	if err != nil {
		tb.Fatal(err)
	}
	list := bu.List.appendCanonical(nil)
	spk := w.bob1.prekeyBytes(tb, KindSPK)
	return [][]byte{
		env, w.bobBundle, list, spk, w.bob1.prekeyBytes(tb, KindOPK),
		env[:len(env)/2],
		bytes.Replace(env, []byte(`"v":2`), []byte(`"v":1`), 1),
		bytes.Replace(env, []byte(`"opk":"Zc9cmx3l1B8"`), []byte(`"opk":""`), 1),
		bytes.Replace(list, []byte(`"ver":1`), []byte(`"ver":0`), 1),
		bytes.Replace(w.bobBundle, []byte(`"opk":{`), []byte(`"opk":null,"x":{`), 1),
		bytes.Replace(spk, []byte(`"spk"`), []byte(`"opk"`), 1),
		[]byte(`{"v":2,"wraps":[]}`),
		[]byte(`{"list":null,"devices":[]}`),
		[]byte(``),
	}
}

// FuzzParseV2 checks that ParseV2 never panics and that what it accepts
// re-encodes canonically to something it accepts identically.
func FuzzParseV2(f *testing.F) {
	for _, s := range v2FuzzSeeds(f) {
		f.Add(s)
	}
	w := newV2World(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		fastH, fast := checkCanonicalV2(data)
		e, err := ParseV2(data)
		if err != nil {
			if e != nil {
				t.Fatal("envelope returned with an error")
			}
			if fast {
				t.Fatalf("the canonical fast path accepts what ParseV2 refuses: %v", err)
			}
			return
		}
		canon := e.appendCanonical(nil)
		if fast != bytes.Equal(canon, data) || fast && fastH != e.Header() {
			t.Fatalf("fast path %v (header %+v) on input whose canonical form equal=%v", fast, fastH, bytes.Equal(canon, data))
		}
		again, err := ParseV2(canon)
		if err != nil {
			t.Fatalf("canonical form refused: %v\n%s", err, canon)
		}
		if !bytes.Equal(e.signedBytes(), again.signedBytes()) || !bytes.Equal(again.appendCanonical(nil), canon) {
			t.Fatal("canonical form parses differently")
		}
		_, c2, err := CheckV2(data)
		if err != nil || !bytes.Equal(c2, canon) {
			t.Fatalf("CheckV2 disagrees: %v", err)
		}
		for _, d := range []v2Device{w.bob1, w.bob2} {
			if pt, err := e.Open(d.id(), w.alice.pub(), d.spk, d.opk); err == nil && len(pt) > MaxPlaintext {
				t.Fatal("opened too much")
			}
		}
	})
}

// FuzzParseDeviceList checks ParseDeviceList the same way.
func FuzzParseDeviceList(f *testing.F) {
	for _, s := range v2FuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseDeviceList(data)
		if err != nil {
			return
		}
		canon := l.appendCanonical(nil)
		again, err := ParseDeviceList(canon)
		if err != nil {
			t.Fatalf("canonical form refused: %v", err)
		}
		if !bytes.Equal(l.signedBytes(), again.signedBytes()) {
			t.Fatal("canonical form parses differently")
		}
		_ = l.Verify()
	})
}

// FuzzParsePrekey checks ParsePrekey the same way.
func FuzzParsePrekey(f *testing.F) {
	for _, s := range v2FuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePrekey(data)
		if err != nil {
			return
		}
		again, err := ParsePrekey(p.appendCanonical(nil))
		if err != nil || !bytes.Equal(again.signedBytes("u", "d"), p.signedBytes("u", "d")) {
			t.Fatalf("canonical form: %v", err)
		}
	})
}

// FuzzParseBundle checks that ParseBundle never panics and that Verify
// never accepts a bundle the pinned identity key did not sign.
func FuzzParseBundle(f *testing.F) {
	for _, s := range v2FuzzSeeds(f) {
		f.Add(s)
	}
	w := newV2World(f)
	alienIK := seedIK(0x99)
	f.Fuzz(func(t *testing.T, data []byte) {
		bu, err := ParseBundle(data)
		if err != nil {
			return
		}
		if _, err := bu.Verify("ubob", alienIK.Public().(ed25519.PublicKey), ""); err == nil {
			t.Fatal("verified with an identity key that signed nothing")
		}
		_, _ = bu.Verify("ubob", w.bobIK.Public().(ed25519.PublicKey), "")
	})
}
