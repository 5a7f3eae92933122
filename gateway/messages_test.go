package gateway_test

import (
	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema/envelope"
	"testing"

	"github.com/mayfly-im/mayfly/schema"
)

// TestGatewayMessagesLive: two users with two devices each, all synced.
// A message reaches both recipient devices and the sender's other device
// (self copy) live, opens with the sending device's listed key on each of
// them (the sending device itself has no wrap: it keeps what it sent), and
// every connection's msg frames form an unbroken chain.
func TestGatewayMessagesLive(t *testing.T) {
	t.Parallel()
	e := startMsgEnv(t, gatewaytest.Config{})
	alice, bob := e.friends("alice", "bob")
	alicePhone, aliceLaptop := dialWS(t, e, alice), dialWS(t, e, alice.Device("laptop"))
	bobPhone, bobLaptop := dialWS(t, e, bob), dialWS(t, e, bob.Device("laptop"))
	all := []*wsDevice{alicePhone, aliceLaptop, bobPhone, bobLaptop}
	for _, d := range all {
		if s := d.sync(0); s.LastSeq != 0 {
			t.Fatalf("%v: synced = %+v on an empty mailbox", d.c, s)
		}
	}

	sent := alicePhone.send(bob, "hello bob")
	if sent.Duplicate || sent.Seq == 0 || sent.PeerSeq == 0 {
		t.Fatalf("sent = %+v", sent)
	}
	for _, d := range []*wsDevice{bobPhone, bobLaptop} {
		m := d.waitMsg(sent.PeerSeq)
		if m.Self || m.From != alice.User.UserID || m.To != bob.User.UserID || m.SentAt.IsZero() {
			t.Fatalf("%v: msg = %s", d.c, frameJSON(m))
		}
		if got := d.open(m, alice); got != "hello bob" {
			t.Fatalf("%v: opened %q", d.c, got)
		}
	}
	for _, d := range []*wsDevice{alicePhone, aliceLaptop} {
		m := d.waitMsg(sent.Seq)
		if !m.Self || m.From != alice.User.UserID || m.To != bob.User.UserID {
			t.Fatalf("%v: self copy = %s", d.c, frameJSON(m))
		}
		if d == alicePhone {
			if e, _ := envelope.ParseV2(m.Envelope); e == nil || len(e.Wraps()) != 3 {
				t.Fatalf("%v: own copy without the 2 + 1 wraps", d.c)
			} else if _, ok := e.WrapFor(alice.DeviceID()); ok {
				t.Fatalf("%v: the sending device wrapped for itself", d.c)
			}
			continue
		}
		if got := d.open(m, alicePhone.c); got != "hello bob" {
			t.Fatalf("%v: opened own copy %q", d.c, got)
		}
	}

	reply := bobLaptop.send(alice, "hi alice")
	alicePhone.waitMsg(reply.PeerSeq)
	aliceLaptop.waitMsg(reply.PeerSeq)
	bobPhone.waitMsg(reply.Seq)
	bobLaptop.waitMsg(reply.Seq)
	for _, d := range all {
		d.checkChain(0)
		if n := len(d.msgs()); n != 2 {
			t.Fatalf("%v: %d msg frames, want 2: %s", d.c, n, d.dump())
		}
	}
	u := mustAnswer[*schema.UnreadCountsFrame](bobPhone, bobPhone.request(schema.FrameUnread, nil))
	if len(u.Counts) != 1 || u.Counts[alice.User.UserID] != 1 {
		t.Fatalf("bob's unread = %+v", u.Counts)
	}
}

// TestGatewayMessagesReplay: messages sent while the recipient is offline
// are replayed to a device that syncs from 0 and, from a mid cursor, only
// the newer ones; a new device of the sender gets its own sent copies; after
// synced, messages arrive live with no gap and no duplicate.
func TestGatewayMessagesReplay(t *testing.T) {
	t.Parallel()
	e := startMsgEnv(t, gatewaytest.Config{})
	alice, bob := e.friends("alice", "bob")
	alicePhone := dialWS(t, e, alice)
	alicePhone.sync(0)
	var sent []*schema.SentFrame
	for _, text := range []string{"one", "two", "three"} {
		sent = append(sent, alicePhone.send(bob, text))
	}

	bobPhone := dialWS(t, e, bob)
	if s := bobPhone.sync(0); s.LastSeq != sent[2].PeerSeq {
		t.Fatalf("synced = %+v, want last_seq %d", s, sent[2].PeerSeq)
	}
	for i, text := range []string{"one", "two", "three"} {
		if got := bobPhone.open(bobPhone.waitMsg(sent[i].PeerSeq), alice); got != text {
			t.Fatalf("replayed %d = %q, want %q", i, got, text)
		}
	}
	bobPhone.checkChain(0)

	bobLaptop := dialWS(t, e, bob.Device("laptop"))
	bobLaptop.sync(sent[0].PeerSeq)
	bobLaptop.waitMsg(sent[2].PeerSeq)
	if got := bobLaptop.msgs(); len(got) != 2 || got[0].Seq != sent[1].PeerSeq {
		t.Fatalf("mid-cursor replay = %s", bobLaptop.dump())
	}
	bobLaptop.checkChain(sent[0].PeerSeq)

	aliceTablet := dialWS(t, e, alice.Device("tablet"))
	aliceTablet.sync(0)
	for i := range sent {
		if m := aliceTablet.waitMsg(sent[i].Seq); !m.Self {
			t.Fatalf("tablet replay: %s", frameJSON(m))
		}
	}

	four := alicePhone.send(bob, "four")
	for _, d := range []*wsDevice{bobPhone, bobLaptop} {
		d.waitMsg(four.PeerSeq)
	}
	bobPhone.checkChain(0)
	bobLaptop.checkChain(sent[0].PeerSeq)
	if n := len(bobPhone.msgs()); n != 4 {
		t.Fatalf("bob phone has %d msgs, want 4: %s", n, bobPhone.dump())
	}
}

// TestGatewayMessagesNoMsgBeforeSync: a device that has not sent sync gets
// no msg frames, only events; its first sync replays what it missed.
func TestGatewayMessagesNoMsgBeforeSync(t *testing.T) {
	t.Parallel()
	e := startMsgEnv(t, gatewaytest.Config{})
	alice, bob := e.friends("alice", "bob")
	a := dialWS(t, e, alice)
	b := dialWS(t, e, bob)
	b2 := dialWS(t, e, bob.Device("laptop"))
	b2.sync(0)
	s := a.send(bob, "early")
	b2.waitMsg(s.PeerSeq)
	mustAnswer[*schema.PongFrame](b, b.request(schema.FramePing, nil))
	if n := len(b.msgs()); n != 0 {
		t.Fatalf("unsynced device got msg frames: %s", b.dump())
	}
	b.sync(0)
	b.waitMsg(s.PeerSeq)
}

// TestGatewayMessagesBurn: reading on one device burns both copies; every
// device of both users gets the burned event with its own seq; a later
// sync no longer returns the message and reading it again, or reading
// someone else's or your own sent copy, is unknown_message.
func TestGatewayMessagesBurn(t *testing.T) {
	t.Parallel()
	e := startMsgEnv(t, gatewaytest.Config{})
	alice, bob := e.friends("alice", "bob")
	alicePhone, aliceLaptop := dialWS(t, e, alice), dialWS(t, e, alice.Device("laptop"))
	bobPhone, bobLaptop := dialWS(t, e, bob), dialWS(t, e, bob.Device("laptop"))
	for _, d := range []*wsDevice{alicePhone, aliceLaptop, bobPhone, bobLaptop} {
		d.sync(0)
	}
	s := alicePhone.send(bob, "burn me")
	bobLaptop.waitMsg(s.PeerSeq)
	aliceLaptop.waitMsg(s.Seq)

	alicePhone.wantError(alicePhone.request(schema.FrameRead, map[string]any{"seq": s.PeerSeq}), schema.CodeUnknownMessage)
	alicePhone.wantError(alicePhone.request(schema.FrameRead, map[string]any{"seq": s.Seq}), schema.CodeUnknownMessage)
	mustAnswer[*schema.OKFrame](bobPhone, bobPhone.request(schema.FrameRead, map[string]any{"seq": s.PeerSeq}))
	for _, d := range []*wsDevice{bobPhone, bobLaptop} {
		if ev := d.waitEvent(schema.EventBurned, s.PeerSeq); ev.PeerID != alice.User.UserID {
			t.Fatalf("%v: burned event = %+v", d.c, ev)
		}
	}
	for _, d := range []*wsDevice{alicePhone, aliceLaptop} {
		if ev := d.waitEvent(schema.EventBurned, s.Seq); ev.PeerID != bob.User.UserID {
			t.Fatalf("%v: burned event = %+v", d.c, ev)
		}
	}
	bobPhone.wantError(bobPhone.request(schema.FrameRead, map[string]any{"seq": s.PeerSeq}), schema.CodeUnknownMessage)

	for _, c := range []*wsDevice{dialWS(t, e, bob.Device("tablet")), dialWS(t, e, alice.Device("tablet"))} {
		c.sync(0)
		if n := len(c.msgs()); n != 0 {
			t.Fatalf("%v: burned message replayed: %s", c.c, c.dump())
		}
	}
	u := mustAnswer[*schema.UnreadCountsFrame](bobPhone, bobPhone.request(schema.FrameUnread, nil))
	if len(u.Counts) != 0 {
		t.Fatalf("unread after burn = %+v", u.Counts)
	}
}

// TestGatewayMessagesRecall: the sender recalls an unread message by its
// own copy's seq; both copies go, every device hears recalled; recalling
// again or recalling a received message is unknown_message.
func TestGatewayMessagesRecall(t *testing.T) {
	t.Parallel()
	e := startMsgEnv(t, gatewaytest.Config{})
	alice, bob := e.friends("alice", "bob")
	alicePhone, aliceLaptop := dialWS(t, e, alice), dialWS(t, e, alice.Device("laptop"))
	bobPhone := dialWS(t, e, bob)
	for _, d := range []*wsDevice{alicePhone, aliceLaptop, bobPhone} {
		d.sync(0)
	}
	s := alicePhone.send(bob, "oops")
	bobPhone.waitMsg(s.PeerSeq)
	bobPhone.wantError(bobPhone.request(schema.FrameRecall, map[string]any{"seq": s.PeerSeq}), schema.CodeUnknownMessage)
	mustAnswer[*schema.OKFrame](aliceLaptop, aliceLaptop.request(schema.FrameRecall, map[string]any{"seq": s.Seq}))
	bobPhone.waitEvent(schema.EventRecalled, s.PeerSeq)
	alicePhone.waitEvent(schema.EventRecalled, s.Seq)
	aliceLaptop.waitEvent(schema.EventRecalled, s.Seq)
	alicePhone.wantError(alicePhone.request(schema.FrameRecall, map[string]any{"seq": s.Seq}), schema.CodeUnknownMessage)
	bobPhone.wantError(bobPhone.request(schema.FrameRead, map[string]any{"seq": s.PeerSeq}), schema.CodeUnknownMessage)
	fresh := dialWS(t, e, bob.Device("tablet"))
	fresh.sync(0)
	if n := len(fresh.msgs()); n != 0 {
		t.Fatalf("recalled message replayed: %s", fresh.dump())
	}
}

// TestGatewayMessagesIdempotentRetry: the same envelope sent twice is
// stored once; the retry is answered duplicate with the same seqs and the
// recipient sees one message.
func TestGatewayMessagesIdempotentRetry(t *testing.T) {
	t.Parallel()
	e := startMsgEnv(t, gatewaytest.Config{})
	alice, bob := e.friends("alice", "bob")
	a, b := dialWS(t, e, alice), dialWS(t, e, bob)
	b.sync(0)
	env := a.seal(bob, "retry-1", "once")
	first := mustAnswer[*schema.SentFrame](a, a.sendEnv(bob, env))
	again := mustAnswer[*schema.SentFrame](a, a.sendEnv(bob, env))
	if first.Duplicate || !again.Duplicate || again.Seq != first.Seq || again.PeerSeq != first.PeerSeq {
		t.Fatalf("first %+v, retry %+v", first, again)
	}
	next := a.send(bob, "after")
	b.waitMsg(next.PeerSeq)
	if got := b.msgs(); len(got) != 2 || got[0].Seq != first.PeerSeq {
		t.Fatalf("recipient frames: %s", b.dump())
	}
}

// TestGatewayMessagesReconnect: a device whose connection drops misses
// messages; reconnecting with its cursor replays exactly those, then live
// delivery continues without gap or duplicate.
func TestGatewayMessagesReconnect(t *testing.T) {
	t.Parallel()
	e := startMsgEnv(t, gatewaytest.Config{})
	alice, bob := e.friends("alice", "bob")
	a := dialWS(t, e, alice)
	b := dialWS(t, e, bob)
	b.sync(0)
	first := a.send(bob, "before")
	b.waitMsg(first.PeerSeq)
	b.conn.UnderlyingConn().Close() // no close frame: a dropped network
	b.closeCode()

	var missed []*schema.SentFrame
	for _, text := range []string{"while away 1", "while away 2"} {
		missed = append(missed, a.send(bob, text))
	}
	cursor := b.msgs()[len(b.msgs())-1].Seq
	b2 := dialWS(t, e, bob)
	b2.sync(cursor)
	after := a.send(bob, "after")
	b2.waitMsg(after.PeerSeq)
	got := b2.msgs()
	if len(got) != 3 || got[0].Seq != missed[0].PeerSeq || got[1].Seq != missed[1].PeerSeq {
		t.Fatalf("after reconnect: %s", b2.dump())
	}
	b2.checkChain(cursor)
}
