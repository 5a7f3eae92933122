package mailbox

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/fabric/natstest"
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

func mustRotate(t *testing.T, s *Service) {
	t.Helper()
	if err := s.Rotate(testContext(t)); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
}

// TestMailboxRotate: a pass writes fillers only into a stream that stored
// something since the previous pass and still holds a message, leaves no
// filler behind (also when the mailbox cap is below the filler count) and
// one marker.
func TestMailboxRotate(t *testing.T) {
	for _, limit := range []int64{DefaultMaxPerMailbox, 3} {
		t.Run("cap "+itoa(uint64(limit)), func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.Partitions = 1; c.MaxPerMailbox = limit; c.RotateInterval = time.Millisecond })
			mustRotate(t, f.svc)
			if st := streamState(t, f); st.LastSeq != 0 {
				t.Fatalf("empty stream: last seq %d after a pass, want 0 (no fillers)", st.LastSeq)
			}
			a, b := f.friendsPair(t)
			f.send(t, a, b, "kept")
			mustRotate(t, f.svc)
			st := streamState(t, f)
			if st.LastSeq != 2+fillers+1 || st.Msgs != 3 {
				t.Fatalf("after a pass: last seq %d, %d messages; want %d (2 copies, %d fillers, a marker) and 3", st.LastSeq, st.Msgs, 2+fillers+1, fillers)
			}
			mustRotate(t, f.svc)
			if again := streamState(t, f); again.LastSeq != st.LastSeq {
				t.Fatalf("nothing stored since the last pass, yet last seq %d -> %d", st.LastSeq, again.LastSeq)
			}
			if got := f.fetchAll(t, b.id); len(got) != 1 || got[0].From != a.id {
				t.Fatalf("recipient's mailbox after passes: %+v", got)
			}
		})
	}
}

// TestMailboxRotateShared: two services on one stream (two mayflyd
// processes) fill a partition once per interval between them: the second
// skips what the first rotated, and rotates again only once the marker is
// 4/5 of the interval old.
func TestMailboxRotateShared(t *testing.T) {
	const interval = 2 * time.Second
	cfg := func(c *Config) { c.Partitions = 1; c.RotateInterval = interval }
	f := newFixture(t, cfg)
	g := newFixtureOn(t, f.node, cfg)
	a, b := f.friendsPair(t)
	f.send(t, a, b, "one")
	mustRotate(t, f.svc)
	rotatedAt := time.Now()
	st := streamState(t, f)
	mustRotate(t, g.svc)
	if again := streamState(t, f); again.LastSeq != st.LastSeq {
		t.Fatalf("second process filled a partition the first had just rotated: last seq %d -> %d", st.LastSeq, again.LastSeq)
	}
	f.send(t, a, b, "two")
	st = streamState(t, f)
	mustRotate(t, g.svc)
	if time.Since(rotatedAt) < interval*4/5 {
		if again := streamState(t, f); again.LastSeq != st.LastSeq {
			t.Fatalf("second process filled again %v after the first: last seq %d -> %d", time.Since(rotatedAt), st.LastSeq, again.LastSeq)
		}
	}
	natstest.WaitFor(t, 10*time.Second, "the second process to rotate once the marker is old", func() bool {
		mustRotate(t, g.svc)
		return streamState(t, f).LastSeq >= st.LastSeq+fillers+1
	})
}
