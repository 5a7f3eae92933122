package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// Report is the whole result of a run, printed as text and written as JSON.
type Report struct {
	Command    string        `json:"command"`
	Started    time.Time     `json:"started"`
	Machine    machine       `json:"machine"`
	Options    options       `json:"options"`
	Servers    []*serverProc `json:"servers,omitempty"`
	Setup      SetupTimes    `json:"setup"`
	Idle0      sample        `json:"before_connect"`
	Connected  sample        `json:"after_connect"`
	Baselines  []Baseline    `json:"raw_jetstream,omitempty"`
	Disk       []DiskSync    `json:"disk_sync,omitempty"`
	Steps      []StepReport  `json:"steps,omitempty"`
	Idle       []IdleReport  `json:"idle,omitempty"`
	LoadAvgEnd float64       `json:"load_avg_1m_at_end"`
}

// SetupTimes are the untimed preparations, measured separately.
type SetupTimes struct {
	Users          int     `json:"users"`
	UsersSeconds   float64 `json:"register_login_befriend_seconds"`
	Connections    int     `json:"connections"`
	ConnectSeconds float64 `json:"connect_seconds"`
}

// StepReport is one timed step at one target rate.
type StepReport struct {
	Step         int     `json:"step"`
	TargetPerSec float64 `json:"target_per_sec"`
	Connections  int     `json:"connections"`
	Seconds      float64 `json:"seconds"`

	SentPerSec      float64 `json:"sent_per_sec"`
	AckedPerSec     float64 `json:"acked_per_sec"`
	DeliveredPerSec float64 `json:"delivered_per_sec"`
	BurnedPerSec    float64 `json:"burned_per_sec"`
	Ack             Latency `json:"send_to_ack"`
	Deliver         Latency `json:"send_to_deliver"`
	Burn            Latency `json:"send_to_burned"`
	ErrorsTotal     int64   `json:"errors_total"`
	MaxLagMs        float64 `json:"generator_max_lag_ms"`

	ServerCPU    float64          `json:"server_cpu_cores"`
	PostgresCPU  float64          `json:"postgres_cpu_cores"`
	GeneratorCPU float64          `json:"generator_cpu_cores"`
	ServerRSS    map[string]int64 `json:"server_rss_bytes"`
	LoadAvg      float64          `json:"load_avg_1m"`
	// RatioToRaw is AckedPerSec over each raw JetStream baseline's rate.
	RatioToRaw []float64 `json:"ratio_to_raw_jetstream,omitempty"`
	Sustained  bool      `json:"sustained"`
	Why        string    `json:"why,omitempty"`

	Result *StepResult `json:"result"`
}

// IdleReport is memory at one number of idle connections.
type IdleReport struct {
	Connections int          `json:"connections"`
	Gateways    []IdleServer `json:"gateways"`
	Load        float64      `json:"load_avg_1m"`
	// ServerCPU and PostgresCPU are the cores all mayflyd processes and
	// the core's Postgres used while the connections sat idle (pings,
	// presence refreshes).
	ServerCPU   float64 `json:"server_cpu_cores"`
	PostgresCPU float64 `json:"postgres_cpu_cores"`
}

// IdleServer is one connection-holding process at an idle step.
type IdleServer struct {
	Name          string  `json:"name"`
	Conns         float64 `json:"ws_connections"`
	RSS           int64   `json:"rss_bytes"`
	RSSPerConn    float64 `json:"rss_per_conn_bytes"`  // growth since before connecting
	HeapPerConn   float64 `json:"heap_per_conn_bytes"` // heap in use, likewise
	StackPerConn  float64 `json:"stack_per_conn_bytes"`
	Goroutines    float64 `json:"goroutines"`
	GoroutinesPer float64 `json:"goroutines_per_conn"`
}

func newReport(o options) *Report {
	return &Report{Command: strings.Join(os.Args, " "), Started: time.Now(), Machine: describeMachine(), Options: o}
}

// newStepReport derives rates, latencies, CPU and the verdict of one step.
func newStepReport(step int, target float64, o options, r *StepResult, before, after sample, raw []Baseline) *StepReport {
	sr := &StepReport{
		Step: step, TargetPerSec: target, Connections: o.Conns, Seconds: o.Duration.Seconds(), Result: r,
		SentPerSec:      float64(r.Sent) / o.Duration.Seconds(),
		AckedPerSec:     rate(r.Acked, r.FirstSend, r.LastAck),
		DeliveredPerSec: rate(r.Delivered, r.FirstSend, r.LastDeliver),
		BurnedPerSec:    rate(r.Burned, r.FirstSend, r.LastBurn),
		Ack:             summarize(r.Ack), Deliver: summarize(r.Deliver), Burn: summarize(r.Burn),
		MaxLagMs: float64(r.MaxLagMicros) / 1000, LoadAvg: after.Load,
		ServerRSS: map[string]int64{},
	}
	for _, v := range r.Errors {
		sr.ErrorsTotal += v
	}
	wall := after.At.Sub(before.At).Seconds()
	for i, s := range after.Servers {
		if i < len(before.Servers) {
			sr.ServerCPU += (s.CPU - before.Servers[i].CPU) / wall
			sr.PostgresCPU += (s.PGCPU - before.Servers[i].PGCPU) / wall
		}
		sr.ServerRSS[s.Name] = s.RSS
	}
	sr.GeneratorCPU = (after.GenCPU - before.GenCPU) / wall
	for _, b := range raw {
		if b.PerSec > 0 {
			sr.RatioToRaw = append(sr.RatioToRaw, sr.AckedPerSec/b.PerSec)
		}
	}
	sr.Sustained, sr.Why = verdict(sr, o, int64(target*o.Duration.Seconds()))
	return sr
}

// verdict says whether a step sustained its rate, and if not why.
func verdict(sr *StepReport, o options, planned int64) (bool, string) {
	r := sr.Result
	var why []string
	if sr.ErrorsTotal > 0 {
		why = append(why, fmt.Sprintf("%d errors", sr.ErrorsTotal))
	}
	if r.BurnFailed > 0 || r.DeliveredNotBurned > 0 {
		why = append(why, fmt.Sprintf("%d burns failed, %d unanswered", r.BurnFailed, r.DeliveredNotBurned))
	}
	if r.AckedNotDelivered > 0 || r.Unanswered > 0 {
		why = append(why, fmt.Sprintf("%d acked but not delivered, %d unanswered", r.AckedNotDelivered, r.Unanswered))
	}
	if float64(r.Sent) < 0.99*float64(planned) {
		why = append(why, fmt.Sprintf("generator sent only %d of %d", r.Sent, planned))
	}
	if sr.AckedPerSec < 0.95*sr.TargetPerSec {
		why = append(why, fmt.Sprintf("acked %.0f/s < 95%% of target", sr.AckedPerSec))
	}
	if o.MaxP99 > 0 && sr.Deliver.P99 > float64(o.MaxP99)/float64(time.Millisecond) {
		why = append(why, fmt.Sprintf("deliver p99 %.1f ms > %v", sr.Deliver.P99, o.MaxP99))
	}
	return len(why) == 0, strings.Join(why, "; ")
}

// newIdleReport computes memory per connection from the growth since s0.
func newIdleReport(n int, s0, s sample, holders map[string]bool) IdleReport {
	ir := IdleReport{Connections: n, Load: s.Load}
	for i, st := range s.Servers {
		if !holders[st.Name] || i >= len(s0.Servers) || st.Conns <= 0 {
			continue
		}
		b := s0.Servers[i]
		ir.Gateways = append(ir.Gateways, IdleServer{
			Name: st.Name, Conns: st.Conns, RSS: st.RSS,
			RSSPerConn:    float64(st.RSS-b.RSS) / st.Conns,
			HeapPerConn:   (st.HeapInuse - b.HeapInuse) / st.Conns,
			StackPerConn:  (st.StackInuse - b.StackInuse) / st.Conns,
			Goroutines:    st.Goroutines,
			GoroutinesPer: (st.Goroutines - b.Goroutines) / st.Conns,
		})
	}
	return ir
}

func (r *Report) writeJSON(file string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(b, '\n'), 0o644)
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// print writes the human-readable report (Markdown tables).
func (r *Report) print(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "\n## mayfly-bench %s: %d connections, %d generator process(es), %d extra gateway(s)\n\n",
		r.Options.Mode, r.Options.Conns, r.Options.Workers, r.Options.Gateways)
	fmt.Fprintf(w, "command: `%s`\n\n", r.Command)
	procs := "default"
	if r.Options.ServerProcs > 0 {
		procs = fmt.Sprint(r.Options.ServerProcs)
	}
	fmt.Fprintf(w, "machine: %d CPUs (%s), %d MB RAM, Linux %s, %s; load average %.1f at start, %.1f at end; JetStream sync %s; server GOMAXPROCS %s\n\n",
		m.CPUs, m.CPUModel, m.MemoryMB, m.Kernel, m.GoVersion, m.LoadAvg, r.LoadAvgEnd, r.Options.SyncInterval, procs)
	fmt.Fprintf(w, "set-up (not timed): %d users registered, logged in and befriended in %.1f s; %d WebSockets connected and synced in %.1f s\n\n",
		r.Setup.Users, r.Setup.UsersSeconds, r.Setup.Connections, r.Setup.ConnectSeconds)
	for _, b := range r.Baselines {
		fmt.Fprintf(w, "raw JetStream, %d stream(s): %.0f acked async publishes/s (%d-byte payloads, file storage, R%d, %d pending, %.1f s, %d errors)\n\n",
			b.Streams, b.PerSec, b.Size, b.Replicas, b.Pending, b.Seconds, b.Errors)
	}
	for _, ds := range r.Disk {
		fmt.Fprintf(w, "data disk: %.0f synced 1 KiB appends/s with %d writer(s) (%.1f s)\n\n", ds.PerSec, ds.Writers, ds.Seconds)
	}
	if len(r.Steps) > 0 {
		r.printConnected(w)
		printSteps(w, r.Steps)
	}
	if len(r.Idle) > 0 {
		printIdle(w, r.Idle)
	}
}

// printConnected shows server memory with every connection open.
func (r *Report) printConnected(w io.Writer) {
	if len(r.Connected.Servers) == 0 {
		return
	}
	fmt.Fprintf(w, "| process | RSS before connecting | RSS connected | WebSockets | RSS growth per connection |\n|---|---|---|---|---|\n")
	for i, s := range r.Connected.Servers {
		var b serverStats
		if i < len(r.Idle0.Servers) {
			b = r.Idle0.Servers[i]
		}
		per := "-"
		if s.Conns > 0 {
			per = fmt.Sprintf("%.1f KB", float64(s.RSS-b.RSS)/s.Conns/1024)
		}
		fmt.Fprintf(w, "| %s | %.0f MB | %.0f MB | %.0f | %s |\n", s.Name, mb(b.RSS), mb(s.RSS), s.Conns, per)
	}
	fmt.Fprintln(w)
}

func printSteps(w io.Writer, steps []StepReport) {
	fmt.Fprintf(w, "| step | target/s | sent/s | acked/s | delivered/s | burned/s | send→ack p50/p90/p99/max ms | send→deliver p50/p90/p99/max ms | send→burned p50/p90/p99/max ms | errors | failed burns | acked, never delivered | server CPU | Postgres CPU | generator CPU | ×raw JetStream (1 / 16 streams) | load |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range steps {
		ratio := "-"
		if len(s.RatioToRaw) > 0 {
			var parts []string
			for _, x := range s.RatioToRaw {
				parts = append(parts, fmt.Sprintf("%.2f", x))
			}
			ratio = strings.Join(parts, " / ")
		}
		fmt.Fprintf(w, "| %d | %.0f | %.0f | %.0f | %.0f | %.0f | %s | %s | %s | %d | %d | %d | %.2f | %.2f | %.2f | %s | %.1f |\n",
			s.Step, s.TargetPerSec, s.SentPerSec, s.AckedPerSec, s.DeliveredPerSec, s.BurnedPerSec,
			lat(s.Ack), lat(s.Deliver), lat(s.Burn), s.ErrorsTotal, s.Result.BurnFailed, s.Result.AckedNotDelivered,
			s.ServerCPU, s.PostgresCPU, s.GeneratorCPU, ratio, s.LoadAvg)
	}
	fmt.Fprintln(w)
	for _, s := range steps {
		line := fmt.Sprintf("step %d: sent %d, acked %d, delivered %d, burned %d, failed burns %d, sync copies %d, duplicates %d, unanswered %d, delivered-not-burned %d, generator lag max %.1f ms",
			s.Step, s.Result.Sent, s.Result.Acked, s.Result.Delivered, s.Result.Burned, s.Result.BurnFailed, s.Result.SelfCopies,
			s.Result.Duplicates, s.Result.Unanswered, s.Result.DeliveredNotBurned, s.MaxLagMs)
		if len(s.Result.Errors) > 0 {
			line += "; errors: " + errorList(s.Result.Errors)
		}
		if !s.Sustained {
			line += "; NOT sustained: " + s.Why
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w)
}

func printIdle(w io.Writer, idle []IdleReport) {
	fmt.Fprintf(w, "| connections | process | WebSockets | RSS | RSS per connection | heap per connection | stacks per connection | goroutines per connection | idle server CPU | load |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, ir := range idle {
		for _, g := range ir.Gateways {
			fmt.Fprintf(w, "| %d | %s | %.0f | %.0f MB | %.1f KB | %.1f KB | %.1f KB | %.2f | %.2f | %.1f |\n",
				ir.Connections, g.Name, g.Conns, mb(g.RSS), g.RSSPerConn/1024, g.HeapPerConn/1024, g.StackPerConn/1024, g.GoroutinesPer, ir.ServerCPU, ir.Load)
		}
	}
	fmt.Fprintln(w)
}

func lat(l Latency) string {
	return fmt.Sprintf("%.1f / %.1f / %.1f / %.1f", l.P50, l.P90, l.P99, l.Max)
}

func errorList(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// printStepLine is the progress line after a step.
func printStepLine(w io.Writer, s *StepReport) {
	fmt.Fprintf(w, "step %d at %.0f/s: acked %.0f/s, delivered %.0f/s, deliver p99 %.1f ms, errors %d, failed burns %d, lost %d, server CPU %.2f cores%s\n",
		s.Step, s.TargetPerSec, s.AckedPerSec, s.DeliveredPerSec, s.Deliver.P99, s.ErrorsTotal, s.Result.BurnFailed, s.Result.AckedNotDelivered, s.ServerCPU,
		map[bool]string{true: "", false: " — not sustained: " + s.Why}[s.Sustained])
}

// printIdleLine is the progress line after an idle step.
func printIdleLine(w io.Writer, ir *IdleReport) {
	for _, g := range ir.Gateways {
		fmt.Fprintf(w, "idle %d: %s holds %.0f, RSS %.0f MB, %.1f KB per connection\n", ir.Connections, g.Name, g.Conns, mb(g.RSS), g.RSSPerConn/1024)
	}
}
