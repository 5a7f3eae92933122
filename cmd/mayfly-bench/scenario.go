package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// sample is the servers' and generators' resources at one moment.
type sample struct {
	At      time.Time     `json:"at"`
	Servers []serverStats `json:"servers"`
	GenCPU  float64       `json:"generator_cpu_seconds"`
	GenRSS  int64         `json:"generator_rss_bytes"`
	Load    float64       `json:"load_avg_1m"`
}

func (d *driver) sample() sample {
	s := sample{At: time.Now(), Load: loadAvg()}
	if d.cl != nil {
		for i, p := range d.cl.procs() {
			s.Servers = append(s.Servers, p.stats(i == 0))
		}
	}
	for _, pid := range d.genPids {
		s.GenCPU += procCPU(pid)
		s.GenRSS += procRSS(pid)
	}
	return s
}

// load runs the connected users at each rate in turn; it stops after a
// step whose p99 is over -max-p99, or that could not keep up.
func (d *driver) load(ctx context.Context) error {
	d.rep.Connected = d.sample()
	if d.o.Baseline > 0 && d.o.NATSURL != "" {
		d.setPhase("baseline")
		size := d.o.Payload + envelopeOverhead
		for _, streams := range []int{1, mailboxPartitions} {
			b, err := rawBaseline(ctx, d.o.NATSURL, size, streams, d.o.Replicas, d.o.Baseline, d.o.BaselineMax)
			if err != nil {
				return err
			}
			d.rep.Baselines = append(d.rep.Baselines, b)
			fmt.Fprintf(d.prog, "raw JetStream baseline, %d stream(s): %.0f acked publishes/s of %d bytes\n", streams, b.PerSec, size)
		}
		for _, w := range diskSyncWriters {
			ds, err := diskSync(d.dir, w, min(d.o.Baseline, 3*time.Second))
			if err != nil {
				return err
			}
			d.rep.Disk = append(d.rep.Disk, ds)
		}
	}
	for i, r := range d.o.Rates {
		sr, err := d.loadStep(ctx, i+1, r)
		if sr != nil {
			d.rep.Steps = append(d.rep.Steps, *sr)
			printStepLine(d.prog, sr)
		}
		if err != nil {
			return err
		}
		if !sr.Sustained {
			break
		}
	}
	return nil
}

// envelopeOverhead is how much larger a sealed envelope (canonical JSON)
// is than its payload, for the baseline's message size; measured with
// schema/envelope for a 100-byte payload: 718 bytes.
const envelopeOverhead = 618

// mailboxPartitions is mayflyd's default number of mailbox streams; the
// baseline also runs over as many scratch streams, the mailboxes' layout.
const mailboxPartitions = 16

// loadStep seals, runs and measures one step.
func (d *driver) loadStep(ctx context.Context, step int, rate float64) (*StepReport, error) {
	d.setPhase(fmt.Sprintf("seal %d", step))
	err := d.each(func(i int, g generator) error {
		share := float64(d.plan[i].Users) / float64(d.o.Conns)
		return g.Seal(ctx, step, max(1, int(math.Round(rate*d.o.Duration.Seconds()*share))))
	})
	if err != nil {
		return nil, fmt.Errorf("seal step %d: %w", step, err)
	}
	d.setPhase(fmt.Sprintf("run %d@%.0f", step, rate))
	spec := RunSpec{Step: step, Start: time.Now().Add(time.Second), Duration: d.o.Duration, Drain: d.o.Drain}
	stopProfiles := d.profiles(ctx, step, spec)
	before := d.sample()
	results := make([]*StepResult, len(d.gens))
	err = d.each(func(i int, g generator) error {
		r, err := g.Run(ctx, spec)
		results[i] = r
		return err
	})
	after := d.sample()
	stopProfiles()
	merged := &StepResult{}
	for _, r := range results {
		if r != nil {
			merged.merge(r)
		}
	}
	sr := newStepReport(step, rate, d.o, merged, before, after, d.rep.Baselines)
	return sr, err
}

// profiles fetches a CPU profile of every mayflyd during each step, and a
// goroutine dump halfway through it, when -pprof is set; the returned func
// waits for them.
func (d *driver) profiles(ctx context.Context, step int, spec RunSpec) (wait func()) {
	if d.o.PprofDir == "" || d.cl == nil {
		return func() {}
	}
	if err := os.MkdirAll(d.o.PprofDir, 0o755); err != nil {
		fmt.Fprintln(d.prog, "pprof:", err)
		return func() {}
	}
	secs := int(max(1, min(spec.Duration, 60*time.Second).Seconds()))
	var wg sync.WaitGroup
	for _, p := range d.cl.procs() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(spec.Start))
			file := filepath.Join(d.o.PprofDir, fmt.Sprintf("cpu-%s-step%d.pprof", p.Name, step))
			if err := p.fetchProfile(ctx, fmt.Sprintf("profile?seconds=%d", secs), file); err != nil {
				fmt.Fprintln(d.prog, "pprof:", err)
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(spec.Start.Add(spec.Duration / 2)))
			file := filepath.Join(d.o.PprofDir, fmt.Sprintf("goroutine-%s-step%d.txt", p.Name, step))
			if err := p.fetchProfile(ctx, "goroutine?debug=1", file); err != nil {
				fmt.Fprintln(d.prog, "pprof:", err)
			}
		}()
	}
	return wg.Wait
}

// idle connects in steps and measures memory per idle connection.
func (d *driver) idle(ctx context.Context) error {
	for _, n := range d.o.IdleSteps {
		if err := d.connect(ctx, n); err != nil {
			return err
		}
		d.setPhase(fmt.Sprintf("hold %d", n))
		held := d.sample()
		waitProfiles := d.idleProfiles(ctx, n)
		select {
		case <-time.After(d.o.Hold):
		case <-ctx.Done():
			return ctx.Err()
		}
		s := d.sample()
		waitProfiles()
		ir := newIdleReport(n, d.rep.Idle0, s, d.clientProcNames())
		ir.ServerCPU, ir.PostgresCPU = cpuCores(held, s)
		d.rep.Idle = append(d.rep.Idle, ir)
		printIdleLine(d.prog, &d.rep.Idle[len(d.rep.Idle)-1])
		if d.o.PprofDir != "" && d.cl != nil {
			os.MkdirAll(d.o.PprofDir, 0o755)
			for _, p := range d.cl.procs() {
				file := filepath.Join(d.o.PprofDir, fmt.Sprintf("heap-%s-%d.pprof", p.Name, n))
				if err := p.fetchProfile(ctx, "heap", file); err != nil {
					fmt.Fprintln(d.prog, "pprof:", err)
				}
			}
		}
	}
	return nil
}

// idleProfiles fetches a CPU profile of every mayflyd over the hold time
// when -pprof is set; the returned func waits for them.
func (d *driver) idleProfiles(ctx context.Context, n int) (wait func()) {
	if d.o.PprofDir == "" || d.cl == nil || d.o.Hold < time.Second {
		return func() {}
	}
	os.MkdirAll(d.o.PprofDir, 0o755)
	secs := int(d.o.Hold.Seconds())
	var wg sync.WaitGroup
	for _, p := range d.cl.procs() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			file := filepath.Join(d.o.PprofDir, fmt.Sprintf("cpu-idle-%s-%d.pprof", p.Name, n))
			if err := p.fetchProfile(ctx, fmt.Sprintf("profile?seconds=%d", secs), file); err != nil {
				fmt.Fprintln(d.prog, "pprof:", err)
			}
		}()
	}
	return wg.Wait
}

// clientProcNames names the processes holding the clients' connections.
func (d *driver) clientProcNames() map[string]bool {
	out := map[string]bool{}
	if d.cl == nil {
		return out
	}
	if len(d.cl.gateways) == 0 {
		out[d.cl.core.Name] = true
	}
	for _, g := range d.cl.gateways {
		out[g.Name] = true
	}
	return out
}

// cpuCores returns the mayflyd processes' CPU use, and their Postgres
// children's, between two samples, in cores.
func cpuCores(a, b sample) (server, postgres float64) {
	wall := b.At.Sub(a.At).Seconds()
	if wall <= 0 {
		return 0, 0
	}
	for i, s := range b.Servers {
		if i < len(a.Servers) {
			server += (s.CPU - a.Servers[i].CPU) / wall
			postgres += (s.PGCPU - a.Servers[i].PGCPU) / wall
		}
	}
	return server, postgres
}
