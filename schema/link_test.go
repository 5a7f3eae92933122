package schema

import (
	"bytes"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// linkVectors are the link v3 test vectors of docs/api.md.
type linkVectors struct {
	LinkPublic string `json:"link_public"`
	DeviceKey  string `json:"device_key"`
	Secret     string `json:"secret"`
	Code       string `json:"code"`
	Shown      string `json:"shown"`
}

// TestLinkCode pins the code of the link v3 test vectors and checks the
// commitment binds the secret and both keys.
func TestLinkCode(t *testing.T) {
	b, err := os.ReadFile("testdata/link-v3-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v linkVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	priv, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{0x07}, 32))
	if err != nil {
		t.Fatal(err)
	}
	dk := bytes.Repeat([]byte{0x08}, 32)
	pub := priv.PublicKey().Bytes()
	if base64.RawURLEncoding.EncodeToString(pub) != v.LinkPublic || base64.RawURLEncoding.EncodeToString(dk) != v.DeviceKey {
		t.Fatal("vector keys differ")
	}
	if got := LinkCode(v.Secret, pub, dk); got != v.Code {
		t.Fatalf("LinkCode = %q, want %q", got, v.Code)
	}
	if got := FormatLinkCode(v.Code + v.Secret); got != v.Shown {
		t.Fatalf("shown as %q, want %q", got, v.Shown)
	}
	if l, s, ok := SplitLinkCode(strings.ToLower(v.Shown)); !ok || l != v.Code || s != v.Secret {
		t.Fatalf("SplitLinkCode = %q %q %v", l, s, ok)
	}
	other := bytes.Clone(dk)
	other[0] ^= 1
	if LinkCode(v.Secret, pub, other) == v.Code || LinkCode("AAAAABBBBBCCCCD", pub, dk) == v.Code {
		t.Fatal("another device key or secret, same code")
	}
	if s := NewLinkCodeSecret(); len(s) != LinkCodeSecretLen {
		t.Fatalf("NewLinkCodeSecret = %q", s)
	} else if _, _, ok := SplitLinkCode(v.Code + s); !ok {
		t.Fatalf("NewLinkCodeSecret = %q is not base32", s)
	}
}

func TestNormalizeLinkCode(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"3MGDH-HWX2N", "3MGDHHWX2N", true},
		{"3mgdh hwx2n", "3MGDHHWX2N", true},
		{"3MGDHHWX2N", "3MGDHHWX2N", true},
		{" 3MG-DHH-WX2N ", "3MGDHHWX2N", true},
		{"3MGDHHWX2", "", false},   // short
		{"3MGDHHWX2NN", "", false}, // long
		{"3MGDHHWX0N", "", false},  // 0 is not base32
		{"3MGDHHWX1N", "", false},
		{"3MGDH/WX2N", "", false},
		{"", "", false},
		{"ÄMGDHHWX2N", "", false},
	} {
		got, ok := NormalizeLinkCode(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("NormalizeLinkCode(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if got := FormatLinkCode("3MGDHHWX2N"); got != "3MGDH-HWX2N" {
		t.Errorf("FormatLinkCode = %q", got)
	}
}

// FuzzNormalizeLinkCode: any input either normalizes to a well-formed code
// (a lookup part, or a whole code's two parts) that normalizes to itself,
// or is refused; nothing panics.
func FuzzNormalizeLinkCode(f *testing.F) {
	for _, s := range []string{"3MGDH-HWX2N", "3mgdh hwx2n", "", "-----", "ÄMGDHHWX2N", "AAAAAAAAAA\x00"} {
		f.Add(s)
	}
	f.Add("IQFOU-HFUWB-AAAAA-BBBBB-CCCCC")
	f.Fuzz(func(t *testing.T, s string) {
		if l, sec, ok := SplitLinkCode(s); ok {
			if l2, sec2, ok2 := SplitLinkCode(FormatLinkCode(l + sec)); !ok2 || l2 != l || sec2 != sec || len(sec) != LinkCodeSecretLen {
				t.Fatalf("SplitLinkCode(%q) = %q %q, not stable", s, l, sec)
			}
		}
		code, ok := NormalizeLinkCode(s)
		if !ok {
			return
		}
		if again, ok2 := NormalizeLinkCode(code); !ok2 || again != code || len(code) != LinkCodeLen {
			t.Fatalf("NormalizeLinkCode(%q) = %q, not stable", s, code)
		}
		if back, _ := NormalizeLinkCode(FormatLinkCode(code)); back != code {
			t.Fatalf("format/normalize round trip of %q gave %q", code, back)
		}
	})
}
