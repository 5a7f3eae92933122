package mailbox

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/fabric/natstest"
)

// TestMailboxReaders checks that Direct Gets go over Config.Readers by
// partition (the connection that sends them is held up while the stream
// fsyncs, see Config.Readers) and that replay and burns work through them.
func TestMailboxReaders(t *testing.T) {
	n := natstest.Run(t)
	readers := []*nats.Conn{natstest.Connect(t, n), natstest.Connect(t, n)}
	f := newFixtureOn(t, n, func(c *Config) { c.Readers = readers })
	// Partitions is 4: users in partitions 1 and 3 read over readers[1].
	a := userInPartition(t, f.svc, 1)
	b := userInPartition(t, f.svc, 3)
	f.friends.befriend(a.id, b.id)

	before := [2]uint64{readers[0].Stats().OutMsgs, readers[1].Stats().OutMsgs}
	sent := f.send(t, a, b, "hello")
	msgs := f.fetchAll(t, b.id)
	if len(msgs) != 1 || msgs[0].Seq != sent.PeerSeq {
		t.Fatalf("Fetch = %+v, want the message at seq %d", msgs, sent.PeerSeq)
	}
	if _, err := f.svc.Read(testContext(t), b.id, sent.PeerSeq); err != nil {
		t.Fatalf("Read: %v", err)
	}
	if got := readers[1].Stats().OutMsgs - before[1]; got < 2 {
		t.Errorf("readers[1] sent %d requests for a fetch and a read, want >= 2", got)
	}
	if got := readers[0].Stats().OutMsgs - before[0]; got != 0 {
		t.Errorf("readers[0] sent %d requests, want 0: no user reads in partitions 0 or 2", got)
	}
	if msgs := f.fetchAll(t, b.id); len(msgs) != 0 {
		t.Errorf("after Read, b's mailbox holds %d messages", len(msgs))
	}
}
