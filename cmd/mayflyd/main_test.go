package main

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app/apptest"
	"github.com/mayfly-im/mayfly/schema"
)

func TestMain(m *testing.M) {
	code := m.Run()
	apptest.RemoveBinaries()
	os.Exit(code)
}

// buildMayflyd builds this command (once) and returns the binary's path.
func buildMayflyd(t *testing.T) string {
	return apptest.Binary(t, "github.com/mayfly-im/mayfly/cmd/mayflyd", false)
}

// dataDir makes a data directory the private Postgres can reach when the
// tests run as root (it then runs as the postgres user; see store/pgserver).
func dataDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mayflyd-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// lockedBuffer collects a child's output; it is written by exec's copier.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is a running mayflyd.
type proc struct {
	cmd    *exec.Cmd
	http   string
	stderr *lockedBuffer
	done   chan struct{}
	err    error // set before done is closed
}

// startMayflyd runs bin serve on dir with fresh loopback ports.
func startMayflyd(t *testing.T, bin, dir string) *proc {
	t.Helper()
	// Ports are picked by the kernel at bind time: a port probed free
	// beforehand can be taken by another test's connection before mayflyd
	// binds it. The HTTP address is read back from the log.
	p := &proc{stderr: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "--data", dir, "--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0",
		"--nats-ws-listen", "127.0.0.1:0", "--log-level", "debug")
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	p.waitReady(t)
	return p
}

// httpListening matches the log line that gives the HTTP address.
var httpListening = regexp.MustCompile(`msg="http listening" addr=(127\.0\.0\.1:[0-9]+)`)

// waitReady learns the HTTP address from the log, then polls /readyz
// until it answers 200.
func (p *proc) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	client := http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("mayflyd exited before it was ready: %v\n%s", p.err, p.stderr)
		default:
		}
		if p.http == "" {
			if m := httpListening.FindStringSubmatch(p.stderr.String()); m != nil {
				p.http = m[1]
			} else {
				time.Sleep(50 * time.Millisecond)
				continue
			}
		}
		if resp, err := client.Get("http://" + p.http + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("mayflyd not ready after 90s:\n%s", p.stderr)
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("mayflyd did not exit within 60s of SIGTERM:\n%s", p.stderr)
	}
	if p.err != nil {
		t.Fatalf("mayflyd exit after SIGTERM: %v (want status 0)\n%s", p.err, p.stderr)
	}
}

// postgresFor returns the pids of postmasters running on dir's private cluster.
func postgresFor(dir string) []string {
	var pids []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && filepath.Base(args[0]) == "postgres" && strings.Contains(string(b), filepath.Join(dir, "pg")) {
			pids = append(pids, filepath.Base(filepath.Dir(f)))
		}
	}
	return pids
}

func checkPostgresStopped(t *testing.T, dir string) {
	t.Helper()
	if pids := postgresFor(dir); len(pids) > 0 {
		t.Errorf("postgres still running on %s after mayflyd exited: pids %v", dir, pids)
	}
	if _, err := os.Stat(filepath.Join(dir, "pg", "data", "postmaster.pid")); err == nil {
		t.Errorf("postmaster.pid left behind: postgres was not shut down cleanly")
	}
}

// TestMayflydRestartKeepsAccounts runs the real binary on a data directory,
// registers a user, stops it with SIGTERM, starts it again and finds the
// user, the device and its tokens still there; then runs `mayflyd migrate`.
func TestMayflydRestartKeepsAccounts(t *testing.T) {
	t.Parallel()
	bin := buildMayflyd(t)
	dir := dataDir(t)
	p := startMayflyd(t, bin, dir)
	if pids := postgresFor(dir); len(pids) != 1 {
		t.Errorf("%d postmasters for the data dir while running, want 1", len(pids))
	}
	alice := apptest.NewUser(t, p.http, "alice")
	before := alice.Session
	p.stop(t)
	checkPostgresStopped(t, dir)
	if !strings.Contains(p.stderr.String(), "stopped") {
		t.Errorf("no shutdown log line:\n%s", p.stderr)
	}

	p = startMayflyd(t, bin, dir)
	alice.BaseURL = "http://" + p.http
	var u schema.User
	alice.Must(http.MethodGet, "/v1/users/ALICE", nil, &u) // the access token (and the key signing it) survived
	if u.UserID != alice.User.UserID || u.Fingerprint != alice.User.Fingerprint {
		t.Errorf("after restart: %+v, want %+v", u, alice.User)
	}
	var s schema.Session
	alice.Must(http.MethodPost, "/v1/refresh", schema.RefreshRequest{RefreshToken: before.RefreshToken}, &s)
	if s.DeviceID != before.DeviceID {
		t.Errorf("refresh after restart gave device %s, want %s", s.DeviceID, before.DeviceID)
	}
	again := alice.Device("laptop")
	if again.Session.UserID != alice.User.UserID {
		t.Errorf("login after restart: %+v", again.Session)
	}
	p.stop(t)
	checkPostgresStopped(t, dir)

	out, err := exec.Command(bin, "migrate", "--data", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "migrations applied") {
		t.Errorf("mayflyd migrate: %v\n%s", err, out)
	}
	checkPostgresStopped(t, dir)
}

// TestMayflydCommandLine checks the errors a person sees first: missing
// PostgreSQL binaries and bad flags.
func TestMayflydCommandLine(t *testing.T) {
	t.Parallel()
	bin := buildMayflyd(t)
	empty := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"no postgres binaries", []string{"--data", filepath.Join(t.TempDir(), "d")}, []string{"MAYFLY_PG_BINDIR=" + empty}, "apt-get install postgresql"},
		{"no postgres binaries, migrate", []string{"migrate", "--data", filepath.Join(t.TempDir(), "d")}, []string{"MAYFLY_PG_BINDIR=" + empty}, "apt-get install postgresql"},
		{"bad rate", []string{"--anon-rate", "fast"}, nil, `bad -anon-rate "fast"`},
		{"stray argument", []string{"serve"}, nil, `unexpected argument "serve"`},
		{"unknown flag", []string{"--no-such-flag"}, nil, "flag provided but not defined"},
		{"bad log level", []string{"--log-level", "verbose"}, nil, `bad -log-level "verbose": want debug, info, warn or error`},
		{"bad log level in env", nil, []string{"MAYFLY_LOG_LEVEL=INFO+2"}, `bad -log-level "INFO+2"`},
		{"bad log format", []string{"--log-format", "xml"}, nil, `bad -log-format "xml": want text or json`},
		{"bad listen address", []string{"--http", "8080"}, nil, `bad -http "8080": want host:port`},
		{"monitor beyond loopback", []string{"--nats-monitor", "0.0.0.0:8222"}, nil, `bad -nats-monitor "0.0.0.0:8222": must be a loopback address`},
		{"http port taken", []string{"--data", filepath.Join(t.TempDir(), "d"), "--http", taken}, nil, "listen http: listen tcp " + taken + ": bind: address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, tt.args...)
			cmd.Env = append(os.Environ(), tt.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("mayflyd %v: %v, want a non-zero exit\n%s", tt.args, err, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("mayflyd %v stderr lacks %q:\n%s", tt.args, tt.want, stderr.String())
			}
		})
	}
}

// rootHomeDataDir returns a data directory inside a 0700 directory, like a
// clone in root's home, and removes the cluster a root-run mayflyd keeps
// under /var/lib/mayfly for it at cleanup.
func rootHomeDataDir(t *testing.T) string {
	t.Helper()
	home := filepath.Join(dataDir(t), "root")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(home, "mayfly", "mayfly-data")
	t.Cleanup(func() {
		if target, err := os.Readlink(filepath.Join(dir, "pg")); err == nil && strings.HasPrefix(target, "/var/lib/mayfly/pg-") {
			os.RemoveAll(target)
		}
	})
	return dir
}

// TestMayflydRestartAfterKill runs the real binary as a first-time user
// does (as root, inside a 0700 home, when the test runs as root), kills it
// with SIGKILL and starts it again at once, as a supervisor does: the new
// mayflyd waits for its predecessor's postgres and comes up with the
// account still there.
func TestMayflydRestartAfterKill(t *testing.T) {
	t.Parallel()
	bin := buildMayflyd(t)
	dir := dataDir(t)
	if os.Geteuid() == 0 {
		dir = rootHomeDataDir(t)
	}
	p := startMayflyd(t, bin, dir)
	alice := apptest.NewUser(t, p.http, "alice")
	if os.Geteuid() == 0 {
		if target, err := os.Readlink(filepath.Join(dir, "pg")); err != nil || !strings.HasPrefix(target, "/var/lib/mayfly/pg-") {
			t.Errorf("root in a 0700 home: %s/pg links to %q, %v; want /var/lib/mayfly/pg-*", dir, target, err)
		}
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
	p = startMayflyd(t, bin, dir)
	alice.BaseURL = "http://" + p.http
	var u schema.User
	alice.Must(http.MethodGet, "/v1/users/alice", nil, &u)
	if m := regexp.MustCompile(`msg="previous postgres stopped".*`).FindString(p.stderr.String()); m != "" {
		t.Log(m)
	}
	if u.UserID != alice.User.UserID {
		t.Errorf("after kill and restart: %+v, want %+v", u, alice.User)
	}
	p.stop(t)
	checkPostgresStopped(t, dir)
}

// TestMayflydHelpAndVersion checks that -h and --version succeed and say
// what an operator needs: the migrate command, every flag, the build.
func TestMayflydHelpAndVersion(t *testing.T) {
	t.Parallel()
	bin := buildMayflyd(t)
	for _, arg := range []string{"-h", "--help", "--version"} {
		out, err := exec.Command(bin, arg).Output()
		if err != nil {
			t.Fatalf("mayflyd %s: %v, want exit 0", arg, err)
		}
		want := []string{"mayflyd migrate", "-log-level", "MAYFLY_NATS_MONITOR"}
		if arg == "--version" {
			want = []string{"mayflyd ", runtime.Version()}
		}
		for _, w := range want {
			if !strings.Contains(string(out), w) {
				t.Errorf("mayflyd %s lacks %q:\n%s", arg, w, out)
			}
		}
	}
}

// TestMayflydNATSPortTaken checks that a taken NATS address fails with the
// address in the message: the server's own listen error, which Start now
// returns at once, where it used to wait 30 s and say only "not ready".
func TestMayflydNATSPortTaken(t *testing.T) {
	t.Parallel()
	bin := buildMayflyd(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	start := time.Now()
	cmd := exec.Command(bin, "--data", dataDir(t), "--http", "127.0.0.1:0", "--nats-listen", taken, "--nats-ws-listen", "off")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("mayflyd with NATS address %s taken exited 0:\n%s", taken, out)
	}
	if !strings.Contains(string(out), "mayflyd: nats server: ") || !strings.Contains(string(out), taken) {
		t.Errorf("mayflyd with NATS address %s taken: want the address in the error:\n%s", taken, out)
	}
	t.Logf("failed after %s", time.Since(start).Round(time.Millisecond))
}
