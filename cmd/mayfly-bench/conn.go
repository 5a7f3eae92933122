package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mayfly-im/mayfly/schema"
)

// wsConn is one device's WebSocket. A reader goroutine answers every
// received message with a read (burn) and records what arrives in the
// worker's current step; writes are serialised by wmu.
type wsConn struct {
	w  *Worker
	u  *user
	ws *websocket.Conn

	wmu sync.Mutex // serialises writes

	synced chan struct{} // closed when the sync is answered
	done   chan struct{} // closed when the reader stops
}

// writeWait bounds one frame write.
const writeWait = 10 * time.Second

// write sends one text frame.
func (c *wsConn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.ws.SetWriteDeadline(time.Now().Add(writeWait))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// dialWS opens u's WebSocket from source address src (nil: any), reads the
// hello frame and sends a sync from cursor 0. A token_expired refusal is
// retried once after a refresh.
func (w *Worker) dialWS(ctx context.Context, u *user, src net.Addr) (*wsConn, error) {
	for attempt := 0; ; attempt++ {
		c, err := w.dialOnce(ctx, u, src)
		if err == nil || attempt > 0 || !schema.HasCode(err, schema.CodeTokenExpired) {
			return c, err
		}
		if err := w.api.refresh(ctx, u); err != nil {
			return nil, err
		}
	}
}

func (w *Worker) dialOnce(ctx context.Context, u *user, src net.Addr) (*wsConn, error) {
	target, err := url.Parse(u.base)
	if err != nil {
		return nil, err
	}
	target.Scheme = "ws"
	target.Path = "/v1/ws"
	nd := &net.Dialer{Timeout: 30 * time.Second, LocalAddr: src}
	d := websocket.Dialer{
		NetDialContext:   nd.DialContext,
		HandshakeTimeout: 30 * time.Second,
		ReadBufferSize:   1024,
		WriteBufferSize:  1024,
		Subprotocols:     []string{schema.SubprotocolV1},
	}
	h := http.Header{"Authorization": {"Bearer " + u.token()}}
	ws, resp, err := d.DialContext(ctx, target.String(), h)
	if err != nil {
		return nil, handshakeError(u, resp, err)
	}
	c := &wsConn{w: w, u: u, ws: ws, synced: make(chan struct{}), done: make(chan struct{})}
	ws.SetReadLimit(1 << 20)
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	var hello schema.HelloFrame
	if _, b, err := ws.ReadMessage(); err != nil || json.Unmarshal(b, &hello) != nil || hello.Type != schema.FrameHello {
		ws.Close()
		return nil, fmt.Errorf("websocket %s: no hello frame (%v)", u.handle, err)
	}
	ws.SetReadDeadline(time.Time{})
	sync, _ := json.Marshal(schema.SyncFrame{Type: schema.FrameSync, ID: "sync", Cursor: 0})
	if err := c.write(sync); err != nil {
		ws.Close()
		return nil, fmt.Errorf("websocket %s: send sync: %w", u.handle, err)
	}
	go c.read()
	return c, nil
}

// handshakeError turns a refused handshake into the server's error code
// where it sent one.
func handshakeError(u *user, resp *http.Response, err error) error {
	if resp == nil {
		return fmt.Errorf("websocket %s: %w", u.handle, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb schema.ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error != nil {
		return fmt.Errorf("websocket %s: %w", u.handle, eb.Error)
	}
	return fmt.Errorf("websocket %s: handshake status %d: %w", u.handle, resp.StatusCode, err)
}

// inFrame is the part of a server frame the generator looks at; the
// envelope is not opened (the generator spends no CPU on decryption).
type inFrame struct {
	Type  string        `json:"type"`
	ID    string        `json:"id"`
	Seq   uint64        `json:"seq"`
	MsgID string        `json:"msg_id"`
	Self  bool          `json:"self"`
	Error *schema.Error `json:"error"`
}

// read is the reader goroutine: it runs until the connection ends.
func (c *wsConn) read() {
	defer close(c.done)
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			c.w.connLost(c, err)
			return
		}
		var f inFrame
		if err := json.Unmarshal(b, &f); err != nil {
			c.w.recordError("frame:malformed")
			continue
		}
		c.handle(&f)
	}
}

func (c *wsConn) handle(f *inFrame) {
	now := time.Now().UnixNano()
	switch f.Type {
	case schema.FrameSynced:
		if f.ID == "sync" {
			close(c.synced)
		}
	case schema.FrameSent:
		c.w.acked(f.ID, now)
	case schema.FrameMsg:
		c.w.delivered(c, f, now)
	case schema.FrameOK:
		c.w.burned(f.ID, now)
	case schema.FrameError:
		c.w.errorFrame(f, now)
	}
}

// readFrame returns the read request burning seq; its id names the message.
func readFrame(msgID string, seq uint64) []byte {
	return []byte(`{"type":"read","id":"r` + msgID + `","seq":` + strconv.FormatUint(seq, 10) + `}`)
}

// closeCode returns the close code in a read error, or "" when the error is
// not a close.
func closeCode(err error) string {
	if ce, ok := err.(*websocket.CloseError); ok {
		return strconv.Itoa(ce.Code)
	}
	if strings.Contains(err.Error(), "use of closed network connection") {
		return "local"
	}
	return "io"
}
