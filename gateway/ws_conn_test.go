package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-im/mayfly/fabric/account"
	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/schema"
)

// wsFixture serves WebSockets from a Server that has what a connection
// needs and no more: an in-process NATS node for the hub; no accounts,
// mailbox or presence. Its handler does what serveWS does after
// authentication, except the device check and presence.
type wsFixture struct {
	t     *testing.T
	s     *Server
	addr  string
	conns chan *wsConn // the server side of each connection, in dial order
}

func newWSFixture(t *testing.T, cfg Config) *wsFixture {
	t.Helper()
	cfg.NATS = natstest.Connect(t, natstest.Run(t))
	cfg.FrameRate, cfg.FrameBurst = 1000, 1000
	if cfg.SendQueue == 0 {
		cfg.SendQueue = 256
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = time.Minute
	}
	s := &Server{cfg: cfg, log: slog.New(slog.DiscardHandler), metrics: newMetrics(prometheus.NewRegistry()), shutdown: make(chan struct{})}
	s.hub = newHub(s)
	s.upgrader = s.wsUpgrader()
	f := &wsFixture{t: t, s: s, conns: make(chan *wsConn, 16)}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		srv.Close()
	})
	f.addr = srv.Listener.Addr().String()
	return f
}

func (f *wsFixture) serve(w http.ResponseWriter, r *http.Request) {
	s := f.s
	s.conns.Add(1)
	hj := &wsHijacker{ResponseWriter: w, pool: &s.writeBatches}
	ws, err := s.upgrader.Upgrade(hj, r, nil)
	if err != nil {
		s.conns.Done()
		return
	}
	c := s.newWSConn(ws, hj)
	sess := s.newSession(c, account.Principal{UserID: schema.NewUserID(), DeviceID: "d"})
	if !sess.register() {
		c.closeSocket()
		sess.release()
		return
	}
	c.readyReads()
	f.conns <- c
	go c.run()
}

// wsClient is the client end of a fixture connection. A goroutine reads
// every frame into a log; pings are counted and answered only if pong.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn

	mu     sync.Mutex
	frames []string      // text frames in arrival order
	pings  int           // pings received
	err    error         // the read error that ended the connection
	change chan struct{} // closed and replaced on every change
}

// dial connects a client and returns it with the server's side, once
// hello arrived.
func (f *wsFixture) dial(pong bool) (*wsClient, *wsConn) {
	f.t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{schema.SubprotocolV1}}
	conn, _, err := d.Dial("ws://"+f.addr+"/", nil)
	if err != nil {
		f.t.Fatalf("dial: %v", err)
	}
	f.t.Cleanup(func() { conn.Close() })
	cl := &wsClient{t: f.t, conn: conn, change: make(chan struct{})}
	conn.SetPingHandler(func(data string) error {
		cl.update(func() { cl.pings++ })
		if pong {
			return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
		}
		return nil
	})
	go cl.readLoop()
	cl.waitFor("hello", func() bool { return len(cl.frames) > 0 })
	cl.mu.Lock()
	first := cl.frames[0]
	cl.mu.Unlock()
	if !strings.Contains(first, `"type":"hello"`) {
		f.t.Fatalf("first frame %s, want hello", first)
	}
	return cl, <-f.conns
}

func (cl *wsClient) update(fn func()) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	fn()
	close(cl.change)
	cl.change = make(chan struct{})
}

func (cl *wsClient) readLoop() {
	for {
		_, b, err := cl.conn.ReadMessage()
		cl.update(func() {
			if err != nil {
				cl.err = err
			} else {
				cl.frames = append(cl.frames, string(b))
			}
		})
		if err != nil {
			return
		}
	}
}

// waitFor waits until cond, called with cl.mu held, holds; it fails the
// test after 10s.
func (cl *wsClient) waitFor(what string, cond func() bool) {
	cl.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		cl.mu.Lock()
		ok, change := cond(), cl.change
		cl.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-change:
		case <-deadline:
			cl.t.Fatalf("no %s within 10s", what)
		}
	}
}

// ended returns the read error that ended the connection, nil while it
// is open.
func (cl *wsClient) ended() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.err
}

// ids returns the id member of every frame after hello.
func (cl *wsClient) ids() []string {
	cl.t.Helper()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var out []string
	for _, b := range cl.frames[1:] {
		var f struct{ ID string }
		if err := json.Unmarshal([]byte(b), &f); err != nil {
			cl.t.Fatalf("frame %.80s: %v", b, err)
		}
		out = append(out, f.ID)
	}
	return out
}

// waitIdle waits until c has no writer running and holds no queue or
// batch buffer.
func waitIdle(t *testing.T, c *wsConn) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		idle := !c.writing && c.queue.buf == nil
		c.mu.Unlock()
		c.out.mu.Lock()
		idle = idle && c.out.buf == nil && !c.out.batching
		c.out.mu.Unlock()
		if idle {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("connection still writing or holding buffers after 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGatewayWSPings: the server pings an idle connection; one that
// answers stays connected past the read timeout (two intervals), one that
// does not is dropped.
func TestGatewayWSPings(t *testing.T) {
	t.Run("answered", func(t *testing.T) {
		f := newWSFixture(t, Config{PingInterval: 200 * time.Millisecond})
		cl, _ := f.dial(true)
		cl.waitFor("three pings", func() bool { return cl.pings >= 3 || cl.err != nil })
		if err := cl.ended(); err != nil {
			t.Fatalf("connection ended despite answered pings: %v", err)
		}
		if err := cl.conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","id":"alive"}`)); err != nil {
			t.Fatal(err)
		}
		cl.waitFor("pong", func() bool { return len(cl.frames) == 2 || cl.err != nil })
		if ids := cl.ids(); len(ids) != 1 || ids[0] != "alive" {
			t.Fatalf("got ids %v, want the pong for alive", ids)
		}
	})
	t.Run("unanswered", func(t *testing.T) {
		f := newWSFixture(t, Config{PingInterval: 50 * time.Millisecond})
		cl, _ := f.dial(false)
		cl.waitFor("the connection to end", func() bool { return cl.err != nil })
		cl.mu.Lock()
		defer cl.mu.Unlock()
		if cl.pings == 0 {
			t.Fatalf("connection ended (%v) without a ping", cl.err)
		}
	})
}

// frame returns a masked client frame with opcode op and a zero mask key.
func frame(op byte, payload string) []byte {
	return append([]byte{0x80 | op, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
}

// TestGatewayWSPongsBetweenFrames: pongs and requests arriving together are
// all handled: the reader consumes the pongs itself and answers every
// request, in order.
func TestGatewayWSPongsBetweenFrames(t *testing.T) {
	f := newWSFixture(t, Config{})
	cl, _ := f.dial(false)
	var b []byte
	b = append(b, frame(websocket.PongMessage, "")...)
	b = append(b, frame(websocket.TextMessage, `{"type":"ping","id":"a"}`)...)
	b = append(b, frame(websocket.PongMessage, "x")...)
	b = append(b, frame(websocket.TextMessage, `{"type":"ping","id":"b"}`)...)
	b = append(b, frame(websocket.PongMessage, "")...)
	if _, err := cl.conn.UnderlyingConn().Write(b); err != nil {
		t.Fatal(err)
	}
	cl.waitFor("two pongs", func() bool { return len(cl.frames) == 3 || cl.err != nil })
	if ids := cl.ids(); fmt.Sprint(ids) != "[a b]" {
		t.Fatalf("got ids %v, want [a b]", ids)
	}
	if _, err := cl.conn.UnderlyingConn().Write(frame(websocket.TextMessage, `{"type":"ping","id":"c"}`)); err != nil {
		t.Fatal(err)
	}
	cl.waitFor("third pong", func() bool { return len(cl.frames) == 4 || cl.err != nil })
	if ids := cl.ids(); fmt.Sprint(ids) != "[a b c]" {
		t.Fatalf("got ids %v, want [a b c]", ids)
	}
}

// TestGatewayWSBurstInOrder: a burst of frames, some larger than a write
// batch, arrives complete and in queue order; afterwards the connection
// has no writer and holds no queue or batch buffer.
func TestGatewayWSBurstInOrder(t *testing.T) {
	f := newWSFixture(t, Config{SendQueue: 2000})
	cl, c := f.dial(true)
	const n = 1000
	var want []string
	for i := range n {
		id := strconv.Itoa(i)
		if i%100 == 7 {
			id += strings.Repeat("x", maxBatch+1000)
		}
		want = append(want, id)
		c.enqueue(schema.PongFrame{Type: schema.FramePong, ID: id})
	}
	cl.waitFor("the burst", func() bool { return len(cl.frames) == n+1 || cl.err != nil })
	if got := cl.ids(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("frames out of order or missing: got %d, want %d", len(got), len(want))
	}
	waitIdle(t, c)
}

// TestGatewayWSEnqueueWait: a producer that waits for room in a small
// queue gets every frame out, in order, without the connection being
// closed as a slow consumer.
func TestGatewayWSEnqueueWait(t *testing.T) {
	f := newWSFixture(t, Config{SendQueue: 4})
	cl, c := f.dial(true)
	const n = 300
	var want []string
	for i := range n {
		want = append(want, strconv.Itoa(i))
	}
	go func() {
		for _, id := range want {
			c.enqueueWait(schema.PongFrame{Type: schema.FramePong, ID: id})
		}
	}()
	cl.waitFor("all frames", func() bool { return len(cl.frames) == n+1 || cl.err != nil })
	if err := cl.ended(); err != nil {
		t.Fatalf("connection ended: %v", err)
	}
	if got := cl.ids(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("frames out of order or missing: got %v", got)
	}
	waitIdle(t, c)
}

// TestGatewayWSSlowConsumer: enqueue on a full queue closes the connection
// with 4002 and drops the frame; frames queued after the close are dropped.
func TestGatewayWSSlowConsumer(t *testing.T) {
	c := &wsConn{cfg: &Config{SendQueue: 2}, log: slog.New(slog.DiscardHandler), metrics: newMetrics(prometheus.NewRegistry()), quit: make(chan struct{})}
	c.writing = true // no writer: the queue only fills
	for i := range 2 {
		c.enqueue(schema.PongFrame{Type: schema.FramePong, ID: strconv.Itoa(i)})
	}
	if c.closed {
		t.Fatal("closed before the queue was full")
	}
	c.enqueue(schema.PongFrame{Type: schema.FramePong, ID: "over"})
	if !c.closed || c.closeCode != schema.CloseSlowConsumer {
		t.Fatalf("closed %v with %d, want closed with %d", c.closed, c.closeCode, schema.CloseSlowConsumer)
	}
	c.enqueueWait(schema.PongFrame{Type: schema.FramePong, ID: "late"}) // returns at once
	if n := c.queue.len(); n != 2 {
		t.Fatalf("%d frames queued, want 2", n)
	}
}

// TestGatewayWSShutdown: Shutdown closes an idle connection with 1001 and
// waits for it.
func TestGatewayWSShutdown(t *testing.T) {
	f := newWSFixture(t, Config{})
	cl, _ := f.dial(true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	cl.waitFor("the close frame", func() bool { return cl.err != nil })
	var ce *websocket.CloseError
	if err := cl.ended(); !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("connection ended with %v, want close %d", err, websocket.CloseGoingAway)
	}
}

// TestGatewayFrameQueue: frames leave in the order they were pushed,
// across growth and compaction, and a drained queue holds no array.
func TestGatewayFrameQueue(t *testing.T) {
	var q frameQueue
	next, want := 0, 0
	push := func(k int) {
		for range k {
			q.push([]byte(strconv.Itoa(next)))
			next++
		}
	}
	pop := func(k int) {
		for range k {
			b, ok := q.pop()
			if !ok || string(b) != strconv.Itoa(want) {
				t.Fatalf("pop = %q, %v; want %d", b, ok, want)
			}
			want++
		}
	}
	push(5)
	pop(3)
	push(20) // compacts, then grows
	pop(10)
	push(40)
	if q.len() != next-want {
		t.Fatalf("len %d, want %d", q.len(), next-want)
	}
	pop(next - want)
	if _, ok := q.pop(); ok || q.buf != nil {
		t.Fatalf("drained queue: pop ok %v, array %v", ok, q.buf != nil)
	}
}

// FuzzGatewaySkipPong: skipPong never panics, and consumes either nothing
// or exactly one complete, masked, unfragmented pong from the front.
func FuzzGatewaySkipPong(f *testing.F) {
	f.Add(frame(websocket.PongMessage, ""))
	f.Add(frame(websocket.PongMessage, "payload"))
	f.Add(append(frame(websocket.PongMessage, ""), frame(websocket.TextMessage, "{}")...))
	f.Add(frame(websocket.TextMessage, "{}"))
	f.Add([]byte{0x8a, 0x7e, 0, 0})
	f.Add([]byte{0x8a})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &wsConn{br: bufio.NewReaderSize(bytes.NewReader(data), wsReadBuffer)}
		c.br.Peek(len(data)) // what the socket delivered, up to the buffer's size
		before := c.br.Buffered()
		if !c.skipPong() {
			if c.br.Buffered() != before {
				t.Fatalf("consumed %d bytes without reporting a pong", before-c.br.Buffered())
			}
			return
		}
		n := before - c.br.Buffered()
		if data[0] != 0x8a || data[1]&0x80 == 0 || n != 6+int(data[1]&0x7f) || n > 6+125 {
			t.Fatalf("consumed %d bytes of % x as a pong", n, data[:min(len(data), 8)])
		}
	})
}
