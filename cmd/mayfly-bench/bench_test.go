package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

// inProcessServer runs a gateway in-process without the per-user send limit and
// returns options that point the benchmark at it.
func inProcessServer(t *testing.T) options {
	t.Helper()
	a := gatewaytest.Start(t, gatewaytest.Config{SendRate: -1})
	natsURL := a.ServiceURL()
	return options{
		Mode: "load", Conns: 4, Rates: []float64{20}, Duration: time.Second, Drain: 10 * time.Second,
		URLs: []string{"http://" + a.HTTPAddr()}, NATSURL: natsURL, SyncInterval: "always",
		Payload: 100, Baseline: 200 * time.Millisecond, BaselineMax: 100, SourceIPs: 2, SetupConc: 4, DialConc: 4,
		PerWorker: 15000, Quiet: true,
	}
}

// runDriver runs the benchmark described by o and returns its report.
func runDriver(t *testing.T, o options, newGen func(WorkerConfig, int) (generator, int, error)) (*Report, string) {
	t.Helper()
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	d := &driver{o: o, out: &out, prog: io.Discard, newGen: newGen}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := d.run(ctx); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	return d.rep, out.String()
}

// checkLossless asserts that every message of every step was acknowledged,
// delivered and burned exactly once, without errors.
func checkLossless(t *testing.T, rep *Report, want int64) {
	t.Helper()
	if len(rep.Steps) != 1 {
		t.Fatalf("steps = %d, want 1", len(rep.Steps))
	}
	r := rep.Steps[0].Result
	if r.Sent != want || r.Acked != want || r.Delivered != want || r.Burned != want {
		t.Errorf("sent %d acked %d delivered %d burned %d, want %d each", r.Sent, r.Acked, r.Delivered, r.Burned, want)
	}
	if r.AckedNotDelivered != 0 || r.Unanswered != 0 || r.DeliveredNotBurned != 0 || r.BurnFailed != 0 || r.Duplicates != 0 || len(r.Errors) != 0 {
		t.Errorf("lost %d, unanswered %d, not burned %d, failed burns %d, duplicates %d, errors %v",
			r.AckedNotDelivered, r.Unanswered, r.DeliveredNotBurned, r.BurnFailed, r.Duplicates, r.Errors)
	}
	if r.SelfCopies != want {
		t.Errorf("sync copies = %d, want %d (one per send, to the sender's device)", r.SelfCopies, want)
	}
	if l := rep.Steps[0].Deliver; l.Count != want || l.P99 <= 0 || l.Max < l.P50 {
		t.Errorf("deliver latency %+v", l)
	}
}

func TestBenchLoadInProcess(t *testing.T) {
	o := inProcessServer(t)
	rep, out := runDriver(t, o, nil)
	checkLossless(t, rep, 20)
	if len(rep.Baselines) != 2 || rep.Baselines[0].Acked <= 0 || rep.Baselines[1].Streams != mailboxPartitions {
		t.Errorf("baselines = %+v", rep.Baselines)
	}
	if len(rep.Disk) != 2 || rep.Disk[0].Syncs <= 0 || rep.Disk[1].Writers != mailboxPartitions {
		t.Errorf("disk syncs = %+v", rep.Disk)
	}
	if !strings.Contains(out, "| 1 | 20 | 20 |") {
		t.Errorf("report lacks the step row:\n%s", out)
	}
}

// TestBenchLoadWorkerProtocol runs two generators behind the worker
// protocol (as child processes do, here over pipes) and merges their results.
func TestBenchLoadWorkerProtocol(t *testing.T) {
	o := inProcessServer(t)
	o.Workers, o.Baseline = 2, 0
	piped := func(cfg WorkerConfig, _ int) (generator, int, error) {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := workerMain(inR, outW); err != nil {
				t.Errorf("worker %d: %v", cfg.ID, err)
			}
			outW.Close()
		}()
		kill := func() { inW.Close() }
		return newRemote(cfg, os.Getpid(), inW, outR, kill, func() { <-done }), os.Getpid(), nil
	}
	rep, _ := runDriver(t, o, piped)
	checkLossless(t, rep, 20)
}

func TestBenchIdleInProcess(t *testing.T) {
	o := inProcessServer(t)
	o.Mode, o.IdleSteps, o.Hold = "idle", []int{2, 4}, 0
	rep, _ := runDriver(t, o, nil)
	if len(rep.Idle) != 2 || rep.Idle[1].Connections != 4 || rep.Setup.Connections != 4 {
		t.Errorf("idle steps = %+v, setup %+v", rep.Idle, rep.Setup)
	}
}

func TestBenchParseMsgID(t *testing.T) {
	tests := []struct {
		in      string
		w, s, k int
		ok      bool
	}{
		{"w0s1m0", 0, 1, 0, true},
		{"w12s3m45678", 12, 3, 45678, true},
		{msgID(2, 7, 99), 2, 7, 99, true},
		{"rw0s1m0", 0, 0, 0, false},
		{"w0s1", 0, 0, 0, false},
		{"w0m1s2", 0, 0, 0, false},
		{"wxs1m2", 0, 0, 0, false},
		{"w1s1m-2", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	}
	for _, tt := range tests {
		w, s, k, ok := parseMsgID(tt.in)
		if ok != tt.ok || (ok && (w != tt.w || s != tt.s || k != tt.k)) {
			t.Errorf("parseMsgID(%q) = %d, %d, %d, %v; want %d, %d, %d, %v", tt.in, w, s, k, ok, tt.w, tt.s, tt.k, tt.ok)
		}
	}
}

func TestBenchLoopbackOnly(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8080", "http://127.1.2.3:1", "nats://u:p@127.0.0.1:4222"} {
		if err := checkLoopbackURL(u); err != nil {
			t.Errorf("checkLoopbackURL(%q) = %v", u, err)
		}
	}
	for _, u := range []string{"http://10.0.0.1:8080", "http://example.com", "http://[::1]:80", "http://localhost:80"} {
		if err := checkLoopbackURL(u); err == nil {
			t.Errorf("checkLoopbackURL(%q) = nil, want an error", u)
		}
	}
}

func TestBenchSplitUsers(t *testing.T) {
	o := options{Conns: 40000, Workers: 3, SetupConc: 64, DialConc: 128}
	plan := splitUsers(o, []string{"http://127.0.0.1:1"}, "x")
	total := 0
	for i, c := range plan {
		if c.Users%2 != 0 || c.FirstUser != total || c.Users > 15000 {
			t.Errorf("worker %d: %+v", i, c)
		}
		total += c.Users
	}
	if total != o.Conns {
		t.Errorf("users = %d, want %d", total, o.Conns)
	}
}

// TestBenchStepResultCountsFailedBurns: a delivered message whose read was
// answered with an error counts as a failed burn (and makes the step not
// sustained), one whose read got no answer as delivered-not-burned.
func TestBenchStepResultCountsFailedBurns(t *testing.T) {
	const n = 4
	st := &stepState{
		frames: make([][]byte, n), errs: map[string]int64{},
		sendAt: make([]atomic.Int64, n), ackAt: make([]atomic.Int64, n), failAt: make([]atomic.Int64, n),
		dlvAt: make([]atomic.Int64, n), burnAt: make([]atomic.Int64, n), readFailAt: make([]atomic.Int64, n),
	}
	for k := range n {
		st.sendAt[k].Store(int64(1000 + k))
		st.ackAt[k].Store(int64(2000 + k))
		st.dlvAt[k].Store(int64(3000 + k))
	}
	st.burnAt[0].Store(4000)
	st.burnAt[1].Store(4001)
	st.readFailAt[2].Store(4002)
	r := st.result()
	if r.Burned != 2 || r.BurnFailed != 1 || r.DeliveredNotBurned != 1 {
		t.Fatalf("burned %d, failed burns %d, not burned %d; want 2, 1, 1", r.Burned, r.BurnFailed, r.DeliveredNotBurned)
	}
	sr := &StepReport{TargetPerSec: 4, AckedPerSec: 4, Result: r}
	if ok, why := verdict(sr, options{}, n); ok || !strings.Contains(why, "1 burns failed") {
		t.Fatalf("verdict = %v, %q; want not sustained for the failed burn", ok, why)
	}
}
