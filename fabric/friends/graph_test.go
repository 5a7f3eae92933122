package friends

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeGraph is an in-memory source of friend ids for Graph tests: the
// database is the edge, and Graph's own logic is what is under test.
type fakeGraph struct {
	mu    sync.Mutex
	ids   map[string][]string
	loads atomic.Int64
	gate  chan struct{} // when set, loads wait for it
	fail  error
}

func (f *fakeGraph) load(ctx context.Context, userID string) ([]string, error) {
	f.loads.Add(1)
	f.mu.Lock()
	ids, gate, fail := slices.Clone(f.ids[userID]), f.gate, f.fail
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return ids, fail
}

func (f *fakeGraph) set(userID string, ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids[userID] = ids
}

func newFake() *fakeGraph { return &fakeGraph{ids: map[string][]string{}} }

func get(t *testing.T, g *Graph, userID string) []string {
	t.Helper()
	ids, err := g.Get(context.Background(), userID)
	if err != nil {
		t.Fatalf("Get(%s): %v", userID, err)
	}
	return ids
}

func TestFriendsGraphCachesSortedAndInvalidates(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.set("a", "c", "b")
	g := NewGraph(10, 0, f.load)
	if got := get(t, g, "a"); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("ids = %v, want sorted [b c]", got)
	}
	f.set("a", "d")
	if got := get(t, g, "a"); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("cached ids = %v, want [b c]", got)
	}
	g.Invalidate("a")
	if got := get(t, g, "a"); !slices.Equal(got, []string{"d"}) {
		t.Fatalf("ids after invalidate = %v, want [d]", got)
	}
	st := g.Stats()
	if st.Hits != 1 || st.Misses != 2 || st.Invalidations != 1 || st.Entries != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestFriendsGraphEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	f := newFake()
	g := NewGraph(2, 0, f.load)
	get(t, g, "a")
	get(t, g, "b")
	get(t, g, "a") // b is now the least recently used
	get(t, g, "c")
	if st := g.Stats(); st.Entries != 2 || st.Evictions != 1 {
		t.Fatalf("stats = %+v", st)
	}
	before := f.loads.Load()
	get(t, g, "a")
	if f.loads.Load() != before {
		t.Fatal("a was evicted; want b evicted")
	}
	get(t, g, "b")
	if f.loads.Load() != before+1 {
		t.Fatal("b was still cached")
	}
}

func TestFriendsGraphMaxAge(t *testing.T) {
	t.Parallel()
	f := newFake()
	g := NewGraph(10, 50*time.Millisecond, f.load)
	get(t, g, "a")
	deadline := time.Now().Add(5 * time.Second)
	for f.loads.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("entry never expired")
		}
		get(t, g, "a")
		time.Sleep(5 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

func TestFriendsGraphSharesOneLoad(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.gate = make(chan struct{})
	f.set("a", "b")
	g := NewGraph(10, 0, f.load)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if got := get(t, g, "a"); !slices.Equal(got, []string{"b"}) {
				t.Errorf("ids = %v", got)
			}
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for g.Stats().Misses < 8 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(f.gate)
	wg.Wait()
	if n := f.loads.Load(); n != 1 {
		t.Fatalf("loads = %d, want 1", n)
	}
}

// A load that read the graph before a change must not be kept once the
// change's invalidation arrived while it ran.
func TestFriendsGraphInvalidateDuringLoadIsNotOvertaken(t *testing.T) {
	t.Parallel()
	f := newFake()
	gate := make(chan struct{})
	f.gate = gate
	f.set("a", "b")
	g := NewGraph(10, 0, f.load)
	done := make(chan []string)
	go func() { ids, _ := g.Get(context.Background(), "a"); done <- ids }()
	deadline := time.Now().Add(5 * time.Second)
	for f.loads.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	// The load above has read the old state; now the change commits and
	// its invalidation arrives before the load finishes.
	f.set("a")
	f.mu.Lock()
	f.gate = nil
	f.mu.Unlock()
	g.Invalidate("a")
	close(gate)
	if got := <-done; !slices.Equal(got, []string{"b"}) {
		t.Fatalf("first caller got %v, want its own load [b]", got)
	}
	if got := get(t, g, "a"); len(got) != 0 {
		t.Fatalf("stale load was kept: %v", got)
	}
}

func TestFriendsGraphErrorsAreNotCached(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.fail = errors.New("database down")
	g := NewGraph(10, 0, f.load)
	if _, err := g.Get(context.Background(), "a"); err == nil {
		t.Fatal("want error")
	}
	f.mu.Lock()
	f.fail = nil
	f.mu.Unlock()
	if _, err := g.Get(context.Background(), "a"); err != nil {
		t.Fatalf("error was cached: %v", err)
	}
	if f.loads.Load() != 2 {
		t.Fatalf("loads = %d, want 2", f.loads.Load())
	}
}

func TestFriendsGraphFlush(t *testing.T) {
	t.Parallel()
	f := newFake()
	g := NewGraph(10, 0, f.load)
	get(t, g, "a")
	get(t, g, "b")
	g.Flush()
	if st := g.Stats(); st.Entries != 0 {
		t.Fatalf("entries after flush = %d", st.Entries)
	}
}
