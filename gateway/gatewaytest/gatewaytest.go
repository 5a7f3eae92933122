// Package gatewaytest runs the gateway for tests with only what it needs: a
// fresh database on the test binary's private Postgres (see store/storetest,
// whose Main the test package must run), an in-process NATS node on a random
// loopback port, the fabric services the gateway serves (accounts, friends,
// mailbox, presence, lifecycle) and the gateway's HTTP server on another
// loopback port. It leaves out what only the assembled mayflyd has (the
// private Postgres, admin, DR, Prometheus collectors of the app); the
// end-to-end tests of the whole server use cmd/mayflyd/app/apptest.
//
// It also has a small HTTP client that speaks the public API the way a
// device would ([Client]), and builds commands for tests that run them
// ([Binary]). Everything here takes a testing.TB and registers its cleanup;
// a [Server] is for the goroutine of its test.
package gatewaytest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mayfly-im/mayfly/fabric/account"
	"github.com/mayfly-im/mayfly/fabric/attach"
	"github.com/mayfly-im/mayfly/fabric/callout"
	"github.com/mayfly-im/mayfly/fabric/friends"
	"github.com/mayfly-im/mayfly/fabric/lifecycle"
	"github.com/mayfly-im/mayfly/fabric/mailbox"
	"github.com/mayfly-im/mayfly/fabric/natsapi"
	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/fabric/node"
	"github.com/mayfly-im/mayfly/fabric/presence"
	"github.com/mayfly-im/mayfly/fabric/token"
	"github.com/mayfly-im/mayfly/gateway"
	"github.com/mayfly-im/mayfly/store"
	"github.com/mayfly-im/mayfly/store/storetest"
)

// Config is what a test may set; zero values take test defaults. The
// fields a test shares with mayflyd have app.Config's names and meanings.
type Config struct {
	// DataDir holds the JetStream store (nats/) and the keys (keys/), as in
	// mayflyd; default a fresh t.TempDir(). A Server started again with the
	// same DataDir, DatabaseURL and HTTPListen is a restart.
	DataDir string
	// DatabaseURL is the database; default a fresh one from storetest.
	DatabaseURL string
	// HTTPListen is the gateway's address; default 127.0.0.1:0.
	HTTPListen string
	// TokenKeyFile signs access tokens; default DataDir/keys/token.pem.
	TokenKeyFile string
	// Native runs the auth callout and the micro services of NATS-native
	// clients (fabric/callout, fabric/natsapi), so clients may connect to
	// NATSURL with an access token.
	Native bool

	ChallengeTTL          time.Duration
	MailboxMaxAge         time.Duration
	MailboxRotateInterval time.Duration
	// AnonRate and AnonBurst default to 10000: tests register quickly.
	AnonRate  float64
	AnonBurst int
	// SendRate and SendBurst default to mailbox.Config's.
	SendRate     float64
	SendBurst    int
	WSSendQueue  int
	WSFrameRate  float64
	WSFrameBurst int
	PresenceTTL  time.Duration
	// LifecycleInterval defaults to lifecycle.DefaultInterval.
	LifecycleInterval time.Duration
	// IdentityResetDelay defaults to account.DefaultIdentityResetDelay.
	IdentityResetDelay time.Duration
	// ClaimLimits default to account.DefaultClaimLimits with the per-window
	// quota raised to match SendRate, as in mayflyd.
	ClaimLimits store.ClaimLimits
	// AttachMaxAge is attach.Config.MaxAge.
	AttachMaxAge time.Duration
	// NATSCompactInterval is node.Config.CompactInterval.
	NATSCompactInterval time.Duration
}

// Server is a running gateway with its fabric services, stopped by
// t.Cleanup (or earlier by Stop).
type Server struct {
	t   testing.TB
	cfg Config
	ln  net.Listener

	// Node is the in-process NATS server; DB the gateway's database.
	Node *node.Node
	DB   *store.DB

	nc        *nats.Conn
	friends   *friends.Service
	presence  *presence.Service
	lifecycle *lifecycle.Service
	gw        *gateway.Server
	http      *http.Server
	native    []func()      // stops the callout and natsapi, in order
	stopRot   func()        // ends the mailbox's block rotation and waits
	served    chan struct{} // closed when Serve returned
	stopped   bool
}

// Start runs a gateway for t with cfg. It fails the test if anything does
// not start.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.DatabaseURL == "" {
		cfg.DatabaseURL = storetest.NewURL(t)
	}
	if cfg.HTTPListen == "" {
		cfg.HTTPListen = "127.0.0.1:0"
	}
	if cfg.TokenKeyFile == "" {
		cfg.TokenKeyFile = filepath.Join(cfg.DataDir, "keys", "token.pem")
	}
	if cfg.AnonRate == 0 {
		cfg.AnonRate, cfg.AnonBurst = 10000, 10000
	}
	s := &Server{t: t, cfg: cfg, served: make(chan struct{})}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("gatewaytest: stop: %v", err)
		}
	})
	if err := s.start(); err != nil {
		t.Fatalf("gatewaytest: %v", err)
	}
	return s
}

func (s *Server) start() error {
	var err error
	// A restart may find its port still in TIME_WAIT for a moment.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if s.ln, err = net.Listen("tcp", s.cfg.HTTPListen); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("listen http: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if s.DB, err = store.Open(ctx, s.cfg.DatabaseURL, nil); err != nil {
		return err
	}
	ncfg := node.Config{
		Listen: "127.0.0.1:0", StoreDir: filepath.Join(s.cfg.DataDir, "nats"), ServerName: "gatewaytest",
		ServicePassword: natstest.Password, CompactInterval: s.cfg.NATSCompactInterval,
	}
	var issuer nkeys.KeyPair
	if s.cfg.Native {
		if issuer, err = callout.LoadOrCreateIssuer(filepath.Join(s.cfg.DataDir, "keys", "callout.nk")); err != nil {
			return err
		}
		if ncfg.CalloutIssuer, err = issuer.PublicKey(); err != nil {
			return fmt.Errorf("callout issuer: %w", err)
		}
	}
	if s.Node, err = node.Start(ncfg); err != nil {
		return err
	}
	if s.nc, err = s.Node.Connect("gatewaytest", nats.MaxReconnects(-1), nats.Timeout(natstest.ConnectWait)); err != nil {
		return err
	}
	key, err := token.LoadOrCreateKey(s.cfg.TokenKeyFile)
	if err != nil {
		return err
	}
	tokens, err := token.New(token.Config{Key: key})
	if err != nil {
		return err
	}
	accounts, err := account.New(account.Config{DB: s.DB, Tokens: tokens, NATS: s.nc, ChallengeTTL: s.cfg.ChallengeTTL,
		IdentityResetDelay: s.cfg.IdentityResetDelay, ClaimLimits: s.claimLimits()})
	if err != nil {
		return err
	}
	return s.startServices(ctx, accounts, issuer)
}

// claimLimits returns the configured claim limits, or
// account.DefaultClaimLimits with the per-window quota raised to match a
// send rate above the default (a send claims two bundles), as mayflyd does.
func (s *Server) claimLimits() store.ClaimLimits {
	if s.cfg.ClaimLimits != (store.ClaimLimits{}) {
		return s.cfg.ClaimLimits
	}
	l := account.DefaultClaimLimits
	if perWindow := int(2 * (s.cfg.SendRate*l.Window.Seconds() + float64(s.cfg.SendBurst))); perWindow > l.PerWindow {
		l.PerWindow = perWindow
	}
	return l
}

// startServices starts the fabric services, the gateway and its HTTP
// server.
func (s *Server) startServices(ctx context.Context, accounts *account.Service, issuer nkeys.KeyPair) error {
	var err error
	if s.friends, err = friends.New(friends.Config{DB: s.DB, NATS: s.nc}); err != nil {
		return err
	}
	att, err := attach.New(ctx, attach.Config{
		NATS: s.nc, Permit: s.friends, MaxAge: s.cfg.AttachMaxAge, RotateInterval: s.cfg.MailboxRotateInterval,
	})
	if err != nil {
		return err
	}
	mb, err := mailbox.New(ctx, mailbox.Config{
		NATS: s.nc, Permit: s.friends, MaxAge: s.cfg.MailboxMaxAge, RotateInterval: s.cfg.MailboxRotateInterval,
		SendRate: s.cfg.SendRate, SendBurst: s.cfg.SendBurst, OnBurn: att.Forget,
	})
	if err != nil {
		return err
	}
	rctx, stopRot := context.WithCancel(context.Background())
	var rotations sync.WaitGroup
	rotations.Add(2)
	go func() { defer rotations.Done(); mb.RunRotation(rctx) }()
	go func() { defer rotations.Done(); att.RunRotation(rctx) }()
	s.stopRot = func() { stopRot(); rotations.Wait() }
	if s.presence, err = presence.New(ctx, presence.Config{NATS: s.nc, Friends: s.friends, Settings: s.DB, TTL: s.cfg.PresenceTTL}); err != nil {
		return err
	}
	if err := s.presence.Start(); err != nil {
		return err
	}
	if s.cfg.Native {
		if err := s.startNative(accounts, mb, issuer); err != nil {
			return err
		}
	}
	s.lifecycle, err = lifecycle.New(lifecycle.Config{DB: s.DB, NATS: s.nc, Friends: s.friends, Mailbox: mb, Interval: s.cfg.LifecycleInterval})
	if err != nil {
		return err
	}
	s.lifecycle.Start()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	s.gw, err = gateway.New(gateway.Config{
		Accounts: accounts, Friends: s.friends, Mailbox: mb, Presence: s.presence, Lifecycle: s.lifecycle, Attach: att,
		NATS: s.nc, Registry: reg, AnonRate: s.cfg.AnonRate, AnonBurst: s.cfg.AnonBurst,
		SendQueue: s.cfg.WSSendQueue, FrameRate: s.cfg.WSFrameRate, FrameBurst: s.cfg.WSFrameBurst,
		Ready: s.readyChecks(),
	})
	if err != nil {
		return err
	}
	s.http = &http.Server{Handler: s.gw.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { defer close(s.served); s.http.Serve(s.ln) }()
	return nil
}

// startNative connects the callout's users and starts the callout and the
// micro services of NATS-native clients.
func (s *Server) startNative(accounts *account.Service, mb *mailbox.Service, issuer nkeys.KeyPair) error {
	auth, err := s.Node.ConnectAs(node.AuthUser, "gatewaytest-callout", nats.Timeout(natstest.ConnectWait))
	if err != nil {
		return err
	}
	s.native = append(s.native, auth.Close)
	sys, err := s.Node.ConnectAs(node.SysUser, "gatewaytest-sys", nats.Timeout(natstest.ConnectWait))
	if err != nil {
		return err
	}
	s.native = append(s.native, sys.Close)
	r, err := callout.Start(callout.Config{
		Auth: auth, Service: s.nc, Sys: sys, Issuer: issuer, Accounts: accounts,
		MaxConnsPerDevice: gateway.MaxConnsPerDevice, MaxConnsPerUser: gateway.MaxConnsPerUser,
	})
	if err != nil {
		return err
	}
	s.native = append(s.native, r.Stop)
	api, err := natsapi.Start(natsapi.Config{
		NATS: s.nc, Mailbox: mb, Friends: s.friends, Accounts: accounts, Presence: s.presence,
		RequestRate: s.cfg.WSFrameRate, RequestBurst: s.cfg.WSFrameBurst,
	})
	if err != nil {
		return err
	}
	s.native = append(s.native, func() { api.Stop() })
	return nil
}

// readyChecks are mayflyd's /readyz probes over this server's parts.
func (s *Server) readyChecks() []gateway.Check {
	return []gateway.Check{
		{Name: "postgres", Func: s.DB.Ping},
		{Name: "nats", Func: func(context.Context) error {
			if !s.nc.IsConnected() {
				return errors.New("not connected")
			}
			return nil
		}},
		{Name: "jetstream", Func: func(ctx context.Context) error {
			js, err := s.nc.JetStream(nats.Context(ctx))
			if err != nil {
				return err
			}
			_, err = js.AccountInfo(nats.Context(ctx))
			return err
		}},
	}
}

// HTTPAddr returns the gateway's host:port.
func (s *Server) HTTPAddr() string { return s.ln.Addr().String() }

// URL returns the gateway's base URL, http://host:port.
func (s *Server) URL() string { return "http://" + s.HTTPAddr() }

// NATSURL returns the NATS node's client URL, without credentials.
func (s *Server) NATSURL() string { return s.Node.ClientURL() }

// ServiceURL returns the NATS node's client URL with the service user's
// credentials.
func (s *Server) ServiceURL() string {
	return strings.Replace(s.NATSURL(), "nats://", "nats://"+node.ServiceUser+":"+natstest.Password+"@", 1)
}

// ServiceConn connects to the NATS node as the service user; the connection
// is closed by t.Cleanup.
func (s *Server) ServiceConn() *nats.Conn {
	s.t.Helper()
	return natstest.Connect(s.t, s.Node)
}

// Config returns the configuration the server runs with, defaults filled
// in: started again with it (after Stop), the server restarts on the same
// database, store, keys and address.
func (s *Server) Config() Config {
	cfg := s.cfg
	cfg.HTTPListen = s.HTTPAddr()
	return cfg
}

// Stop shuts the server down as mayflyd does: stop accepting, close the
// WebSockets with 1001, stop the services, close NATS, stop the node. It
// waits at most until ctx ends for the HTTP server and the WebSockets. It is
// safe to call more than once (later calls return nil); t.Cleanup calls it.
func (s *Server) Stop(ctx context.Context) error {
	if s.stopped {
		return nil
	}
	s.stopped = true
	var errs []error
	if s.http != nil {
		errs = append(errs, s.http.Shutdown(ctx))
		<-s.served
	} else if s.ln != nil {
		s.ln.Close()
	}
	if s.gw != nil {
		errs = append(errs, s.gw.Shutdown(ctx))
	}
	if s.lifecycle != nil {
		s.lifecycle.Stop()
	}
	if s.presence != nil {
		s.presence.Stop()
	}
	if s.friends != nil {
		s.friends.Close()
	}
	for i := len(s.native) - 1; i >= 0; i-- {
		s.native[i]()
	}
	if s.stopRot != nil {
		s.stopRot()
	}
	if s.nc != nil {
		s.nc.Close()
	}
	if s.Node != nil {
		s.Node.Shutdown()
	}
	if s.DB != nil {
		s.DB.Close()
	}
	return errors.Join(errs...)
}
