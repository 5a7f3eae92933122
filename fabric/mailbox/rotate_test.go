package mailbox

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// streamState returns partition 0's stream state.
func streamState(t *testing.T, f *fixture) jetstream.StreamState {
	t.Helper()
	st, err := f.svc.js.Stream(testContext(t), streamName(0))
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().State
}

// TestMailboxRotate: a pass writes fillers only into a stream that stored
// something since the previous pass and still holds a message, and leaves
// no filler behind, also when the mailbox cap is below the filler count.
func TestMailboxRotate(t *testing.T) {
	for _, limit := range []int64{DefaultMaxPerMailbox, 3} {
		t.Run("cap "+itoa(uint64(limit)), func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.Partitions = 1; c.MaxPerMailbox = limit; c.RotateInterval = -1 })
			rotate := func() {
				t.Helper()
				if err := f.svc.Rotate(testContext(t)); err != nil {
					t.Fatalf("Rotate: %v", err)
				}
			}
			rotate()
			if st := streamState(t, f); st.LastSeq != 0 {
				t.Fatalf("empty stream: last seq %d after a pass, want 0 (no fillers)", st.LastSeq)
			}
			a, b := f.friendsPair(t)
			f.send(t, a, b, "kept")
			rotate()
			st := streamState(t, f)
			if st.LastSeq != 2+fillers || st.Msgs != 2 {
				t.Fatalf("after a pass: last seq %d, %d messages; want %d (2 copies + %d fillers) and 2", st.LastSeq, st.Msgs, 2+fillers, fillers)
			}
			rotate()
			if again := streamState(t, f); again.LastSeq != st.LastSeq {
				t.Fatalf("nothing stored since the last pass, yet last seq %d -> %d", st.LastSeq, again.LastSeq)
			}
			if got := f.fetchAll(t, b.id); len(got) != 1 || got[0].From != a.id {
				t.Fatalf("recipient's mailbox after passes: %+v", got)
			}
		})
	}
}
