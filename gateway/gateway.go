// Package gateway is Mayfly's client edge: the HTTP API, the WebSocket
// endpoint, health, readiness and metrics. It translates requests into calls
// on the fabric services and their errors into the closed set of client
// error codes (schema.Code); internal error text never reaches a client.
//
// A WebSocket is two parts: a transport (wsConn) that only moves frames
// and a session that owns the protocol, writing its frames to a small sink
// interface the transport implements; each client frame type has one entry
// in the frame table (ws_requests.go). docs/protocol.md, "In the server",
// describes the split and how to add a frame type.
//
// A [Server] is safe for concurrent use. Its WebSocket connections each run
// a reader goroutine, and a writer goroutine while they have something to
// write, owned by the Server; Shutdown closes them all with a going-away
// close code and waits for them.
package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mayfly-im/mayfly/fabric/account"
	"github.com/mayfly-im/mayfly/fabric/friends"
	"github.com/mayfly-im/mayfly/fabric/keyrate"
	"github.com/mayfly-im/mayfly/fabric/lifecycle"
	"github.com/mayfly-im/mayfly/fabric/mailbox"
	"github.com/mayfly-im/mayfly/fabric/presence"
	"github.com/mayfly-im/mayfly/gateway/web"
)

// Check is one readiness probe: Name is reported, Func must return nil when
// the dependency answers.
type Check struct {
	Name string
	Func func(context.Context) error
}

// Config configures a Server. Zero values take the documented defaults.
type Config struct {
	Accounts *account.Service // required
	NATS     *nats.Conn       // required: events for connected users
	Logger   *slog.Logger     // default discards
	// Friends serves the friend graph API; without it those routes answer not_found.
	Friends *friends.Service
	// Mailbox stores, replays and burns messages for the WebSocket
	// protocol; without it message requests answer unavailable.
	Mailbox *mailbox.Service
	// Presence makes connected devices online and sends friends' presence
	// (gateway/presence.go); without it presence is off.
	Presence *presence.Service
	// Lifecycle deletes accounts (DELETE /v1/account); without it that
	// route answers unavailable.
	Lifecycle *lifecycle.Service
	// Registry receives the gateway's metrics and is served at /metrics;
	// default a fresh registry.
	Registry *prometheus.Registry
	// Ready lists the probes /readyz runs.
	Ready []Check
	// AllowedOrigins lists the browser origins (scheme://host[:port]) that may
	// open WebSockets besides the server's own; requests without an Origin
	// header (non-browser clients) are always allowed.
	AllowedOrigins []string
	// AnonRate and AnonBurst bound unauthenticated requests (register,
	// challenge, login, device linking) per client IP; default 5/s, burst
	// 20. Refreshes get ten times as much: every logged-in device behind one
	// address (an office, a carrier NAT) refreshes every 15 minutes, and a
	// refresh token is a 256-bit secret, not something to guess.
	AnonRate  float64
	AnonBurst int
	// SendQueue is how many outgoing frames a WebSocket may have queued
	// before it is closed as a slow consumer; default 256.
	SendQueue int
	// PingInterval is how often the server pings idle WebSockets; default 30s.
	PingInterval time.Duration
	// FrameRate and FrameBurst bound the frames one WebSocket may send
	// (token bucket); default 50/s, burst 100. Frames over it are answered
	// rate_limited; 20 in a row close the connection with 4004.
	FrameRate  float64
	FrameBurst int
}

// Server serves the HTTP API and WebSockets.
type Server struct {
	cfg         Config
	log         *slog.Logger
	mux         *http.ServeMux
	upgrader    websocket.Upgrader
	anon        *keyrate.Limiter // per client address (/64 for IPv6)
	refreshRate *keyrate.Limiter // per client address, for POST /v1/refresh
	metrics     *metrics
	hub         *hub

	mu       sync.Mutex
	tracker  *presence.Tracker // started by the first connection (presence.go); nil until then
	closing  bool              // set by Shutdown; no new WebSockets
	conns    sync.WaitGroup    // one per live WebSocket
	shutdown chan struct{}     // closed by Shutdown

	// writeBuffers lends WebSocket write buffers: a connection holds one
	// only while it writes a message. writeBatches lends the buffers of
	// batched writes (ws_writer.go).
	writeBuffers sync.Pool
	writeBatches sync.Pool
}

// New returns a Server for cfg. It starts nothing: the WebSocket hub's
// dispatcher and the presence tracker start with the first WebSocket, and
// Shutdown stops what was started.
func New(cfg Config) (*Server, error) {
	if cfg.Accounts == nil || cfg.NATS == nil {
		return nil, errors.New("gateway: config needs Accounts and NATS")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.AnonRate <= 0 {
		cfg.AnonRate = 5
	}
	if cfg.AnonBurst <= 0 {
		cfg.AnonBurst = 20
	}
	if cfg.SendQueue <= 0 {
		cfg.SendQueue = 256
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 30 * time.Second
	}
	if cfg.FrameRate <= 0 {
		cfg.FrameRate = 50
	}
	if cfg.FrameBurst <= 0 {
		cfg.FrameBurst = 100
	}
	s := &Server{
		cfg:         cfg,
		log:         cfg.Logger,
		mux:         http.NewServeMux(),
		anon:        keyrate.New(cfg.AnonRate, cfg.AnonBurst),
		refreshRate: keyrate.New(10*cfg.AnonRate, 10*cfg.AnonBurst),
		metrics:     newMetrics(cfg.Registry),
		shutdown:    make(chan struct{}),
	}
	s.hub = newHub(s)
	s.upgrader = s.wsUpgrader()
	s.routes()
	return s, nil
}

// Handler returns the HTTP handler for all routes.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}))
	s.handle("POST /v1/register", s.anonLimited(s.register))
	s.handle("POST /v1/login/challenge", s.anonLimited(s.challenge))
	s.handle("POST /v1/login", s.anonLimited(s.login))
	s.handle("POST /v1/refresh", s.limited(s.refreshRate, s.refresh))
	s.handle("GET /v1/users/{handle}", s.authed(s.lookup))
	s.handle("GET /v1/devices", s.authed(s.devices))
	s.handle("DELETE /v1/devices/{id}", s.authed(s.revokeDevice))
	s.handle("DELETE /v1/account", s.authed(s.deleteAccount))
	s.mux.HandleFunc("GET /v1/ws", s.serveWS)
	s.friendRoutes()
	s.linkRoutes()
	s.identityRoutes()
	s.presenceRoutes()
	// The browser client (docs/web.md): the app at "/", its files under /assets/.
	app := web.New()
	s.mux.Handle("GET /{$}", app)
	s.mux.Handle("GET "+web.AssetPrefix, app)
	s.handle("/", func(w http.ResponseWriter, r *http.Request) error {
		return errNotFound
	})
}

// healthz answers 200 while the process runs.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

// readyz runs every readiness check with a short timeout and answers 200
// only if all pass; the body names each check and its state.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	status := map[string]string{}
	ok := true
	for _, c := range s.cfg.Ready {
		if err := c.Func(ctx); err != nil {
			ok = false
			status[c.Name] = "down"
			s.log.Warn("readiness check failed", "check", c.Name, "err", err)
			continue
		}
		status[c.Name] = "ok"
	}
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"ready": ok, "checks": status})
}

// Shutdown stops accepting WebSockets, closes every live one with close
// code 1001 (going away) and waits for their goroutines, or until ctx ends.
// The caller shuts down the http.Server that serves Handler.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		close(s.shutdown)
	}
	s.mu.Unlock()
	// A connection registered after this walk sees s.shutdown closed.
	for _, c := range s.hub.all() {
		c.close(websocket.CloseGoingAway, "shutdown")
	}
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
		s.hub.close()
		return s.closePresence(ctx)
	case <-ctx.Done():
		s.closePresence(ctx)
		return ctx.Err()
	}
}
