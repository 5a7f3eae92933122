package mailbox

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// rawGet returns the stored message seq of stream, nil if it is not stored.
func (f *fixture) rawGet(t testing.TB, stream string, seq uint64) *nats.Msg {
	t.Helper()
	m, err := f.svc.getSeq(testContext(t), stream, seq)
	if errors.Is(err, errNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("direct get %s %d: %v", stream, seq, err)
	}
	return m
}

func TestMailboxSendStoresBothCopies(t *testing.T) {
	f := newFixture(t, nil)
	a, b := f.friendsPair(t)
	env := seal(t, a, b, "m-both", "hello")
	before := time.Now().UTC()
	res, err := f.svc.Send(testContext(t), a.id, a.device, b.id, env)
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicate || res.Seq == 0 || res.PeerSeq == 0 || res.SentAt.Before(before) {
		t.Fatalf("SendResult = %+v", res)
	}
	sync := f.rawGet(t, f.svc.stream(a.id), res.Seq)
	recv := f.rawGet(t, f.svc.stream(b.id), res.PeerSeq)
	if sync == nil || recv == nil {
		t.Fatal("a copy is missing")
	}
	base := a.id + "." + b.id + ".m-both"
	for _, c := range []struct {
		name string
		m    *nats.Msg
		want map[string]string
	}{
		{"sync copy", sync, map[string]string{
			"Nats-Subject": mustSubject(t, f.svc, a.id), HeaderFrom: a.id, HeaderTo: b.id,
			HeaderMsgID: "m-both", HeaderPeerSeq: "", nats.MsgIdHdr: base + ".s",
		}},
		{"recipient copy", recv, map[string]string{
			"Nats-Subject": mustSubject(t, f.svc, b.id), HeaderFrom: a.id, HeaderTo: b.id,
			HeaderMsgID: "m-both", HeaderPeerSeq: itoa(res.Seq), nats.MsgIdHdr: base,
		}},
	} {
		for k, v := range c.want {
			if got := c.m.Header.Get(k); got != v {
				t.Errorf("%s: header %s = %q, want %q", c.name, k, got, v)
			}
		}
		if got := c.m.Header.Get(HeaderSentAt); got != res.SentAt.Format(time.RFC3339Nano) {
			t.Errorf("%s: %s = %q, want %v", c.name, HeaderSentAt, got, res.SentAt)
		}
		if !bytes.Equal(c.m.Data, env) {
			t.Errorf("%s: stored envelope differs from the canonical one sent", c.name)
		}
	}
	got := f.fetchAll(t, b.id)
	if len(got) != 1 || got[0].Self || got[0].From != a.id || got[0].PeerSeq != res.Seq || got[0].Seq != res.PeerSeq {
		t.Fatalf("recipient's mailbox = %+v", got)
	}
	got = f.fetchAll(t, a.id)
	if len(got) != 1 || !got[0].Self || got[0].To != b.id || got[0].Seq != res.Seq || !got[0].SentAt.Equal(res.SentAt) {
		t.Fatalf("sender's mailbox = %+v", got)
	}
}

func TestMailboxSendDuplicate(t *testing.T) {
	f := newFixture(t, nil)
	a, b := f.friendsPair(t)
	env := seal(t, a, b, "m-dup", "once")
	first, err := f.svc.Send(testContext(t), a.id, a.device, b.id, env)
	if err != nil {
		t.Fatal(err)
	}
	// The same envelope again, then a re-sealed one with the same message id
	// (a client that lost its first envelope): both are the same message.
	for i, e := range [][]byte{env, seal(t, a, b, "m-dup", "twice")} {
		again, err := f.svc.Send(testContext(t), a.id, a.device, b.id, e)
		if err != nil {
			t.Fatal(err)
		}
		if !again.Duplicate || again.Seq != first.Seq || again.PeerSeq != first.PeerSeq {
			t.Fatalf("repeat %d = %+v, want the seqs of %+v and Duplicate", i, again, first)
		}
	}
	for _, u := range []user{a, b} {
		if got := f.fetchAll(t, u.id); len(got) != 1 || !bytes.Equal(got[0].Envelope, env) {
			t.Fatalf("mailbox of %s holds %d messages, want the first one only", u.id, len(got))
		}
	}
	// The same message id to another recipient is another message.
	c := newUser(t)
	f.friends.befriend(a.id, c.id)
	other, err := f.svc.Send(testContext(t), a.id, a.device, c.id, seal(t, a, c, "m-dup", "to c"))
	if err != nil || other.Duplicate {
		t.Fatalf("same id to another recipient = %+v, %v", other, err)
	}
}

func TestMailboxSendDuplicateAfterBurn(t *testing.T) {
	f := newFixture(t, nil)
	a, b := f.friendsPair(t)
	env := seal(t, a, b, "m-late", "read fast")
	first, err := f.svc.Send(testContext(t), a.id, a.device, b.id, env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Read(testContext(t), b.id, first.PeerSeq); err != nil {
		t.Fatal(err)
	}
	// A retry that arrives after the recipient read the message (the first
	// acknowledgement was lost) must not resurrect it.
	again, err := f.svc.Send(testContext(t), a.id, a.device, b.id, env)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.PeerSeq != first.PeerSeq || again.Seq != first.Seq {
		t.Fatalf("retry after burn = %+v, want Duplicate with %+v", again, first)
	}
	// A client that keeps retrying (a long failover) gets Duplicate every
	// time, never mailbox_full, however many sync copy generations the
	// repeats use up.
	for i := range 2 * maxSyncGenerations {
		again, err := f.svc.Send(testContext(t), a.id, a.device, b.id, env)
		if err != nil || !again.Duplicate || again.PeerSeq != first.PeerSeq {
			t.Fatalf("repeat %d = %+v, %v; want Duplicate of %+v", i, again, err, first)
		}
	}
	for _, u := range []user{a, b} {
		if got := f.fetchAll(t, u.id); len(got) != 0 {
			t.Fatalf("mailbox of %s = %+v, want empty", u.id, got)
		}
	}
}

func TestMailboxSendOrder(t *testing.T) {
	f := newFixture(t, nil)
	a, b := f.friendsPair(t)
	var sent []string
	for i := range 20 {
		from, to := a, b
		if i%3 == 2 {
			from, to = b, a
		}
		id := nextMsgID()
		if _, err := f.svc.Send(testContext(t), from.id, from.device, to.id, seal(t, from, to, id, "x")); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, id)
	}
	for _, u := range []user{a, b} {
		got := f.fetchAll(t, u.id)
		if len(got) != len(sent) {
			t.Fatalf("mailbox of %s holds %d, want %d", u.id, len(got), len(sent))
		}
		for i, m := range got {
			if m.MsgID != sent[i] || (i > 0 && m.Seq <= got[i-1].Seq) {
				t.Fatalf("mailbox of %s: message %d = %s seq %d, want %s in increasing seq", u.id, i, m.MsgID, m.Seq, sent[i])
			}
		}
	}
}

func TestMailboxSendBadInput(t *testing.T) {
	f := newFixture(t, nil)
	a, b := f.friendsPair(t)
	stranger := newUser(t)
	good := seal(t, a, b, "m-good", "fine")
	huge := bytes.Repeat([]byte{' '}, envelope.MaxEncoded+1)
	v3 := bytes.Replace(good, []byte(`"v":2`), []byte(`"v":3`), 1)
	v1, err := envelope.Seal(envelope.Header{From: a.id, To: b.id, MsgID: "m-v1", SentAt: time.Now()}, v1Keys(t), v1Keys(t).Public(), []byte("old"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name             string
		from, device, to string
		env              []byte
		code             schema.Code
	}{
		{"malformed sender", "alice", a.device, b.id, good, schema.CodeBadRequest},
		{"malformed recipient", a.id, a.device, "mbx.>", good, schema.CodeBadRequest},
		{"self send", a.id, a.device, a.id, seal(t, a, a, "m-self", "me"), schema.CodeSelfSend},
		{"not json", a.id, a.device, b.id, []byte("hello"), schema.CodeInvalidEnvelope},
		{"empty", a.id, a.device, b.id, nil, schema.CodeInvalidEnvelope},
		{"unknown version", a.id, a.device, b.id, v3, schema.CodeUnsupportedVersion},
		{"v1 after the cut-over", a.id, a.device, b.id, v1, schema.CodeUnsupportedVersion},
		{"oversized", a.id, a.device, b.id, huge, schema.CodeMessageTooLarge},
		{"from is not the caller", b.id, b.device, a.id, seal(t, a, b, "m-spoof", "x"), schema.CodeInvalidEnvelope},
		{"sealed on another device", a.id, stranger.device, b.id, seal(t, a, b, "m-dev", "x"), schema.CodeInvalidEnvelope},
		{"to does not match", a.id, a.device, b.id, seal(t, a, stranger, "m-to", "x"), schema.CodeInvalidEnvelope},
		{"not a friend", a.id, a.device, stranger.id, seal(t, a, stranger, "m-stranger", "x"), schema.CodeNotFriend},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.svc.Send(testContext(t), c.from, c.device, c.to, c.env)
			wantCode(t, err, c.code)
		})
	}
	for _, u := range []user{a, b, stranger} {
		if got := f.fetchAll(t, u.id); len(got) != 0 {
			t.Fatalf("mailbox of %s = %d messages after bad sends, want none", u.id, len(got))
		}
	}
}

func TestMailboxSendRateLimited(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.SendRate, c.SendBurst = 0.001, 2 })
	a, b := f.friendsPair(t)
	f.send(t, a, b, "1")
	f.send(t, a, b, "2")
	_, err := f.svc.Send(testContext(t), a.id, a.device, b.id, seal(t, a, b, nextMsgID(), "3"))
	wantCode(t, err, schema.CodeRateLimited)
	f.send(t, b, a, "b has its own bucket")
	if got := f.fetchAll(t, b.id); len(got) != 3 {
		t.Fatalf("b's mailbox holds %d, want 3", len(got))
	}
}

func TestMailboxFull(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxPerMailbox = 3 })
	a, b := f.friendsPair(t)
	c := newUser(t)
	f.friends.befriend(c.id, b.id)
	var fromC []SendResult
	for range 3 {
		fromC = append(fromC, f.send(t, c, b, "fill"))
	}
	events := f.subscribeEvents(t, a.id)
	env := seal(t, a, b, "m-full", "no room")
	_, err := f.svc.Send(testContext(t), a.id, a.device, b.id, env)
	wantCode(t, err, schema.CodeMailboxFull)
	if got := f.fetchAll(t, a.id); len(got) != 0 {
		t.Fatalf("sender's mailbox = %+v, want the sync copy withdrawn", got)
	}
	ev := nextEvent(t, events)
	if ev.Type != schema.EventWithdrawn || ev.MsgID != "m-full" || ev.PeerID != b.id {
		t.Fatalf("event = %+v, want withdrawn m-full", ev)
	}

	// Room again: the retry with the same message id within the duplicate
	// window goes through once, with a new sync copy the recipient's links.
	if _, err := f.svc.Read(testContext(t), b.id, fromC[0].PeerSeq); err != nil {
		t.Fatal(err)
	}
	res, err := f.svc.Send(testContext(t), a.id, a.device, b.id, env)
	if err != nil || res.Duplicate {
		t.Fatalf("retry = %+v, %v", res, err)
	}
	again, err := f.svc.Send(testContext(t), a.id, a.device, b.id, env)
	if err != nil || !again.Duplicate || again.Seq != res.Seq || again.PeerSeq != res.PeerSeq {
		t.Fatalf("second retry = %+v, %v; want Duplicate of %+v", again, err, res)
	}
	mine := f.fetchAll(t, a.id)
	if len(mine) != 1 || mine[0].Seq != res.Seq {
		t.Fatalf("sender's mailbox = %+v, want one sync copy seq %d", mine, res.Seq)
	}
	theirs := f.fetchAll(t, b.id)
	if len(theirs) != 3 || theirs[2].Seq != res.PeerSeq || theirs[2].PeerSeq != res.Seq {
		t.Fatalf("recipient's mailbox = %+v", theirs)
	}

	// The sender's own mailbox counts too: 3 live sync copies fill it.
	f.send(t, a, c0(t, f, a), "2")
	f.send(t, a, c0(t, f, a), "3")
	_, err = f.svc.Send(testContext(t), a.id, a.device, b.id, seal(t, a, b, nextMsgID(), "4"))
	wantCode(t, err, schema.CodeMailboxFull)
}

// c0 returns a fresh friend of a.
func c0(t *testing.T, f *fixture, a user) user {
	u := newUser(t)
	f.friends.befriend(a.id, u.id)
	return u
}

// v1Keys returns v1 identity keys, to make an envelope of the retired format.
func v1Keys(t *testing.T) envelope.Keys {
	k, err := envelope.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
