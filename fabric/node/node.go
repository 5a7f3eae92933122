// Package node runs an embedded NATS server with JetStream, the fabric that
// mayflyd uses when no external NATS URL is given.
//
// The server has three accounts: MAYFLY, where all application subjects and
// streams live (JetStream enabled) and where NATS-native clients are placed;
// AUTH, where the auth callout responder runs; and SYS, the system account.
// Mayfly's own processes log in with fixed users (ServiceUser, AuthUser,
// SysUser) that share one random password. Every other connection is
// decided by the auth callout (fabric/callout) when CalloutIssuer is set,
// and refused otherwise. A Node is safe
// for concurrent use; Shutdown may be called more than once.
package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"
)

// Account names and the service user.
const (
	AppAccount    = "MAYFLY"
	AuthAccount   = "AUTH"
	SystemAccount = "SYS"
	ServiceUser   = "mayfly-service" // in MAYFLY: the fabric services and gateways
	AuthUser      = "mayfly-auth"    // in AUTH: the auth callout responder
	SysUser       = "mayfly-sys"     // in SYS: kicks connections of revoked devices
)

// Config configures a Node. Zero values take the documented defaults.
type Config struct {
	// Listen is the host:port for NATS clients; default "127.0.0.1:4222".
	// Port 0 picks a free port.
	Listen string
	// StoreDir is the JetStream store directory; required.
	StoreDir string
	// ServerName names the server in a cluster; default "mayfly".
	ServerName string
	// ServicePassword is the password of the service user; required.
	ServicePassword string
	// CalloutIssuer is the public account nkey ("A...") whose signature the
	// server accepts on auth callout responses. Empty disables client logins.
	CalloutIssuer string
	// WebSocketListen is the host:port of NATS's own WebSocket listener for
	// browsers (plain ws: put TLS in front in production); empty disables it.
	WebSocketListen string
	// WebSocketOrigins are the browser origins allowed on the WebSocket
	// listener; empty allows any origin (clients authenticate in CONNECT).
	WebSocketOrigins []string
	// SyncInterval is how often JetStream fsyncs file stores; 0 means every
	// write is synced (sync_interval: always), the safe default for mailboxes.
	SyncInterval time.Duration
	// CompactInterval is, when every write is synced (SyncInterval 0), how
	// often JetStream looks through each stream's closed blocks and
	// rewrites those with more than half of their bytes deleted, which
	// takes deleted messages out of the files; default 1m (nats-server's
	// own default is 2m). With SyncInterval set, that interval is used.
	CompactInterval time.Duration
	// APIWorkers sizes the server's JetStream API worker pool; default
	// MaxAPIWorkers. See startServer.
	APIWorkers int
	// Logger receives the server's log lines; default discards.
	Logger *slog.Logger
}

// Node is a running embedded NATS server.
type Node struct {
	srv *server.Server
	cfg Config
}

// Start starts the server and waits until it accepts connections.
func Start(cfg Config) (*Node, error) {
	opts, err := options(&cfg)
	if err != nil {
		return nil, err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	srv.SetLoggerV2(&logger{cfg.Logger}, false, false, false)
	startServer(srv, cfg.APIWorkers)
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("nats server: not ready after 30s (is the port in use?)")
	}
	return &Node{srv: srv, cfg: cfg}, nil
}

// DefaultCompactInterval is Config.CompactInterval's default.
const DefaultCompactInterval = time.Minute

// MaxAPIWorkers is the largest JetStream API worker pool nats-server
// starts (server/jetstream_api.go caps it at 16).
const MaxAPIWorkers = 16

// gomaxprocsMu serialises startServer's change of GOMAXPROCS.
var gomaxprocsMu sync.Mutex

// startServer starts srv with a JetStream API pool of workers goroutines.
//
// nats-server serves every JetStream API request ($JS.API.>, among them
// the burn's STREAM.MSG.DELETE) from a pool it sizes once, at start, from
// GOMAXPROCS. With sync_interval always each delete waits for an fsync
// while holding its worker, so on a 2-core machine two workers delete at
// most two messages per fsync time although the disk serves many fsyncs
// in parallel (BENCHMARKS.md measures both). The pool waits on the disk,
// not the CPU, so Start raises GOMAXPROCS for the duration of srv.Start
// only and puts it back; the Go scheduler keeps the process's own value.
func startServer(srv *server.Server, workers int) {
	if workers <= 0 {
		workers = MaxAPIWorkers
	}
	gomaxprocsMu.Lock()
	defer gomaxprocsMu.Unlock()
	prev := runtime.GOMAXPROCS(0)
	if workers > prev {
		runtime.GOMAXPROCS(workers)
		defer runtime.GOMAXPROCS(prev)
	}
	srv.Start()
}

func options(cfg *Config) (*server.Options, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("nats server: config needs a StoreDir")
	}
	if cfg.ServicePassword == "" {
		return nil, errors.New("nats server: config needs a ServicePassword")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:4222"
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "mayfly"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("nats listen address %q: bad port", cfg.Listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	// The server keeps only a bcrypt hash; the password is random and long,
	// so the minimum cost is enough and keeps connecting fast.
	hash, err := bcrypt.GenerateFromPassword([]byte(cfg.ServicePassword), bcrypt.MinCost)
	if err != nil {
		return nil, fmt.Errorf("hash service password: %w", err)
	}
	opts := &server.Options{}
	if err := opts.ProcessConfigString(configText(cfg.CalloutIssuer, string(hash))); err != nil {
		return nil, fmt.Errorf("nats server config: %w", err)
	}
	opts.ServerName = cfg.ServerName
	opts.Host = host
	opts.Port = port
	opts.JetStream = true
	opts.StoreDir = cfg.StoreDir
	opts.NoSigs = true
	opts.MaxPayload = 256 * 1024
	if cfg.WebSocketListen != "" {
		if err := websocketOptions(opts, *cfg); err != nil {
			return nil, err
		}
	}
	if cfg.SyncInterval <= 0 {
		// The file store's periodic pass (syncBlocks) runs every
		// SyncInterval even with SyncAlways; it then only compacts.
		opts.SyncAlways = true
		opts.SyncInterval = cfg.CompactInterval
		if opts.SyncInterval <= 0 {
			opts.SyncInterval = DefaultCompactInterval
		}
	} else {
		opts.SyncInterval = cfg.SyncInterval
	}
	return opts, nil
}

// configText is the accounts and authorization part of the server config.
func configText(issuer, hash string) string {
	conf := fmt.Sprintf(`accounts {
  %s { jetstream: enabled, users: [ { user: %q, password: %q } ] }
  %s { users: [ { user: %q, password: %q } ] }
  %s { users: [ { user: %q, password: %q } ] }
}
system_account: %s
`, AppAccount, ServiceUser, hash, AuthAccount, AuthUser, hash, SystemAccount, SysUser, hash, SystemAccount)
	if issuer != "" {
		conf += fmt.Sprintf(`authorization {
  timeout: 3s
  auth_callout {
    issuer: %q
    account: %s
    auth_users: [ %q, %q, %q ]
  }
}
`, issuer, AuthAccount, ServiceUser, AuthUser, SysUser)
	}
	return conf
}

func websocketOptions(opts *server.Options, cfg Config) error {
	host, portStr, err := net.SplitHostPort(cfg.WebSocketListen)
	if err != nil {
		return fmt.Errorf("nats websocket address %q: %w", cfg.WebSocketListen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return fmt.Errorf("nats websocket address %q: bad port", cfg.WebSocketListen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts.Websocket.Host = host
	opts.Websocket.Port = port
	opts.Websocket.NoTLS = true
	opts.Websocket.AllowedOrigins = cfg.WebSocketOrigins
	opts.Websocket.Compression = false
	return nil
}

// WebSocketURL returns the ws:// URL of the NATS WebSocket listener, or "".
func (n *Node) WebSocketURL() string {
	p := n.srv.PortsInfo(5 * time.Second)
	if p == nil || len(p.WebSocket) == 0 {
		return ""
	}
	return p.WebSocket[0]
}

// Server returns the embedded server.
func (n *Node) Server() *server.Server { return n.srv }

// ClientURL returns the nats:// URL clients connect to.
func (n *Node) ClientURL() string { return n.srv.ClientURL() }

// Connect returns an in-process connection (no socket) as the service user.
// The caller must close or drain it.
func (n *Node) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	return n.ConnectAs(ServiceUser, name, opts...)
}

// ConnectAs returns an in-process connection as one of the fixed users
// (ServiceUser, AuthUser or SysUser). The caller must close or drain it.
func (n *Node) ConnectAs(user, name string, opts ...nats.Option) (*nats.Conn, error) {
	all := append([]nats.Option{
		nats.Name(name),
		nats.InProcessServer(n.srv),
		nats.UserInfo(user, n.cfg.ServicePassword),
	}, opts...)
	nc, err := nats.Connect("", all...)
	if err != nil {
		return nil, fmt.Errorf("connect to embedded nats: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server and waits for it to finish.
func (n *Node) Shutdown() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

// logger adapts slog to the nats-server logger interface.
type logger struct{ l *slog.Logger }

func (l *logger) Noticef(format string, v ...any) {
	l.l.Debug(fmt.Sprintf(format, v...), "src", "nats")
}
func (l *logger) Warnf(format string, v ...any)  { l.l.Warn(fmt.Sprintf(format, v...), "src", "nats") }
func (l *logger) Fatalf(format string, v ...any) { l.l.Error(fmt.Sprintf(format, v...), "src", "nats") }
func (l *logger) Errorf(format string, v ...any) { l.l.Error(fmt.Sprintf(format, v...), "src", "nats") }
func (l *logger) Debugf(format string, v ...any) { l.l.Debug(fmt.Sprintf(format, v...), "src", "nats") }
func (l *logger) Tracef(format string, v ...any) { l.l.Debug(fmt.Sprintf(format, v...), "src", "nats") }
