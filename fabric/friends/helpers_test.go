package friends_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/fabric/friends"
	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/fabric/node"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/store"
	"github.com/mayfly-im/mayfly/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.MainNoLeaks(m)) }

// env is one test's Postgres database, NATS server and friends service.
type env struct {
	t    testing.TB
	db   *store.DB
	node *node.Node
	nc   *nats.Conn
	svc  *friends.Service
	seq  atomic.Int64
}

// newEnv starts a database, a NATS server and a Service with cfg (DB and
// NATS filled in).
func newEnv(t testing.TB, cfg friends.Config) *env {
	t.Helper()
	e := &env{t: t, db: storetest.New(t), node: natstest.Run(t)}
	e.nc = natstest.Connect(t, e.node)
	e.svc = e.serviceOn(e.nc, cfg)
	return e
}

// service starts another Service on e's database and NATS server, over its
// own NATS connection: what a second gateway process would run.
func (e *env) service(cfg friends.Config) *friends.Service {
	e.t.Helper()
	return e.serviceOn(natstest.Connect(e.t, e.node), cfg)
}

func (e *env) serviceOn(nc *nats.Conn, cfg friends.Config) *friends.Service {
	e.t.Helper()
	cfg.DB, cfg.NATS = e.db, nc
	s, err := friends.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(s.Close)
	return s
}

// user registers a user with a unique handle starting with prefix.
func (e *env) user(prefix string) store.User {
	e.t.Helper()
	ik, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	u, err := e.db.CreateUser(context.Background(), store.User{
		ID: schema.NewUserID(), Handle: fmt.Sprintf("%s_%d", prefix, e.seq.Add(1)), IK: ik,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

func (e *env) users(prefix string, n int) []store.User {
	e.t.Helper()
	out := make([]store.User, n)
	for i := range out {
		out[i] = e.user(prefix)
	}
	return out
}

// befriend makes a and b friends through a request and an accept.
func (e *env) befriend(a, b store.User) {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.svc.Request(ctx, a.ID, b.Handle); err != nil {
		e.t.Fatalf("request %s -> %s: %v", a.Handle, b.Handle, err)
	}
	if _, err := e.svc.Accept(ctx, b.ID, a.Handle); err != nil {
		e.t.Fatalf("accept %s by %s: %v", a.Handle, b.Handle, err)
	}
}

func (e *env) friendCount(u store.User) int {
	e.t.Helper()
	l, err := e.svc.List(context.Background(), u.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(l.Friends)
}

// rows counts rows in table (a constant from the test) matching where.
func (e *env) rows(table, where string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.db.Pool().QueryRow(context.Background(),
		"SELECT count(*) FROM "+table+" WHERE "+where, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// state is everything a user can see of their graph.
type state struct {
	Friends  schema.FriendList
	Requests schema.FriendRequests
	Blocks   schema.BlockList
}

func (e *env) state(u store.User) state {
	e.t.Helper()
	ctx := context.Background()
	var s state
	var err error
	if s.Friends, err = e.svc.List(ctx, u.ID); err != nil {
		e.t.Fatal(err)
	}
	if s.Requests, err = e.svc.Requests(ctx, u.ID); err != nil {
		e.t.Fatal(err)
	}
	if s.Blocks, err = e.svc.Blocks(ctx, u.ID); err != nil {
		e.t.Fatal(err)
	}
	return s
}

func sameState(t testing.TB, what string, before, after state) {
	t.Helper()
	if !reflect.DeepEqual(before, after) {
		t.Errorf("%s changed the graph:\nbefore %+v\nafter  %+v", what, before, after)
	}
}

func wantCode(t testing.TB, what string, err error, code schema.Code) {
	t.Helper()
	if !schema.HasCode(err, code) {
		t.Fatalf("%s: err = %v, want %s", what, err, code)
	}
}

// events subscribes to u's live events.
func (e *env) events(u store.User) *nats.Subscription {
	e.t.Helper()
	sub, err := e.nc.SubscribeSync("evt." + u.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil {
		e.t.Fatal(err)
	}
	return sub
}

// nextEvent returns the next event on sub, failing after a second.
func nextEvent(t testing.TB, sub *nats.Subscription) schema.Event {
	t.Helper()
	m, err := sub.NextMsg(time.Second)
	if err != nil {
		t.Fatalf("no event on %s: %v", sub.Subject, err)
	}
	var ev schema.Event
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// noEvent fails if an event is waiting on sub. e.svc publishes on e.nc, the
// connection sub is on, so after one round trip to the server everything it
// published has arrived.
func (e *env) noEvent(sub *nats.Subscription) {
	e.t.Helper()
	if err := e.nc.Flush(); err != nil {
		e.t.Fatal(err)
	}
	if n, _, _ := sub.Pending(); n != 0 {
		m, _ := sub.NextMsg(0)
		e.t.Fatalf("unexpected event on %s: %s", sub.Subject, m.Data)
	}
}
