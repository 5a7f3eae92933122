package envelope

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"
)

// seedKeys returns deterministic keys derived from one seed byte.
func seedKeys(tb testing.TB, seed byte) Keys {
	tb.Helper()
	kex, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{seed ^ 0xff}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	return Keys{Sign: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32)), Kex: kex}
}

var (
	testSentAt = time.UnixMilli(1_700_000_000_123).UTC()
	testHeader = Header{From: "alice", To: "bob", MsgID: "m-0001", SentAt: testSentAt}
)

// testParties returns alice (sender), bob (recipient) and carol (third party).
func testParties(tb testing.TB) (alice, bob, carol Keys) {
	return seedKeys(tb, 1), seedKeys(tb, 2), seedKeys(tb, 3)
}

// sealTest seals plaintext from alice to bob with testHeader.
func sealTest(tb testing.TB, plaintext []byte) []byte {
	tb.Helper()
	alice, bob, _ := testParties(tb)
	b, err := Seal(testHeader, alice, bob.Public(), plaintext)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// mutateJSON decodes b into a generic map, applies f and re-encodes.
func mutateJSON(tb testing.TB, b []byte, f func(m map[string]any)) []byte {
	tb.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		tb.Fatal(err)
	}
	f(m)
	out, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// wrapAt returns wraps[i] of a generic envelope map.
func wrapAt(m map[string]any, i int) map[string]any {
	return m["wraps"].([]any)[i].(map[string]any)
}
