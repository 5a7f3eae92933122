package envelope

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestKeysFingerprintVector(t *testing.T) {
	alice, bob, _ := testParties(t)
	// Fixed seeds: alice signs with seed 0x01*32 and exchanges with 0xfe*32.
	if got, want := EncodeKey(alice.Public().Sign), "iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w"; got != want {
		t.Fatalf("alice sign key = %s, want %s", got, want)
	}
	if got, want := EncodeKey(alice.Public().Kex), "gj_6UILYzUPv9CrzlCPdGPqSRccR6ew4uGOAFJBEegY"; got != want {
		t.Fatalf("alice kex key = %s, want %s", got, want)
	}
	tests := []struct {
		name string
		keys PublicKeys
		want string
	}{
		{"alice", alice.Public(), "67301 95140 26273 63382 36569 12116"},
		{"bob", bob.Public(), "09338 87533 84100 90615 23252 63940"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Fingerprint(tt.keys); got != tt.want {
				t.Errorf("Fingerprint = %q, want %q", got, tt.want)
			}
		})
	}
	want := "09338 87533 84100 90615 23252 63940 67301 95140 26273 63382 36569 12116"
	if got := SafetyNumber(alice.Public(), bob.Public()); got != want {
		t.Errorf("SafetyNumber = %q, want %q", got, want)
	}
}

func TestKeysSafetyNumber(t *testing.T) {
	alice, bob, carol := testParties(t)
	a, b, c := alice.Public(), bob.Public(), carol.Public()
	ab, ba := SafetyNumber(a, b), SafetyNumber(b, a)
	if ab != ba {
		t.Errorf("SafetyNumber not symmetric: %q != %q", ab, ba)
	}
	if groups := strings.Fields(ab); len(groups) != 12 || len(strings.ReplaceAll(ab, " ", "")) != 60 {
		t.Errorf("SafetyNumber = %q, want 12 groups of 5 digits", ab)
	}
	if SafetyNumber(a, c) == ab {
		t.Error("different peers give the same safety number")
	}
	// Changing either key of either party changes the number.
	swapped := PublicKeys{Sign: a.Sign, Kex: c.Kex}
	if SafetyNumber(swapped, b) == ab || Fingerprint(swapped) == Fingerprint(a) {
		t.Error("replacing the kex key kept the fingerprint")
	}
	// Length prefixes keep the two keys from running together.
	joined := PublicKeys{Sign: append(a.Sign[:16:16], a.Kex...), Kex: a.Kex}
	shifted := PublicKeys{Sign: a.Sign[:16], Kex: append(append([]byte(nil), a.Kex...), a.Kex...)}
	if Fingerprint(joined) == Fingerprint(shifted) {
		t.Error("fingerprint encoding is ambiguous")
	}
}

func TestKeysDecodeKey(t *testing.T) {
	key := bytes.Repeat([]byte{0xfb}, 32)
	tests := []struct {
		name    string
		in      string
		wantLen int
		want    []byte
		err     error
	}{
		{"ok", EncodeKey(key), 32, key, nil},
		{"short", EncodeKey(key[:31]), 32, nil, ErrKey},
		{"long", EncodeKey(append(key, 0)), 32, nil, ErrKey},
		{"empty", "", 32, nil, ErrKey},
		{"padded", EncodeKey(key) + "=", 32, nil, ErrKey},
		{"standard alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(EncodeKey(key)), 32, nil, ErrKey},
		{"newline", EncodeKey(key)[:20] + "\n" + EncodeKey(key)[20:], 32, nil, ErrKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeKey(tt.in, tt.wantLen)
			if !errors.Is(err, tt.err) || !bytes.Equal(got, tt.want) {
				t.Errorf("DecodeKey = %x, %v; want %x, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestKeysNewPublicKeys(t *testing.T) {
	alice, _, _ := testParties(t)
	p := alice.Public()
	// A low-order X25519 point: the order-8 point with u = 1.
	lowOrder := make([]byte, 32)
	lowOrder[0] = 1
	tests := []struct {
		name      string
		sign, kex []byte
		err       error
	}{
		{"ok", p.Sign, p.Kex, nil},
		{"short sign", p.Sign[:31], p.Kex, ErrKey},
		{"nil sign", nil, p.Kex, ErrKey},
		{"short kex", p.Sign, p.Kex[:31], ErrKey},
		{"zero kex", p.Sign, make([]byte, 32), ErrKey},
		{"low-order kex", p.Sign, lowOrder, ErrKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewPublicKeys(tt.sign, tt.kex)
			if !errors.Is(err, tt.err) {
				t.Fatalf("NewPublicKeys error = %v, want %v", err, tt.err)
			}
			if err == nil && (!bytes.Equal(got.Sign, tt.sign) || !bytes.Equal(got.Kex, tt.kex)) {
				t.Error("NewPublicKeys changed the keys")
			}
		})
	}
}

func TestKeysNew(t *testing.T) {
	a, err := NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Public().Validate(); err != nil {
		t.Errorf("Validate(new keys) = %v", err)
	}
	if Fingerprint(a.Public()) == Fingerprint(b.Public()) {
		t.Error("two new key sets share a fingerprint")
	}
	if p := (Keys{}).Public(); p.Sign != nil || p.Kex != nil {
		t.Errorf("Keys{}.Public() = %+v, want zero", p)
	}
}
