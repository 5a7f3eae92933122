// Command mayfly-drill is Mayfly's city-loss drill (make dr-drill). It runs
// the three-city loopback deployment of deploy/dr/sites.sh with a mayflyd in
// every city, puts the project's own send, deliver and burn path under load
// (Go clients on the gateways of cities b and c, a NATS-native client, and
// a stream of account and friendship writes), SIGKILLs all of city a (its
// NATS server, its mayflyd and the Postgres primary), promotes city b's
// standby, brings city a back, and prints a table of checks with pass or
// fail. It exits 1 when a check fails. Before that it measures the same
// load on a single-site R3 deployment for the p99 comparison.
//
//	mayfly-drill [-pairs 25] [-rate 4] [-before 10s] [-after 20s] [-port-base 24200] [-permanent]
//
// docs/dr.md describes the checks; BENCHMARKS.md has results.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// options are the drill's flags.
type options struct {
	pairs, partitions int
	rate              float64
	before, after     time.Duration
	base              int
	dir, script, bin  string
	baseline          bool
	keep              bool
	permanent         bool
}

func main() {
	var o options
	flag.IntVar(&o.pairs, "pairs", 25, "sender/recipient pairs of Go clients")
	flag.Float64Var(&o.rate, "rate", 4, "messages per second per sender")
	flag.IntVar(&o.partitions, "partitions", 8, "mailbox partitions")
	flag.DurationVar(&o.before, "before", 10*time.Second, "load before the kill")
	flag.DurationVar(&o.after, "after", 20*time.Second, "load after the kill, before city a returns")
	flag.IntVar(&o.base, "port-base", 24200, "first port of the deployment (sites.sh DR_PORT_BASE); the baseline uses port-base+100")
	flag.StringVar(&o.dir, "dir", "", "working directory (default a new one under /tmp; postgres must reach it)")
	flag.StringVar(&o.script, "script", "deploy/dr/sites.sh", "the deployment script")
	flag.StringVar(&o.bin, "mayflyd", "bin/mayflyd", "the mayflyd binary")
	flag.BoolVar(&o.baseline, "baseline", true, "measure the single-site R3 baseline first")
	flag.BoolVar(&o.keep, "keep", false, "keep the working directory")
	flag.BoolVar(&o.permanent, "permanent", false, "then lose city a for good: add city d, remove a, check d's replicas")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mayfly-drill:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (bool, error) {
	var err error
	if o.dir == "" {
		if o.dir, err = os.MkdirTemp("/tmp", "mayfly-drill-"); err != nil {
			return false, err
		}
		os.Chmod(o.dir, 0o755) //nolint:errcheck // postgres must pass through
	}
	if !o.keep {
		defer os.RemoveAll(o.dir)
	}
	if o.script, err = filepath.Abs(o.script); err != nil {
		return false, err
	}
	if o.bin, err = filepath.Abs(o.bin); err != nil {
		return false, err
	}
	var baseP99 time.Duration
	if o.baseline {
		if baseP99, err = baseline(ctx, o); err != nil {
			return false, fmt.Errorf("baseline: %w", err)
		}
		logf("single-site R3 baseline: send p99 %v", baseP99.Round(time.Millisecond))
	}
	res, err := drill(ctx, o)
	if err != nil {
		return false, err
	}
	res.baseP99 = baseP99
	return res.print(os.Stdout), nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// baseline runs the load on a single-site deployment and returns its p99.
func baseline(ctx context.Context, o options) (time.Duration, error) {
	d, err := startDeployment(o.script, filepath.Join(o.dir, "single"), o.bin, o.base+100, o.partitions, true)
	if d != nil {
		defer d.stop()
	}
	if err != nil {
		return 0, err
	}
	for _, s := range siteNames {
		if err := d.startMayflyd(ctx, s); err != nil {
			return 0, err
		}
	}
	gws := []string{d.httpAddr("a"), d.httpAddr("b"), d.httpAddr("c")}
	pairs, err := makePairs(ctx, gws, o.pairs, "x")
	if err != nil {
		return 0, err
	}
	// The same load as the drill's: pairs, account writes, a native sender.
	rec, w, nat := newRecorder(), &writes{}, &native{}
	lctx, cancel := context.WithTimeout(ctx, o.before+2*time.Second)
	defer cancel()
	warm := time.Now().Add(2 * time.Second)
	var side sync.WaitGroup
	side.Go(func() { w.run(lctx, gws, pairs[0].recipient.Identity().Handle) })
	side.Go(func() { nat.run(lctx, d, pairs[0]) })
	runPairs(lctx, lctx, pairs, o.rate, rec)
	side.Wait()
	return p99(rec.sends, warm, time.Now(), time.Now()), nil
}
