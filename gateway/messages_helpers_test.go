package gateway_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// msgEnv is a running gateway for the messaging tests.
type msgEnv struct {
	t    testing.TB
	srv  *gatewaytest.Server
	addr string
	dir  string // DataDir
}

// startMsgEnv starts a gateway with cfg; zero fields are filled by gatewaytest,
// except a send rate generous enough for tests that send quickly.
func startMsgEnv(t testing.TB, cfg gatewaytest.Config) *msgEnv {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.SendRate == 0 {
		cfg.SendRate, cfg.SendBurst = 1000, 1000
	}
	a := gatewaytest.Start(t, cfg)
	return &msgEnv{t: t, srv: a, addr: a.HTTPAddr(), dir: cfg.DataDir}
}

// friends registers two users (first device "phone") and makes them friends.
func (e *msgEnv) friends(a, b string) (*gatewaytest.Client, *gatewaytest.Client) {
	e.t.Helper()
	ua := gatewaytest.NewUser(e.t, e.addr, a)
	ub := gatewaytest.NewUser(e.t, e.addr, b)
	ua.Must(http.MethodPost, "/v1/friends/requests", map[string]string{"handle": b}, nil)
	ub.Must(http.MethodPost, "/v1/friends/requests/"+a+"/accept", nil, nil)
	return ua, ub
}

// wsDevice is one WebSocket of one device. A reader goroutine decodes every
// server frame into a log the test inspects.
type wsDevice struct {
	t    testing.TB
	c    *gatewaytest.Client
	conn *websocket.Conn
	ids  atomic.Int64

	mu     sync.Mutex
	frames []any         // decoded server frames in arrival order
	closed error         // the read error that ended the connection
	change chan struct{} // closed and replaced on every append
	wmu    sync.Mutex    // serializes writes
	hello  *schema.HelloFrame
}

// dialWS opens a WebSocket for c (token in the Authorization header) and
// waits for hello.
func dialWS(t testing.TB, e *msgEnv, c *gatewaytest.Client) *wsDevice {
	t.Helper()
	conn := dialRaw(t, e, c, nil)
	d := &wsDevice{t: t, c: c, conn: conn, change: make(chan struct{})}
	go d.readLoop()
	f := d.waitFor("hello", func(f any) bool { _, ok := f.(*schema.HelloFrame); return ok })
	d.hello = f.(*schema.HelloFrame)
	return d
}

// dialRaw opens a WebSocket with dialer options; nothing reads it.
func dialRaw(t testing.TB, e *msgEnv, c *gatewaytest.Client, tweak func(*websocket.Dialer)) *websocket.Conn {
	t.Helper()
	dl := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{schema.SubprotocolV1}}
	if tweak != nil {
		tweak(&dl)
	}
	h := http.Header{"Authorization": {"Bearer " + c.Session.AccessToken}}
	conn, resp, err := dl.Dial("ws://"+e.addr+"/v1/ws", h)
	if err != nil {
		t.Fatalf("websocket dial as %v: %v (%v)", c, err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func (d *wsDevice) readLoop() {
	for {
		_, b, err := d.conn.ReadMessage()
		d.mu.Lock()
		if err != nil {
			d.closed = err
		} else if f, derr := schema.DecodeServerFrame(b); derr != nil {
			d.closed = fmt.Errorf("undecodable frame %s: %w", b, derr)
		} else {
			d.frames = append(d.frames, f)
		}
		close(d.change)
		d.change = make(chan struct{})
		stop := d.closed != nil
		d.mu.Unlock()
		if stop {
			return
		}
	}
}

// waitFor returns the first frame matching match, failing the test after 5s
// or if the connection ends first.
func (d *wsDevice) waitFor(what string, match func(any) bool) any {
	d.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		d.mu.Lock()
		for _, f := range d.frames {
			if match(f) {
				d.mu.Unlock()
				return f
			}
		}
		closed, change := d.closed, d.change
		d.mu.Unlock()
		if closed != nil {
			d.t.Fatalf("%v: waiting for %s: connection ended: %v", d.c, what, closed)
		}
		select {
		case <-change:
		case <-deadline:
			d.t.Fatalf("%v: no %s within 5s; frames: %s", d.c, what, d.dump())
		}
	}
}

// dump renders the frame log for failure messages.
func (d *wsDevice) dump() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, _ := json.Marshal(d.frames)
	return string(b)
}

// closeCode waits until the connection ends and returns its close code (0
// for an end without a close frame).
func (d *wsDevice) closeCode() int {
	d.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		d.mu.Lock()
		closed, change := d.closed, d.change
		d.mu.Unlock()
		if closed != nil {
			var ce *websocket.CloseError
			if errors.As(closed, &ce) {
				return ce.Code
			}
			return 0
		}
		select {
		case <-change:
		case <-deadline:
			d.t.Fatalf("%v: connection still open after 10s", d.c)
		}
	}
}

// write sends one raw text frame.
func (d *wsDevice) write(b []byte) {
	d.t.Helper()
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if err := d.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		d.t.Fatalf("%v: write: %v", d.c, err)
	}
}

// request sends a request frame (a map or schema frame without id; the id
// is set here) and returns the id.
func (d *wsDevice) request(typ string, fields map[string]any) string {
	d.t.Helper()
	id := "r" + strconv.FormatInt(d.ids.Add(1), 10)
	m := map[string]any{"type": typ, "id": id}
	for k, v := range fields {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		d.t.Fatal(err)
	}
	d.write(b)
	return id
}

// answer waits for the answer to request id: any frame carrying that id.
func (d *wsDevice) answer(id string) any {
	d.t.Helper()
	return d.waitFor("answer to "+id, func(f any) bool { return frameID(f) == id })
}

// frameID returns the id of an answer frame, or "".
func frameID(f any) string {
	switch f := f.(type) {
	case *schema.SentFrame:
		return f.ID
	case *schema.SyncedFrame:
		return f.ID
	case *schema.OKFrame:
		return f.ID
	case *schema.UnreadCountsFrame:
		return f.ID
	case *schema.ErrorFrame:
		return f.ID
	case *schema.PongFrame:
		return f.ID
	}
	return ""
}

// mustOK fails unless the answer to id is of type T and returns it.
func mustAnswer[T any](d *wsDevice, id string) T {
	d.t.Helper()
	f := d.answer(id)
	v, ok := f.(T)
	if !ok {
		d.t.Fatalf("%v: answer to %s is %s, want %T", d.c, id, frameJSON(f), v)
	}
	return v
}

// wantError fails unless the answer to id is an error with code.
func (d *wsDevice) wantError(id string, code schema.Code) {
	d.t.Helper()
	e := mustAnswer[*schema.ErrorFrame](d, id)
	if e.Error == nil || e.Error.Code != code {
		d.t.Fatalf("%v: answer to %s = %s, want error %s", d.c, id, frameJSON(e), code)
	}
}

// sync sends sync with cursor and waits for synced.
func (d *wsDevice) sync(cursor uint64) *schema.SyncedFrame {
	d.t.Helper()
	return mustAnswer[*schema.SyncedFrame](d, d.request(schema.FrameSync, map[string]any{"cursor": cursor}))
}

// seal seals text from d's user to peer's devices.
func (d *wsDevice) seal(peer *gatewaytest.Client, msgID, text string) []byte {
	d.t.Helper()
	return d.c.Seal(peer, msgID, []byte(text))
}

var msgIDs atomic.Int64

// send seals text to peer, sends it and waits for the answer frame.
func (d *wsDevice) send(peer *gatewaytest.Client, text string) *schema.SentFrame {
	d.t.Helper()
	env := d.seal(peer, fmt.Sprintf("m%d", msgIDs.Add(1)), text)
	return mustAnswer[*schema.SentFrame](d, d.sendEnv(peer, env))
}

// sendEnv sends an envelope to peer and returns the request id.
func (d *wsDevice) sendEnv(peer *gatewaytest.Client, env []byte) string {
	d.t.Helper()
	return d.request(schema.FrameSend, map[string]any{"to": peer.User.UserID, "envelope": json.RawMessage(env)})
}

// msgs returns the msg frames received so far.
func (d *wsDevice) msgs() []*schema.MsgFrame {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*schema.MsgFrame
	for _, f := range d.frames {
		if m, ok := f.(*schema.MsgFrame); ok {
			out = append(out, m)
		}
	}
	return out
}

// waitMsg waits for the msg frame with seq.
func (d *wsDevice) waitMsg(seq uint64) *schema.MsgFrame {
	d.t.Helper()
	return d.waitFor(fmt.Sprintf("msg %d", seq), func(f any) bool {
		m, ok := f.(*schema.MsgFrame)
		return ok && m.Seq == seq
	}).(*schema.MsgFrame)
}

// waitEvent waits for an event of type typ about seq.
func (d *wsDevice) waitEvent(typ schema.EventType, seq uint64) *schema.Event {
	d.t.Helper()
	return d.waitFor(fmt.Sprintf("event %s %d", typ, seq), func(f any) bool {
		ev, ok := f.(*schema.EventFrame)
		return ok && ev.Event != nil && ev.Event.Type == typ && ev.Event.Seq == seq
	}).(*schema.EventFrame).Event
}

// checkChain fails unless d's msg frames have strictly increasing seqs,
// each prev_seq is the seq before it (from for the first), and no seq
// repeats.
func (d *wsDevice) checkChain(from uint64) {
	d.t.Helper()
	prev := from
	for _, m := range d.msgs() {
		if m.Seq <= prev || m.PrevSeq != prev {
			d.t.Fatalf("%v: msg chain broken at seq %d prev_seq %d after %d: %s", d.c, m.Seq, m.PrevSeq, prev, d.dump())
		}
		prev = m.Seq
	}
}

// open opens m as d's device, verifying the signature with the sender's
// device key, and checks the signed header matches the server's fields.
func (d *wsDevice) open(m *schema.MsgFrame, sender *gatewaytest.Client) string {
	d.t.Helper()
	text, err := d.c.Open(m.Envelope, sender)
	if err != nil {
		d.t.Fatalf("%v: open msg %d: %v", d.c, m.Seq, err)
	}
	e, _ := envelope.ParseV2(m.Envelope)
	if h := e.Header(); h.From != m.From || h.To != m.To || h.MsgID != m.MsgID {
		d.t.Fatalf("%v: msg %d: signed header %+v does not match frame %s", d.c, m.Seq, h, frameJSON(m))
	}
	return string(text)
}

// frameJSON renders a frame for failure messages.
func frameJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(b)
}
