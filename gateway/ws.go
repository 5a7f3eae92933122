package gateway

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
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

var errNoSubprotocol = schema.Errorf(schema.CodeBadRequest, "websocket handshake refused: offer the subprotocol "+subprotocolV1)

// offersV1 reports whether the handshake r offers the mayfly.v1
// subprotocol, which docs/protocol.md requires: a client that does not
// offer it does not speak the protocol (or not this version of it).
func offersV1(r *http.Request) bool {
	return slices.Contains(websocket.Subprotocols(r), subprotocolV1)
}

// serveWS authenticates and upgrades GET /v1/ws. A handshake must offer the
// mayfly.v1 subprotocol.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.checkOrigin(r) {
		s.metrics.requests.WithLabelValues("GET /v1/ws", string(schema.CodeForbidden)).Inc()
		writeJSON(w, http.StatusForbidden, schema.ErrorBody{Error: schema.Errorf(schema.CodeForbidden, "origin not allowed")})
		return
	}
	if websocket.IsWebSocketUpgrade(r) && !offersV1(r) {
		s.metrics.requests.WithLabelValues("GET /v1/ws", string(schema.CodeBadRequest)).Inc()
		writeJSON(w, http.StatusBadRequest, schema.ErrorBody{Error: errNoSubprotocol})
		return
	}
	p, err := s.cfg.Accounts.Authenticate(r.Context(), wsToken(r))
	if err != nil {
		e, fault := schema.ClientError(err)
		if fault {
			s.log.Error("websocket authentication failed", "err", err)
		}
		s.metrics.requests.WithLabelValues("GET /v1/ws", string(e.Code)).Inc()
		writeError(w, "GET /v1/ws", e)
		return
	}
	if err := s.hub.admit(p.UserID, p.DeviceID); err != nil {
		s.metrics.requests.WithLabelValues("GET /v1/ws", string(schema.CodeRateLimited)).Inc()
		writeError(w, "GET /v1/ws", err)
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
	hj := &wsHijacker{ResponseWriter: w, pool: &s.writeBatches}
	ws, err := s.upgrader.Upgrade(hj, r, nil)
	if err != nil {
		s.conns.Done()
		return // upgradeError answered
	}
	s.metrics.requests.WithLabelValues("GET /v1/ws", "ok").Inc()
	t := s.newWSConn(ws, hj)
	c := s.newSession(t, p)
	// The set-up runs on the handshake's goroutine, which ends afterwards:
	// the deep stack its calls need is not kept by the reader.
	if !c.open() {
		t.closeSocket()
		c.release()
		return
	}
	t.readyReads()
	go t.run()
}

// wsUpgrader returns the WebSocket handshake settings. Write buffers come
// from a pool, so an idle connection holds none. The read buffer is the one
// wsHijacker makes (ReadBufferSize 0 has the library take it).
func (s *Server) wsUpgrader() websocket.Upgrader {
	return websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   0,
		WriteBufferSize:  1024,
		WriteBufferPool:  &s.writeBuffers,
		Subprotocols:     []string{subprotocolV1},
		CheckOrigin:      s.checkOrigin,
		Error:            s.upgradeError,
	}
}

// newWSConn returns the transport for ws, upgraded through hj, its ping
// timer running. Its session must be set before it runs.
func (s *Server) newWSConn(ws *websocket.Conn, hj *wsHijacker) *wsConn {
	c := &wsConn{
		cfg: &s.cfg, log: s.log, metrics: s.metrics, ws: ws,
		br: hj.br, raw: hj.conn, out: hj.out,
		quit: make(chan struct{}),
	}
	c.mu.Lock() // pingDue reads c.ping under c.mu
	c.ping = time.AfterFunc(s.cfg.PingInterval, c.pingDue)
	c.mu.Unlock()
	return c
}

// wsConn is the WebSocket transport of one client: it only moves frames.
// It reads frames and hands each to its session, writes the frames the
// session queues, pings, and closes. The reader goroutine (run) owns
// reads; a writer goroutine, running only while there is something to
// write, owns writes (ws_writer.go). It is the session's sink.
type wsConn struct {
	cfg     *Config // SendQueue, PingInterval; read only
	log     *slog.Logger
	metrics *metrics
	sess    *session // the protocol session the frames are for; set before run
	ws      *websocket.Conn
	quit    chan struct{} // closed by close
	ping    *time.Timer   // fires every PingInterval; runs pingDue

	// br is the library's read buffer and raw the socket under it, for the
	// reader's idle wait (ws_read.go); nil when the handshake made none.
	br  *bufio.Reader
	raw syscall.RawConn
	out *batchConn // the socket the library writes to; nil likewise

	writers sync.WaitGroup // the writer goroutine, while one runs

	mu        sync.Mutex
	queue     frameQueue    // frames for the writer
	room      chan struct{} // made by a waiting enqueueWait; closed when a frame leaves the queue
	writing   bool          // a writer goroutine runs
	pingNow   bool          // a ping is due
	closed    bool          // close was called; quit is closed
	closeSent bool          // the writer sent the close frame; no writer starts again
	closeCode int           // set by the first close
	closeWhy  string        // likewise
}

// open registers the session, checks its device is still active and makes
// it online. It reports false when the session could not be registered;
// it is closed then, and the caller closes the transport and calls
// release.
func (c *session) open() bool {
	if !c.register() {
		return false
	}
	c.recheck()
	c.offline = c.presenceOnline()
	return true
}

// register queues hello and adds the session to the hub. It reports false
// when that failed; the session is closed then.
func (c *session) register() bool {
	c.s.metrics.wsConns.Inc()
	// hello is queued before the hub subscribes, so it is the first frame
	// even when an event arrives at once.
	c.enqueue(schema.HelloFrame{Type: schema.FrameHello, V: schema.ProtocolVersion, UserID: c.p.UserID, DeviceID: c.p.DeviceID})
	if err := c.s.hub.add(c); err != nil {
		c.s.log.Error("websocket subscribe failed", "user_id", c.p.UserID, "err", err)
		c.close(websocket.CloseInternalServerErr, "internal")
		return false
	}
	// Shutdown closes the connections in the hub; one added after it
	// looked closes itself.
	select {
	case <-c.s.shutdown:
		c.close(websocket.CloseGoingAway, "shutdown")
	default:
	}
	return true
}

// readyReads sets the read limits and deadline, which pongs extend.
func (c *wsConn) readyReads() {
	c.ws.SetReadLimit(maxFrame)
	c.ws.SetReadDeadline(time.Now().Add(c.readTimeout()))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(c.readTimeout())) })
}

// readTimeout is how long the connection may stay silent: two pings
// unanswered.
func (c *wsConn) readTimeout() time.Duration { return 2 * c.cfg.PingInterval }

// run reads frames until the connection ends, then ends its session. It
// is the connection's owner goroutine; when the reader stops to wait for
// the next frames on a fresh stack (ws_read.go), a new run takes over.
func (c *wsConn) run() {
	reason, more := c.reader()
	if more {
		go c.run()
		return
	}
	c.close(websocket.CloseNormalClosure, reason)
	c.sess.stopFeed()
	c.closeSocket()
	c.sess.end()
}

// end ends a session whose transport has closed: the device goes offline
// and the session leaves the hub.
func (c *session) end() {
	c.offline()
	c.s.hub.remove(c)
	c.release()
}

// release accounts for the end of a session; end calls it, and so does
// the owner of a session that never opened.
func (c *session) release() {
	c.s.metrics.wsConns.Dec()
	c.s.conns.Done()
}

// closeSocket waits for the writer to send the close frame, then closes the
// socket. close must have been called.
func (c *wsConn) closeSocket() {
	c.writers.Wait()
	c.ws.Close()
}

// recheck closes the connection with CloseTokenRevoked if its device was
// revoked after the handshake authenticated it but before the hub subscribed
// to the user's events: the device_revoked event of such a revocation reached
// no subscription. It flushes first, so the subscription is in place at the
// NATS server before the database is asked; a revocation is then either seen
// here or delivered as an event. On a failure the connection is closed too.
func (c *session) recheck() {
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
	default:
		// A connection is a use of the device: its "last seen" moves.
		if err := c.s.cfg.Accounts.Seen(ctx, c.p); err != nil {
			c.s.log.Warn("device last seen not updated", "user_id", c.p.UserID, "device_id", c.p.DeviceID, "err", err)
		}
	}
}

// reader reads and handles frames until an error; it returns a short
// reason. It returns more instead when the frames at hand are handled and
// the connection can wait for the next ones on a fresh goroutine, whose
// stack is small again (ws_read.go).
func (c *wsConn) reader() (reason string, more bool) {
	for {
		if err := c.awaitFrame(c.readTimeout()); err != nil {
			return "client", false
		}
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.close(websocket.CloseMessageTooBig, "frame_too_large")
				return "frame_too_large", false
			}
			return "client", false
		}
		c.ws.SetReadDeadline(time.Now().Add(c.readTimeout()))
		if reason := c.sess.received(msg); reason != "" {
			return reason, false
		}
		if c.raw != nil && c.br.Buffered() == 0 {
			return "", true
		}
	}
}

// ctx returns a context for a request made on behalf of this session.
func (c *session) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}
