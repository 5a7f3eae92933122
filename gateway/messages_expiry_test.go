package gateway_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/store/storetest"
)

// TestGatewayMessagesExpiry: with a 2s MaxAge an unread message disappears
// without anyone reading it: unread counts drop to zero, a new device's
// sync replays nothing and reading it is unknown_message.
func TestGatewayMessagesExpiry(t *testing.T) {
	t.Parallel()
	e := startMsgEnv(t, gatewaytest.Config{MailboxMaxAge: 2 * time.Second})
	alice, bob := e.friends("alice", "bob")
	a, b := dialWS(t, e, alice), dialWS(t, e, bob)
	b.sync(0)
	s := a.send(bob, "ephemeral")
	b.waitMsg(s.PeerSeq)
	natstest.WaitFor(t, 15*time.Second, "the message to expire from the unread counts", func() bool {
		return len(mustAnswer[*schema.UnreadCountsFrame](b, b.request(schema.FrameUnread, nil)).Counts) == 0
	})
	fresh := dialWS(t, e, bob.Device("laptop"))
	fresh.sync(0)
	if n := len(fresh.msgs()); n != 0 {
		t.Fatalf("expired message replayed: %s", fresh.dump())
	}
	b.wantError(b.request(schema.FrameRead, map[string]any{"seq": s.PeerSeq}), schema.CodeUnknownMessage)
	a.wantError(a.request(schema.FrameRecall, map[string]any{"seq": s.Seq}), schema.CodeUnknownMessage)
}

// TestGatewayMessagesNoPlaintextAtRest sends a marker sealed in an envelope
// over the WebSocket, lets the recipient open it, then searches the
// JetStream store directory and the Postgres data directory for the marker
// bytes: zero hits. Control searches (the stored ciphertext in JetStream,
// the user's handle in Postgres after a checkpoint) prove the searches
// reach the bytes each store wrote.
func TestGatewayMessagesNoPlaintextAtRest(t *testing.T) {
	t.Parallel()
	dbURL := storetest.NewURL(t)
	e := startMsgEnv(t, gatewaytest.Config{DatabaseURL: dbURL})
	suffix := randomHex(t)
	alice, bob := e.friends("alice_"+suffix, "bob_"+suffix)
	marker := "MAYFLY-E2E-PLAINTEXT-" + suffix
	a, b := dialWS(t, e, alice), dialWS(t, e, bob)
	b.sync(0)
	env := a.seal(bob, "marker-"+suffix, "the secret is "+marker)
	s := mustAnswer[*schema.SentFrame](a, a.sendEnv(bob, env))
	if got := b.open(b.waitMsg(s.PeerSeq), alice); got != "the secret is "+marker {
		t.Fatalf("opened %q", got)
	}

	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "CHECKPOINT"); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	var wire struct {
		CT string `json:"ct"`
	}
	if err := json.Unmarshal(env, &wire); err != nil {
		t.Fatal(err)
	}
	jsDir := filepath.Join(e.dir, "nats")
	pgDir := storetest.Server().DataDir()
	if n := countBytesUnder(t, jsDir, []byte(wire.CT)); n < 2 {
		t.Fatalf("control: ciphertext found %d times under %s, want both copies", n, jsDir)
	}
	if n := countBytesUnder(t, pgDir, []byte(alice.User.Handle)); n == 0 {
		t.Fatalf("control: handle %q not found under %s", alice.User.Handle, pgDir)
	}
	for _, dir := range []string{jsDir, pgDir, e.dir} {
		if n := countBytesUnder(t, dir, []byte(marker)); n != 0 {
			t.Fatalf("plaintext marker found %d times under %s", n, dir)
		}
	}
}

func randomHex(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// countBytesUnder counts occurrences of needle in the regular files under
// dir; files that vanish while walking (Postgres rotates them) are skipped.
func countBytesUnder(t *testing.T, dir string, needle []byte) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		n += bytes.Count(b, needle)
		return nil
	})
	if err != nil {
		t.Fatalf("search %s: %v", dir, err)
	}
	return n
}
