package mailbox

import (
	"testing"

	"github.com/mayfly-im/mayfly/schema"
)

// TestMailboxErase: erasing a user empties its own mailbox and removes from
// its friends' mailboxes what it sent and the sync copies of what they sent
// it, telling them (recalled); messages between other users stay. A second
// Erase finds nothing.
func TestMailboxErase(t *testing.T) {
	f := newFixture(t, nil)
	a, b := f.friendsPair(t)
	c := newUser(t)
	f.friends.befriend(c.id, b.id)
	toB := f.send(t, a, b, "a to b 1")
	f.send(t, a, b, "a to b 2")
	f.send(t, b, a, "b to a")
	fromC := f.send(t, c, b, "c to b")
	bEvents := f.subscribeEvents(t, b.id)

	n, err := f.svc.Erase(testContext(t), a.id, []string{b.id})
	if err != nil {
		t.Fatalf("Erase: %v", err)
	}
	// a's mailbox: 2 sync copies and 1 received; b's: 2 received, 1 sync copy.
	if n != 6 {
		t.Errorf("Erase removed %d messages, want 6", n)
	}
	if got := f.fetchAll(t, a.id); len(got) != 0 {
		t.Errorf("a's mailbox still holds %d messages", len(got))
	}
	left := f.fetchAll(t, b.id)
	if len(left) != 1 || left[0].Seq != fromC.PeerSeq || left[0].From != c.id {
		t.Errorf("b's mailbox holds %+v, want only c's message", left)
	}
	if len(f.fetchAll(t, c.id)) != 1 {
		t.Error("c's sync copy was touched")
	}
	ev := nextEvent(t, bEvents)
	if ev.Type != schema.EventRecalled || ev.PeerID != a.id || ev.Seq != toB.PeerSeq {
		t.Errorf("first event to b = %+v, want recalled seq %d from a", ev, toB.PeerSeq)
	}
	if n, err := f.svc.Erase(testContext(t), a.id, []string{b.id}); err != nil || n != 0 {
		t.Errorf("second Erase = %d, %v; want 0, nil", n, err)
	}
	if _, err := f.svc.Erase(testContext(t), "not.an.id", nil); !schema.HasCode(err, schema.CodeBadRequest) {
		t.Errorf("Erase of a malformed id = %v, want bad_request", err)
	}
}
