package mailbox

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/fabric/node"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// friendsAllowList is a stand-in for fabric/friends.Service, the real
// Permit, which needs Postgres: a plain set of friend pairs. It is the only
// non-production part these tests use.
type friendsAllowList struct {
	mu    sync.Mutex
	pairs map[[2]string]bool // guarded by mu
}

func (l *friendsAllowList) befriend(a, b string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pairs == nil {
		l.pairs = map[[2]string]bool{}
	}
	l.pairs[[2]string{a, b}] = true
	l.pairs[[2]string{b, a}] = true
}

func (l *friendsAllowList) CanMessage(_ context.Context, from, to string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.pairs[[2]string{from, to}] {
		return schema.Errorf(schema.CodeNotFriend, "not your friend")
	}
	return nil
}

// fixture is a Service on its own in-process NATS node.
type fixture struct {
	node    *node.Node
	nc      *nats.Conn
	svc     *Service
	friends *friendsAllowList
}

// newFixture starts a node and a Service; edit adjusts the Config.
func newFixture(t testing.TB, edit func(*Config)) *fixture {
	t.Helper()
	return newFixtureOn(t, natstest.Run(t), edit)
}

// newFixtureOn builds a Service on node n.
func newFixtureOn(t testing.TB, n *node.Node, edit func(*Config)) *fixture {
	t.Helper()
	f := &fixture{node: n, nc: natstest.Connect(t, n), friends: &friendsAllowList{}}
	cfg := Config{NATS: f.nc, Permit: f.friends, Partitions: 4, SendRate: -1}
	if edit != nil {
		edit(&cfg)
	}
	var err error
	if f.svc, err = New(testContext(t), cfg); err != nil {
		t.Fatalf("New: %v", err)
	}
	return f
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// user is a registered user with one device: its signing key and signed
// prekey, as a client holds them.
type user struct {
	id     string
	device string // device id
	dk     ed25519.PrivateKey
	spk    *ecdh.PrivateKey
}

func newUser(t testing.TB) user {
	t.Helper()
	_, dk, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	spk, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return user{id: schema.NewUserID(), device: envelope.DeviceID(dk.Public().(ed25519.PublicKey)), dk: dk, spk: spk}
}

// friendsPair returns two users who are friends.
func (f *fixture) friendsPair(t testing.TB) (user, user) {
	a, b := newUser(t), newUser(t)
	f.friends.befriend(a.id, b.id)
	return a, b
}

// seal seals text from a to b under msgID.
func seal(t testing.TB, from, to user, msgID, text string) []byte {
	t.Helper()
	b, err := envelope.SealV2(envelope.HeaderV2{From: from.id, FromDevice: from.device, To: to.id, MsgID: msgID, SentAt: time.Now()},
		from.dk, []envelope.Target{{DeviceID: to.device, SPK: to.spk.PublicKey().Bytes()}}, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var msgCounter struct {
	sync.Mutex
	n int
}

func nextMsgID() string {
	msgCounter.Lock()
	defer msgCounter.Unlock()
	msgCounter.n++
	return fmt.Sprintf("m-%06d", msgCounter.n)
}

// send seals and sends text from a to b and fails t on error.
func (f *fixture) send(t testing.TB, from, to user, text string) SendResult {
	t.Helper()
	res, err := f.svc.Send(testContext(t), from.id, from.device, to.id, seal(t, from, to, nextMsgID(), text))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	return res
}

// fetchAll returns every message in uid's mailbox.
func (f *fixture) fetchAll(t testing.TB, uid string) []Message {
	t.Helper()
	msgs, _, err := f.svc.Fetch(testContext(t), uid, 0, MaxFetch)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return msgs
}

// wantCode fails t unless err carries code c.
func wantCode(t testing.TB, err error, c schema.Code) {
	t.Helper()
	if !schema.HasCode(err, c) {
		t.Fatalf("error = %v, want code %s", err, c)
	}
}

func mustSubject(t testing.TB, s *Service, uid string) string {
	t.Helper()
	subj, err := s.Subject(uid)
	if err != nil {
		t.Fatal(err)
	}
	return subj
}

func itoa(n uint64) string { return fmt.Sprint(n) }

// subscribeEvents subscribes to uid's live events.
func (f *fixture) subscribeEvents(t testing.TB, uid string) *nats.Subscription {
	t.Helper()
	sub, err := f.nc.SubscribeSync("evt." + uid)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	return sub
}

// nextEvent returns the next event on sub.
func nextEvent(t testing.TB, sub *nats.Subscription) schema.Event {
	t.Helper()
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no event: %v", err)
	}
	var ev schema.Event
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}
