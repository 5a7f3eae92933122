package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/gateway/client"
	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/store/storetest"
)

// TestClientMessages: a message is sealed, stored, delivered live and
// opened; the sender's devices get the Self copy; reading burns it for
// both; unread counts and recall work; a non-friend is refused.
func TestClientMessages(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := testCtx(t)
	alice, bob, carol := s.user("alice"), s.user("bob"), s.user("carol")
	befriend(t, alice, bob)
	ain, bin := run(t, alice), run(t, bob)
	ain.waitSyncs(1)
	bin.waitSyncs(1)

	sent, err := alice.Send(ctx, "bob", "hello bob ✓")
	if err != nil {
		t.Fatal(err)
	}
	if sent.ID == "" || sent.Seq == 0 || sent.PeerSeq == 0 || sent.Duplicate {
		t.Fatalf("sent %+v", sent)
	}
	m := bin.waitReceived(1)[0]
	if m.Err != nil || m.Text != "hello bob ✓" || m.FromHandle != "alice" || m.ToHandle != "bob" ||
		m.From != alice.Identity().UserID || m.ID != sent.ID || m.Seq != sent.PeerSeq || m.Self {
		t.Fatalf("bob got %+v (err %v)", m, m.Err)
	}
	if time.Since(m.SentAt) > time.Minute {
		t.Fatalf("sent_at %v", m.SentAt)
	}
	// The sending device keeps no copy: its sync copy has no wrap for it.
	ain.waitFor("self copy", func(in *inbox) bool { return len(in.msgs) == 1 && in.msgs[0].Self })
	if self := ain.messages()[0]; self.Seq != sent.Seq || !errors.Is(self.Err, client.ErrSentHere) {
		t.Fatalf("alice's copy %+v", self)
	}

	counts, err := bob.Unread(ctx)
	if err != nil || counts[alice.Identity().UserID] != 1 {
		t.Fatalf("unread %v, %v", counts, err)
	}
	if err := bob.Read(ctx, m.Seq); err != nil {
		t.Fatal(err)
	}
	if ev := ain.waitEvent(schema.EventBurned); ev.Seq != sent.Seq {
		t.Fatalf("alice's burned event %+v", ev)
	}
	isCode(t, bob.Read(ctx, m.Seq), schema.CodeUnknownMessage)
	if counts, err := bob.Unread(ctx); err != nil || len(counts) != 0 {
		t.Fatalf("unread after read %v, %v", counts, err)
	}

	// Recall an unread message.
	sent2, err := alice.Send(ctx, "bob", "oops")
	if err != nil {
		t.Fatal(err)
	}
	bin.waitReceived(2)
	if err := alice.Recall(ctx, sent2.Seq); err != nil {
		t.Fatal(err)
	}
	bin.waitEvent(schema.EventRecalled)
	isCode(t, bob.Read(ctx, sent2.PeerSeq), schema.CodeUnknownMessage)

	// Not friends: the server's code reaches the caller.
	_, err = alice.Send(ctx, "carol", "hi")
	isCode(t, err, schema.CodeNotFriend)
	_, err = alice.Send(ctx, "nobody_here", "hi")
	isCode(t, err, schema.CodeNotFound)
	// Without Run, requests wait for a connection until their context ends.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := carol.Unread(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unread without Run: %v", err)
	}
}

// TestClientReplay: a device that was offline gets what arrived meanwhile
// on its next connection, in order, once; its cursor, kept in a Dir,
// carries over to a new process; burned messages do not come back.
func TestClientReplay(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := testCtx(t)
	dir, err := client.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	alice := s.user("alice")
	bob := s.user("bob", func(c *client.Config) { c.Storage = dir })
	if err := dir.SaveIdentity(bob.Identity().UserID, "bob", bob.Keys(), nil); err != nil {
		t.Fatal(err)
	}
	befriend(t, alice, bob)
	ain := run(t, alice)
	ain.waitSyncs(1)
	for i := range 3 {
		if _, err := alice.Send(ctx, "bob", fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	bin := run(t, bob)
	got := bin.waitReceived(3)
	if texts := bin.received(); !slices.Equal(texts, []string{"m0", "m1", "m2"}) {
		t.Fatalf("replay got %q", texts)
	}
	if err := bob.Read(ctx, got[0].Seq); err != nil {
		t.Fatal(err)
	}
	bin.stop()
	if cur, _ := dir.Cursor(); cur != got[2].Seq {
		t.Fatalf("stored cursor %d, want %d", cur, got[2].Seq)
	}
	if _, err := alice.Send(ctx, "bob", "m3"); err != nil {
		t.Fatal(err)
	}

	// A new process from the Dir: only what came after the cursor.
	cfg, err := dir.Config(s.url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 100*time.Millisecond
	bob2, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	bin2 := run(t, bob2)
	bin2.waitSyncs(1)
	bin2.waitReceived(1)
	if texts := bin2.received(); !slices.Equal(texts, []string{"m3"}) {
		t.Fatalf("second process got %q", texts)
	}

	// From cursor 0: the unburned ones, not the burned m0.
	cfg, err = dir.Config(s.url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Cursor, cfg.Storage = 0, noCursor{dir}
	fresh, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fin := run(t, fresh)
	fin.waitSyncs(1)
	if texts := fin.received(); !slices.Equal(texts, []string{"m1", "m2", "m3"}) {
		t.Fatalf("new device got %q", texts)
	}
}

// TestClientReconnect: connections cut by the network are re-established
// with backoff; messages sent meanwhile arrive once and in order; a send
// issued while disconnected completes once the connection is back; a
// Handler error makes the message come again.
func TestClientReconnect(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := testCtx(t)
	p := newProxy(t, s)
	alice := s.user("alice")
	bob := newClient(t, p.url(), "phone", s.directHTTP)
	register(t, bob, "bob")
	befriend(t, alice, bob)
	ain, bin := run(t, alice), run(t, bob)
	ain.waitSyncs(1)
	bin.waitSyncs(1)

	if _, err := alice.Send(ctx, "bob", "before"); err != nil {
		t.Fatal(err)
	}
	bin.waitReceived(1)
	p.cut(true)
	for _, text := range []string{"during1", "during2"} {
		if _, err := alice.Send(ctx, "bob", text); err != nil {
			t.Fatal(err)
		}
	}
	// bob sends while cut off: it waits for the connection.
	res := goSend(ctx, bob, "alice", "from the tunnel")
	stillSending(t, res, 200*time.Millisecond)
	p.restore()
	r := <-res
	if r.err != nil {
		t.Fatalf("send after reconnect: %v", r.err)
	}
	bin.waitSyncs(2)
	got := bin.waitReceived(3)
	if texts := bin.received(); !slices.Equal(texts, []string{"before", "during1", "during2"}) {
		t.Fatalf("bob got %q", texts)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			t.Fatalf("seqs out of order: %d after %d", got[i].Seq, got[i-1].Seq)
		}
	}
	if m := ain.waitReceived(1)[0]; m.Text != "from the tunnel" {
		t.Fatalf("alice got %+v", m)
	}

	// A Handler error: the message is redelivered after a reconnect.
	bin.mu.Lock()
	failed := false
	bin.fail = func(m client.Message) error {
		if m.Text == "flaky" && !failed {
			failed = true
			return errors.New("disk full")
		}
		return nil
	}
	bin.mu.Unlock()
	if _, err := alice.Send(ctx, "bob", "flaky"); err != nil {
		t.Fatal(err)
	}
	bin.waitReceived(4)
	bin.waitSyncs(3)
	if texts := bin.received(); !slices.Equal(texts, []string{"before", "during1", "during2", "flaky"}) {
		t.Fatalf("after handler error bob got %q", texts)
	}
}

// TestClientRunStops: Run returns nil when its context ends, and an error
// without retrying when the device is revoked.
func TestClientRunStops(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := testCtx(t)
	alice := s.user("alice")
	in := run(t, alice)
	in.waitSyncs(1)
	if err := in.stop(); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}

	phone := s.user("bob")
	laptop := s.link(phone, "laptop")
	done := make(chan error, 1)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	synced := make(chan struct{}, 1)
	go func() {
		done <- laptop.Run(rctx, client.Handler{Synced: func(context.Context, uint64) { synced <- struct{}{} }})
	}()
	<-synced
	if err := phone.RevokeDevice(ctx, laptop.Identity().DeviceID); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		isCode(t, err, schema.CodeTokenRevoked)
	case <-time.After(20 * time.Second):
		t.Fatal("Run kept going after its device was revoked")
	}
	// Requests fail with the same error instead of waiting for a connection.
	_, err := laptop.Unread(ctx)
	isCode(t, err, schema.CodeTokenRevoked)
}

// TestClientSendRetry: when the answer to a send is lost with its
// connection, the same envelope is sent again on the next one and the
// server recognises it: the recipient gets the message once.
func TestClientSendRetry(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := testCtx(t)
	p := newProxy(t, s)
	alice := s.user("alice")
	bob := newClient(t, p.url(), "phone", s.directHTTP)
	register(t, bob, "bob")
	befriend(t, alice, bob)
	ain, bin := run(t, alice), run(t, bob)
	ain.waitSyncs(1)
	bin.waitSyncs(1)

	p.holdDown()
	wait := sendAsync(ctx, bob, "alice", "exactly once")
	got := ain.waitReceived(1) // stored, but bob never heard back
	p.cut(false)
	sent, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	if !sent.Duplicate || sent.ID != got[0].ID {
		t.Fatalf("retried send %+v; alice got %+v", sent, got[0])
	}
	// A later message from bob: a duplicate stored before it would have
	// arrived before it (a mailbox is ordered).
	if _, err := bob.Send(ctx, "alice", "marker"); err != nil {
		t.Fatal(err)
	}
	ain.waitReceived(2)
	if texts := ain.received(); !slices.Equal(texts, []string{"exactly once", "marker"}) {
		t.Fatalf("alice got %q", texts)
	}
}

// TestClientSendRidesOutPostgresFailover: while Postgres drops every
// connection (a restart or promotion), a send's bundle claim is answered
// unavailable; Send claims again after a pause and the message is stored
// once Postgres is back, within Send's retry window.
func TestClientSendRidesOutPostgresFailover(t *testing.T) {
	proxy, dbURL := storetest.NewProxy(t)
	a := gatewaytest.Start(t, gatewaytest.Config{DatabaseURL: dbURL, SendRate: 1000, SendBurst: 1000})
	s := &server{t: t, srv: a, url: "http://" + a.HTTPAddr()}
	ctx := testCtx(t)
	alice, bob := s.user("alice"), s.user("bob")
	befriend(t, alice, bob)
	ain, bin := run(t, alice), run(t, bob)
	ain.waitSyncs(1)
	bin.waitSyncs(1)
	if _, err := alice.Send(ctx, "bob", "before"); err != nil {
		t.Fatal(err)
	}

	proxy.SetDown(true)
	done := goSend(ctx, alice, "bob", "during the failover")
	stillSending(t, done, time.Second) // the outage lasts a second; Send must not give up
	proxy.SetDown(false)
	if r := <-done; r.err != nil {
		t.Fatalf("send across the failover: %v", r.err)
	}
	got := bin.waitReceived(2)
	if got[1].Text != "during the failover" || got[1].Err != nil {
		t.Fatalf("bob got %+v", got[1])
	}
}

// sendResult is what a Send started by goSend returned.
type sendResult struct {
	sent client.Sent
	err  error
}

// goSend starts c.Send(ctx, handle, text) and returns where its result will be.
func goSend(ctx context.Context, c *client.Client, handle, text string) <-chan sendResult {
	res := make(chan sendResult, 1)
	go func() {
		sent, err := c.Send(ctx, handle, text)
		res <- sendResult{sent, err}
	}()
	return res
}

// stillSending fails t if the send behind res finishes within d.
func stillSending(t *testing.T, res <-chan sendResult, d time.Duration) {
	t.Helper()
	select {
	case r := <-res:
		t.Fatalf("send finished early: %+v, %v", r.sent, r.err)
	case <-time.After(d):
	}
}
