package friends

import (
	"container/list"
	"context"
	"slices"
	"sync"
	"time"
)

// Graph is a bounded, process-local cache of users' friend ids: a hot copy
// of the at most schema.MaxFriends ids of each recently active user, loaded
// on first use and evicted least recently used first when it holds more than
// its maximum. Entries are dropped by [Graph.Invalidate] (the service calls
// it for every fab.graph.<user> notice), by [Graph.Flush], and after MaxAge
// as a backstop should a notice be lost.
//
// Concurrent Gets of an absent user share one load. A load that overlaps an
// invalidation of its user is handed to its callers but not kept, so a
// notice is never overtaken by a load that read the graph before it. A
// Graph is safe for concurrent use.
type Graph struct {
	load   func(ctx context.Context, userID string) ([]string, error)
	max    int
	maxAge time.Duration

	mu      sync.Mutex
	entries map[string]*list.Element // guarded by mu; values are *graphEntry
	lru     *list.List               // guarded by mu; front is most recently used
	stats   GraphStats               // guarded by mu
}

type graphEntry struct {
	userID string
	ready  chan struct{} // closed once ids, err and loaded are set
	ids    []string      // sorted; never modified after ready
	err    error
	loaded time.Time
}

// GraphStats counts a Graph's activity since it was made.
type GraphStats struct {
	Entries       int    // users held now
	Hits          uint64 // Gets answered from memory
	Misses        uint64 // Gets that loaded from the database (or joined a load)
	Invalidations uint64 // entries dropped by Invalidate
	Evictions     uint64 // entries dropped for room
}

// NewGraph returns a Graph holding at most size users (at least 1), each for
// at most maxAge (0: no age limit), loading absent users with load, which
// must return the user's friend ids.
func NewGraph(size int, maxAge time.Duration, load func(context.Context, string) ([]string, error)) *Graph {
	return &Graph{
		load: load, max: max(size, 1), maxAge: maxAge,
		entries: map[string]*list.Element{}, lru: list.New(),
	}
}

// Get returns userID's friend ids, sorted, from memory or, on a miss, from
// load (blocking until it answers or ctx ends). The slice is shared: callers
// must not modify it. Load errors are returned and not cached.
func (g *Graph) Get(ctx context.Context, userID string) ([]string, error) {
	e, owner := g.entry(userID)
	if owner {
		g.fill(ctx, e)
	}
	select {
	case <-e.ready:
		return e.ids, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// entry returns the entry for userID, creating it (owner true: the caller
// must fill it) when absent, expired or failed.
func (g *Graph) entry(userID string) (e *graphEntry, owner bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if el, ok := g.entries[userID]; ok {
		e := el.Value.(*graphEntry)
		select {
		case <-e.ready:
			if e.err == nil && (g.maxAge <= 0 || time.Since(e.loaded) < g.maxAge) {
				g.lru.MoveToFront(el)
				g.stats.Hits++
				return e, false
			}
			g.removeLocked(el)
		default: // a load is under way: share it
			g.stats.Misses++
			return e, false
		}
	}
	g.stats.Misses++
	e = &graphEntry{userID: userID, ready: make(chan struct{})}
	g.entries[userID] = g.lru.PushFront(e)
	for g.lru.Len() > g.max {
		g.removeLocked(g.lru.Back())
		g.stats.Evictions++
	}
	return e, true
}

// fill loads e and publishes the result. An entry invalidated or evicted
// meanwhile is not kept; a failed one is dropped.
func (g *Graph) fill(ctx context.Context, e *graphEntry) {
	ids, err := g.load(ctx, e.userID)
	if err == nil {
		ids = slices.Clip(slices.Sorted(slices.Values(ids)))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	e.ids, e.err, e.loaded = ids, err, time.Now()
	close(e.ready)
	if el, ok := g.entries[e.userID]; ok && el.Value == e && err != nil {
		g.removeLocked(el)
	}
}

// removeLocked drops el. g.mu must be held.
func (g *Graph) removeLocked(el *list.Element) {
	e := g.lru.Remove(el).(*graphEntry)
	delete(g.entries, e.userID)
}

// Invalidate drops userID's entry, if any; the next Get reloads it. A load
// in progress for userID still answers its callers but is not kept.
func (g *Graph) Invalidate(userID string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if el, ok := g.entries[userID]; ok {
		g.removeLocked(el)
		g.stats.Invalidations++
	}
}

// Flush drops every entry.
func (g *Graph) Flush() {
	g.mu.Lock()
	defer g.mu.Unlock()
	clear(g.entries)
	g.lru.Init()
}

// Stats returns the current counters.
func (g *Graph) Stats() GraphStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.stats
	s.Entries = len(g.entries)
	return s
}
