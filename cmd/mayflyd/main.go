// Command mayflyd runs the Mayfly server. With no configuration it runs
// everything in one process on embedded defaults: a private Postgres under
// the data directory, an embedded NATS server with JetStream, the fabric
// services and the HTTP/WebSocket gateway.
//
//	mayflyd [flags]           run the server until SIGINT or SIGTERM
//	mayflyd migrate [flags]   apply database migrations and exit
//	mayflyd --version         print the build and exit
//	mayflyd admin suspend|unsuspend|delete HANDLE [flags]
//	                          suspend, unsuspend or delete an account
//	mayflyd dr-check [flags]  check every stream survives a city's loss (docs/dr.md)
//	mayflyd dr-remove-site SERVER [flags]  drop a city's server lost for good (docs/dr.md)
//
// Every flag has an environment variable (shown in -help); flags win.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mayfly-im/mayfly/cmd/internal/version"
	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
	"github.com/mayfly-im/mayfly/store/pgserver"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mayflyd:", err)
		var ue usageError
		switch {
		case errors.Is(err, pgserver.ErrNoBinaries):
			fmt.Fprintln(os.Stderr, "mayflyd: install PostgreSQL's server binaries with: sudo apt-get install postgresql")
		case errors.As(err, &ue):
			fmt.Fprintln(os.Stderr, "mayflyd: run mayflyd -h for the flags")
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "admin" {
		return runAdmin(args[1:])
	}
	if len(args) > 0 && args[0] == "dr-check" {
		return drCheck(args[1:])
	}
	if len(args) > 0 && args[0] == "dr-remove-site" {
		return drRemoveSite(args[1:])
	}
	cmd := "serve"
	if len(args) > 0 && args[0] == "migrate" {
		cmd, args = "migrate", args[1:]
	}
	o, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Print(usageHeader)
		o.flags.SetOutput(os.Stdout)
		o.flags.PrintDefaults()
		return nil
	}
	if err != nil {
		return usageError{err}
	}
	if o.version {
		fmt.Println(version.String("mayflyd"))
		return nil
	}
	cfg := o.cfg
	cfg.Logger = newLogger(o.level, o.format)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cmd == "migrate" {
		if err := app.Migrate(ctx, cfg); err != nil {
			return err
		}
		cfg.Logger.Info("migrations applied")
		return nil
	}
	if o.pprof != "" {
		if err := servePprof(o.pprof, cfg.Logger); err != nil {
			return err
		}
	}
	a, err := app.Start(ctx, cfg)
	if err != nil {
		return err
	}
	cfg.Logger.Info("mayflyd ready", "http", a.HTTPAddr(), "nats", a.NATSURL())
	select {
	case <-ctx.Done():
		cfg.Logger.Info("shutting down")
	case err := <-a.Done():
		cfg.Logger.Error("http server stopped", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Stop(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	cfg.Logger.Info("stopped")
	return nil
}

// usageHeader starts the -h text; the flags follow.
const usageHeader = `mayflyd runs the Mayfly server (README.md, docs/operations.md).

Usage:
  mayflyd [flags]           run the server until SIGINT or SIGTERM
  mayflyd migrate [flags]   apply the database migrations and exit
  mayflyd admin suspend|unsuspend|delete HANDLE [flags]
                            suspend, unsuspend or delete an account
                            (docs/operations.md, "Account lifecycle")
  mayflyd dr-check [flags]  check every stream survives a city's loss (docs/dr.md)
  mayflyd dr-remove-site SERVER [flags]  drop a city's server lost for good (docs/dr.md)
  mayflyd --version         print the build and exit

Every flag has an environment variable; a flag given wins over it.

Flags:
`

// usageError is a bad command line; main exits 2 and points at -h.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// options are the parsed flags: the server's config and what only main uses.
type options struct {
	cfg     app.Config
	level   slog.Level    // logging
	format  string        // "text" or "json"
	pprof   string        // net/http/pprof listen address; "" is off
	version bool          // print the build and exit
	flags   *flag.FlagSet // for -h
}

// parseFlags reads flags with environment fallbacks.
func parseFlags(args []string) (options, error) {
	var (
		o   options
		cfg = &o.cfg
	)
	fs := flag.NewFlagSet("mayflyd", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run prints -h; main prints errors
	o.flags = fs
	str := func(p *string, name, env, def, usage string) {
		if v, ok := os.LookupEnv(env); ok {
			def = v
		}
		fs.StringVar(p, name, def, usage+" (env "+env+")")
	}
	var level, origins, anonRate, anonBurst, sendRate, sendBurst, syncInterval, replicas, partitions, rotate string
	str(&cfg.DataDir, "data", "MAYFLY_DATA", "mayfly-data", "data directory: private postgres, jetstream store, keys")
	str(&cfg.HTTPListen, "http", "MAYFLY_HTTP", "127.0.0.1:8080", "HTTP and WebSocket listen address")
	str(&cfg.NATSListen, "nats-listen", "MAYFLY_NATS_LISTEN", "127.0.0.1:4222", "embedded NATS client listen address")
	str(&cfg.NATSWebSocketListen, "nats-ws-listen", "MAYFLY_NATS_WS_LISTEN", "127.0.0.1:4223", "embedded NATS WebSocket listen address for browsers speaking NATS; off disables it")
	str(&cfg.NATSURL, "nats-url", "MAYFLY_NATS_URL", "", "use this NATS cluster instead of the embedded server (credentials in the URL)")
	str(&cfg.DatabaseURL, "database-url", "MAYFLY_DATABASE_URL", "", "use this Postgres instead of the private one")
	str(&cfg.PGBinDir, "pg-bindir", "MAYFLY_PG_BINDIR", "", "directory of the PostgreSQL server binaries (default: found automatically)")
	str(&cfg.TokenKeyFile, "token-key", "MAYFLY_TOKEN_KEY", "", "Ed25519 PEM key signing access tokens (default <data>/keys/token.pem)")
	str(&origins, "allowed-origins", "MAYFLY_ALLOWED_ORIGINS", "", "comma-separated extra browser origins allowed to open WebSockets")
	str(&anonRate, "anon-rate", "MAYFLY_ANON_RATE", "5", "unauthenticated requests per second per client IP")
	str(&anonBurst, "anon-burst", "MAYFLY_ANON_BURST", "20", "burst of unauthenticated requests per client IP")
	str(&sendRate, "send-rate", "MAYFLY_SEND_RATE", "5", "messages per second each user may send; negative disables the limit")
	str(&sendBurst, "send-burst", "MAYFLY_SEND_BURST", "20", "burst of messages each user may send")
	str(&syncInterval, "nats-sync-interval", "MAYFLY_NATS_SYNC_INTERVAL", "always", "embedded JetStream fsync: always (every write; keep it for mailboxes) or a duration, for benchmark comparisons only")
	str(&replicas, "replicas", "MAYFLY_REPLICAS", "1", "replicas of the mailbox streams and the presence bucket: 1 embedded, 3 in a NATS cluster")
	str(&partitions, "mailbox-partitions", "MAYFLY_MAILBOX_PARTITIONS", "16", "number of mailbox streams; fixed when they are first created")
	str(&rotate, "mailbox-rotate-interval", "MAYFLY_MAILBOX_ROTATE_INTERVAL", "5m", "about the longest a message stays in the mailbox stream block being written before the block is closed, so burned and expired ciphertext leaves the files; messages expire after 60m minus this")
	str(&cfg.NATSMonitorListen, "nats-monitor", "MAYFLY_NATS_MONITOR", "", "serve the embedded NATS server's monitoring endpoints (/varz, /jsz; for nats server report and the Prometheus exporter) on this loopback address, e.g. 127.0.0.1:8222 (off when empty)")
	drDone := drFlags(fs, str, &cfg.DR)
	str(&o.pprof, "pprof", "MAYFLY_PPROF", "", "serve net/http/pprof on this loopback address, e.g. 127.0.0.1:6060 (off when empty)")
	str(&level, "log-level", "MAYFLY_LOG_LEVEL", "info", "debug, info, warn or error")
	str(&o.format, "log-format", "MAYFLY_LOG_FORMAT", "text", "text or json")
	fs.BoolVar(&o.version, "version", false, "print the build (version, commit, Go) and exit")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := parseEnums(&o, level); err != nil {
		return o, err
	}
	if err := checkAddrs(&o); err != nil {
		return o, err
	}
	if err := drDone(); err != nil {
		return o, err
	}
	for _, v := range strings.Split(origins, ",") {
		if v = strings.TrimSpace(v); v != "" {
			cfg.AllowedOrigins = append(cfg.AllowedOrigins, v)
		}
	}
	var err error
	if cfg.AnonRate, err = strconv.ParseFloat(anonRate, 64); err != nil || cfg.AnonRate <= 0 {
		return o, fmt.Errorf("bad -anon-rate %q", anonRate)
	}
	if cfg.AnonBurst, err = strconv.Atoi(anonBurst); err != nil || cfg.AnonBurst <= 0 {
		return o, fmt.Errorf("bad -anon-burst %q", anonBurst)
	}
	if cfg.Replicas, err = strconv.Atoi(replicas); err != nil || cfg.Replicas < 1 || cfg.Replicas > 5 {
		return o, fmt.Errorf("bad -replicas %q: want 1 to 5", replicas)
	}
	if cfg.MailboxPartitions, err = strconv.Atoi(partitions); err != nil || cfg.MailboxPartitions < 1 || cfg.MailboxPartitions > 1024 {
		return o, fmt.Errorf("bad -mailbox-partitions %q: want 1 to 1024", partitions)
	}
	if cfg.MailboxRotateInterval, err = time.ParseDuration(rotate); err != nil || cfg.MailboxRotateInterval <= 0 || cfg.MailboxRotateInterval >= 30*time.Minute {
		return o, fmt.Errorf("bad -mailbox-rotate-interval %q: want a duration above 0 and under 30m", rotate)
	}
	return o, parseLimits(cfg, sendRate, sendBurst, syncInterval)
}

// parseLimits reads the per-user send limit and the embedded fsync setting.
func parseLimits(cfg *app.Config, sendRate, sendBurst, syncInterval string) error {
	var err error
	if cfg.SendRate, err = strconv.ParseFloat(sendRate, 64); err != nil || cfg.SendRate == 0 {
		return fmt.Errorf("bad -send-rate %q", sendRate)
	}
	if cfg.SendBurst, err = strconv.Atoi(sendBurst); err != nil || cfg.SendBurst <= 0 {
		return fmt.Errorf("bad -send-burst %q", sendBurst)
	}
	if syncInterval != "always" {
		if cfg.NATSSyncInterval, err = time.ParseDuration(syncInterval); err != nil || cfg.NATSSyncInterval <= 0 {
			return fmt.Errorf("bad -nats-sync-interval %q: want always or a positive duration", syncInterval)
		}
	}
	return nil
}

// logLevels are the accepted -log-level values.
var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
}

// parseEnums checks the flags that take one of a few words.
func parseEnums(o *options, level string) error {
	lv, ok := logLevels[strings.ToLower(level)]
	if !ok {
		return fmt.Errorf("bad -log-level %q: want debug, info, warn or error", level)
	}
	o.level = lv
	if o.format != "text" && o.format != "json" {
		return fmt.Errorf("bad -log-format %q: want text or json", o.format)
	}
	return nil
}

// checkAddrs checks the listen addresses: host:port each, and loopback
// for the monitoring and profiling endpoints, which reveal too much to be
// exposed beyond the machine.
func checkAddrs(o *options) error {
	cfg := &o.cfg
	addrs := []struct {
		flag, addr string
		loopback   bool
	}{
		{"http", cfg.HTTPListen, false},
		{"nats-listen", cfg.NATSListen, false},
		{"nats-ws-listen", cfg.NATSWebSocketListen, false},
		{"nats-monitor", cfg.NATSMonitorListen, true},
		{"pprof", o.pprof, true},
	}
	for _, a := range addrs {
		if a.addr == "" || (a.flag == "nats-ws-listen" && a.addr == "off") {
			continue
		}
		host, port, err := net.SplitHostPort(a.addr)
		if err == nil {
			_, err = strconv.ParseUint(port, 10, 16)
		}
		if err != nil {
			return fmt.Errorf("bad -%s %q: want host:port, e.g. 127.0.0.1:8080", a.flag, a.addr)
		}
		if ip := net.ParseIP(host); a.loopback && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("bad -%s %q: must be a loopback address such as 127.0.0.1:%s", a.flag, a.addr, port)
		}
	}
	return nil
}

func newLogger(lv slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
