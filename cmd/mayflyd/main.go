// Command mayflyd runs the Mayfly server. With no configuration it runs
// everything in one process on embedded defaults: a private Postgres under
// the data directory, an embedded NATS server with JetStream, the fabric
// services and the HTTP/WebSocket gateway.
//
//	mayflyd [flags]           run the server until SIGINT or SIGTERM
//	mayflyd migrate [flags]   apply database migrations and exit
//
// Every flag has an environment variable (shown in -help); flags win.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
	"github.com/mayfly-im/mayfly/store/pgserver"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mayflyd:", err)
		if errors.Is(err, pgserver.ErrNoBinaries) {
			fmt.Fprintln(os.Stderr, "mayflyd: install PostgreSQL's server binaries with: sudo apt-get install postgresql")
		}
		os.Exit(1)
	}
}

func run(args []string) error {
	cmd := "serve"
	if len(args) > 0 && args[0] == "migrate" {
		cmd, args = "migrate", args[1:]
	}
	cfg, logLevel, logFormat, err := parseFlags(args)
	if err != nil {
		return err
	}
	cfg.Logger = newLogger(logLevel, logFormat)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cmd == "migrate" {
		if err := app.Migrate(ctx, cfg); err != nil {
			return err
		}
		cfg.Logger.Info("migrations applied")
		return nil
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

// parseFlags reads flags with environment fallbacks.
func parseFlags(args []string) (cfg app.Config, level, format string, err error) {
	fs := flag.NewFlagSet("mayflyd", flag.ContinueOnError)
	str := func(p *string, name, env, def, usage string) {
		if v, ok := os.LookupEnv(env); ok {
			def = v
		}
		fs.StringVar(p, name, def, usage+" (env "+env+")")
	}
	var origins, anonRate, anonBurst string
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
	str(&level, "log-level", "MAYFLY_LOG_LEVEL", "info", "debug, info, warn or error")
	str(&format, "log-format", "MAYFLY_LOG_FORMAT", "text", "text or json")
	if err := fs.Parse(args); err != nil {
		return cfg, "", "", err
	}
	if fs.NArg() > 0 {
		return cfg, "", "", fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, o := range strings.Split(origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			cfg.AllowedOrigins = append(cfg.AllowedOrigins, o)
		}
	}
	if cfg.AnonRate, err = strconv.ParseFloat(anonRate, 64); err != nil || cfg.AnonRate <= 0 {
		return cfg, "", "", fmt.Errorf("bad -anon-rate %q", anonRate)
	}
	if cfg.AnonBurst, err = strconv.Atoi(anonBurst); err != nil || cfg.AnonBurst <= 0 {
		return cfg, "", "", fmt.Errorf("bad -anon-burst %q", anonBurst)
	}
	return cfg, level, format, nil
}

func newLogger(level, format string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
