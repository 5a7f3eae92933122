package schema

import (
	"bytes"
	"crypto/ecdh"
	"crypto/sha256"
	"testing"
)

// TestLinkCode pins the code of docs/api.md's test vector: the X25519 key
// of private key 0x07 x 32 and the device key bytes 0x08 x 32.
func TestLinkCode(t *testing.T) {
	priv, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{0x07}, 32))
	if err != nil {
		t.Fatal(err)
	}
	dk := bytes.Repeat([]byte{0x08}, 32)
	pub := priv.PublicKey().Bytes()
	if got, want := LinkCode(pub, dk), "V2XSGSW2RB"; got != want {
		t.Fatalf("LinkCode = %q, want %q", got, want)
	}
	// Another key (almost surely) has another code.
	other := bytes.Clone(dk)
	other[0] ^= 1
	if LinkCode(pub, other) == LinkCode(pub, dk) {
		t.Fatal("different device keys, same code")
	}
	sum := sha256.Sum256(append(append([]byte(LinkCodeContext), pub...), dk...))
	if c := LinkCode(pub, dk); linkEncoding.EncodeToString(sum[:7])[:10] != c {
		t.Fatal("code is not a prefix of the digest's base32")
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
// that normalizes to itself, or is refused; nothing panics.
func FuzzNormalizeLinkCode(f *testing.F) {
	for _, s := range []string{"3MGDH-HWX2N", "3mgdh hwx2n", "", "-----", "ÄMGDHHWX2N", "AAAAAAAAAA\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
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
