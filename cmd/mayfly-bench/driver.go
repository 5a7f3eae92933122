package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// driver runs one benchmark: servers, generators, set-up, the timed steps
// and the report.
type driver struct {
	o    options
	out  io.Writer // the report
	prog io.Writer // progress lines

	dir     string   // temporary data directory; "" with -url
	cl      *cluster // nil with -url
	gens    []generator
	genPids []int
	plan    []WorkerConfig
	rep     *Report
	phase   atomic.Value // string, for progress lines

	// newGen starts one generator and returns it with its process id;
	// default: in this process when there is one, else a child process.
	newGen func(cfg WorkerConfig, workers int) (generator, int, error)
}

func run(ctx context.Context, args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	d := &driver{o: o, out: os.Stdout, prog: os.Stderr}
	return d.run(ctx)
}

func (d *driver) run(ctx context.Context) (err error) {
	d.rep = newReport(d.o)
	d.setPhase("start")
	if err := d.startServers(ctx); err != nil {
		return err
	}
	defer d.stopServers()
	if err := d.startGenerators(); err != nil {
		return err
	}
	defer d.closeGenerators()
	defer d.progress()()
	if err := d.setup(ctx); err != nil {
		return err
	}
	switch d.o.Mode {
	case "load":
		err = d.load(ctx)
	case "idle":
		err = d.idle(ctx)
	}
	d.rep.LoadAvgEnd = loadAvg()
	d.rep.print(d.out)
	if d.o.JSONFile != "" {
		if werr := d.rep.writeJSON(d.o.JSONFile); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	return err
}

func (d *driver) setPhase(p string) { d.phase.Store(p) }

// startServers starts a cluster on a fresh data directory, unless -url
// names running gateways.
func (d *driver) startServers(ctx context.Context) error {
	if len(d.o.URLs) > 0 {
		return nil
	}
	bin, err := findMayflyd(d.o.Mayflyd)
	if err != nil {
		return err
	}
	if d.dir, err = os.MkdirTemp("", "mayfly-bench-"); err != nil {
		return err
	}
	// The private Postgres runs as user postgres when we are root: it must
	// be able to pass through this directory.
	if err := os.Chmod(d.dir, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(d.prog, "data directory %s\n", d.dir)
	d.cl, err = startCluster(ctx, clusterConfig{
		Mayflyd: bin, Dir: d.dir, Gateways: d.o.Gateways,
		SyncInterval: d.o.SyncInterval, Pprof: d.o.PprofDir != "", GOMAXPROCS: d.o.ServerProcs, Partitions: d.o.Partitions,
		Rotate: d.o.Rotate,
	})
	if err != nil {
		return err
	}
	d.rep.Servers = d.cl.procs()
	d.o.NATSURL = d.cl.natsURL
	return nil
}

func (d *driver) stopServers() {
	if d.cl != nil {
		d.setPhase("stop")
		d.cl.stop()
	}
	if d.dir != "" && !d.o.Keep {
		os.RemoveAll(d.dir)
	}
}

// findMayflyd returns flagPath, or mayflyd next to this binary, or on $PATH.
func findMayflyd(flagPath string) (string, error) {
	if flagPath != "" {
		return flagPath, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "mayflyd")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("mayflyd"); err == nil {
		return p, nil
	}
	return "", errors.New("no mayflyd binary: build it (go build -o bin/ ./cmd/...) or pass -mayflyd")
}

// clientURLs are the gateways the users connect to.
func (d *driver) clientURLs() []string {
	if d.cl != nil {
		return d.cl.clientURLs()
	}
	return d.o.URLs
}

// startGenerators plans the workers and starts them: in this process when
// there is one, else as child processes.
func (d *driver) startGenerators() error {
	runID := make([]byte, 6)
	rand.Read(runID)
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	for i := range runID {
		runID[i] = alphabet[int(runID[i])%len(alphabet)]
	}
	d.plan = splitUsers(d.o, d.clientURLs(), string(runID))
	if d.cl != nil && len(d.cl.gateways) > 0 {
		// Set-up traffic goes to the core, so the gateways hold nothing
		// but WebSockets when their memory is measured.
		for i := range d.plan {
			d.plan[i].SetupURL = "http://" + d.cl.core.HTTP
		}
	}
	if d.newGen == nil {
		d.newGen = startGenerator
	}
	for _, cfg := range d.plan {
		g, pid, err := d.newGen(cfg, len(d.plan))
		if err != nil {
			return err
		}
		d.gens, d.genPids = append(d.gens, g), append(d.genPids, pid)
	}
	return nil
}

// startGenerator runs a single generator in this process, several as
// child processes.
func startGenerator(cfg WorkerConfig, workers int) (generator, int, error) {
	if workers == 1 {
		w, err := NewWorker(cfg)
		return w, os.Getpid(), err
	}
	r, err := startRemote(cfg)
	if err != nil {
		return nil, 0, err
	}
	return r, r.Pid(), nil
}

func (d *driver) closeGenerators() {
	d.setPhase("close")
	for _, g := range d.gens {
		if w, ok := g.(*Worker); ok {
			w.cur.closing.Store(true)
		}
		g.Close()
	}
}

// splitUsers gives each worker an even share of the users.
func splitUsers(o options, urls []string, runID string) []WorkerConfig {
	per := (o.Conns / o.Workers) &^ 1
	var out []WorkerConfig
	first := 0
	for i := range o.Workers {
		n := per
		if i == o.Workers-1 {
			n = o.Conns - first
		}
		out = append(out, WorkerConfig{
			ID: i, FirstUser: first, Users: n, Gateways: urls, RunID: runID,
			SourceIPs:        o.SourceIPs,
			SetupConcurrency: max(1, o.SetupConc/o.Workers),
			DialConcurrency:  max(1, o.DialConc/o.Workers),
			PayloadSize:      o.Payload,
		})
		first += n
	}
	return out
}

// each runs f for every generator concurrently and joins their errors.
func (d *driver) each(f func(i int, g generator) error) error {
	errs := make([]error, len(d.gens))
	var wg sync.WaitGroup
	for i, g := range d.gens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i, g)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// setup creates the users and friendships, then connects (load mode).
func (d *driver) setup(ctx context.Context) error {
	d.setPhase("setup")
	t0 := time.Now()
	if err := d.each(func(_ int, g generator) error { return g.Setup(ctx) }); err != nil {
		return fmt.Errorf("set-up: %w", err)
	}
	d.rep.Setup.Users = d.o.Conns
	d.rep.Setup.UsersSeconds = time.Since(t0).Seconds()
	d.rep.Idle0 = d.sample()
	if d.o.Mode != "load" {
		return nil
	}
	return d.connect(ctx, d.o.Conns)
}

// connect brings the number of open connections to n, split like the users.
func (d *driver) connect(ctx context.Context, n int) error {
	d.setPhase(fmt.Sprintf("connect %d", n))
	t0 := time.Now()
	err := d.each(func(i int, g generator) error {
		share := (n * d.plan[i].Users / d.o.Conns) &^ 1
		if i == len(d.gens)-1 {
			share = n - d.sharedBefore(n, i)
		}
		return g.Connect(ctx, share)
	})
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	d.rep.Setup.Connections = n
	d.rep.Setup.ConnectSeconds = time.Since(t0).Seconds()
	return nil
}

// sharedBefore is how many of n connections workers before i hold.
func (d *driver) sharedBefore(n, i int) int {
	sum := 0
	for j := range i {
		sum += (n * d.plan[j].Users / d.o.Conns) &^ 1
	}
	return sum
}

// progress prints a line every two seconds until the returned func is called.
func (d *driver) progress() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	if d.o.Quiet {
		return func() {}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		start := time.Now()
		var prev Counters
		for {
			select {
			case <-t.C:
			case <-done:
				return
			}
			var c Counters
			for _, g := range d.gens {
				c.add(g.Counters())
			}
			fmt.Fprintf(d.prog, "%5.0fs %-12s users %d/%d friends %d conn %d sealed %d | sent %d (+%d/s) acked %d delivered %d (+%d/s) burned %d | errors %d dropped %d | load %.1f\n",
				time.Since(start).Seconds(), d.phase.Load(), c.LoggedIn, d.o.Conns, c.Befriended, c.Connected, c.Sealed,
				c.Sent, (c.Sent-prev.Sent)/2, c.Acked, c.Delivered, (c.Delivered-prev.Delivered)/2, c.Burned,
				c.Errors, c.Dropped, loadAvg())
			prev = c
		}
	}()
	return func() { close(done); wg.Wait() }
}
