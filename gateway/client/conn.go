package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mayfly-im/mayfly/schema"
)

// WebSocket timing and limits.
const (
	// readTimeout closes a connection on which nothing arrived for this
	// long; the client pings every pingInterval, so a live server always
	// answers well within it.
	readTimeout  = 75 * time.Second
	pingInterval = 25 * time.Second
	writeWait    = 10 * time.Second
	// maxServerFrame bounds one frame from the server (an envelope is at
	// most 96 KiB).
	maxServerFrame = 1 << 20
	// maxQueued frames waiting for the Handler close the connection; the
	// replay resumes from the cursor on the next one.
	maxQueued = 10000
)

// errConnLost fails requests whose connection ended before the answer.
var errConnLost = errors.New("client: connection lost")

// conn is one WebSocket connection: a reader goroutine routes answers to
// waiting requests and queues messages, events and synced frames for the
// Run goroutine, which owns the connection.
type conn struct {
	ws    *websocket.Conn
	hello schema.HelloFrame
	ids   atomic.Uint64 // request id counter

	wmu sync.Mutex // serialises writes to ws

	mu      sync.Mutex
	waiting map[string]chan any // request id -> answer; guarded by mu
	queue   []any               // frames for the Run goroutine; guarded by mu
	ended   bool                // the reader has stopped; guarded by mu
	err     error               // why; guarded by mu
	notify  chan struct{}       // signalled when queue grows or ended is set
	done    chan struct{}       // closed when the reader has stopped
}

// dial opens an authenticated WebSocket and reads its hello frame. If the
// server says the token expired, it refreshes and tries once more.
func (c *Client) dial(ctx context.Context) (*conn, error) {
	for attempt := 0; ; attempt++ {
		tok, err := c.Token(ctx)
		if err != nil {
			return nil, err
		}
		cn, err := c.dialOnce(ctx, tok)
		if attempt == 0 && schema.HasCode(err, schema.CodeTokenExpired) {
			if err := c.refresh(ctx, tok); err != nil {
				return nil, err
			}
			continue
		}
		return cn, err
	}
}

// dialOnce connects to the gateways in turn, from the one in use, until
// one accepts the connection; a gateway that cannot be reached is left for
// the next.
func (c *Client) dialOnce(ctx context.Context, token string) (*conn, error) {
	for tries := 1; ; tries++ {
		i, base := c.servers.current()
		cn, err := c.dialServer(ctx, base, token)
		var te *transportError
		if err != nil && errors.As(err, &te) && c.servers.failover(i) && tries < c.servers.count() && ctx.Err() == nil {
			c.log.Info("mayfly gateway unreachable; trying the next", "err", err)
			continue
		}
		return cn, err
	}
}

// dialServer opens the WebSocket to the gateway at base.
func (c *Client) dialServer(ctx context.Context, base *url.URL, token string) (*conn, error) {
	u := *base
	u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	u.Path += "/v1/ws"
	d := websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		NetDialContext:   newDialer().DialContext,
		HandshakeTimeout: 15 * time.Second,
		Subprotocols:     []string{schema.SubprotocolV1},
	}
	ws, resp, err := d.DialContext(ctx, u.String(), http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
			return nil, fmt.Errorf("connect: %w", decodeError(resp.StatusCode, body))
		}
		return nil, fmt.Errorf("connect: %w", unreachable(err))
	}
	cn := &conn{ws: ws, waiting: map[string]chan any{}, notify: make(chan struct{}, 1), done: make(chan struct{})}
	ws.SetReadLimit(maxServerFrame)
	ws.SetReadDeadline(time.Now().Add(writeWait))
	_, b, err := ws.ReadMessage()
	if err == nil {
		var f any
		if f, err = schema.DecodeServerFrame(b); err == nil {
			if h, ok := f.(*schema.HelloFrame); ok {
				cn.hello = *h
			} else {
				err = fmt.Errorf("first frame is %T, want hello", f)
			}
		}
	}
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("connect: %w", unreachable(err))
	}
	ws.SetPingHandler(func(data string) error {
		ws.SetReadDeadline(time.Now().Add(readTimeout))
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeWait))
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			return err
		}
		return nil
	})
	go cn.read()
	return cn, nil
}

// nextID returns a fresh request id for this connection.
func (cn *conn) nextID(kind string) string {
	return kind + "-" + strconv.FormatUint(cn.ids.Add(1), 10)
}

// write sends one frame.
func (cn *conn) write(f any) error {
	b, err := schema.EncodeFrame(f)
	if err != nil {
		return err
	}
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	cn.ws.SetWriteDeadline(time.Now().Add(writeWait))
	if err := cn.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		return errConnLost
	}
	return nil
}

// request sends frame f with request id id and waits for its answer: the
// result frame, or the *schema.Error of an error frame. It fails with
// errConnLost if the connection ends first.
func (cn *conn) request(ctx context.Context, id string, f any) (any, error) {
	ch := make(chan any, 1)
	cn.mu.Lock()
	if cn.ended {
		cn.mu.Unlock()
		return nil, errConnLost
	}
	cn.waiting[id] = ch
	cn.mu.Unlock()
	defer func() {
		cn.mu.Lock()
		delete(cn.waiting, id)
		cn.mu.Unlock()
	}()
	if err := cn.write(f); err != nil {
		return nil, err
	}
	select {
	case a := <-ch:
		if e, ok := a.(*schema.ErrorFrame); ok {
			return nil, e.Error
		}
		return a, nil
	case <-cn.done:
		return nil, errConnLost
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// read is the reader goroutine.
func (cn *conn) read() {
	var err error
	for {
		cn.ws.SetReadDeadline(time.Now().Add(readTimeout))
		var b []byte
		if _, b, err = cn.ws.ReadMessage(); err != nil {
			break
		}
		f, derr := schema.DecodeServerFrame(b)
		if derr != nil {
			continue // an unknown frame type from a newer server
		}
		if !cn.route(f) {
			err = errors.New("client: too many frames waiting for the handler")
			break
		}
	}
	cn.mu.Lock()
	cn.ended, cn.err = true, closeError(err)
	cn.mu.Unlock()
	close(cn.done)
	cn.signal()
}

// route hands an answer to its waiting request, or queues the frame for the
// Run goroutine. It reports false when the queue is full.
func (cn *conn) route(f any) bool {
	id := ""
	switch a := f.(type) {
	case *schema.SentFrame:
		id = a.ID
	case *schema.OKFrame:
		id = a.ID
	case *schema.UnreadCountsFrame:
		id = a.ID
	case *schema.PongFrame:
		id = a.ID
	case *schema.ErrorFrame:
		id = a.ID
	}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if ch, ok := cn.waiting[id]; ok && id != "" {
		ch <- f
		return true
	}
	switch f.(type) {
	case *schema.MsgFrame, *schema.EventFrame, *schema.SyncedFrame, *schema.ErrorFrame:
		if len(cn.queue) >= maxQueued {
			return false
		}
		cn.queue = append(cn.queue, f)
		cn.signalLocked()
	}
	return true
}

func (cn *conn) signal() {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	cn.signalLocked()
}

// signalLocked wakes the Run goroutine. cn.mu must be held.
func (cn *conn) signalLocked() {
	select {
	case cn.notify <- struct{}{}:
	default:
	}
}

// next returns the next queued frame, waiting for one. It returns nil and
// the reason once the connection ended and the queue is empty, or when ctx
// ends.
func (cn *conn) next(ctx context.Context) (any, error) {
	for {
		cn.mu.Lock()
		if len(cn.queue) > 0 {
			f := cn.queue[0]
			cn.queue[0] = nil
			cn.queue = cn.queue[1:]
			cn.mu.Unlock()
			return f, nil
		}
		if cn.ended {
			err := cn.err
			cn.mu.Unlock()
			return nil, err
		}
		cn.mu.Unlock()
		select {
		case <-cn.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// close closes the connection with a normal closure and waits for the
// reader to stop.
func (cn *conn) close() {
	cn.wmu.Lock()
	cn.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	cn.wmu.Unlock()
	cn.ws.Close()
	<-cn.done
}

// closeError turns the reader's final error into what Run acts on: a
// revoked session is a *schema.Error token_revoked (Run stops); anything
// else is a lost connection (Run reconnects).
func closeError(err error) error {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		switch ce.Code {
		case schema.CloseTokenRevoked:
			return schema.Errorf(schema.CodeTokenRevoked, "the server ended this device's session")
		case schema.CloseRateLimited:
			return fmt.Errorf("%w: closed by the server: rate limited", errConnLost)
		}
		return fmt.Errorf("%w: closed by the server with code %d", errConnLost, ce.Code)
	}
	if err == nil {
		return errConnLost
	}
	return fmt.Errorf("%w: %v", errConnLost, err)
}
