package gateway

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-im/mayfly/fabric/account"
	"github.com/mayfly-im/mayfly/fabric/mailbox"
	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// anyoneMay is a mailbox.Permit that allows every send. The friend graph
// needs Postgres and is not what these tests are about; the e2e tests use
// the real one.
type anyoneMay struct{}

func (anyoneMay) CanMessage(context.Context, string, string) error { return nil }

// memSink is a session's sink in memory: it keeps the frames the session
// queues, in order, for the test to take, and holds at most max of them
// as a transport's send queue does (enqueue closes it as a slow consumer
// then; enqueueWait waits for room).
type memSink struct {
	max int

	mu     sync.Mutex
	frames [][]byte
	room   *sync.Cond // signalled when a frame is taken or the sink closes
	quit   chan struct{}
	closed bool
	code   int
}

func newMemSink(max int) *memSink {
	m := &memSink{max: max, quit: make(chan struct{})}
	m.room = sync.NewCond(&m.mu)
	return m
}

func (m *memSink) enqueue(f any) { m.push(f, false) }

func (m *memSink) enqueueWait(f any) { m.push(f, true) }

func (m *memSink) push(f any, wait bool) {
	b, err := schema.EncodeFrame(f)
	if err != nil {
		panic(err)
	}
	m.mu.Lock()
	for wait && !m.closed && len(m.frames) >= m.max {
		m.room.Wait()
	}
	switch {
	case m.closed:
	case len(m.frames) >= m.max:
		m.closeLocked(schema.CloseSlowConsumer)
	default:
		m.frames = append(m.frames, b)
	}
	m.mu.Unlock()
}

func (m *memSink) close(code int, _ string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closeLocked(code)
}

func (m *memSink) closeLocked(code int) {
	if m.closed {
		return
	}
	m.closed, m.code = true, code
	close(m.quit)
	m.room.Broadcast()
}

func (m *memSink) done() <-chan struct{} { return m.quit }

// take removes the oldest frame, if any.
func (m *memSink) take() ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.frames) == 0 {
		return nil, false
	}
	b := m.frames[0]
	m.frames = m.frames[1:]
	m.room.Broadcast()
	return b, true
}

// feedFixture is one session's feed on a real NATS node and a real mailbox
// service, without a transport: frames are taken from a memSink, and live
// deliveries are handed to the feed by the test, so it can lose some on
// purpose.
type feedFixture struct {
	t          *testing.T
	mb         *mailbox.Service
	c          *session
	out        *memSink
	alice, bob string
	dk         ed25519.PrivateKey // alice's device key; the feed never opens envelopes
	dlv        *nats.Subscription
	n          int
}

func newFeedFixture(t *testing.T) *feedFixture {
	t.Helper()
	node := natstest.Run(t)
	nc := natstest.Connect(t, node)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mb, err := mailbox.New(ctx, mailbox.Config{NATS: nc, Permit: anyoneMay{}, Partitions: 2, SendRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{cfg: Config{NATS: nc, Mailbox: mb}, log: slog.New(slog.DiscardHandler), metrics: newMetrics(prometheus.NewRegistry())}
	f := &feedFixture{t: t, mb: mb, alice: schema.NewUserID(), bob: schema.NewUserID(), out: newMemSink(1000)}
	f.c = s.newSession(f.out, account.Principal{UserID: f.bob})
	if _, f.dk, err = ed25519.GenerateKey(nil); err != nil {
		t.Fatal(err)
	}
	subj, _ := mb.DeliverySubject(f.bob)
	if f.dlv, err = nc.SubscribeSync(subj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.c.close(1000, "test")
		f.c.stopFeed()
	})
	return f
}

// send stores a message from alice to bob and returns its live delivery.
func (f *feedFixture) send() (*mailbox.Message, uint64) {
	f.t.Helper()
	f.n++
	dev := envelope.DeviceID(f.dk.Public().(ed25519.PublicKey))
	spk, _ := ecdh.X25519().GenerateKey(nil)
	env, err := envelope.SealV2(envelope.HeaderV2{From: f.alice, FromDevice: dev, To: f.bob, MsgID: fmt.Sprintf("m%d", f.n), SentAt: time.Now()},
		f.dk, []envelope.Target{{DeviceID: "dbob", SPK: spk.PublicKey().Bytes()}}, []byte("x"))
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.mb.Send(context.Background(), f.alice, dev, f.bob, env); err != nil {
		f.t.Fatal(err)
	}
	raw, err := f.dlv.NextMsg(5 * time.Second)
	if err != nil {
		f.t.Fatal(err)
	}
	m, prev, err := mailbox.ParseDelivery(raw)
	if err != nil {
		f.t.Fatal(err)
	}
	return &m, prev
}

// take removes the oldest queued frame, if any.
func (f *feedFixture) take() ([]byte, bool) { return f.out.take() }

// next returns the next queued frame, waiting up to 5s for it.
func (f *feedFixture) next() any {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if b, ok := f.take(); ok {
			fr, err := schema.DecodeServerFrame(b)
			if err != nil {
				f.t.Fatal(err)
			}
			return fr
		}
		if time.Now().After(deadline) {
			f.t.Fatal("no frame within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// wantMsgs checks the next frames are msg frames with seqs, chained from prev.
func (f *feedFixture) wantMsgs(prev uint64, seqs ...uint64) {
	f.t.Helper()
	for _, seq := range seqs {
		m, ok := f.next().(*schema.MsgFrame)
		if !ok || m.Seq != seq || m.PrevSeq != prev {
			f.t.Fatalf("got %s, want msg %d after %d", mustEncode(m), seq, prev)
		}
		prev = seq
	}
}

func mustEncode(f any) string { b, _ := schema.EncodeFrame(f); return string(b) }

// idle waits until no replay runs, then checks nothing is queued.
func (f *feedFixture) idle() {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.c.feed.mu.Lock()
		busy := f.c.feed.replaying
		f.c.feed.mu.Unlock()
		if !busy {
			break
		}
		if time.Now().After(deadline) {
			f.t.Fatal("replay still running after 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if b, ok := f.take(); ok {
		f.t.Fatalf("unexpected frame %s", b)
	}
}

// TestGatewayFeedGapHeal: deliveries lost between NATS and the gateway are
// noticed from the next delivery's previous seq and fetched, in order and
// without duplicates; a gap whose messages were burned meanwhile heals to
// nothing; a later sync restarts the chain from its cursor.
func TestGatewayFeedGapHeal(t *testing.T) {
	f := newFeedFixture(t)
	m1, _ := f.send()
	m2, _ := f.send()
	if err := f.c.handleSync(&schema.SyncFrame{Type: schema.FrameSync, ID: "s1"}); err != nil {
		t.Fatal(err)
	}
	f.wantMsgs(0, m1.Seq, m2.Seq)
	if s, ok := f.next().(*schema.SyncedFrame); !ok || s.ID != "s1" || s.LastSeq != m2.Seq {
		t.Fatalf("want synced s1 at %d, got %s", m2.Seq, mustEncode(s))
	}
	f.idle()

	// m3 and m4 are lost; m5 reveals the gap.
	m3, _ := f.send()
	m4, _ := f.send()
	m5, prev5 := f.send()
	f.c.liveDelivery(newDelivery(*m5, prev5))
	f.wantMsgs(m2.Seq, m3.Seq, m4.Seq, m5.Seq)
	f.idle()
	f.c.liveDelivery(newDelivery(*m3, 0)) // a late duplicate
	f.idle()

	// m6 is lost and both m6 and m7 are burned before the heal runs.
	m6, _ := f.send()
	m7, prev7 := f.send()
	for _, seq := range []uint64{m6.Seq, m7.Seq} {
		if _, err := f.mb.Read(context.Background(), f.bob, seq); err != nil {
			t.Fatal(err)
		}
	}
	f.c.liveDelivery(newDelivery(*m7, prev7))
	f.idle()
	m8, prev8 := f.send()
	if prev8 != m5.Seq {
		t.Fatalf("prev of m8 = %d, want %d (the newest unburned)", prev8, m5.Seq)
	}
	f.c.liveDelivery(newDelivery(*m8, prev8))
	f.wantMsgs(m5.Seq, m8.Seq)
	f.idle()

	if err := f.c.handleSync(&schema.SyncFrame{Type: schema.FrameSync, ID: "s2", Cursor: m2.Seq}); err != nil {
		t.Fatal(err)
	}
	f.wantMsgs(m2.Seq, m3.Seq, m4.Seq, m5.Seq, m8.Seq)
	if s, ok := f.next().(*schema.SyncedFrame); !ok || s.ID != "s2" || s.LastSeq != m8.Seq {
		t.Fatalf("want synced s2 at %d, got %s", m8.Seq, mustEncode(s))
	}
}

// TestGatewayFeedBuffersDuringReplay: live messages and message events
// that arrive while a replay runs are held and sent after it, in order:
// a burn event always after the message it burns, each message once.
func TestGatewayFeedBuffersDuringReplay(t *testing.T) {
	f := newFeedFixture(t)
	m1, _ := f.send()
	m2, prev2 := f.send()
	d := &f.c.feed
	// Pretend a replay is running so live input is buffered, as it is while
	// the replay goroutine fetches.
	d.mu.Lock()
	d.synced, d.replaying, d.epoch = true, true, 1
	d.syncIDs = []string{"s"}
	d.mu.Unlock()
	f.c.liveDelivery(newDelivery(*m2, prev2))
	f.c.messageEventFrame(eventFrame(t, schema.Event{Type: schema.EventBurned, Seq: m1.Seq}))
	f.c.liveDelivery(newDelivery(*m2, prev2)) // duplicate delivery
	if b, ok := f.take(); ok {
		t.Fatalf("frame %s sent while replaying", b)
	}
	d.wg.Add(1) // the replay goroutine that startReplayLocked would start
	go f.c.replay()
	f.wantMsgs(0, m1.Seq, m2.Seq)
	if s, ok := f.next().(*schema.SyncedFrame); !ok || s.LastSeq != m2.Seq {
		t.Fatalf("want synced at %d, got %s", m2.Seq, mustEncode(s))
	}
	if ev, ok := f.next().(*schema.EventFrame); !ok || ev.Event.Type != schema.EventBurned || ev.Event.Seq != m1.Seq {
		t.Fatalf("want the burn event after the messages, got %s", mustEncode(ev))
	}
	f.idle()
}

// eventFrame encodes ev as the hub's dispatcher does.
func eventFrame(t *testing.T, ev schema.Event) schema.EncodedFrame {
	t.Helper()
	b, err := schema.EncodeFrame(schema.EventFrame{Type: schema.FrameEvent, Event: &ev})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
