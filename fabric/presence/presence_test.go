package presence_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/fabric"
	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/fabric/presence"
	"github.com/mayfly-im/mayfly/schema"
)

// eventWait bounds the wait for an event caused by a write.
const eventWait = 5 * time.Second

// crashWait bounds the wait for an expiry: the TTL, the server's one-second
// expiry granularity and the worker.
const crashWait = testTTL + 4*time.Second

func TestPresenceOnlineAndCleanClose(t *testing.T) {
	t.Parallel()
	friends := newFriends()
	e := newEnv(t, friends)
	alice, bob := e.user("alice"), e.user("bob")
	friends.befriend(alice, bob)
	bw := e.watch(bob)
	tr := e.tracker()
	dev := schema.NewDeviceID()

	if err := tr.Connect(alice, dev); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	st := bw.expect(alice, true, eventWait)
	if st.LastSeen != nil {
		t.Errorf("online event has last_seen %v", st.LastSeen)
	}
	if got := e.snapshot(bob)[alice]; !got.Online {
		t.Errorf("bob's snapshot after connect: %+v, want alice online", got)
	}

	tr.Disconnect(alice, dev)
	before := time.Now()
	st = bw.expect(alice, false, eventWait)
	if st.LastSeen == nil || st.LastSeen.After(before.Add(time.Second)) || st.LastSeen.Before(before.Add(-5*time.Second)) {
		t.Errorf("offline event last_seen = %v, want about %v", st.LastSeen, before)
	}
	if got := e.snapshot(bob)[alice]; got.Online || got.LastSeen == nil {
		t.Errorf("bob's snapshot after close: %+v, want alice offline with last_seen", got)
	}
	if tr.Len() != 0 {
		t.Errorf("tracker still holds %d devices", tr.Len())
	}
}

func TestPresenceCrashGoesOfflineWithinTTL(t *testing.T) {
	t.Parallel()
	friends := newFriends()
	e := newEnv(t, friends)
	alice, bob := e.user("alice"), e.user("bob")
	friends.befriend(alice, bob)
	bw := e.watch(bob)

	// A device that says hello once and then vanishes: nobody refreshes it.
	ctx := context.Background()
	start := time.Now()
	if _, err := e.svc.Online(ctx, alice, schema.NewDeviceID()); err != nil {
		t.Fatalf("Online: %v", err)
	}
	bw.expect(alice, true, eventWait)
	st := bw.expect(alice, false, crashWait)
	took := time.Since(start)
	if took < testTTL {
		t.Errorf("offline after %v, before the TTL %v", took, testTTL)
	}
	t.Logf("crashed device offline after %v (TTL %v)", took, testTTL)
	// Last seen is when the device was last heard of, not when it expired.
	if st.LastSeen == nil || st.LastSeen.Sub(start).Abs() > 1500*time.Millisecond {
		t.Errorf("last_seen = %v, want about %v", st.LastSeen, start)
	}
}

func TestPresenceMultiDevice(t *testing.T) {
	t.Parallel()
	friends := newFriends()
	e := newEnv(t, friends)
	alice, bob := e.user("alice"), e.user("bob")
	friends.befriend(alice, bob)
	bw := e.watch(bob)
	tr := e.tracker()
	phone, laptop := schema.NewDeviceID(), schema.NewDeviceID()

	tr.Connect(alice, phone)
	bw.expect(alice, true, eventWait)
	tr.Connect(alice, laptop)
	tr.Connect(alice, laptop) // a second connection of the same device
	tr.Disconnect(alice, phone)
	tr.Disconnect(alice, laptop)
	// The laptop's other connection keeps alice online; the worker applies
	// alice's changes in order, so an offline event would come before the
	// sentinel.
	natstest.WaitFor(t, eventWait, "phone offline and laptop online", func() bool { return tr.Len() == 1 })
	if got := e.snapshot(bob)[alice]; !got.Online {
		t.Fatalf("snapshot with the laptop still connected: %+v, want online", got)
	}
	tr.Disconnect(alice, laptop)
	// Exactly one more event: offline, when the last device goes.
	bw.expect(alice, false, eventWait)
	bw.none()
}

func TestPresenceMultiDeviceCrash(t *testing.T) {
	t.Parallel()
	friends := newFriends()
	e := newEnv(t, friends)
	alice, bob := e.user("alice"), e.user("bob")
	friends.befriend(alice, bob)
	bw := e.watch(bob)
	tr := e.tracker()
	phone, laptop := schema.NewDeviceID(), schema.NewDeviceID()

	// The laptop crashes (written once, never refreshed) while the phone,
	// kept by the tracker, stays: alice never goes offline.
	if _, err := e.svc.Online(context.Background(), alice, laptop); err != nil {
		t.Fatal(err)
	}
	bw.expect(alice, true, eventWait)
	tr.Connect(alice, phone)
	natstest.WaitFor(t, crashWait, "the laptop's key to expire", func() bool {
		_, live := e.rev(alice, laptop)
		return !live
	})
	if _, live := e.rev(alice, phone); !live {
		t.Fatal("the refreshed phone expired too")
	}
	tr.Disconnect(alice, phone)
	bw.expect(alice, false, eventWait)
	bw.none()
}

func TestPresenceFriendsOnly(t *testing.T) {
	t.Parallel()
	friends := newFriends()
	e := newEnv(t, friends)
	alice, bob, carol, mallory := e.user("alice"), e.user("bob"), e.user("carol"), e.user("mallory")
	friends.befriend(alice, bob)
	// carol is a stranger; mallory was a friend until alice blocked her,
	// which ended the friendship: neither is in alice's friend list.
	bw, cw, mw := e.watch(bob), e.watch(carol), e.watch(mallory)
	tr := e.tracker()
	dev := schema.NewDeviceID()

	tr.Connect(alice, dev)
	bw.expect(alice, true, eventWait) // positive control
	cw.none()
	mw.none()
	if snap := e.snapshot(carol); len(snap) != 0 {
		t.Errorf("carol's snapshot = %v, want nothing", snap)
	}
	tr.Disconnect(alice, dev)
	bw.expect(alice, false, eventWait)
	cw.none()
	mw.none()
}

func TestPresenceSnapshot(t *testing.T) {
	t.Parallel()
	friends := newFriends()
	e := newEnv(t, friends)
	me, on, never, gone, hidden := e.user("me"), e.user("on"), e.user("never"), e.user("gone"), e.user("hidden")
	for _, f := range []string{on, never, gone, hidden} {
		friends.befriend(me, f)
	}
	ctx := context.Background()
	if err := e.svc.SetShareLastSeen(ctx, hidden, false); err != nil {
		t.Fatal(err)
	}
	mw := e.watch(me)
	tr := e.tracker()
	devs := map[string]string{}
	for _, u := range []string{on, gone, hidden} {
		devs[u] = schema.NewDeviceID()
		tr.Connect(u, devs[u])
		mw.next(eventWait)
	}
	tr.Disconnect(gone, "") // malformed: ignored
	for _, u := range []string{gone, hidden} {
		tr.Disconnect(u, devs[u])
	}
	for range 2 {
		if st := mw.next(eventWait); st.Online {
			t.Fatalf("unexpected event %+v", st)
		}
	}

	snap, err := e.svc.Snapshot(ctx, me)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap) != 4 {
		t.Fatalf("snapshot has %d friends, want 4: %+v", len(snap), snap)
	}
	byID := map[string]schema.PresenceState{}
	for _, s := range snap {
		byID[s.UserID] = s
	}
	check := func(name, id string, online, lastSeen bool) {
		t.Helper()
		s := byID[id]
		if s.Online != online || (s.LastSeen != nil) != lastSeen {
			t.Errorf("%s: %+v, want online=%v last_seen set=%v", name, s, online, lastSeen)
		}
	}
	check("online friend", on, true, false)
	check("never seen friend", never, false, false)
	check("friend gone offline", gone, false, true)
	check("friend hiding last seen", hidden, false, false)

	if _, err := e.svc.Snapshot(ctx, "not-an-id"); !errors.Is(err, fabric.ErrBadID) {
		t.Errorf("Snapshot(bad id) = %v, want ErrBadID", err)
	}
}

func TestPresenceTrackerRecovers(t *testing.T) {
	t.Parallel()
	friends := newFriends()
	e := newEnv(t, friends)
	alice, bob := e.user("alice"), e.user("bob")
	friends.befriend(alice, bob)
	bw := e.watch(bob)
	tr := e.tracker()
	dev := schema.NewDeviceID()
	ctx := context.Background()

	tr.Connect(alice, dev)
	bw.expect(alice, true, eventWait)
	// The key disappears under the tracker (as when NATS was unreachable
	// for longer than the TTL): friends see alice offline, and the next
	// refresh finds out and brings her back.
	rev, _ := e.rev(alice, dev)
	if err := e.svc.Offline(ctx, alice, dev, rev); err != nil {
		t.Fatal(err)
	}
	bw.expect(alice, false, eventWait)
	bw.expect(alice, true, testTTL+eventWait)
	tr.Disconnect(alice, dev)
	bw.expect(alice, false, eventWait)
}

func TestPresenceTrackersShareDevice(t *testing.T) {
	t.Parallel()
	friends := newFriends()
	e := newEnv(t, friends)
	alice, bob := e.user("alice"), e.user("bob")
	friends.befriend(alice, bob)
	bw := e.watch(bob)
	dev := schema.NewDeviceID()

	// The device reconnects through gateway b while gateway a still holds
	// its old, half-dead connection. Closing the old one must not take the
	// device offline.
	a, b := e.svc.NewTracker(), e.tracker()
	a.Connect(alice, dev)
	bw.expect(alice, true, eventWait)
	b.Connect(alice, dev)
	// Let a's refresh meet b's write: four distinct revisions of the key
	// (polled much faster than refreshes come) span b's online write and
	// more than one refresh period after it.
	revs := map[uint64]bool{}
	natstest.WaitFor(t, 4*testTTL, "refreshes after b's write", func() bool {
		if rev, live := e.rev(alice, dev); live {
			revs[rev] = true
		}
		return len(revs) >= 4
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.snapshot(bob)[alice]; !got.Online {
		t.Fatalf("after the old gateway let go: %+v, want online", got)
	}
	b.Disconnect(alice, dev)
	bw.expect(alice, false, eventWait)
	bw.none()
}

func TestPresenceRejectsBadIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newFriends())
	tr := e.tracker()
	ctx := context.Background()
	alice := schema.NewUserID()
	for _, c := range []struct{ user, dev string }{
		{"u.x", schema.NewDeviceID()},
		{alice, "d*"},
		{alice, alice},
		{schema.NewDeviceID(), schema.NewDeviceID()},
	} {
		if err := tr.Connect(c.user, c.dev); !errors.Is(err, fabric.ErrBadID) {
			t.Errorf("Connect(%q, %q) = %v, want ErrBadID", c.user, c.dev, err)
		}
		if _, err := e.svc.Online(ctx, c.user, c.dev); !errors.Is(err, fabric.ErrBadID) {
			t.Errorf("Online(%q, %q) = %v, want ErrBadID", c.user, c.dev, err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := tr.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if err := tr.Connect(alice, schema.NewDeviceID()); !errors.Is(err, presence.ErrClosed) {
		t.Errorf("Connect after Close = %v, want ErrClosed", err)
	}
}

func TestPresenceConcurrentWorkers(t *testing.T) {
	t.Parallel()
	friends := newFriends()
	e := newEnv(t, friends)
	alice, bob := e.user("alice"), e.user("bob")
	friends.befriend(alice, bob)
	bw := e.watch(bob)
	// A second process: its own connection, service and worker in the
	// same queue group, and its own gateway tracker.
	nc2 := natstest.Connect(t, e.node)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc2, err := presence.New(ctx, presence.Config{NATS: nc2, Friends: friends, Settings: e.db, TTL: testTTL, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc2.Start(); err != nil {
		t.Fatal(err)
	}
	defer svc2.Stop()
	trackers := []*presence.Tracker{e.svc.NewTracker(), svc2.NewTracker()}

	// Five devices of alice come and go through both gateways at once.
	var wg sync.WaitGroup
	devs := make([]string, 5)
	for i := range devs {
		devs[i] = schema.NewDeviceID()
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr, dev := trackers[i%2], devs[i]
			for range 5 {
				tr.Connect(alice, dev)
				tr.Connect(alice, dev)
				e.awaitLive(alice, dev, true)
				tr.Disconnect(alice, dev)
				tr.Disconnect(alice, dev)
				e.awaitLive(alice, dev, false)
			}
		}()
	}
	wg.Wait()
	for _, tr := range trackers {
		if err := tr.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Wait for the workers to apply every change: the user record is
	// written after the last device key write.
	natstest.WaitFor(t, eventWait, "the workers to catch up", func() bool { return e.settled(alice, devs) })
	final := e.snapshot(bob)[alice]
	if final.Online || final.LastSeen == nil {
		t.Fatalf("alice after every device left: %+v, want offline with last_seen", final)
	}
	// Every user-level transition is announced once, so the events pair up
	// (in whatever order two processes' events arrive), the last transition
	// being the offline one the snapshot shows.
	on, off, sawFinal := 0, 0, false
	for !sawFinal || on != off {
		st := bw.next(eventWait)
		if st.Online {
			on++
			continue
		}
		off++
		sawFinal = sawFinal || st.LastSeen != nil && st.LastSeen.Equal(*final.LastSeen)
	}
	t.Logf("%d online and %d offline events", on, off)
}

func TestPresenceGraphChangeSendsSnapshot(t *testing.T) {
	t.Parallel()
	friends := newFriends()
	e := newEnv(t, friends)
	alice, bob := e.user("alice"), e.user("bob")
	bw := e.watch(bob)
	tr := e.tracker()
	tr.Connect(alice, schema.NewDeviceID())
	natstest.WaitFor(t, eventWait, "alice's record", func() bool { return e.settled(alice, nil) })
	bw.none() // not friends yet: nothing

	// They become friends; the friends service announces the graph change
	// of both, and bob's devices get a fresh snapshot with alice online.
	friends.befriend(alice, bob)
	if err := fabric.PublishGraphChange(e.nc, bob); err != nil {
		t.Fatal(err)
	}
	snap := bw.nextSnapshot(eventWait)
	if len(snap) != 1 || snap[0].UserID != alice || !snap[0].Online {
		t.Fatalf("snapshot after befriending = %+v, want alice online", snap)
	}
}

// TestPresenceTrackerRefreshesEveryDevice connects more devices than there
// are refresh slots and checks that every key is rewritten within one TTL
// and still live after two: the spread-out refresh reaches every slot.
func TestPresenceTrackerRefreshesEveryDevice(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newFriends())
	tr := e.tracker()
	user := e.user("many")
	devs := make([]string, 45)
	for i := range devs {
		devs[i] = schema.NewDeviceID()
		if err := tr.Connect(user, devs[i]); err != nil {
			t.Fatalf("Connect: %v", err)
		}
	}
	first := make([]uint64, len(devs))
	for i, d := range devs {
		e.awaitLive(user, d, true)
		first[i], _ = e.rev(user, d)
	}
	natstest.WaitFor(t, 2*testTTL, "every device key refreshed", func() bool {
		for i, d := range devs {
			if rev, _ := e.rev(user, d); rev == first[i] {
				return false
			}
		}
		return true
	})
	time.Sleep(testTTL) // past the first writes' TTL: only refreshes keep them
	for _, d := range devs {
		if _, live := e.rev(user, d); !live {
			t.Errorf("device %s went offline while connected", d)
		}
	}
}
