package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/mayfly-im/mayfly/fabric/account"
	"github.com/mayfly-im/mayfly/schema"
)

const (
	subprotocolV1 = schema.SubprotocolV1
	// maxFrame bounds one incoming WebSocket message; larger ones close the
	// connection with 1009.
	maxFrame = schema.MaxFrameSize
	// writeWait bounds one write to a client.
	writeWait = 10 * time.Second
	// stallWait is how long a replay waits for room in a full send queue
	// before the client counts as a slow consumer.
	stallWait = 5 * time.Second
	// maxBadFrames malformed frames in a row close the connection.
	maxBadFrames = 10
)

// checkOrigin allows requests without Origin (non-browser clients), the
// server's own origin, and the configured allowlist.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return slices.ContainsFunc(s.cfg.AllowedOrigins, func(a string) bool { return strings.EqualFold(a, origin) })
}

func (s *Server) upgradeError(w http.ResponseWriter, r *http.Request, status int, reason error) {
	code := schema.CodeBadRequest
	if status == http.StatusForbidden {
		code = schema.CodeForbidden
	}
	// reason is the websocket library's text: log it, never send it.
	s.log.Debug("websocket handshake refused", "status", status, "reason", reason)
	writeJSON(w, status, schema.ErrorBody{Error: schema.Errorf(code, "websocket handshake refused: send a GET with the WebSocket upgrade headers")})
}

// wsToken finds the access token in the Authorization header or in a
// mayfly.token.<jwt> subprotocol. Never in the query string: URLs end up in logs.
func wsToken(r *http.Request) string {
	if t := bearer(r); t != "" {
		return t
	}
	for _, p := range websocket.Subprotocols(r) {
		if strings.HasPrefix(p, schema.TokenSubprotocolPrefix) {
			return strings.TrimPrefix(p, schema.TokenSubprotocolPrefix)
		}
	}
	return ""
}

// serveWS authenticates and upgrades GET /v1/ws.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.checkOrigin(r) {
		s.metrics.requests.WithLabelValues("GET /v1/ws", string(schema.CodeForbidden)).Inc()
		writeJSON(w, http.StatusForbidden, schema.ErrorBody{Error: schema.Errorf(schema.CodeForbidden, "origin not allowed")})
		return
	}
	p, err := s.cfg.Accounts.Authenticate(r.Context(), wsToken(r))
	if err != nil {
		e := schema.AsError(err)
		s.metrics.requests.WithLabelValues("GET /v1/ws", string(e.Code)).Inc()
		writeJSON(w, e.Code.Status(), schema.ErrorBody{Error: e})
		return
	}
	if err := s.hub.admit(p.UserID, p.DeviceID); err != nil {
		s.metrics.requests.WithLabelValues("GET /v1/ws", string(schema.CodeRateLimited)).Inc()
		writeJSON(w, http.StatusTooManyRequests, schema.ErrorBody{Error: err})
		return
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		writeJSON(w, http.StatusServiceUnavailable, schema.ErrorBody{Error: schema.Errorf(schema.CodeUnavailable, "server is shutting down")})
		return
	}
	s.conns.Add(1)
	s.mu.Unlock()
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.conns.Done()
		return // upgradeError answered
	}
	s.metrics.requests.WithLabelValues("GET /v1/ws", "ok").Inc()
	c := &wsConn{
		s: s, ws: ws, p: p,
		send:    make(chan []byte, s.cfg.SendQueue),
		quit:    make(chan struct{}),
		limiter: rate.NewLimiter(rate.Limit(s.cfg.FrameRate), s.cfg.FrameBurst),
	}
	go c.run()
}

// wsConn is one client WebSocket. The reader goroutine (run) owns reads; the
// writer goroutine owns writes except the final close frame.
type wsConn struct {
	s    *Server
	ws   *websocket.Conn
	p    account.Principal
	send chan []byte   // frames for the writer; never closed
	quit chan struct{} // closed by close

	limiter *rate.Limiter // frames per second; used by the reader only
	limited int           // rate-limited frames in a row; reader only
	feed    feed          // mailbox delivery state (ws_feed.go)

	closeOnce sync.Once
	closeCode int    // set once, before quit is closed
	closeWhy  string // likewise
}

// run registers the connection, reads frames until the connection ends, and
// cleans up. It is the connection's owner goroutine.
func (c *wsConn) run() {
	defer c.s.conns.Done()
	c.s.metrics.wsConns.Inc()
	defer c.s.metrics.wsConns.Dec()
	// hello is queued before the hub subscribes, so it is the first frame
	// even when an event arrives at once.
	c.enqueue(schema.HelloFrame{Type: schema.FrameHello, V: schema.ProtocolVersion, UserID: c.p.UserID, DeviceID: c.p.DeviceID})
	if err := c.s.hub.add(c); err != nil {
		c.s.log.Error("websocket subscribe failed", "user_id", c.p.UserID, "err", err)
		c.close(websocket.CloseInternalServerErr, "internal")
		c.ws.Close()
		return
	}
	defer c.s.hub.remove(c)
	c.recheck()
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); c.writer() }()
	defer c.presenceOnline()() // online + snapshot now; offline when run returns
	reason := c.reader()
	c.close(websocket.CloseNormalClosure, reason)
	c.stopFeed()
	<-writerDone
	c.ws.Close()
}

// recheck closes the connection with CloseTokenRevoked if its device was
// revoked after the handshake authenticated it but before the hub subscribed
// to the user's events: the device_revoked event of such a revocation reached
// no subscription. It flushes first, so the subscription is in place at the
// NATS server before the database is asked; a revocation is then either seen
// here or delivered as an event. On a failure the connection is closed too.
func (c *wsConn) recheck() {
	ctx, cancel := c.ctx()
	defer cancel()
	err := c.s.cfg.NATS.FlushWithContext(ctx)
	active := false
	if err == nil {
		active, err = c.s.cfg.Accounts.Active(ctx, c.p)
	}
	switch {
	case err != nil:
		c.s.log.Error("websocket device check failed", "user_id", c.p.UserID, "device_id", c.p.DeviceID, "err", err)
		c.close(websocket.CloseInternalServerErr, "internal")
	case !active:
		c.close(schema.CloseTokenRevoked, "token_revoked")
	}
}

// reader reads frames until an error; it returns a short reason.
func (c *wsConn) reader() string {
	c.ws.SetReadLimit(maxFrame)
	deadline := 2 * c.s.cfg.PingInterval
	c.ws.SetReadDeadline(time.Now().Add(deadline))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(deadline)) })
	bad := 0
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.close(websocket.CloseMessageTooBig, "frame_too_large")
				return "frame_too_large"
			}
			return "client"
		}
		c.ws.SetReadDeadline(time.Now().Add(deadline))
		if ok := c.handleFrame(msg); ok {
			bad = 0
		} else if bad++; bad >= maxBadFrames {
			c.close(schema.CloseBadFrames, "bad_frames")
			return "bad_frames"
		}
	}
}

// enqueue queues frame f (a schema.XxxFrame) for the writer without
// blocking. A full queue means the client is not reading: the connection is
// closed as a slow consumer.
func (c *wsConn) enqueue(f any) {
	b, err := schema.EncodeFrame(f)
	if err != nil {
		c.s.log.Error("encode frame", "frame", fmt.Sprintf("%T", f), "err", err)
		return
	}
	c.enqueueRaw(b)
}

// enqueueWait queues frame f, waiting for room while the client reads
// (replay uses it: a backlog may be larger than the queue). If the queue
// makes no progress for stallWait the client is not reading: the
// connection is closed as a slow consumer.
func (c *wsConn) enqueueWait(f any) {
	b, err := schema.EncodeFrame(f)
	if err != nil {
		c.s.log.Error("encode frame", "frame", fmt.Sprintf("%T", f), "err", err)
		return
	}
	select {
	case c.send <- b:
		return
	default:
	}
	stall := time.NewTimer(stallWait)
	defer stall.Stop()
	select {
	case c.send <- b:
	case <-c.quit:
	case <-stall.C:
		c.close(schema.CloseSlowConsumer, "slow_consumer")
	}
}

func (c *wsConn) enqueueRaw(b []byte) {
	select {
	case c.send <- b:
	case <-c.quit:
	default:
		c.close(schema.CloseSlowConsumer, "slow_consumer")
	}
}

// writer sends queued frames and pings until the connection closes, then
// sends the close frame.
func (c *wsConn) writer() {
	ping := time.NewTicker(c.s.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case b := <-c.send:
			select {
			case <-c.quit:
				continue // closing: the close frame goes next, not the backlog
			default:
			}
			c.ws.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				c.close(websocket.CloseAbnormalClosure, "write_error")
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				c.close(websocket.CloseAbnormalClosure, "write_error")
			}
		case <-c.s.shutdown:
			c.close(websocket.CloseGoingAway, "shutdown")
		case <-c.quit:
			msg := websocket.FormatCloseMessage(c.closeCode, c.closeWhy)
			c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			// Unblock the reader; it sees the error and returns.
			c.ws.UnderlyingConn().SetReadDeadline(time.Now())
			return
		}
	}
}

// close asks the connection to close with code and reason; the first call
// wins and is counted in the metrics right away (the close frame may have to
// wait for a write in progress).
func (c *wsConn) close(code int, reason string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeWhy = code, reason
		close(c.quit)
		if reason == "" {
			reason = "client"
		}
		c.s.metrics.wsClosed.WithLabelValues(reason).Inc()
	})
}

// ctx returns a context for a request made on behalf of this connection.
func (c *wsConn) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}
