package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clusterConfig says which mayflyd processes to start.
type clusterConfig struct {
	Mayflyd      string // path of the mayflyd binary
	Dir          string // parent directory for every process's data
	Gateways     int    // extra gateway processes; 0: clients use the core
	SyncInterval string // embedded JetStream fsync: "always" or a duration
	Pprof        bool   // serve pprof on a loopback port in every process
	Partitions   int    // --mailbox-partitions; 0: mayflyd's default
	Rotate       string // --mailbox-rotate-interval; "": mayflyd's default
	GOMAXPROCS   int    // if > 0, the GOMAXPROCS of every mayflyd
}

// serverProc is one running mayflyd.
type serverProc struct {
	Name     string `json:"name"`
	Pid      int    `json:"pid"`
	HTTP     string `json:"http"` // host:port
	NATS     string `json:"-"`    // core only: nats://host:port
	PGSocket string `json:"-"`    // core only
	Pprof    string `json:"pprof,omitempty"`
	LogPath  string `json:"log"`

	cmd    *exec.Cmd
	exited chan struct{}
}

// cluster is a core mayflyd (embedded NATS, private Postgres, gateway) and
// optional extra gateway processes connected to the core's NATS and
// Postgres: the scale-out shape on one machine.
type cluster struct {
	core     *serverProc
	gateways []*serverProc
	natsURL  string // the core's NATS with the service user's credentials
}

// startCluster starts the core, then the gateways.
func startCluster(ctx context.Context, cfg clusterConfig) (*cluster, error) {
	coreDir := filepath.Join(cfg.Dir, "core")
	common := []string{
		"--anon-rate", "1000000", "--anon-burst", "1000000",
		"--send-rate", "-1", "--log-format", "json", "--log-level", "info",
	}
	if cfg.Pprof {
		common = append(common, "--pprof", "127.0.0.1:0")
	}
	if cfg.Partitions > 0 {
		common = append(common, "--mailbox-partitions", strconv.Itoa(cfg.Partitions))
	}
	if cfg.Rotate != "" {
		common = append(common, "--mailbox-rotate-interval", cfg.Rotate)
	}
	coreArgs := append([]string{
		"--data", coreDir, "--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0",
		"--nats-ws-listen", "off", "--nats-sync-interval", cfg.SyncInterval,
	}, common...)
	core, err := startServer(ctx, cfg, "core", coreArgs)
	if err != nil {
		return nil, err
	}
	c := &cluster{core: core}
	if c.natsURL, err = serviceURL(core.NATS, coreDir); err != nil {
		c.stop()
		return nil, err
	}
	pgURL := "postgres://mayfly@/mayfly?host=" + url.QueryEscape(core.PGSocket) + "&sslmode=disable"
	for i := range cfg.Gateways {
		name := fmt.Sprintf("gw%d", i+1)
		args := append([]string{
			"--data", filepath.Join(cfg.Dir, name), "--http", "127.0.0.1:0",
			"--nats-url", c.natsURL, "--database-url", pgURL,
			"--token-key", filepath.Join(coreDir, "keys", "token.pem"),
		}, common...)
		gw, err := startServer(ctx, cfg, name, args)
		if err != nil {
			c.stop()
			return nil, err
		}
		c.gateways = append(c.gateways, gw)
	}
	return c, nil
}

// serviceURL adds the service user's credentials (from the core's data
// directory) to the core's NATS URL.
func serviceURL(natsURL, coreDir string) (string, error) {
	pw, err := os.ReadFile(filepath.Join(coreDir, "nats", "service.password"))
	if err != nil {
		return "", fmt.Errorf("read nats service password: %w", err)
	}
	u, err := url.Parse(natsURL)
	if err != nil {
		return "", fmt.Errorf("core nats url %q: %w", natsURL, err)
	}
	u.User = url.UserPassword("mayfly-service", strings.TrimSpace(string(pw)))
	return u.String(), nil
}

// clientURLs are the base URLs the generators connect to.
func (c *cluster) clientURLs() []string {
	procs := c.gateways
	if len(procs) == 0 {
		procs = []*serverProc{c.core}
	}
	var out []string
	for _, p := range procs {
		out = append(out, "http://"+p.HTTP)
	}
	return out
}

// procs returns every mayflyd process, core first.
func (c *cluster) procs() []*serverProc { return append([]*serverProc{c.core}, c.gateways...) }

// stop stops the gateways, then the core.
func (c *cluster) stop() {
	for _, g := range c.gateways {
		g.stop()
	}
	if c.core != nil {
		c.core.stop()
	}
}

// startServer starts one mayflyd and waits until it logs "mayflyd ready".
func startServer(ctx context.Context, cfg clusterConfig, name string, args []string) (*serverProc, error) {
	logPath := filepath.Join(cfg.Dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(cfg.Mayflyd, args...)
	if cfg.GOMAXPROCS > 0 {
		cmd.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", cfg.GOMAXPROCS))
	}
	cmd.Stdout = lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		lf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, cfg.Mayflyd, err)
	}
	p := &serverProc{Name: name, Pid: cmd.Process.Pid, LogPath: logPath, cmd: cmd, exited: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		// Wait only after the log pipe reached its end (exec.Cmd's rule).
		p.scanLog(stderr, lf, ready)
		cmd.Wait()
		lf.Close()
		close(p.exited)
	}()
	select {
	case <-ready:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("%s exited during start; see %s", name, logPath)
	case <-time.After(2 * time.Minute):
		p.stop()
		return nil, fmt.Errorf("%s not ready after 2 minutes; see %s", name, logPath)
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

// scanLog copies the process's JSON log to w and picks the addresses out of
// it, closing ready at "mayflyd ready".
func (p *serverProc) scanLog(r io.Reader, w io.Writer, ready chan struct{}) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		w.Write(line)
		w.Write([]byte{'\n'})
		if ready == nil {
			continue
		}
		var m map[string]any
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		str := func(k string) string { s, _ := m[k].(string); return s }
		switch str("msg") {
		case "private postgres running":
			p.PGSocket = str("socket_dir")
		case "pprof listening":
			p.Pprof = str("addr")
		case "mayflyd ready":
			p.HTTP, p.NATS = str("http"), str("nats")
			close(ready)
			ready = nil
		}
	}
	io.Copy(w, r)
}

// stop asks the process to shut down and waits (killing it after 40s).
func (p *serverProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(40 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// serverStats is a snapshot of one process's resources.
type serverStats struct {
	Name       string  `json:"name"`
	RSS        int64   `json:"rss_bytes"`
	CPU        float64 `json:"cpu_seconds"`
	PGCPU      float64 `json:"postgres_cpu_seconds,omitempty"` // core only
	Conns      float64 `json:"ws_connections"`
	Goroutines float64 `json:"goroutines"`
	HeapInuse  float64 `json:"heap_inuse_bytes"`
	StackInuse float64 `json:"stack_inuse_bytes"`
}

// stats reads p's RSS and CPU from /proc and a few gauges from /metrics.
func (p *serverProc) stats(withChildren bool) serverStats {
	s := serverStats{Name: p.Name, RSS: procRSS(p.Pid), CPU: procCPU(p.Pid)}
	if withChildren {
		s.PGCPU = descendantsCPU(p.Pid)
	}
	m := scrapeMetrics("http://"+p.HTTP+"/metrics",
		"mayfly_ws_connections", "go_goroutines", "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes")
	s.Conns, s.Goroutines = m["mayfly_ws_connections"], m["go_goroutines"]
	s.HeapInuse, s.StackInuse = m["go_memstats_heap_inuse_bytes"], m["go_memstats_stack_inuse_bytes"]
	return s
}

// scrapeMetrics reads the named unlabelled gauges from a Prometheus text
// endpoint; missing ones are absent.
func scrapeMetrics(u string, names ...string) map[string]float64 {
	out := map[string]float64{}
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(u)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if ok && want[name] {
			if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
				out[name] = v
			}
		}
	}
	return out
}

// fetchProfile saves a pprof profile (path like "profile?seconds=10" or
// "heap") of p to file.
func (p *serverProc) fetchProfile(ctx context.Context, path, file string) error {
	if p.Pprof == "" {
		return errors.New("pprof is off")
	}
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+p.Pprof+"/debug/pprof/"+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s profile of %s: %w", path, p.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s profile of %s: status %d", path, p.Name, resp.StatusCode)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
