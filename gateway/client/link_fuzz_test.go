package client

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/json"
	"testing"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// FuzzClientOpenBundle: a sealed bundle comes from the server, so any
// bytes must be refused cleanly; the seed corpus includes a real bundle,
// which must open.
func FuzzClientOpenBundle(f *testing.F) {
	priv, _ := ecdh.X25519().GenerateKey(rand.Reader)
	const pass = "AAAAABBBBBCCCCC"
	plain, _ := json.Marshal(schema.LinkKeys{V: 3, UserID: "u1", Handle: "alice", IK: envelope.EncodeKey(make([]byte, 32))})
	good, err := sealBundle(rand.Reader, priv.PublicKey().Bytes(), pass, plain)
	if err != nil {
		f.Fatal(err)
	}
	if l, err := openBundle(priv, pass, good); err != nil || l.UserID != "u1" || l.Handle != "alice" {
		f.Fatalf("open a good bundle: %+v, %v", l, err)
	}
	f.Add(good.EPK, good.N, good.CT)
	f.Add("", "", "")
	f.Add(good.EPK, good.N, good.CT[:len(good.CT)-2])
	f.Fuzz(func(t *testing.T, epk, n, ct string) {
		l, err := openBundle(priv, pass, schema.SealedBundle{EPK: epk, N: n, CT: ct})
		if err == nil && (l.UserID == "" && l.Handle == "") {
			t.Fatal("opened a bundle without a user")
		}
	})
}
