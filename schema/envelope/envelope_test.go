package envelope

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	alice, bob, _ := testParties(t)
	tests := []struct {
		name      string
		plaintext []byte
	}{
		{"text", []byte("hello bob")},
		{"empty", nil},
		{"max", bytes.Repeat([]byte{0xa5}, MaxPlaintext)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Seal(testHeader, alice, bob.Public(), tt.plaintext)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if len(b) > MaxEncoded {
				t.Fatalf("encoded %d bytes, over MaxEncoded", len(b))
			}
			for _, reader := range []struct {
				name string
				keys Keys
			}{{"recipient", bob}, {"sender", alice}} {
				h, got, err := Open(b, reader.keys, alice.Public().Sign)
				if err != nil {
					t.Fatalf("Open as %s: %v", reader.name, err)
				}
				if !bytes.Equal(got, tt.plaintext) {
					t.Errorf("Open as %s: plaintext differs", reader.name)
				}
				if h != testHeader {
					t.Errorf("Open as %s: header = %+v, want %+v", reader.name, h, testHeader)
				}
			}
		})
	}
}

func TestEnvelopeSealFresh(t *testing.T) {
	a, b := sealTest(t, []byte("same")), sealTest(t, []byte("same"))
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same message are identical")
	}
}

func TestEnvelopeSentAtTruncatedToMillis(t *testing.T) {
	alice, bob, _ := testParties(t)
	h := testHeader
	h.SentAt = testSentAt.Add(999 * time.Microsecond).In(time.FixedZone("x", 3600))
	b, err := Seal(h, alice, bob.Public(), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := Open(b, bob, alice.Public().Sign)
	if err != nil {
		t.Fatal(err)
	}
	if got.SentAt != testSentAt {
		t.Errorf("SentAt = %v, want %v", got.SentAt, testSentAt)
	}
}

func TestEnvelopeNoteToSelf(t *testing.T) {
	alice, _, _ := testParties(t)
	h := testHeader
	h.To = h.From
	b, err := Seal(h, alice, alice.Public(), []byte("note"))
	if err != nil {
		t.Fatal(err)
	}
	if _, got, err := Open(b, alice, alice.Public().Sign); err != nil || string(got) != "note" {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

func TestEnvelopeOpenRejects(t *testing.T) {
	alice, bob, carol := testParties(t)
	b := sealTest(t, []byte("secret"))
	tests := []struct {
		name   string
		reader Keys
		sign   ed25519.PublicKey
		want   error
	}{
		{"third party", carol, alice.Public().Sign, ErrNoWrap},
		{"wrong sender key", bob, carol.Public().Sign, ErrSignature},
		{"recipient key as sender key", bob, bob.Public().Sign, ErrSignature},
		{"short sender key", bob, alice.Public().Sign[:31], ErrKey},
		{"nil sender key", bob, nil, ErrKey},
		{"nil reader key", Keys{}, alice.Public().Sign, ErrKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got, err := Open(b, tt.reader, tt.sign)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open error = %v, want %v", err, tt.want)
			}
			if got != nil {
				t.Error("Open returned plaintext with an error")
			}
		})
	}
}

// TestEnvelopeTamper changes one field of a sealed envelope at a time; the
// signature must catch every change.
func TestEnvelopeTamper(t *testing.T) {
	alice, bob, _ := testParties(t)
	base := sealTest(t, []byte("tamper me"))
	flip := func(b []byte) { b[len(b)/2] ^= 1 }
	tests := []struct {
		name   string
		mutate func(e *Envelope)
	}{
		{"ciphertext byte", func(e *Envelope) { flip(e.ciphertext) }},
		{"ciphertext truncated", func(e *Envelope) { e.ciphertext = e.ciphertext[:len(e.ciphertext)-1] }},
		{"ciphertext extended", func(e *Envelope) { e.ciphertext = append(e.ciphertext, 0) }},
		{"from", func(e *Envelope) { e.from = "mallory" }},
		{"to", func(e *Envelope) { e.to = "carol" }},
		{"mid", func(e *Envelope) { e.msgID = "m-0002" }},
		{"ts", func(e *Envelope) { e.sentAt++ }},
		{"nonce", func(e *Envelope) { flip(e.nonce[:]) }},
		{"signature", func(e *Envelope) { flip(e.sig[:]) }},
		{"wraps swapped", func(e *Envelope) { e.wraps[0], e.wraps[1] = e.wraps[1], e.wraps[0] }},
		{"wraps[0] duplicated", func(e *Envelope) { e.wraps[1] = e.wraps[0] }},
	}
	for i := range numWraps {
		for _, f := range []struct {
			name  string
			field func(w *wrap) []byte
		}{
			{"kid", func(w *wrap) []byte { return w.keyID[:] }},
			{"epk", func(w *wrap) []byte { return w.ephemeral[:] }},
			{"n", func(w *wrap) []byte { return w.nonce[:] }},
			{"k", func(w *wrap) []byte { return w.key[:] }},
		} {
			tests = append(tests, struct {
				name   string
				mutate func(e *Envelope)
			}{
				name:   fmt.Sprintf("wraps[%d].%s", i, f.name),
				mutate: func(e *Envelope) { flip(f.field(&e.wraps[i])) },
			})
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse(base)
			if err != nil {
				t.Fatal(err)
			}
			tt.mutate(e)
			b, err := e.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			for _, reader := range []Keys{bob, alice} {
				if _, _, err := Open(b, reader, alice.Public().Sign); !errors.Is(err, ErrSignature) {
					t.Errorf("Open error = %v, want ErrSignature", err)
				}
			}
		})
	}
	t.Run("version", func(t *testing.T) {
		b := bytes.Replace(base, []byte(`"v":1,`), []byte(`"v":2,`), 1)
		if _, _, err := Open(b, bob, alice.Public().Sign); !errors.Is(err, ErrVersion) {
			t.Errorf("Open error = %v, want ErrVersion", err)
		}
	})
}

// TestEnvelopeAADBindsHeader re-signs a changed header over the original
// ciphertext, as only the sender could; the payload AEAD must still refuse
// it, so a ciphertext cannot be moved under another header.
func TestEnvelopeAADBindsHeader(t *testing.T) {
	alice, bob, _ := testParties(t)
	base := sealTest(t, []byte("bound"))
	tests := []struct {
		name   string
		mutate func(e *Envelope)
	}{
		{"from", func(e *Envelope) { e.from = "alice2" }},
		{"to", func(e *Envelope) { e.to = "bob2" }},
		{"mid", func(e *Envelope) { e.msgID = "m-0002" }},
		{"ts", func(e *Envelope) { e.sentAt++ }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse(base)
			if err != nil {
				t.Fatal(err)
			}
			tt.mutate(e)
			copy(e.sig[:], ed25519.Sign(alice.Sign, e.signedBytes()))
			if _, _, err := e.Open(bob, alice.Public().Sign); !errors.Is(err, ErrDecrypt) {
				t.Errorf("Open error = %v, want ErrDecrypt", err)
			}
		})
	}
}

// TestEnvelopeBadWrapSigned checks that a correctly signed but undecryptable
// wrap (low-order ephemeral key, garbage wrapped key) yields ErrDecrypt.
func TestEnvelopeBadWrapSigned(t *testing.T) {
	alice, bob, _ := testParties(t)
	tests := []struct {
		name   string
		mutate func(w *wrap)
	}{
		{"low-order epk", func(w *wrap) { w.ephemeral = [KexKeySize]byte{} }},
		{"wrapped key", func(w *wrap) { w.key[0] ^= 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse(sealTest(t, []byte("x")))
			if err != nil {
				t.Fatal(err)
			}
			tt.mutate(&e.wraps[0])
			copy(e.sig[:], ed25519.Sign(alice.Sign, e.signedBytes()))
			if _, _, err := e.Open(bob, alice.Public().Sign); !errors.Is(err, ErrDecrypt) {
				t.Errorf("Open error = %v, want ErrDecrypt", err)
			}
		})
	}
}

func TestEnvelopeSealRejects(t *testing.T) {
	alice, bob, _ := testParties(t)
	with := func(f func(h *Header)) Header { h := testHeader; f(&h); return h }
	tests := []struct {
		name      string
		header    Header
		sender    Keys
		recipient PublicKeys
		plaintext []byte
		want      error
	}{
		{"too large", testHeader, alice, bob.Public(), make([]byte, MaxPlaintext+1), ErrTooLarge},
		{"empty from", with(func(h *Header) { h.From = "" }), alice, bob.Public(), nil, ErrMalformed},
		{"bad to", with(func(h *Header) { h.To = "bob@example" }), alice, bob.Public(), nil, ErrMalformed},
		{"long mid", with(func(h *Header) { h.MsgID = strings.Repeat("m", MaxIDLen+1) }), alice, bob.Public(), nil, ErrMalformed},
		{"zero time", with(func(h *Header) { h.SentAt = time.Time{} }), alice, bob.Public(), nil, ErrMalformed},
		{"epoch", with(func(h *Header) { h.SentAt = time.UnixMilli(0) }), alice, bob.Public(), nil, ErrMalformed},
		{"far future", with(func(h *Header) { h.SentAt = time.UnixMilli(MaxSentAtMillis + 1) }), alice, bob.Public(), nil, ErrMalformed},
		{"no sender keys", testHeader, Keys{}, bob.Public(), nil, ErrKey},
		{"no sender kex", testHeader, Keys{Sign: alice.Sign}, bob.Public(), nil, ErrKey},
		{"no recipient kex", testHeader, alice, PublicKeys{Sign: bob.Public().Sign}, nil, ErrKey},
		{"short recipient kex", testHeader, alice, PublicKeys{Kex: bob.Public().Kex[:31]}, nil, ErrKey},
		{"low-order recipient kex", testHeader, alice, PublicKeys{Kex: make([]byte, 32)}, nil, ErrKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Seal(tt.header, tt.sender, tt.recipient, tt.plaintext)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Seal error = %v, want %v", err, tt.want)
			}
			if b != nil {
				t.Error("Seal returned bytes with an error")
			}
		})
	}
}

func TestEnvelopeVerify(t *testing.T) {
	alice, bob, _ := testParties(t)
	e, err := Parse(sealTest(t, []byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Verify(alice.Public().Sign); err != nil {
		t.Errorf("Verify(sender) = %v", err)
	}
	if err := e.Verify(bob.Public().Sign); !errors.Is(err, ErrSignature) {
		t.Errorf("Verify(other) = %v, want ErrSignature", err)
	}
}

func TestEnvelopeKeysRedacted(t *testing.T) {
	alice, _, _ := testParties(t)
	secrets := []string{
		EncodeKey(alice.Sign.Seed()),
		strings.TrimSuffix(fmt.Sprint([]byte(alice.Sign[:4])), "]"),
		strings.TrimSuffix(fmt.Sprint(alice.Kex.Bytes()[:4]), "]"),
	}
	for _, s := range []string{
		fmt.Sprintf("%v", alice), fmt.Sprintf("%+v", alice), fmt.Sprintf("%#v", alice),
		alice.LogValue().Resolve().String(),
	} {
		if slices.ContainsFunc(secrets, func(secret string) bool { return strings.Contains(s, secret) }) {
			t.Errorf("key material in %q", s)
		}
	}
}
