package mailbox

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestMailboxNoPlaintextAtRest sends a sealed marker and searches every file
// of the JetStream store for it: the server only ever holds ciphertext. The
// control search for the stored ciphertext proves the search reaches the
// bytes the stream wrote (sync_interval always: they are on disk on ack).
func TestMailboxNoPlaintextAtRest(t *testing.T) {
	f := newFixture(t, nil)
	a, b := f.friendsPair(t)
	const marker = "MAYFLY-PLAINTEXT-MARKER-7f3a9c"
	env := seal(t, a, b, "m-marker", "the secret is "+marker)
	if _, err := f.svc.Send(testContext(t), a.id, a.device, b.id, env); err != nil {
		t.Fatal(err)
	}
	var wire struct {
		CT string `json:"ct"`
	}
	if err := json.Unmarshal(env, &wire); err != nil || len(wire.CT) < 40 {
		t.Fatalf("envelope has no ciphertext: %v", err)
	}
	dir := f.node.Server().StoreDir()
	if got := countInFiles(t, dir, []byte(wire.CT)); got < 2 {
		t.Fatalf("control: ciphertext found %d times in %s, want both copies", got, dir)
	}
	if got := countInFiles(t, dir, []byte(marker)); got != 0 {
		t.Fatalf("plaintext marker found %d times in the JetStream store", got)
	}
}

// countInFiles counts occurrences of needle in every regular file under dir.
func countInFiles(t *testing.T, dir string, needle []byte) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n += bytes.Count(b, needle)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
