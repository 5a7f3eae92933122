package node

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

// TestNodeAPIWorkers checks that the JetStream API pool is sized by
// Config.APIWorkers, not by the machine's cores, and that the process keeps
// its own GOMAXPROCS.
func TestNodeAPIWorkers(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	for _, tc := range []struct{ cfg, want int }{{0, MaxAPIWorkers}, {3, max(3, before)}} {
		n, err := Start(Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), ServicePassword: "test-password-0123456789", APIWorkers: tc.cfg})
		if err != nil {
			t.Fatal(err)
		}
		// The pool's goroutines start (and an earlier node's end) a moment
		// after Start returns: poll until the count settles, or time out.
		want, got := min(tc.want, MaxAPIWorkers), apiWorkers()
		for deadline := time.Now().Add(10 * time.Second); got != want && time.Now().Before(deadline); got = apiWorkers() {
			time.Sleep(10 * time.Millisecond)
		}
		if got != want {
			t.Errorf("APIWorkers %d: %d API workers, want %d", tc.cfg, got, want)
		}
		if got := runtime.GOMAXPROCS(0); got != before {
			t.Errorf("GOMAXPROCS is %d after Start, was %d", got, before)
		}
		n.Shutdown()
	}
}

// apiWorkers counts the goroutines of nats-server's JetStream API pool.
func apiWorkers() int {
	var buf bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&buf, 2)
	return bytes.Count(buf.Bytes(), []byte("server.(*Server).processJSAPIRoutedRequests("))
}

// TestNodePortInUse checks that a taken listen address fails Start with the
// server's listen error, which names the address (the 30 s readiness
// timeout it used to wait for does not), for each listener the node opens.
func TestNodePortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	for _, cfg := range []Config{
		{Listen: taken},
		{Listen: "127.0.0.1:0", WebSocketListen: taken},
		{Listen: "127.0.0.1:0", MonitorListen: taken},
	} {
		cfg.StoreDir, cfg.ServicePassword = t.TempDir(), "test-password-0123456789"
		start := time.Now()
		n, err := Start(cfg)
		if err == nil {
			n.Shutdown()
			t.Errorf("Start %+v on a taken address succeeded", cfg)
			continue
		}
		if !strings.Contains(err.Error(), taken) {
			t.Errorf("Start with %s taken: %v, want the address in the error", taken, err)
		}
		t.Logf("Start with %s taken failed after %s: %v", taken, time.Since(start).Round(time.Millisecond), err)
	}
}

// TestNodeMonitor checks that MonitorListen serves the monitoring
// endpoints `nats server report` and the exporter read, and that it is off
// by default.
func TestNodeMonitor(t *testing.T) {
	n, err := Start(Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), ServicePassword: "test-password-0123456789", MonitorListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown()
	url := n.MonitorURL()
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("MonitorURL %q, want http://127.0.0.1:port", url)
	}
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url + "/varz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var varz struct {
		ServerName string `json:"server_name"`
		JetStream  struct {
			Config *struct{} `json:"config"`
		} `json:"jetstream"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&varz); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/varz: %d, %v", resp.StatusCode, err)
	}
	if varz.ServerName != "mayfly" || varz.JetStream.Config == nil {
		t.Errorf("/varz: server %q, jetstream config %v; want mayfly with JetStream", varz.ServerName, varz.JetStream.Config)
	}

	off, err := Start(Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), ServicePassword: "test-password-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	defer off.Shutdown()
	if url := off.MonitorURL(); url != "" {
		t.Errorf("MonitorURL without MonitorListen = %q, want none", url)
	}
}
