package client

import (
	"bytes"
	"crypto/ecdh"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/mayfly-im/mayfly/schema"
)

// counterReader reads the bytes 00 01 02 ... (byte i is i mod 256): the
// "random" bytes of the test vectors.
type counterReader struct{ i int }

func (c *counterReader) Read(p []byte) (int, error) {
	for k := range p {
		p[k] = byte(c.i)
		c.i++
	}
	return len(p), nil
}

// TestClientLinkAnswerVectors: the link v3 answer of the test vectors
// (schema/testdata/link-v3-vectors.json, docs/api.md) seals byte for byte,
// opens with the code's secret part, and does not open without it.
func TestClientLinkAnswerVectors(t *testing.T) {
	b, err := os.ReadFile("../../schema/testdata/link-v3-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Secret      string              `json:"secret"`
		AnswerPlain string              `json:"answer_plain"`
		Answer      schema.SealedBundle `json:"answer"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	priv, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	got, err := sealBundle(&counterReader{}, priv.PublicKey().Bytes(), v.Secret, []byte(v.AnswerPlain))
	if err != nil || got != v.Answer {
		t.Fatalf("sealed %+v, %v; want %+v", got, err, v.Answer)
	}
	l, err := openBundle(priv, v.Secret, v.Answer)
	if err != nil || l.UserID != "ualice" || l.Handle != "alice" || len(l.IdentityKey) != 32 {
		t.Fatalf("opened %+v, %v", l, err)
	}
	if _, err := openBundle(priv, "AAAAABBBBBCCCCD", v.Answer); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("opened with another secret: %v", err)
	}
}
