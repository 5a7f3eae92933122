package mailbox

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// deliveries subscribes to uid's delivery subject, as a gateway does.
func (f *fixture) deliveries(t *testing.T, uid string) *nats.Subscription {
	t.Helper()
	subj, err := f.svc.DeliverySubject(uid)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := f.nc.SubscribeSync(subj)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	return sub
}

// nextDelivery returns the next delivery on sub.
func nextDelivery(t *testing.T, sub *nats.Subscription) (Message, uint64) {
	t.Helper()
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no delivery on %s: %v", sub.Subject, err)
	}
	msg, prev, err := ParseDelivery(m)
	if err != nil {
		t.Fatal(err)
	}
	return msg, prev
}

func TestMailboxDeliveryGaps(t *testing.T) {
	f := newFixture(t, nil)
	a, b := f.friendsPair(t)
	sub, subA := f.deliveries(t, b.id), f.deliveries(t, a.id)
	var sent []SendResult
	for i := range 3 {
		sent = append(sent, f.send(t, a, b, "live"))
		m, prev := nextDelivery(t, sub)
		wantPrev := uint64(0)
		if i > 0 {
			wantPrev = sent[i-1].PeerSeq
		}
		if m.Seq != sent[i].PeerSeq || prev != wantPrev || m.Self || m.From != a.id || m.PeerSeq != sent[i].Seq {
			t.Fatalf("delivery %d = %+v prev %d; want seq %d prev %d", i, m, prev, sent[i].PeerSeq, wantPrev)
		}
	}
	// The sender's devices get the sync copies on a's delivery subject.
	for i := range 3 {
		m, _ := nextDelivery(t, subA)
		if m.Seq != sent[i].Seq || !m.Self || m.To != b.id {
			t.Fatalf("sync delivery %d = %+v", i, m)
		}
	}

	// A device that missed delivery 4 sees the gap on delivery 5 and heals
	// it by replay from its cursor.
	cursor := sent[2].PeerSeq
	missed := f.send(t, a, b, "lost on the way")
	nextDelivery(t, sub) // dropped by this device
	fifth := f.send(t, a, b, "arrives")
	m, prev := nextDelivery(t, sub)
	if m.Seq != fifth.PeerSeq || prev != missed.PeerSeq || prev <= cursor {
		t.Fatalf("delivery after a loss: seq %d prev %d, cursor %d: gap not visible", m.Seq, prev, cursor)
	}
	healed, _, err := f.svc.Fetch(testContext(t), b.id, cursor, 10)
	if err != nil || len(healed) < 1 || healed[0].Seq != missed.PeerSeq {
		t.Fatalf("replay from cursor = %+v, %v", healed, err)
	}

	// A message burned in between is no gap: prev falls below the cursor.
	cursor = fifth.PeerSeq
	if _, err := f.svc.Read(testContext(t), b.id, fifth.PeerSeq); err != nil {
		t.Fatal(err)
	}
	sixth := f.send(t, a, b, "after a burn")
	m, prev = nextDelivery(t, sub)
	if m.Seq != sixth.PeerSeq || prev != missed.PeerSeq || prev > cursor {
		t.Fatalf("delivery after a burn: seq %d prev %d cursor %d", m.Seq, prev, cursor)
	}
}

func TestMailboxParseDeliveryBad(t *testing.T) {
	u := newUser(t)
	good := func() *nats.Msg {
		m := nats.NewMsg("dlv.mbx.1." + u.id)
		m.Header.Set("Nats-Subject", "mbx.1."+u.id)
		m.Header.Set("Nats-Sequence", "7")
		m.Header.Set("Nats-Last-Sequence", "3")
		m.Header.Set(HeaderFrom, u.id)
		m.Header.Set(HeaderTo, newUser(t).id)
		m.Header.Set(HeaderMsgID, "m1")
		m.Header.Set(HeaderSentAt, time.Now().UTC().Format(time.RFC3339Nano))
		m.Data = []byte("{}")
		return m
	}
	if msg, prev, err := ParseDelivery(good()); err != nil || msg.Seq != 7 || prev != 3 || !msg.Self {
		t.Fatalf("ParseDelivery(good) = %+v, %d, %v", msg, prev, err)
	}
	for _, c := range []struct {
		name string
		edit func(*nats.Msg)
	}{
		{"no headers", func(m *nats.Msg) { m.Header = nil }},
		{"not a mailbox", func(m *nats.Msg) { m.Header.Set("Nats-Subject", "evt."+u.id) }},
		{"bad owner", func(m *nats.Msg) { m.Header.Set("Nats-Subject", "mbx.1.*") }},
		{"bad sequence", func(m *nats.Msg) { m.Header.Set("Nats-Sequence", "x") }},
		{"bad last sequence", func(m *nats.Msg) { m.Header.Set("Nats-Last-Sequence", "-1") }},
		{"no sender", func(m *nats.Msg) { m.Header.Del(HeaderFrom) }},
		{"between others", func(m *nats.Msg) { m.Header.Set(HeaderFrom, newUser(t).id) }},
		{"bad time", func(m *nats.Msg) { m.Header.Set(HeaderSentAt, "yesterday") }},
	} {
		m := good()
		c.edit(m)
		if _, _, err := ParseDelivery(m); !errors.Is(err, ErrBadDelivery) {
			t.Errorf("%s: err = %v, want ErrBadDelivery", c.name, err)
		}
	}
}
