package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
	"github.com/mayfly-im/mayfly/cmd/mayflyd/app/apptest"
	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/gateway/client"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/payload"
	"github.com/mayfly-im/mayfly/store/storetest"
)

// received collects the messages a Go client receives.
type received chan client.Message

func (r received) handler() client.Handler {
	return client.Handler{Message: func(_ context.Context, m client.Message) error {
		if !m.Self {
			r <- m
		}
		return nil
	}}
}

func (r received) next(t *testing.T) client.Message {
	t.Helper()
	select {
	case m := <-r:
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("no message within 30s")
		return client.Message{}
	}
}

// rawGet fetches an attachment's stored bytes with c's token.
func rawGet(t *testing.T, addr string, c *client.Client, id string) (int, []byte) {
	t.Helper()
	tok, err := c.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/attachments/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestAppAttachmentBurnedWithMessage: a file sent with a message reaches
// the recipient byte for byte; a stranger can neither fetch nor upload;
// reading the message deletes the stored file (the API answers
// unknown_attachment and its bytes leave the store's files); a recall
// deletes it too.
func TestAppAttachmentBurnedWithMessage(t *testing.T) {
	dataDir := t.TempDir()
	a := apptest.Start(t, app.Config{DatabaseURL: storetest.NewURL(t), DataDir: dataDir,
		MailboxRotateInterval: time.Second, NATSCompactInterval: time.Second})
	addr := a.HTTPAddr()
	ctx := context.Background()
	inbox := received(make(chan client.Message, 8))
	alice := goClient(t, addr, "alice", client.Handler{SendOnly: true})
	bob := goClient(t, addr, "bob", inbox.handler())
	eve := goClient(t, addr, "eve", client.Handler{SendOnly: true})
	if _, err := alice.FriendRequest(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.AcceptFriend(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 300<<10)
	rand.Read(data)
	if _, err := alice.SendFiles(ctx, "bob", "a picture", []client.Attachment{{Name: "pic.bin", Type: "application/octet-stream", Data: data}}); err != nil {
		t.Fatalf("SendFiles: %v", err)
	}
	m := inbox.next(t)
	if m.Text != "a picture" || len(m.Files) != 1 || m.Files[0].Name != "pic.bin" || m.Files[0].Size != int64(len(data)) {
		t.Fatalf("received %+v", m)
	}
	f := m.Files[0]
	got, err := bob.Download(ctx, f)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("bob's download: %d bytes, %v", len(got), err)
	}
	status, sealed := rawGet(t, addr, alice, f.ID)
	if status != http.StatusOK || len(sealed) != len(data)+payload.SealedOverhead || bytes.Contains(sealed, data[:64]) {
		t.Fatalf("the sender's raw fetch: %d, %d bytes (plaintext in it: %v)", status, len(sealed), bytes.Contains(sealed, data[:64]))
	}
	if _, err := eve.Download(ctx, f); !schema.HasCode(err, schema.CodeUnknownAttachment) {
		t.Errorf("a stranger's download: %v, want unknown_attachment", err)
	}
	if _, err := eve.SendFiles(ctx, "bob", "", []client.Attachment{{Name: "x", Data: []byte("x")}}); !schema.HasCode(err, schema.CodeNotFriend) {
		t.Errorf("a stranger's upload: %v, want not_friend", err)
	}
	// An upload alice never sends stays stored, as on a real server.
	if _, err := alice.SendFiles(ctx, "bob", "second", []client.Attachment{{Name: "keep.bin", Data: []byte("keep")}}); err != nil {
		t.Fatal(err)
	}
	keep := inbox.next(t)

	if err := bob.Read(ctx, m.Seq); err != nil {
		t.Fatalf("read: %v", err)
	}
	burnedAt := time.Now()
	for _, c := range []*client.Client{alice, bob} {
		if _, err := c.Download(ctx, f); !schema.HasCode(err, schema.CodeUnknownAttachment) {
			t.Errorf("download after the read: %v, want unknown_attachment", err)
		}
	}
	if _, err := bob.Download(ctx, keep.Files[0]); err != nil {
		t.Errorf("another message's file after the read: %v", err)
	}
	store := filepath.Join(dataDir, "nats")
	needle := [][]byte{sealed[100<<10 : 100<<10+64]}
	natstest.WaitFor(t, 30*time.Second, "burned attachment bytes leave the store's files", func() bool {
		return !natstest.InFiles(t, store, needle)[0]
	})
	t.Logf("burned attachment's bytes gone from the store's files %v after the read", time.Since(burnedAt).Round(100*time.Millisecond))

	// Recall: alice withdraws a message with a file; the file goes too.
	sent, err := alice.SendFiles(ctx, "bob", "oops", []client.Attachment{{Name: "oops.txt", Data: []byte("oops")}})
	if err != nil {
		t.Fatal(err)
	}
	oops := inbox.next(t)
	if err := alice.Recall(ctx, sent.Seq); err != nil {
		t.Fatalf("recall: %v", err)
	}
	if _, err := bob.Download(ctx, oops.Files[0]); !schema.HasCode(err, schema.CodeUnknownAttachment) {
		t.Errorf("download after the recall: %v, want unknown_attachment", err)
	}
}
