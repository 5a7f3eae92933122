package presence_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/fabric/node"
	"github.com/mayfly-im/mayfly/fabric/presence"
	"github.com/mayfly-im/mayfly/fabric/subject"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/store"
	"github.com/mayfly-im/mayfly/store/storetest"
)

// TestMain gives the tests a real Postgres for the "last seen" settings.
func TestMain(m *testing.M) { os.Exit(storetest.MainNoLeaks(m)) }

// testTTL is the device TTL of the tests: a crashed device is offline
// within about two seconds.
const testTTL = 2 * time.Second

// testFriends is a friend graph set by the test, standing in for
// fabric/friends (which has its own tests).
type testFriends struct {
	mu sync.Mutex
	m  map[string][]string // user id -> friend ids; guarded by mu
}

func newFriends() *testFriends { return &testFriends{m: map[string][]string{}} }

func (f *testFriends) FriendIDs(_ context.Context, userID string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.m[userID]), nil
}

// befriend makes a and b friends.
func (f *testFriends) befriend(a, b string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[a] = append(f.m[a], b)
	f.m[b] = append(f.m[b], a)
}

// env is one test's NATS server, database and presence service (worker
// running).
type env struct {
	t    *testing.T
	node *node.Node
	nc   *nats.Conn
	db   *store.DB
	svc  *presence.Service
}

func newEnv(t *testing.T, friends *testFriends) *env {
	t.Helper()
	return newEnvOn(t, friends, natstest.Run(t), 1)
}

// newEnvOn is newEnv on node n with the bucket's replica count.
func newEnvOn(t *testing.T, friends *testFriends, n *node.Node, replicas int) *env {
	t.Helper()
	nc := natstest.Connect(t, n)
	db := storetest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := presence.New(ctx, presence.Config{NATS: nc, Friends: friends, Settings: db, TTL: testTTL, Replicas: replicas})
	if err != nil {
		t.Fatalf("presence.New: %v", err)
	}
	if err := svc.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(svc.Stop)
	return &env{t: t, node: n, nc: nc, db: db, svc: svc}
}

// user creates a user in the database (for its settings) and returns its id.
func (e *env) user(handle string) string {
	e.t.Helper()
	key := func() []byte { b := make([]byte, 32); rand.Read(b); return b }
	u, err := e.db.CreateUser(context.Background(), store.User{ID: schema.NewUserID(), Handle: handle, IK: key()})
	if err != nil {
		e.t.Fatalf("CreateUser: %v", err)
	}
	return u.ID
}

// tracker returns a Tracker closed at cleanup.
func (e *env) tracker() *presence.Tracker {
	tr := e.svc.NewTracker()
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		tr.Close(ctx)
	})
	return tr
}

// watcher collects the presence events of one user.
type watcher struct {
	t   *testing.T
	nc  *nats.Conn
	sub *nats.Subscription
}

func (e *env) watch(userID string) *watcher {
	e.t.Helper()
	subj, err := subject.Events(userID)
	if err != nil {
		e.t.Fatal(err)
	}
	sub, err := e.nc.SubscribeSync(subj)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { sub.Unsubscribe() })
	return &watcher{t: e.t, nc: e.nc, sub: sub}
}

// next returns the next presence event, failing the test after within.
func (w *watcher) next(within time.Duration) schema.PresenceState {
	w.t.Helper()
	deadline := time.Now().Add(within)
	for {
		m, err := w.sub.NextMsg(time.Until(deadline))
		if err != nil {
			w.t.Fatalf("no presence event on %s within %v: %v", w.sub.Subject, within, err)
		}
		var ev schema.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			w.t.Fatalf("bad event %q: %v", m.Data, err)
		}
		if ev.Type != schema.EventPresence {
			continue // a sentinel or another event type
		}
		if ev.Presence == nil {
			w.t.Fatalf("presence event without state: %s", m.Data)
		}
		return *ev.Presence
	}
}

// expect waits for the next presence event and checks who and what.
func (w *watcher) expect(userID string, online bool, within time.Duration) schema.PresenceState {
	w.t.Helper()
	st := w.next(within)
	if st.UserID != userID || st.Online != online {
		w.t.Fatalf("presence event = %+v, want user %s online=%v", st, userID, online)
	}
	return st
}

// none checks that nothing reached the watcher: it publishes a sentinel on
// the watched subject and requires it to be the first message to arrive.
// Events the service published before the sentinel would arrive first.
func (w *watcher) none() {
	w.t.Helper()
	if err := w.nc.Publish(w.sub.Subject, []byte(`{"type":"sentinel"}`)); err != nil {
		w.t.Fatal(err)
	}
	m, err := w.sub.NextMsg(5 * time.Second)
	if err != nil {
		w.t.Fatalf("sentinel on %s did not arrive: %v", w.sub.Subject, err)
	}
	if string(m.Data) != `{"type":"sentinel"}` {
		w.t.Fatalf("unexpected message on %s: %s", w.sub.Subject, m.Data)
	}
}

// snapshot returns userID's snapshot as a map by friend id.
func (e *env) snapshot(userID string) map[string]schema.PresenceState {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	states, err := e.svc.Snapshot(ctx, userID)
	if err != nil {
		e.t.Fatalf("Snapshot: %v", err)
	}
	out := map[string]schema.PresenceState{}
	for _, s := range states {
		out[s.UserID] = s
	}
	return out
}

// rev returns the revision of a device key and whether it is live.
func (e *env) rev(userID, deviceID string) (uint64, bool) {
	e.t.Helper()
	rev, live, err := e.get(userID, deviceID)
	if err != nil {
		e.t.Fatal(err)
	}
	return rev, live
}

func (e *env) get(userID, deviceID string) (uint64, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	js, err := jetstream.New(e.nc)
	if err != nil {
		return 0, false, err
	}
	kv, err := js.KeyValue(ctx, "presence")
	if err != nil {
		return 0, false, err
	}
	ent, err := kv.Get(ctx, userID+"."+deviceID)
	switch {
	case err == nil:
		return ent.Revision(), true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return 0, false, nil
	default:
		return 0, false, fmt.Errorf("get key: %w", err)
	}
}

// awaitLive polls until a device key is live (or not). Safe to call from
// any goroutine: it reports failures with Errorf.
func (e *env) awaitLive(userID, deviceID string, live bool) {
	deadline := time.Now().Add(eventWait)
	for time.Now().Before(deadline) {
		_, l, err := e.get(userID, deviceID)
		if err != nil {
			e.t.Errorf("awaitLive: %v", err)
			return
		}
		if l == live {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Errorf("device key %s.%s not live=%v within %v", userID, deviceID, live, eventWait)
}

// settled reports whether userID's record was written after the last write
// of each of the device keys, live or not: every change is applied.
func (e *env) settled(userID string, devices []string) bool {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	js, err := jetstream.New(e.nc)
	if err != nil {
		e.t.Fatal(err)
	}
	st, err := js.Stream(ctx, "KV_presence")
	if err != nil {
		e.t.Fatal(err)
	}
	last := func(key string) uint64 {
		m, err := st.GetLastMsgForSubject(ctx, "$KV.presence."+key)
		if err != nil {
			return 0
		}
		return m.Sequence
	}
	rec := last(userID)
	for _, d := range devices {
		if last(userID+"."+d) > rec {
			return false
		}
	}
	return rec != 0
}

// nextSnapshot returns the next presence_snapshot event, failing the test
// after within. Presence events before it are skipped.
func (w *watcher) nextSnapshot(within time.Duration) []schema.PresenceState {
	w.t.Helper()
	m, err := w.sub.NextMsg(within)
	for ; err == nil; m, err = w.sub.NextMsg(within) {
		var ev schema.Event
		if json.Unmarshal(m.Data, &ev) == nil && ev.Type == schema.EventPresenceSnapshot {
			return ev.Presences
		}
	}
	w.t.Fatalf("no presence snapshot on %s within %v: %v", w.sub.Subject, within, err)
	return nil
}
