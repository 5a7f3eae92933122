package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mayfly-im/mayfly/fabric/account"
	"github.com/mayfly-im/mayfly/schema"
)

const (
	subprotocolV1 = schema.SubprotocolV1
	// maxFrame bounds one incoming WebSocket message; larger ones close the
	// connection with 1009.
	maxFrame = 128 << 10
	// writeWait bounds one write to a client.
	writeWait = 10 * time.Second
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
	writeJSON(w, status, schema.ErrorBody{Error: schema.Errorf(code, "websocket handshake refused: "+reason.Error())})
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
	c := &wsConn{s: s, ws: ws, p: p, send: make(chan []byte, s.cfg.SendQueue), quit: make(chan struct{})}
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
	if err := c.s.hub.add(c); err != nil {
		c.s.log.Error("websocket subscribe failed", "user_id", c.p.UserID, "err", err)
		c.close(websocket.CloseInternalServerErr, "internal")
		c.ws.Close()
		return
	}
	defer c.s.hub.remove(c)
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); c.writer() }()
	c.enqueue(schema.Frame{Type: schema.FrameHello, V: schema.ProtocolVersion, UserID: c.p.UserID, DeviceID: c.p.DeviceID})
	reason := c.reader()
	c.close(websocket.CloseNormalClosure, reason)
	<-writerDone
	c.ws.Close()
	c.s.metrics.wsClosed.WithLabelValues(c.closeReason()).Inc()
}

func (c *wsConn) closeReason() string {
	if c.closeWhy == "" {
		return "client"
	}
	return c.closeWhy
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
			if websocket.IsCloseError(err, websocket.CloseMessageTooBig) || strings.Contains(err.Error(), "read limit exceeded") {
				c.close(websocket.CloseMessageTooBig, "frame_too_large")
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

// handleFrame answers one client frame; it reports false for a malformed one.
func (c *wsConn) handleFrame(msg []byte) bool {
	var f schema.Frame
	if err := json.Unmarshal(msg, &f); err != nil || f.Type == "" {
		c.s.metrics.wsFrames.WithLabelValues("malformed", string(schema.CodeBadRequest)).Inc()
		c.enqueue(schema.Frame{Type: schema.FrameError, Error: schema.Errorf(schema.CodeBadRequest, "frame is not a JSON object with a type")})
		return false
	}
	var err error
	switch f.Type {
	case schema.FramePing:
		c.enqueue(schema.Frame{Type: schema.FramePong, ID: f.ID})
	default:
		c.s.metrics.wsFrames.WithLabelValues("unknown", string(schema.CodeBadRequest)).Inc()
		c.enqueue(schema.Frame{Type: schema.FrameError, ID: f.ID, Error: schema.Errorf(schema.CodeBadRequest, "unknown frame type")})
		return false
	}
	code := "ok"
	if err != nil {
		e := schema.AsError(err)
		code = string(e.Code)
		c.enqueue(schema.Frame{Type: schema.FrameError, ID: f.ID, Error: e})
	}
	c.s.metrics.wsFrames.WithLabelValues(f.Type, code).Inc()
	return true
}

// enqueue queues f for the writer without blocking. A full queue means the
// client is not reading: the connection is closed as a slow consumer.
func (c *wsConn) enqueue(f schema.Frame) {
	b, err := json.Marshal(f)
	if err != nil {
		c.s.log.Error("encode frame", "type", f.Type, "err", err)
		return
	}
	c.enqueueRaw(b)
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

// close asks the connection to close with code and reason; the first call wins.
func (c *wsConn) close(code int, reason string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeWhy = code, reason
		close(c.quit)
	})
}

// ctx returns a context for a request made on behalf of this connection.
func (c *wsConn) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}
