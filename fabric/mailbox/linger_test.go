package mailbox

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/fabric/node"
)

// ciphertext returns the "ct" field of a sealed envelope: bytes that occur
// in the store only where a copy of that message is kept.
func ciphertext(t testing.TB, env []byte) []byte {
	t.Helper()
	var wire struct {
		CT string `json:"ct"`
	}
	if err := json.Unmarshal(env, &wire); err != nil || len(wire.CT) < 24 {
		t.Fatalf("envelope has no ciphertext: %v", err)
	}
	return []byte(wire.CT)
}

// lingerWatch tracks messages whose ciphertext should leave the store's
// files: it polls the store directory and records when each is gone.
type lingerWatch struct {
	dir   string
	items []*lingerItem
}

type lingerItem struct {
	name  string
	ct    []byte
	since time.Time // when it stopped being a live message (burn, or expiry due)
	gone  time.Duration
}

func (w *lingerWatch) add(name string, ct []byte, since time.Time) *lingerItem {
	it := &lingerItem{name: name, ct: ct, since: since, gone: -1}
	w.items = append(w.items, it)
	return it
}

// poll records every item whose ciphertext is no longer in any file and
// reports whether all are gone. It reads the store once per call.
func (w *lingerWatch) poll(t *testing.T) bool {
	t.Helper()
	var pending [][]byte
	for _, it := range w.items {
		if it.gone < 0 {
			pending = append(pending, it.ct)
		}
	}
	found := inFiles(t, w.dir, pending)
	all := true
	for _, it := range w.items {
		if it.gone >= 0 {
			continue
		}
		if !found[string(it.ct)] {
			it.gone = max(time.Since(it.since), 0)
			continue
		}
		all = false
	}
	return all
}

// report sums up, per kind (the name's first word), how many are gone and
// the longest time one stayed, or how many are still there.
func (w *lingerWatch) report() string {
	type sum struct {
		gone, left int
		longest    time.Duration
	}
	var kinds []string
	sums := map[string]*sum{}
	for _, it := range w.items {
		k, _, _ := strings.Cut(it.name, " ")
		if sums[k] == nil {
			sums[k] = &sum{}
			kinds = append(kinds, k)
		}
		s := sums[k]
		if it.gone < 0 {
			s.left++
			s.longest = max(s.longest, time.Since(it.since))
			continue
		}
		s.gone++
		s.longest = max(s.longest, it.gone)
	}
	var b strings.Builder
	for _, k := range kinds {
		s := sums[k]
		fmt.Fprintf(&b, "%s: %d gone, %d still in the files, longest %v; ", k, s.gone, s.left, s.longest.Round(100*time.Millisecond))
	}
	return b.String()
}

// inFiles returns which of needles are in some regular file under dir.
func inFiles(t *testing.T, dir string, needles [][]byte) map[string]bool {
	t.Helper()
	found := map[string]bool{}
	for i := range natstest.InFiles(t, dir, needles) {
		found[string(needles[i])] = true
	}
	return found
}

// lingerScenario drives one partition: a keeper message stays unread (and
// is renewed every keepEvery) so the partition is never empty, as on a
// real server; burned and expired messages are then watched until their
// ciphertext is gone from the store's files or the deadline passes.
type lingerScenario struct {
	f         *fixture
	a, b      user
	keepEvery time.Duration
	lastKeep  time.Time
	lastPoll  time.Time
	watch     *lingerWatch
}

func newLingerScenario(t *testing.T, f *fixture, keepEvery time.Duration) *lingerScenario {
	a, b := f.friendsPair(t)
	s := &lingerScenario{f: f, a: a, b: b, keepEvery: keepEvery, watch: &lingerWatch{dir: f.node.Server().StoreDir()}}
	s.keep(t)
	return s
}

// keep sends an unread keeper message when the last one is keepEvery old.
func (s *lingerScenario) keep(t *testing.T) {
	if time.Since(s.lastKeep) < s.keepEvery {
		return
	}
	s.f.send(t, s.b, s.a, "keeper")
	s.lastKeep = time.Now()
}

// sendText sends text from a to b and returns the result and ciphertext.
func (s *lingerScenario) sendText(t *testing.T, text string) (SendResult, []byte) {
	env := seal(t, s.a, s.b, nextMsgID(), text)
	res, err := s.f.svc.Send(testContext(t), s.a.id, s.a.device, s.b.id, env)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	return res, ciphertext(t, env)
}

// burned sends a message, burns it and watches its ciphertext.
func (s *lingerScenario) burned(t *testing.T, name, text string) {
	res, ct := s.sendText(t, text)
	if _, err := s.f.svc.Read(testContext(t), s.b.id, res.PeerSeq); err != nil {
		t.Fatalf("Read: %v", err)
	}
	s.watch.add(name, ct, time.Now())
	s.pollNow(t)
}

// pollNow polls the store if the last poll is 500ms old, so messages
// burned early in a long scenario are timed while it runs.
func (s *lingerScenario) pollNow(t *testing.T) {
	if time.Since(s.lastPoll) >= 500*time.Millisecond {
		s.watch.poll(t)
		s.lastPoll = time.Now()
	}
}

// expired sends a message nobody reads and watches it from its expiry.
func (s *lingerScenario) expired(t *testing.T, name string, maxAge time.Duration) {
	_, ct := s.sendText(t, "expire me")
	s.watch.add(name, ct, time.Now().Add(maxAge))
}

// run keeps the partition busy with keepers until every watched message is
// gone or d passes, and reports whether all went.
func (s *lingerScenario) run(t *testing.T, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !s.watch.poll(t) {
		if time.Now().After(deadline) {
			return false
		}
		s.keep(t)
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// lingerFixture is a one-partition Service with MaxAge maxAge on a node
// that compacts every second; rotate is its RotateInterval, and the
// rotation runs until the test ends.
func lingerFixture(t *testing.T, maxAge, rotate time.Duration) *fixture {
	n := natstest.RunWith(t, func(c *node.Config) { c.CompactInterval = time.Second })
	f := newFixtureOn(t, n, func(c *Config) { c.Partitions = 1; c.MaxAge = maxAge; c.RotateInterval = rotate })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.svc.RunRotation(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

// TestMailboxCiphertextLeavesFiles measures how long burned and expired
// ciphertext stays readable in the JetStream store's files, on a quiet and
// on a busy partition (one partition, MaxAge 4s, rotation every second, an
// unread message always stored as on a live server), and checks that it
// goes within seconds. The control shows the search finds what lingers:
// without the rotation a burned message is still there.
func TestMailboxCiphertextLeavesFiles(t *testing.T) {
	const (
		maxAge = 4 * time.Second
		rotate = time.Second
		within = 30 * time.Second // rotation + compaction (1s each), slack for a loaded machine
	)
	t.Run("quiet", func(t *testing.T) {
		s := newLingerScenario(t, lingerFixture(t, maxAge, rotate), time.Second)
		s.burned(t, "burned", "burn me")
		s.expired(t, "expired", maxAge)
		ok := s.run(t, maxAge+within)
		t.Logf("quiet partition: %s", s.watch.report())
		if !ok {
			t.Errorf("ciphertext still in the store's files")
		}
	})
	t.Run("busy", func(t *testing.T) {
		s := newLingerScenario(t, lingerFixture(t, maxAge, rotate), time.Second)
		big := strings.Repeat("x", 16<<10)
		for i := range 100 { // ~4.5 MB of copies: the 4 MB block rotates by itself too
			s.keep(t)
			if i%40 == 0 {
				s.expired(t, "expired "+itoa(uint64(i)), maxAge)
			}
			s.burned(t, "burned "+itoa(uint64(i)), big+itoa(uint64(i)))
		}
		ok := s.run(t, maxAge+within)
		t.Logf("busy partition: %s", s.watch.report())
		if !ok {
			t.Errorf("ciphertext still in the store's files")
		}
	})
	t.Run("control without rotation", func(t *testing.T) {
		s := newLingerScenario(t, lingerFixture(t, maxAge, -1), time.Second)
		s.burned(t, "burned", "burn me")
		if s.run(t, 2*maxAge) {
			t.Fatalf("burned ciphertext left the files without rotation: the search does not see the store (%s)", s.watch.report())
		}
		t.Logf("without rotation: %s", s.watch.report())
	})
}
