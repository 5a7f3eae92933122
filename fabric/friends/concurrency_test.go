package friends_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mayfly-im/mayfly/fabric/friends"
	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/store"
)

// race runs every fn at once and waits for all.
func race(fns ...func()) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Go(func() { <-start; fn() })
	}
	close(start)
	wg.Wait()
}

// outcomes counts successes and friend_limit refusals; anything else fails t.
type outcomes struct {
	t           testing.TB
	ok, limited atomic.Int64
}

func (o *outcomes) add(what string, err error) {
	switch {
	case err == nil:
		o.ok.Add(1)
	case schema.HasCode(err, schema.CodeFriendLimit):
		o.limited.Add(1)
	default:
		o.t.Errorf("%s: unexpected error %v", what, err)
	}
}

// The limit holds when 50 friendships involving one user start at once:
// the user accepts requests while others answer the user's own requests
// with theirs (the mutual path), all in parallel.
func TestFriendsLimitHoldsUnderConcurrentAccepts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name              string
		existing          int // friends the target has already
		incoming, mutuals int // requests the target accepts; users the target requested who request back
	}{
		{"19 friends, 50 accepts", 19, 50, 0},
		{"19 friends, 40 accepts and 10 mutual requests", 19, 40, 10},
		{"no friends, 50 accepts", 0, 50, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, friends.Config{})
			ctx := context.Background()
			target := e.user("pop")
			for _, f := range e.users("old", tc.existing) {
				e.befriend(f, target)
			}
			requesters, requested := e.users("req", tc.incoming), e.users("mut", tc.mutuals)
			for _, r := range requesters {
				if _, err := e.svc.Request(ctx, r.ID, target.Handle); err != nil {
					t.Fatal(err)
				}
			}
			for _, r := range requested {
				if _, err := e.svc.Request(ctx, target.ID, r.Handle); err != nil {
					t.Fatal(err)
				}
			}
			o := &outcomes{t: t}
			var fns []func()
			for _, r := range requesters {
				fns = append(fns, func() { _, err := e.svc.Accept(ctx, target.ID, r.Handle); o.add("accept", err) })
			}
			for _, r := range requested {
				fns = append(fns, func() { _, err := e.svc.Request(ctx, r.ID, target.Handle); o.add("mutual request", err) })
			}
			race(fns...)

			wantOK := schema.MaxFriends - tc.existing
			if o.ok.Load() != int64(wantOK) || o.limited.Load() != int64(len(fns)-wantOK) {
				t.Fatalf("succeeded %d, friend_limit %d; want %d and %d", o.ok.Load(), o.limited.Load(), wantOK, len(fns)-wantOK)
			}
			if n := e.friendCount(target); n != schema.MaxFriends {
				t.Fatalf("target has %d friends, want exactly %d", n, schema.MaxFriends)
			}
			if n := e.rows("friendships", "friend_id = $1", target.ID); n != schema.MaxFriends {
				t.Fatalf("mirror rows = %d", n)
			}
			// The refused accepts left their requests pending.
			if s := e.state(target); len(s.Requests.Incoming) != tc.incoming-(wantOK-countFriends(e, requested)) {
				t.Fatalf("pending incoming = %d", len(s.Requests.Incoming))
			}
		})
	}
}

func countFriends(e *env, us []store.User) int {
	n := 0
	for _, u := range us {
		n += e.friendCount(u)
	}
	return n
}

// Two users accepting each other's requests at the same moment end with
// exactly one friendship. Two pending requests between a pair cannot arise
// through the API (the second request accepts the first), so they are
// written directly.
func TestFriendsCrossAcceptRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, friends.Config{})
	ctx := context.Background()
	const pairs = 20
	o := &outcomes{t: t}
	var noRequest atomic.Int64
	var fns []func()
	accept := func(u, v store.User) func() {
		return func() {
			_, err := e.svc.Accept(ctx, u.ID, v.Handle)
			if schema.HasCode(err, schema.CodeNoRequest) {
				noRequest.Add(1)
				return
			}
			o.add("accept", err)
		}
	}
	for range pairs {
		a, b := e.user("ann"), e.user("bob")
		if _, err := e.db.Pool().Exec(ctx, `
			INSERT INTO friend_requests (from_id, to_id, expires_at)
			VALUES ($1, $2, now() + interval '1 day'), ($2, $1, now() + interval '1 day')`, a.ID, b.ID); err != nil {
			t.Fatal(err)
		}
		fns = append(fns, accept(a, b), accept(b, a))
	}
	race(fns...)
	if o.ok.Load() != pairs || noRequest.Load() != pairs {
		t.Fatalf("accepted %d, no_request %d; want %d each", o.ok.Load(), noRequest.Load(), pairs)
	}
	if n := e.rows("friendships", "true"); n != 2*pairs {
		t.Fatalf("friendship rows = %d, want %d (one mirror pair per pair)", n, 2*pairs)
	}
	if n := e.rows("friend_requests", "true"); n != 0 {
		t.Fatalf("%d requests left", n)
	}
}

// Two users requesting each other at the same moment end as friends, once.
func TestFriendsCrossRequestRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, friends.Config{})
	ctx := context.Background()
	const pairs = 20
	var requests, mutual atomic.Int64
	var fns []func()
	req := func(u, v store.User) func() {
		return func() {
			res, err := e.svc.Request(ctx, u.ID, v.Handle)
			switch {
			case err != nil:
				t.Errorf("request: %v", err)
			case res.Friend != nil:
				mutual.Add(1)
			default:
				requests.Add(1)
			}
		}
	}
	for range pairs {
		a, b := e.user("ann"), e.user("bob")
		fns = append(fns, req(a, b), req(b, a))
	}
	race(fns...)
	if requests.Load() != pairs || mutual.Load() != pairs {
		t.Fatalf("requests %d, mutual accepts %d; want %d each", requests.Load(), mutual.Load(), pairs)
	}
	if n := e.rows("friendships", "true"); n != 2*pairs {
		t.Fatalf("friendship rows = %d, want %d", n, 2*pairs)
	}
	if n := e.rows("friend_requests", "true"); n != 0 {
		t.Fatalf("%d requests left", n)
	}
}

// Accepting, or requesting back, someone who has the maximum of friends
// fails with friend_limit and changes nothing.
func TestFriendsOtherSideLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, friends.Config{})
	ctx := context.Background()
	full, u, v := e.user("full"), e.user("you"), e.user("vic")
	// full requested u and v while it still had room.
	for _, x := range []store.User{u, v} {
		if _, err := e.svc.Request(ctx, full.ID, x.Handle); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range e.users("f", schema.MaxFriends) {
		e.befriend(f, full)
	}
	before := [2]state{e.state(full), e.state(u)}
	_, err := e.svc.Accept(ctx, u.ID, full.Handle)
	wantCode(t, "accept someone full", err, schema.CodeFriendLimit)
	if m := schema.AsError(err).Message; m != "the other user has the maximum number of friends" {
		t.Fatalf("message = %q", m)
	}
	_, err = e.svc.Request(ctx, v.ID, full.Handle)
	wantCode(t, "request back someone full", err, schema.CodeFriendLimit)
	sameState(t, "refused accept (full side)", before[0], e.state(full))
	sameState(t, "refused accept (accepting side)", before[1], e.state(u))
	// Full users may still not accept anyone themselves.
	w := e.user("wes")
	if _, err := e.svc.Request(ctx, w.ID, full.Handle); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Accept(ctx, full.ID, w.Handle)
	wantCode(t, "accept while full", err, schema.CodeFriendLimit)
}

// A removal made through one service is seen by CanMessage of a second
// service (another process, on its own NATS connection) within a second,
// while the second one answers from its hot cache the whole time.
func TestFriendsCanMessageAcrossProcesses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, friends.Config{})
	other := e.service(friends.Config{})
	ctx := context.Background()
	var worst, worstAfter time.Duration
	for i := range 10 {
		a, b := e.user("ann"), e.user("bob")
		e.befriend(a, b)
		// A friendship just made is allowed at once on the other process.
		if err := other.CanMessage(ctx, a.ID, b.ID); err != nil {
			t.Fatalf("round %d: other process before removal: %v", i, err)
		}
		// Wait until the other process answers from its cache (the
		// friendship's own notices may still drop its first load).
		warm := time.Now().Add(time.Second)
		for {
			before := other.GraphStats()
			if err := other.CanMessage(ctx, a.ID, b.ID); err != nil {
				t.Fatal(err)
			}
			if other.GraphStats().Hits > before.Hits {
				break
			}
			if time.Now().After(warm) {
				t.Fatalf("round %d: other process never cached the friend list", i)
			}
			time.Sleep(time.Millisecond) // polling interval
		}
		before := other.GraphStats()
		var remove func() error
		if i%2 == 0 {
			remove = func() error { return e.svc.Remove(ctx, b.ID, a.Handle) }
		} else {
			remove = func() error { return e.svc.Block(ctx, b.ID, a.Handle) }
		}
		start := time.Now()
		if err := remove(); err != nil {
			t.Fatal(err)
		}
		returned := time.Now()
		deadline := start.Add(time.Second)
		for {
			err := other.CanMessage(ctx, a.ID, b.ID)
			if schema.HasCode(err, schema.CodeNotFriend) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: other process still allows the message 1s after the removal", i)
			}
			time.Sleep(time.Millisecond) // polling interval
		}
		worst = max(worst, time.Since(start))
		worstAfter = max(worstAfter, time.Since(returned))
		if st := other.GraphStats(); st.Invalidations <= before.Invalidations {
			t.Fatalf("the change arrived without a graph notice: %+v", st)
		}
	}
	t.Logf("refused on the other process at worst %v after the removal began, %v after it returned", worst, worstAfter)
}

// Close stops everything the Service started: the pruning goroutine and the
// subscription's delivery goroutine. Not parallel: it counts every
// goroutine of the test binary.
func TestFriendsCloseStopsGoroutines(t *testing.T) {
	e := newEnv(t, friends.Config{})
	nc := natstest.Connect(t, e.node)
	ignore := goleak.IgnoreCurrent()
	s := e.serviceOn(nc, friends.Config{PruneInterval: time.Millisecond})
	a, b := e.user("ann"), e.user("bob")
	if _, err := s.Request(context.Background(), a.ID, b.Handle); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close()
	goleak.VerifyNone(t, ignore)
}
