// Package app assembles a whole mayflyd from a Config: the private Postgres
// (when no database URL is given), the embedded NATS server (when no NATS URL
// is given), the fabric services and the gateway's HTTP server. The binary's
// main and end-to-end tests both use it, so they run the same thing.
//
// An [App] is started once and stopped once; Stop is safe to call more than
// once and from any goroutine.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mayfly-im/mayfly/fabric/account"
	"github.com/mayfly-im/mayfly/fabric/friends"
	"github.com/mayfly-im/mayfly/fabric/lifecycle"
	"github.com/mayfly-im/mayfly/fabric/mailbox"
	"github.com/mayfly-im/mayfly/fabric/node"
	"github.com/mayfly-im/mayfly/fabric/presence"
	"github.com/mayfly-im/mayfly/fabric/token"
	"github.com/mayfly-im/mayfly/gateway"
	"github.com/mayfly-im/mayfly/store"
	"github.com/mayfly-im/mayfly/store/pgserver"
)

// Config is everything mayflyd can be told. Zero values take the defaults
// documented on each field (and in README.md).
type Config struct {
	// DataDir holds the private Postgres (pg/), the JetStream store (nats/)
	// and keys (keys/); default "./mayfly-data".
	DataDir string
	// HTTPListen is the address of the HTTP API and WebSockets; default "127.0.0.1:8080".
	HTTPListen string
	// NATSListen is the client address of the embedded NATS server; default
	// "127.0.0.1:4222". Unused when NATSURL is set.
	NATSListen string
	// NATSMonitorListen is the embedded NATS server's HTTP monitoring
	// address (/varz, /jsz, ... for `nats server report` and the Prometheus
	// NATS exporter); empty (the default) disables it. Unused when NATSURL
	// is set.
	NATSMonitorListen string
	// NATSURL points at an existing NATS cluster (with credentials in the
	// URL) instead of running the embedded server. Several comma-separated
	// URLs are tried in the order given (the local city's first).
	NATSURL string
	// DR holds what a multi-city deployment adds (dr.go, docs/dr.md).
	DR DRConfig
	// DatabaseURL points at an existing Postgres instead of the private one.
	DatabaseURL string
	// PGBinDir overrides where the PostgreSQL server binaries are found.
	PGBinDir string
	// TokenKeyFile is the Ed25519 key that signs access tokens (PKCS#8 PEM),
	// made on first start; default DataDir/keys/token.pem. Every gateway of
	// one deployment must share it.
	TokenKeyFile string
	// AllowedOrigins are extra browser origins allowed to open WebSockets.
	AllowedOrigins []string
	// NATSWebSocketListen is the embedded NATS server's WebSocket listener
	// for browsers speaking NATS; default "127.0.0.1:4223"; "off" disables it.
	NATSWebSocketListen string
	// AnonRate and AnonBurst limit unauthenticated requests per client IP;
	// defaults in gateway.Config.
	AnonRate  float64
	AnonBurst int
	// ChallengeTTL is how long a login challenge may be answered; default
	// account.DefaultChallengeTTL (one minute). Tests shorten it to reach
	// expiry quickly; operators have no reason to change it.
	ChallengeTTL time.Duration
	// IdentityResetDelay is how long an identity reset by a device other
	// than the primary waits for the primary to cancel it; default
	// account.DefaultIdentityResetDelay (72 hours). Tests shorten it.
	IdentityResetDelay time.Duration
	// ClaimLimits bound prekey bundle claims; zero fields take
	// account.DefaultClaimLimits, with the per-window quota raised to twice
	// a higher send rate. Tests lower them.
	ClaimLimits store.ClaimLimits
	// MailboxMaxAge is how long an unread message lives; default and
	// maximum 60m minus MailboxRotateInterval (mailbox.Config.MaxAge).
	// Tests shorten it to see expiry.
	MailboxMaxAge time.Duration
	// MailboxRotateInterval is how often the mailbox streams' last blocks
	// are closed (mailbox.Config.RotateInterval); default 5m.
	MailboxRotateInterval time.Duration
	// MailboxPartitions is the number of mailbox streams; default 16. It is
	// fixed when the streams are first created (docs/fabric.md, "Mailboxes").
	MailboxPartitions int
	// Replicas is the replica count of the mailbox streams and the presence
	// bucket: 1 (the default) for the embedded server, 3 in a NATS cluster.
	Replicas int
	// SendRate and SendBurst limit messages sent per user; defaults in
	// mailbox.Config (5/s, burst 20); a negative SendRate disables the limit.
	SendRate  float64
	SendBurst int
	// WSSendQueue, WSFrameRate and WSFrameBurst bound each WebSocket's
	// outgoing queue and incoming frame rate; defaults in gateway.Config.
	WSSendQueue  int
	WSFrameRate  float64
	WSFrameBurst int
	// NATSSyncInterval is how often the embedded NATS server fsyncs
	// JetStream file stores; 0 (default) syncs every write (sync_interval:
	// always), which mailboxes need. Benchmarks set it to compare a relaxed
	// setting; production should not. Unused when NATSURL is set.
	NATSSyncInterval time.Duration
	// PresenceTTL is how long a device stays online after its connection
	// vanishes without a goodbye; default 60s (presence.Config.TTL). Tests
	// shorten it to see crashes quickly.
	PresenceTTL time.Duration
	// LifecycleInterval is how often recorded suspensions and deletions
	// (`mayflyd admin`) are looked for; default lifecycle.DefaultInterval
	// (2s). Tests shorten it.
	LifecycleInterval time.Duration
	// Logger receives structured logs; default discards.
	Logger *slog.Logger
}

// App is a running mayflyd.
type App struct {
	cfg  Config
	log  *slog.Logger
	pg   *pgserver.Server
	db   *store.DB
	node *node.Node
	nc   *nats.Conn
	// readers carry the mailbox's Direct Gets (mailbox.Config.Readers).
	readers []*nats.Conn
	// native holds the auth callout for NATS-native clients (native.go).
	native nativeAuth
	gw     *gateway.Server
	// recheck asks the recheck loop (runRecheck) to look at the gateway's
	// devices again; NATS reconnects send on it without blocking. Made by
	// Start; capacity one, so reconnects during a recheck add one more.
	recheck chan struct{}
	// stopRecheck ends the recheck loop and waits for it.
	stopRecheck func()
	// friends is the friend graph service; the send path asks it CanMessage.
	friends *friends.Service
	// mailbox is the message relay and burn service.
	mailbox *mailbox.Service
	// stopRotation ends the mailbox's block rotation and waits for it.
	stopRotation func()
	// presence keeps who is online and tells friends (presence.go).
	presence *presence.Service
	// msgMetrics is the mailbox's Observer (metrics.go).
	msgMetrics *messageMetrics
	// lifecycle carries out account suspensions and deletions (lifecycle.go).
	lifecycle *lifecycle.Service
	http      *http.Server
	ln        net.Listener

	serveErr chan error
	stopOnce sync.Once
	stopErr  error
}

func (c *Config) defaults() {
	if c.DataDir == "" {
		c.DataDir = "mayfly-data"
	}
	if c.HTTPListen == "" {
		c.HTTPListen = "127.0.0.1:8080"
	}
	if c.NATSListen == "" {
		c.NATSListen = "127.0.0.1:4222"
	}
	if c.TokenKeyFile == "" {
		c.TokenKeyFile = filepath.Join(c.DataDir, "keys", "token.pem")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Start brings up every part and starts serving HTTP. On error, whatever was
// started is stopped again.
func Start(ctx context.Context, cfg Config) (*App, error) {
	cfg.defaults()
	a := &App{cfg: cfg, log: cfg.Logger, serveErr: make(chan error, 1), recheck: make(chan struct{}, 1)}
	if err := a.start(ctx); err != nil {
		a.teardown(context.Background())
		return nil, err
	}
	return a, nil
}

func (a *App) start(ctx context.Context) error {
	if err := makeDataDir(a.cfg.DataDir); err != nil {
		return err
	}
	// Listen first: a taken address fails before anything is started.
	var err error
	if a.ln, err = net.Listen("tcp", a.cfg.HTTPListen); err != nil {
		return fmt.Errorf("listen http: %w", err)
	}
	if err := a.openDB(ctx); err != nil {
		return err
	}
	if err := a.db.Migrate(ctx); err != nil {
		return err
	}
	if err := a.connectNATS(); err != nil {
		return err
	}
	return a.startGateway()
}

// makeDataDir creates the data directory on first start. It is mode 0711:
// nobody else may list it, but the private Postgres, which runs as the
// postgres user when mayflyd runs as root, may pass through to pg/. Every
// entry in it is 0700.
func makeDataDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	return nil
}

// openDB starts the private Postgres if needed and opens the database.
func (a *App) openDB(ctx context.Context) error {
	url := a.cfg.DatabaseURL
	if url == "" {
		pg, err := pgserver.Start(ctx, pgserver.Config{
			Dir:    filepath.Join(a.cfg.DataDir, "pg"),
			BinDir: a.cfg.PGBinDir,
			Logger: a.log.With("src", "postgres"),
		})
		if err != nil {
			return fmt.Errorf("start private postgres: %w", err)
		}
		a.pg = pg
		url = pg.URL("mayfly")
		a.log.Info("private postgres running", "socket_dir", pg.SocketDir())
	}
	db, err := store.Open(ctx, url, a.log)
	if err != nil {
		return err
	}
	a.db = db
	return nil
}

// runRecheck rechecks gw's WebSockets (gateway.Server.RecheckDevices) each
// time a.recheck is signalled, one recheck at a time, each bounded to a
// minute, until ctx ends.
func (a *App) runRecheck(ctx context.Context, gw *gateway.Server) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.recheck:
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			gw.RecheckDevices(rctx)
			cancel()
		}
	}
}

// syncQueueLen bounds the messages a synchronous subscription buffers: far
// above the largest Direct Get batch Mayfly asks for (mailbox replay: 256
// messages; presence: 64 filters of a few keys each), far below nats.go's
// default.
const syncQueueLen = 1024

// connectNATS starts the embedded NATS server, or connects to NATSURL.
func (a *App) connectNATS() error {
	opts := []nats.Option{
		nats.MaxReconnects(-1),
		// Each synchronous subscription (the Direct Get batches of replay
		// and presence reads, one per WebSocket connect) gets a channel of
		// this many slots; nats.go's default of 65,536 allocates 512 KiB
		// per read. A batch is at most a few hundred messages
		// (BENCHMARKS.md, idle connections).
		nats.SyncQueueLen(syncQueueLen),
	}
	// Readers reconnect by themselves; the rest is the main connection's.
	readerOpts := slices.Clone(opts)
	opts = append(opts,
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { a.log.Warn("nats disconnected", "err", err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			a.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
			// Revocations published while we were away are lost: look again.
			select {
			case a.recheck <- struct{}{}:
			default: // a recheck is asked for already
			}
		}),
	)
	if a.cfg.NATSURL != "" {
		opts, readerOpts = append(opts, externalOptions...), append(readerOpts, externalOptions...)
		nc, err := nats.Connect(a.cfg.NATSURL, append(opts, nats.Name("mayflyd"))...)
		if err != nil {
			return fmt.Errorf("connect to nats: %w", err)
		}
		a.nc = nc
		return a.connectReaders(func(name string) (*nats.Conn, error) {
			return nats.Connect(a.cfg.NATSURL, append(readerOpts, nats.Name(name))...)
		})
	}
	pw, err := servicePassword(filepath.Join(a.cfg.DataDir, "nats", "service.password"))
	if err != nil {
		return err
	}
	issuer, err := a.native.loadIssuer(a.cfg.DR.calloutKey(a.cfg.DataDir))
	if err != nil {
		return err
	}
	n, err := node.Start(node.Config{
		Listen:           a.cfg.NATSListen,
		StoreDir:         filepath.Join(a.cfg.DataDir, "nats"),
		ServicePassword:  pw,
		CalloutIssuer:    issuer,
		WebSocketListen:  a.natsWebSocketListen(),
		WebSocketOrigins: a.webOrigins(),
		SyncInterval:     a.cfg.NATSSyncInterval,
		MonitorListen:    a.cfg.NATSMonitorListen,
		Logger:           a.log,
	})
	if err != nil {
		return err
	}
	a.node = n
	a.log.Info("embedded nats running", "url", n.ClientURL())
	if a.cfg.NATSMonitorListen != "" {
		a.log.Info("nats monitoring listening", "url", n.MonitorURL())
	}
	nc, err := n.Connect("mayflyd", opts...)
	if err != nil {
		return err
	}
	a.nc = nc
	return a.connectReaders(func(name string) (*nats.Conn, error) { return n.Connect(name, readerOpts...) })
}

// maxReaders bounds the connections made for mailbox reads.
const maxReaders = 16

// connectReaders makes the mailbox's read connections, one per partition
// up to maxReaders (mailbox.Config.Readers says why reads get their own).
func (a *App) connectReaders(connect func(name string) (*nats.Conn, error)) error {
	n := a.cfg.MailboxPartitions
	if n <= 0 {
		n = mailbox.DefaultPartitions
	}
	for i := range min(n, maxReaders) {
		nc, err := connect(fmt.Sprintf("mayflyd-read-%d", i))
		if err != nil {
			return fmt.Errorf("connect to nats for reads: %w", err)
		}
		a.readers = append(a.readers, nc)
	}
	return nil
}

// servicePassword reads the embedded NATS service password, making a random
// one (mode 0600) on first start.
func servicePassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read nats service password: %w", err)
	}
	raw := make([]byte, 24)
	rand.Read(raw)
	pw := hex.EncodeToString(raw)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("create nats dir: %w", err)
	}
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write nats service password: %w", err)
	}
	return pw, nil
}

// startGateway builds the services and the gateway and starts serving HTTP.
func (a *App) startGateway() error {
	key, err := a.loadTokenKey()
	if err != nil {
		return err
	}
	tokens, err := token.New(token.Config{Key: key})
	if err != nil {
		return err
	}
	accounts, err := account.New(account.Config{
		DB: a.db, Tokens: tokens, NATS: a.nc, Logger: a.log, ChallengeTTL: a.cfg.ChallengeTTL,
		IdentityResetDelay: a.cfg.IdentityResetDelay, ClaimLimits: a.claimLimits(),
	})
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), stateCollector{a})
	a.msgMetrics = newMessageMetrics(reg)
	a.native.metrics = newNativeMetrics(reg)
	if err := a.native.start(a, accounts); err != nil {
		return err
	}
	a.friends, err = friends.New(friends.Config{DB: a.db, NATS: a.nc, Logger: a.log})
	if err != nil {
		return err
	}
	if err := a.startMailbox(); err != nil {
		return err
	}
	if err := a.startPresence(); err != nil {
		return err
	}
	if err := a.native.startAPI(a, accounts); err != nil {
		return err
	}
	if err := a.startLifecycle(); err != nil {
		return err
	}
	a.gw, err = gateway.New(gateway.Config{
		Accounts:       accounts,
		Friends:        a.friends,
		Mailbox:        a.mailbox,
		Presence:       a.presence,
		Lifecycle:      a.lifecycle,
		NATS:           a.nc,
		Logger:         a.log,
		Registry:       reg,
		AllowedOrigins: a.cfg.AllowedOrigins,
		AnonRate:       a.cfg.AnonRate,
		AnonBurst:      a.cfg.AnonBurst,
		SendQueue:      a.cfg.WSSendQueue,
		FrameRate:      a.cfg.WSFrameRate,
		FrameBurst:     a.cfg.WSFrameBurst,
		Ready:          a.readyChecks(),
	})
	if err != nil {
		return err
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	a.stopRecheck = func() { stop(); <-done }
	go func() {
		defer close(done)
		a.runRecheck(rctx, a.gw)
	}()
	a.http = &http.Server{
		Handler:           a.gw.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second, // bodies are at most 16 KiB; WebSockets set their own deadlines
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	go func() { a.serveErr <- a.http.Serve(a.ln) }()
	a.log.Info("http listening", "addr", a.ln.Addr().String())
	return nil
}

func (a *App) readyChecks() []gateway.Check {
	return []gateway.Check{
		{Name: "postgres", Func: a.db.Ping},
		{Name: "nats", Func: func(context.Context) error {
			if !a.nc.IsConnected() {
				return errors.New("not connected")
			}
			return nil
		}},
		{Name: "jetstream", Func: func(ctx context.Context) error {
			js, err := a.nc.JetStream(nats.Context(ctx))
			if err != nil {
				return err
			}
			_, err = js.AccountInfo(nats.Context(ctx))
			return err
		}},
	}
}

// HTTPAddr returns the address the HTTP server listens on.
func (a *App) HTTPAddr() string { return a.ln.Addr().String() }

// NATSURL returns the client URL of the embedded NATS server, or "" when an
// external one is used.
func (a *App) NATSURL() string {
	if a.node == nil {
		return ""
	}
	return a.node.ClientURL()
}

// Done is closed with the HTTP server's error if it stops on its own.
func (a *App) Done() <-chan error { return a.serveErr }

// Stop shuts down in order: stop accepting HTTP, close WebSockets with 1001,
// drain NATS, stop the embedded server, close the database, stop the private
// Postgres. It waits at most until ctx ends for each step.
func (a *App) Stop(ctx context.Context) error {
	a.stopOnce.Do(func() { a.stopErr = a.teardown(ctx) })
	return a.stopErr
}

func (a *App) teardown(ctx context.Context) error {
	var errs []error
	if a.http == nil && a.ln != nil {
		a.ln.Close() // Start failed before serving
	}
	if a.http != nil {
		// Shutdown does not touch hijacked WebSockets; the gateway closes those.
		errs = append(errs, a.http.Shutdown(ctx))
	}
	if a.stopRecheck != nil {
		a.stopRecheck()
	}
	if a.gw != nil {
		errs = append(errs, a.gw.Shutdown(ctx))
	}
	if a.lifecycle != nil {
		a.lifecycle.Stop()
	}
	if a.presence != nil {
		a.presence.Stop()
	}
	if a.friends != nil {
		a.friends.Close()
	}
	a.native.stop()
	if a.stopRotation != nil {
		a.stopRotation()
	}
	if a.nc != nil {
		if err := a.nc.Drain(); err == nil {
			for a.nc.IsDraining() && ctx.Err() == nil {
				time.Sleep(10 * time.Millisecond)
			}
		}
		a.nc.Close()
	}
	for _, nc := range a.readers {
		nc.Close()
	}
	if a.node != nil {
		a.node.Shutdown()
	}
	if a.db != nil {
		a.db.Close()
	}
	if a.pg != nil {
		errs = append(errs, a.pg.Stop(ctx))
	}
	return errors.Join(errs...)
}

// Migrate applies the database migrations and returns, starting and stopping
// the private Postgres if no database URL is given.
func Migrate(ctx context.Context, cfg Config) error {
	cfg.defaults()
	a := &App{cfg: cfg, log: cfg.Logger}
	defer a.teardown(context.Background())
	if err := makeDataDir(cfg.DataDir); err != nil {
		return err
	}
	if err := a.openDB(ctx); err != nil {
		return err
	}
	return a.db.Migrate(ctx)
}

// claimLimits returns account.DefaultClaimLimits with the per-window claim
// quota raised to match a send rate above the default: a send claims two
// bundles (the recipient's and the sender's own).
func (a *App) claimLimits() store.ClaimLimits {
	if a.cfg.ClaimLimits != (store.ClaimLimits{}) {
		return a.cfg.ClaimLimits
	}
	l := account.DefaultClaimLimits
	rate, burst := a.cfg.SendRate, a.cfg.SendBurst
	if rate < 0 {
		rate, burst = 1000, 1000
	}
	if perWindow := int(2 * (rate*l.Window.Seconds() + float64(burst))); perWindow > l.PerWindow {
		l.PerWindow = perWindow
	}
	return l
}
