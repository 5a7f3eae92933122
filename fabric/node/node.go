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
	"net/url"
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
	// MonitorListen is the host:port of the server's HTTP monitoring
	// endpoints (/varz, /jsz, /connz, ...), which `nats server report` and
	// the Prometheus NATS exporter read; empty disables them. Port 0 picks
	// a free port. Keep it on loopback: /connz lists every connection.
	MonitorListen string
	// CompactInterval is, when every write is synced (SyncInterval 0), how
	// often JetStream looks through each stream's closed blocks and
	// rewrites those with more than half of their bytes deleted, which
	// takes deleted messages out of the files; default 1m (nats-server's
	// own default is 2m). With SyncInterval set, that interval is used.
	CompactInterval time.Duration
	// APIWorkers sizes the server's JetStream API worker pool; default
	// MaxAPIWorkers. See startServer.
	APIWorkers int
	// Cluster joins the server to a NATS cluster; the zero value runs it
	// alone. mayflyd embeds a single server; tests use this to run a
	// cluster in-process (natstest.RunCluster).
	Cluster ClusterConfig
	// Logger receives the server's log lines; default discards.
	Logger *slog.Logger
}

// ClusterConfig places a Node in a NATS cluster.
type ClusterConfig struct {
	// Name names the cluster; empty means no cluster.
	Name string
	// Listen is the host:port for routes from the other servers.
	Listen string
	// Routes are the other servers' route addresses (host:port).
	Routes []string
	// Tags are the server's tags, e.g. "site:a" (docs/dr.md).
	Tags []string
	// UniqueTag is the tag prefix of which JetStream places at most one
	// replica per value, e.g. "site:".
	UniqueTag string
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
	fatal := make(chan string, 1)
	srv.SetLoggerV2(&logger{l: cfg.Logger, fatal: fatal}, false, false, false)
	startServer(srv, cfg.APIWorkers)
	if err := waitReady(srv, fatal); err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, err
	}
	return &Node{srv: srv, cfg: cfg}, nil
}

// readyTimeout bounds how long Start waits for the server's listeners.
const readyTimeout = 30 * time.Second

// waitReady waits until srv accepts connections. It fails at once with the
// server's message when the server reports a fatal error (a listen address
// in use says which), and after readyTimeout otherwise.
func waitReady(srv *server.Server, fatal <-chan string) error {
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		if srv.ReadyForConnections(100 * time.Millisecond) {
			return nil
		}
		select {
		case msg := <-fatal:
			return fmt.Errorf("nats server: %s", msg)
		default:
		}
	}
	return fmt.Errorf("nats server: not ready after %s", readyTimeout)
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
	host, port, err := splitListen("nats listen", cfg.Listen)
	if err != nil {
		return nil, err
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
	if cfg.MonitorListen != "" {
		host, port, err := splitListen("nats monitor", cfg.MonitorListen)
		if err != nil {
			return nil, err
		}
		opts.HTTPHost, opts.HTTPPort = host, port
	}
	if cfg.Cluster.Name != "" {
		if err := clusterOptions(opts, cfg.Cluster); err != nil {
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
	host, port, err := splitListen("nats websocket", cfg.WebSocketListen)
	if err != nil {
		return err
	}
	opts.Websocket.Host = host
	opts.Websocket.Port = port
	opts.Websocket.NoTLS = true
	opts.Websocket.AllowedOrigins = cfg.WebSocketOrigins
	opts.Websocket.Compression = false
	return nil
}

// splitListen parses a host:port listen address; port 0 becomes the
// server's "pick a free port".
func splitListen(what, addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%s address %q: %w", what, addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%s address %q: bad port", what, addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// MonitorURL returns the http:// URL of the monitoring endpoints, or "".
func (n *Node) MonitorURL() string {
	p := n.srv.PortsInfo(5 * time.Second)
	if p == nil || len(p.Monitoring) == 0 {
		return ""
	}
	return p.Monitoring[0]
}

func clusterOptions(opts *server.Options, c ClusterConfig) error {
	host, portStr, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("nats cluster address %q: %w", c.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return fmt.Errorf("nats cluster address %q: bad port", c.Listen)
	}
	opts.Cluster.Name = c.Name
	opts.Cluster.Host = host
	opts.Cluster.Port = port
	for _, r := range c.Routes {
		u, err := url.Parse("nats-route://" + r)
		if err != nil {
			return fmt.Errorf("nats route %q: %w", r, err)
		}
		opts.Routes = append(opts.Routes, u)
	}
	opts.Tags = append(opts.Tags, c.Tags...)
	opts.JetStreamUniqueTag = c.UniqueTag
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

// logger adapts slog to the nats-server logger interface. The first fatal
// message also goes to fatal (nats-server reports a listener it cannot open
// that way and carries on without it), which Start waits on.
type logger struct {
	l     *slog.Logger
	fatal chan<- string
}

func (l *logger) Noticef(format string, v ...any) {
	l.l.Debug(fmt.Sprintf(format, v...), "src", "nats")
}
func (l *logger) Warnf(format string, v ...any) { l.l.Warn(fmt.Sprintf(format, v...), "src", "nats") }
func (l *logger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.l.Error(msg, "src", "nats")
	select {
	case l.fatal <- msg:
	default:
	}
}
func (l *logger) Errorf(format string, v ...any) { l.l.Error(fmt.Sprintf(format, v...), "src", "nats") }
func (l *logger) Debugf(format string, v ...any) { l.l.Debug(fmt.Sprintf(format, v...), "src", "nats") }
func (l *logger) Tracef(format string, v ...any) { l.l.Debug(fmt.Sprintf(format, v...), "src", "nats") }
