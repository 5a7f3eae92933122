// Command mayfly-bench is Mayfly's load generator. It drives a real mayflyd
// through the real WebSocket protocol with real sealed envelopes: it starts
// a core mayflyd (embedded NATS, private Postgres) and optional extra
// gateway processes on a temporary data directory, or uses running ones
// (-url), creates users in friend pairs over the HTTP API, holds one
// WebSocket per user, sends at a target rate for a duration, reads (burns)
// every delivered message, and reports rates, latencies, errors, loss,
// server memory and CPU, and raw JetStream's rate on the same server.
//
//	mayfly-bench [flags]             run a benchmark (see -help)
//	mayfly-bench worker              internal: a generator child process
//
// Modes:
//
//	-mode load   send at each -rate in turn for -duration (a ramp when
//	             several rates are given, stopped once send→deliver p99
//	             passes -max-p99)
//	-mode idle   connect -idle-steps connections in turn and measure the
//	             gateways' memory per idle connection
//
// Every loop is bounded by a count and a time, and every address used is in
// 127.0.0.0/8. Envelopes are sealed before each timed step (one per
// message, each with its own message id), so sealing costs the server no
// CPU during the measurement; the generator does not open received
// envelopes. One process may hold at most ~19,000 sockets here, so above
// -per-worker connections the generator re-executes itself as several
// worker processes and merges their results (HDR histograms).
//
// BENCHMARKS.md has the scenarios, commands and results.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		if err := workerMain(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "mayfly-bench worker:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "mayfly-bench:", err)
		os.Exit(1)
	}
}

// options are the parsed flags.
type options struct {
	Mode         string        `json:"mode"`
	Conns        int           `json:"conns"`
	Rates        []float64     `json:"rates"`
	Duration     time.Duration `json:"duration_ns"`
	Drain        time.Duration `json:"drain_ns"`
	MaxP99       time.Duration `json:"max_p99_ns"`
	IdleSteps    []int         `json:"idle_steps,omitempty"`
	Hold         time.Duration `json:"hold_ns"`
	Gateways     int           `json:"gateways"`
	Workers      int           `json:"workers"`
	PerWorker    int           `json:"per_worker"`
	URLs         []string      `json:"urls,omitempty"`
	NATSURL      string        `json:"-"`
	Mayflyd      string        `json:"mayflyd"`
	SyncInterval string        `json:"sync_interval"`
	ServerProcs  int           `json:"server_gomaxprocs,omitempty"`
	Partitions   int           `json:"mailbox_partitions,omitempty"`
	Rotate       string        `json:"mailbox_rotate_interval,omitempty"`
	Payload      int           `json:"payload_bytes"`
	Baseline     time.Duration `json:"baseline_ns"`
	BaselineMax  int           `json:"baseline_max"`
	Replicas     int           `json:"baseline_replicas"`
	SourceIPs    int           `json:"source_ips"`
	SetupConc    int           `json:"setup_concurrency"`
	DialConc     int           `json:"dial_concurrency"`
	PprofDir     string        `json:"pprof_dir,omitempty"`
	JSONFile     string        `json:"-"`
	Keep         bool          `json:"-"`
	Quiet        bool          `json:"-"`
}

func parseFlags(args []string) (options, error) {
	var o options
	var rates, steps, urls string
	fs := flag.NewFlagSet("mayfly-bench", flag.ContinueOnError)
	fs.StringVar(&o.Mode, "mode", "load", "load (send at -rate) or idle (measure memory per idle connection)")
	fs.IntVar(&o.Conns, "conns", 1000, "WebSocket connections, one per user, in friend pairs (even)")
	fs.StringVar(&rates, "rate", "1000", "messages per second sent in total; a comma-separated list ramps up step by step")
	fs.DurationVar(&o.Duration, "duration", 30*time.Second, "sending time of each step")
	fs.DurationVar(&o.Drain, "drain", 15*time.Second, "longest wait for the last answers after a step")
	fs.DurationVar(&o.MaxP99, "max-p99", 0, "end the ramp after the first step whose send→deliver p99 is over this (0: run every rate)")
	fs.StringVar(&steps, "idle-steps", "5000,10000,18000", "idle mode: connection counts to measure at, ascending even numbers (the last one sets -conns)")
	fs.DurationVar(&o.Hold, "hold", 15*time.Second, "idle mode: settle time before each measurement")
	fs.IntVar(&o.Gateways, "gateways", 0, "extra mayflyd gateway processes on the core's NATS and Postgres; clients connect only to them (0: to the core)")
	fs.IntVar(&o.Workers, "workers", 0, "generator processes (0: enough for -per-worker connections each; 1 runs in this process)")
	fs.IntVar(&o.PerWorker, "per-worker", 15000, "most connections one generator process holds (each process may open at most 20,000 files here)")
	fs.StringVar(&urls, "url", "", "comma-separated base URLs of running mayflyd gateways to use instead of starting them (loopback only)")
	fs.StringVar(&o.NATSURL, "nats-url", "", "with -url: NATS URL with credentials for the raw JetStream baseline (skipped without)")
	fs.StringVar(&o.Mayflyd, "mayflyd", "", "mayflyd binary (default: next to this binary, then $PATH)")
	fs.StringVar(&o.SyncInterval, "sync-interval", "always", "JetStream fsync of the started core: always (the default and production setting) or a duration, for comparison")
	fs.IntVar(&o.Partitions, "partitions", 0, "mailbox partitions (streams) of the started mayflyd processes (0: mayflyd's default)")
	fs.StringVar(&o.Rotate, "rotate-interval", "", "--mailbox-rotate-interval of the started mayflyd processes, e.g. 10s to see the block rotation's cost within a step (empty: mayflyd's default, 5m)")
	fs.IntVar(&o.ServerProcs, "server-gomaxprocs", 0, "GOMAXPROCS of the started mayflyd processes (0: Go's default, the CPU count); nats-server sizes its JetStream API worker pool by it")
	fs.IntVar(&o.Payload, "payload", 100, "plaintext payload bytes per message (sealed envelopes are ~620 bytes larger)")
	fs.DurationVar(&o.Baseline, "baseline", 5*time.Second, "time of the raw JetStream baseline (0 skips it)")
	fs.IntVar(&o.BaselineMax, "baseline-max", 2_000_000, "most messages the raw JetStream baseline publishes")
	fs.IntVar(&o.Replicas, "baseline-replicas", 1, "replicas of the raw JetStream baseline's scratch streams: match the mailboxes' (mayflyd --replicas) when -nats-url is a cluster")
	fs.IntVar(&o.SourceIPs, "source-ips", 16, "spread connections over this many source addresses 127.0.0.10 and up")
	fs.IntVar(&o.SetupConc, "setup-concurrency", 64, "concurrent HTTP requests while creating users, in total")
	fs.IntVar(&o.DialConc, "dial-concurrency", 128, "concurrent WebSocket handshakes, in total")
	fs.StringVar(&o.PprofDir, "pprof", "", "save profiles of every mayflyd into this directory: CPU during the first step (load mode); heap after, and CPU during, each hold (idle mode)")
	fs.StringVar(&o.JSONFile, "json", "", "write the machine-readable result to this file")
	fs.BoolVar(&o.Keep, "keep", false, "keep the temporary data directory (logs, stores)")
	fs.BoolVar(&o.Quiet, "quiet", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if o.Rates, err = parseList(rates, func(v string) (float64, error) { return strconv.ParseFloat(v, 64) }); err != nil {
		return o, fmt.Errorf("bad -rate: %w", err)
	}
	if o.IdleSteps, err = parseList(steps, strconv.Atoi); err != nil {
		return o, fmt.Errorf("bad -idle-steps: %w", err)
	}
	for _, u := range strings.Split(urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			o.URLs = append(o.URLs, strings.TrimRight(u, "/"))
		}
	}
	return o, o.validate()
}

// parseList parses a comma-separated list.
func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := parse(f)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// validate checks the options and fills derived defaults.
func (o *options) validate() error {
	if o.Mode == "idle" && len(o.IdleSteps) > 0 {
		o.Conns = o.IdleSteps[len(o.IdleSteps)-1]
	}
	switch {
	case o.Mode != "load" && o.Mode != "idle":
		return fmt.Errorf("bad -mode %q: load or idle", o.Mode)
	case o.Conns < 2 || o.Conns%2 != 0:
		return fmt.Errorf("-conns must be an even number >= 2")
	case o.Mode == "load" && len(o.Rates) == 0:
		return fmt.Errorf("-rate needs at least one rate")
	case o.Duration <= 0 || o.Duration > time.Hour || o.Drain < 0 || o.Drain > 10*time.Minute:
		return fmt.Errorf("-duration must be in (0, 1h] and -drain in [0, 10m]")
	case o.Payload < 0 || o.Payload > 60000:
		return fmt.Errorf("-payload must be in [0, 60000]")
	case o.PerWorker < 2 || o.PerWorker > 19000:
		return fmt.Errorf("-per-worker must be in [2, 19000]: a process may hold at most 20,000 files")
	case o.Gateways < 0 || o.Gateways > 16:
		return fmt.Errorf("-gateways must be in [0, 16]")
	}
	for _, r := range o.Rates {
		if r <= 0 || r > 1e6 {
			return fmt.Errorf("bad rate %v: must be in (0, 1e6]", r)
		}
	}
	if o.Mode == "idle" {
		if err := o.checkIdleSteps(); err != nil {
			return err
		}
	}
	for _, u := range o.URLs {
		if err := checkLoopbackURL(u); err != nil {
			return err
		}
	}
	if o.NATSURL != "" {
		if err := checkLoopbackURL(o.NATSURL); err != nil {
			return err
		}
	}
	if o.Workers <= 0 {
		o.Workers = (o.Conns + o.PerWorker - 1) / o.PerWorker
	}
	if o.Conns/o.Workers > o.PerWorker {
		return fmt.Errorf("%d connections over %d workers is over -per-worker %d", o.Conns, o.Workers, o.PerWorker)
	}
	return nil
}

func (o *options) checkIdleSteps() error {
	prev := 0
	for _, n := range o.IdleSteps {
		if n <= prev || n > o.Conns || n%2 != 0 {
			return fmt.Errorf("-idle-steps must be ascending even numbers up to -conns")
		}
		prev = n
	}
	if len(o.IdleSteps) == 0 {
		o.IdleSteps = []int{o.Conns}
	}
	return nil
}
