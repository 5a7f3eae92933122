package mailbox

import (
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/schema"
)

// gone fails t unless no API returns either copy of res.
func (f *fixture) gone(t *testing.T, from, to user, res SendResult) {
	t.Helper()
	if m := f.rawGet(t, f.svc.stream(from.id), res.Seq); m != nil {
		t.Fatalf("Direct Get still finds the sync copy %d", res.Seq)
	}
	if m := f.rawGet(t, f.svc.stream(to.id), res.PeerSeq); m != nil {
		t.Fatalf("Direct Get still finds the recipient's copy %d", res.PeerSeq)
	}
	for _, u := range []user{from, to} {
		for _, m := range f.fetchAll(t, u.id) {
			if m.Seq == res.Seq && m.Self || m.Seq == res.PeerSeq && !m.Self {
				t.Fatalf("Fetch(%s) still returns seq %d", u.id, m.Seq)
			}
		}
	}
}

func TestMailboxRead(t *testing.T) {
	f := newFixture(t, nil)
	a, b := f.friendsPair(t)
	res := f.send(t, a, b, "burn me")
	keep := f.send(t, a, b, "keep me")
	evA, evB := f.subscribeEvents(t, a.id), f.subscribeEvents(t, b.id)

	got, err := f.svc.Read(testContext(t), b.id, res.PeerSeq)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != res.PeerSeq || got.Peer != a.id || got.PeerSeq != res.Seq || got.MsgID == "" {
		t.Fatalf("Read = %+v, want the copies of %+v", got, res)
	}
	f.gone(t, a, b, res)
	if ev := nextEvent(t, evB); ev.Type != schema.EventBurned || ev.Seq != res.PeerSeq || ev.PeerID != a.id || ev.MsgID != got.MsgID {
		t.Fatalf("reader's event = %+v", ev)
	}
	if ev := nextEvent(t, evA); ev.Type != schema.EventBurned || ev.Seq != res.Seq || ev.PeerID != b.id || ev.MsgID != got.MsgID {
		t.Fatalf("sender's event = %+v", ev)
	}
	_, err = f.svc.Read(testContext(t), b.id, res.PeerSeq)
	wantCode(t, err, schema.CodeUnknownMessage)
	if left := f.fetchAll(t, b.id); len(left) != 1 || left[0].Seq != keep.PeerSeq {
		t.Fatalf("b's mailbox = %+v, want only the other message", left)
	}
}

func TestMailboxReadNotYours(t *testing.T) {
	f := newFixture(t, nil)
	a, b := f.friendsPair(t)
	res := f.send(t, a, b, "for b only")
	// c's mailbox is in b's stream, so b's sequence exists there.
	c := userInPartition(t, f.svc, Partition(b.id, f.svc.Partitions()))
	for _, r := range []struct {
		name   string
		reader string
		seq    uint64
		code   schema.Code
	}{
		{"someone else's message", c.id, res.PeerSeq, schema.CodeUnknownMessage},
		{"the sender reads the recipient's seq", a.id, res.PeerSeq, schema.CodeUnknownMessage},
		{"own sync copy", a.id, res.Seq, schema.CodeUnknownMessage},
		{"seq zero", b.id, 0, schema.CodeInvalidCursor}, // as the WebSocket decoder says (schema.CheckSeq)
		{"seq over 2^53-1", b.id, schema.MaxSeq + 1, schema.CodeInvalidCursor},
		{"seq never used", b.id, 1 << 40, schema.CodeUnknownMessage},
		{"malformed reader", "u*", res.PeerSeq, schema.CodeBadRequest},
	} {
		t.Run(r.name, func(t *testing.T) {
			_, err := f.svc.Read(testContext(t), r.reader, r.seq)
			wantCode(t, err, r.code)
		})
	}
	if len(f.fetchAll(t, a.id)) != 1 || len(f.fetchAll(t, b.id)) != 1 {
		t.Fatal("a refused read changed a mailbox")
	}
}

func TestMailboxRecall(t *testing.T) {
	f := newFixture(t, nil)
	a, b := f.friendsPair(t)
	f.send(t, b, a, "noise in a's mailbox")
	f.send(t, a, b, "noise in b's mailbox")
	res := f.send(t, a, b, "oops")
	evA, evB := f.subscribeEvents(t, a.id), f.subscribeEvents(t, b.id)

	_, err := f.svc.Recall(testContext(t), b.id, res.PeerSeq)
	wantCode(t, err, schema.CodeUnknownMessage) // the recipient cannot recall
	got, err := f.svc.Recall(testContext(t), a.id, res.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != res.Seq || got.PeerSeq != res.PeerSeq || got.Peer != b.id {
		t.Fatalf("Recall = %+v, want the copies of %+v", got, res)
	}
	f.gone(t, a, b, res)
	if ev := nextEvent(t, evB); ev.Type != schema.EventRecalled || ev.Seq != res.PeerSeq || ev.PeerID != a.id {
		t.Fatalf("recipient's event = %+v", ev)
	}
	if ev := nextEvent(t, evA); ev.Type != schema.EventRecalled || ev.Seq != res.Seq || ev.PeerID != b.id {
		t.Fatalf("sender's event = %+v", ev)
	}
	_, err = f.svc.Read(testContext(t), b.id, res.PeerSeq)
	wantCode(t, err, schema.CodeUnknownMessage)
	_, err = f.svc.Recall(testContext(t), a.id, res.Seq)
	wantCode(t, err, schema.CodeUnknownMessage)

	read := f.send(t, a, b, "read before recall")
	if _, err := f.svc.Read(testContext(t), b.id, read.PeerSeq); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Recall(testContext(t), a.id, read.Seq)
	wantCode(t, err, schema.CodeUnknownMessage)
	if len(f.fetchAll(t, a.id)) != 2 || len(f.fetchAll(t, b.id)) != 2 {
		t.Fatal("recall touched other messages")
	}
}

func TestMailboxExpiry(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxAge = 2 * time.Second })
	a, b := f.friendsPair(t)
	res := f.send(t, a, b, "nobody reads this")
	if n := len(f.fetchAll(t, b.id)); n != 1 {
		t.Fatalf("b's mailbox holds %d, want 1", n)
	}
	natstest.WaitFor(t, 30*time.Second, "both copies to expire", func() bool {
		return len(f.fetchAll(t, a.id)) == 0 && len(f.fetchAll(t, b.id)) == 0
	})
	f.gone(t, a, b, res)
	_, err := f.svc.Read(testContext(t), b.id, res.PeerSeq)
	wantCode(t, err, schema.CodeUnknownMessage)
	if u, err := f.svc.Unread(testContext(t), b.id); err != nil || len(u) != 0 {
		t.Fatalf("Unread after expiry = %v, %v", u, err)
	}
}

// TestMailboxReadDelivered burns messages as a gateway does that remembers
// what it delivered: without the lookup, with the same outcome as Read.
func TestMailboxReadDelivered(t *testing.T) {
	f := newFixture(t, nil)
	a, b := f.friendsPair(t)
	res := f.send(t, a, b, "burn me")
	evA := f.subscribeEvents(t, a.id)
	var delivered, syncCopy Message
	for _, m := range f.fetchAll(t, b.id) {
		if m.Seq == res.PeerSeq {
			delivered = m
		}
	}
	for _, m := range f.fetchAll(t, a.id) {
		if m.Seq == res.Seq {
			syncCopy = m
		}
	}
	if delivered.Seq == 0 || syncCopy.Seq == 0 {
		t.Fatalf("Fetch did not return both copies of %+v", res)
	}

	_, err := f.svc.ReadDelivered(testContext(t), a.id, syncCopy)
	wantCode(t, err, schema.CodeUnknownMessage) // one's own sync copy is not read
	got, err := f.svc.ReadDelivered(testContext(t), b.id, delivered)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != res.PeerSeq || got.Peer != a.id || got.PeerSeq != res.Seq {
		t.Fatalf("ReadDelivered = %+v, want the copies of %+v", got, res)
	}
	f.gone(t, a, b, res)
	if ev := nextEvent(t, evA); ev.Type != schema.EventBurned || ev.Seq != res.Seq || ev.PeerID != b.id {
		t.Fatalf("sender's event = %+v", ev)
	}
	_, err = f.svc.ReadDelivered(testContext(t), b.id, delivered)
	wantCode(t, err, schema.CodeUnknownMessage) // burned already: the delete decides
	_, err = f.svc.ReadDelivered(testContext(t), "not-a-user", delivered)
	wantCode(t, err, schema.CodeBadRequest)
}

// pairApart returns two friends whose mailboxes are in different streams.
func (f *fixture) pairApart(t *testing.T) (user, user) {
	a := newUser(t)
	pa := Partition(a.id, f.svc.Partitions())
	b := userInPartition(t, f.svc, (pa+1)%f.svc.Partitions())
	f.friends.befriend(a.id, b.id)
	return a, b
}

// TestMailboxBurnNotBestEffort attacks the burn where the sender's stream
// cannot answer: the read must fail as unavailable with the message still
// in the reader's mailbox, never report a burn that left a copy behind,
// and a retry once the stream is back must finish it.
func TestMailboxBurnNotBestEffort(t *testing.T) {
	f := newFixture(t, nil)
	a, b := f.pairApart(t)
	res := f.send(t, a, b, "burn me despite the failover")
	senderStream := f.svc.stream(a.id)
	if err := f.svc.js.DeleteStream(testContext(t), senderStream); err != nil {
		t.Fatal(err)
	}

	_, err := f.svc.Read(testContext(t), b.id, res.PeerSeq)
	wantCode(t, err, schema.CodeUnavailable)
	if u, err := f.svc.Unread(testContext(t), b.id); err != nil || u[a.id] != 1 {
		t.Fatalf("after a failed burn Unread = %v, %v; want the message still there", u, err)
	}

	if err := f.svc.ensureStreams(testContext(t)); err != nil { // the stream is back, empty
		t.Fatal(err)
	}
	evA := f.subscribeEvents(t, a.id)
	got, err := f.svc.Read(testContext(t), b.id, res.PeerSeq)
	if err != nil {
		t.Fatalf("retried read: %v", err)
	}
	if got.Seq != res.PeerSeq || got.PeerSeq != 0 {
		t.Fatalf("retried Read = %+v, want seq %d and the sync copy reported gone", got, res.PeerSeq)
	}
	f.gone(t, a, b, res)
	if ev := nextEvent(t, evA); ev.Type != schema.EventBurned || ev.Seq != res.Seq {
		t.Fatalf("sender's event = %+v", ev)
	}
}

// TestMailboxRecallFinishes: a recall that stopped after deleting the
// recipient's copy is finished by the retry, which removes the sync copy.
func TestMailboxRecallFinishes(t *testing.T) {
	f := newFixture(t, nil)
	a, b := f.pairApart(t)
	res := f.send(t, a, b, "oops")
	if err := f.svc.deleteMsg(testContext(t), f.svc.stream(b.id), res.PeerSeq); err != nil {
		t.Fatal(err) // the first recall got this far
	}
	evA, evB := f.subscribeEvents(t, a.id), f.subscribeEvents(t, b.id)
	got, err := f.svc.Recall(testContext(t), a.id, res.Seq)
	if err != nil {
		t.Fatalf("retried recall: %v", err)
	}
	if got.Seq != res.Seq || got.PeerSeq != 0 || got.Peer != b.id {
		t.Fatalf("Recall = %+v", got)
	}
	f.gone(t, a, b, res)
	if ev := nextEvent(t, evA); ev.Type != schema.EventRecalled || ev.Seq != res.Seq {
		t.Fatalf("sender's event = %+v", ev)
	}
	if m, err := evB.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("the recipient heard of a copy it no longer had: %s", m.Data)
	}
	_, err = f.svc.Recall(testContext(t), a.id, res.Seq)
	wantCode(t, err, schema.CodeUnknownMessage)
}
