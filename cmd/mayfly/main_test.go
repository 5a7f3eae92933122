package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/store/storetest"
)

func TestMain(m *testing.M) {
	code := storetest.Main(m)
	gatewaytest.RemoveBinaries()
	os.Exit(code)
}

// buildMayfly builds this command (once, with -race when the tests run
// with it) and returns the binary's path.
func buildMayfly(t *testing.T) string {
	return gatewaytest.Binary(t, "github.com/mayfly-im/mayfly/cmd/mayfly", raceEnabled)
}

// env is a mayflyd and the mayfly binary.
type env struct {
	t      *testing.T
	bin    string
	server string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	bin := buildMayfly(t)
	a := gatewaytest.Start(t, gatewaytest.Config{SendRate: 1000, SendBurst: 1000})
	return &env{t: t, bin: bin, server: "http://" + a.HTTPAddr()}
}

// result is one finished mayfly run.
type result struct {
	code           int
	stdout, stderr string
}

// command returns a mayfly command for home; MAYFLY_* variables of the
// test's environment are dropped.
func (e *env) command(ctx context.Context, home string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.bin, append([]string{"--home", home, "--server", e.server}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MAYFLY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	return cmd
}

// run runs mayfly to completion (at most a minute).
func (e *env) run(home string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := e.command(ctx, home, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("mayfly %v: %v", args, err)
	}
	return r
}

// ok runs mayfly and fails the test unless it exits 0.
func (e *env) ok(home string, args ...string) string {
	e.t.Helper()
	r := e.run(home, args...)
	if r.code != 0 {
		e.t.Fatalf("mayfly %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs mayfly and checks it exits non-zero with stderr's first line
// starting with code.
func (e *env) fails(code string, home string, args ...string) {
	e.t.Helper()
	r := e.run(home, args...)
	first, _, _ := strings.Cut(r.stderr, "\n")
	if r.code == 0 || !strings.HasPrefix(first, code+": ") {
		e.t.Fatalf("mayfly %v: exit %d, stderr %q; want non-zero and %q first", args, r.code, r.stderr, code+": ")
	}
}

// message is a line of read --json.
type message struct {
	Type   string `json:"type"`
	ID     string `json:"id"`
	Seq    uint64 `json:"seq"`
	From   string `json:"from"`
	To     string `json:"to"`
	Text   string `json:"text"`
	SentAt string `json:"sent_at"`
	Self   bool   `json:"self"`
}

func parseMessages(t *testing.T, out string) []message {
	t.Helper()
	var ms []message
	for line := range strings.Lines(out) {
		var m message
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		if _, err := time.Parse(time.RFC3339, m.SentAt); err != nil || m.ID == "" || m.Seq == 0 || m.From == "" {
			t.Fatalf("incomplete message line %q", line)
		}
		ms = append(ms, m)
	}
	return ms
}

// checkMode fails unless path has exactly mode perm.
func checkMode(t *testing.T, path string, perm os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != perm {
		t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), perm)
	}
}

// TestCLIEndToEnd: two users register, befriend, message each other and
// burn what they read; a non-friend is refused with not_friend; the home
// directory keeps keys and session private.
func TestCLIEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, bob, carol := filepath.Join(t.TempDir(), "alice"), filepath.Join(t.TempDir(), "bob"), filepath.Join(t.TempDir(), "carol")
	if out := e.ok(alice, "register", "alice"); !strings.Contains(out, "registered alice") || !strings.Contains(out, "fingerprint: ") {
		t.Fatalf("register said %q", out)
	}
	e.ok(bob, "register", "bob")
	e.ok(carol, "register", "carol")
	e.fails("already_registered", alice, "register", "alice2")
	e.fails("handle_taken", filepath.Join(t.TempDir(), "x"), "register", "ALICE")
	who := e.ok(alice, "whoami")
	if !strings.Contains(who, "handle: alice\n") || !strings.Contains(who, "user_id: u") || !strings.Contains(who, "fingerprint: ") {
		t.Fatalf("whoami said %q", who)
	}

	checkMode(t, alice, 0o700)
	for _, f := range []string{"identity.json", "session.json", "device"} {
		checkMode(t, filepath.Join(alice, f), 0o600)
	}

	e.fails("not_friend", alice, "send", "bob", "too early")
	e.ok(alice, "friend", "request", "bob")
	if out := e.ok(bob, "friend", "list"); !strings.Contains(out, "alice  asks to be your friend") {
		t.Fatalf("bob's list %q", out)
	}
	e.ok(bob, "friend", "accept", "alice")
	var fl struct{ Status, Handle, Fingerprint string }
	if err := json.Unmarshal([]byte(e.ok(alice, "friend", "list", "--json")), &fl); err != nil || fl.Status != "friend" || fl.Handle != "bob" {
		t.Fatalf("alice's list: %+v, %v", fl, err)
	}

	id := strings.TrimSpace(e.ok(alice, "send", "bob", "hello", "bob"))
	ms := parseMessages(t, e.ok(bob, "read", "--json"))
	if len(ms) != 1 || ms[0].ID != id || ms[0].Text != "hello bob" || ms[0].From != "alice" || ms[0].To != "bob" || ms[0].Self {
		t.Fatalf("bob read %+v, want id %s", ms, id)
	}
	if out := e.ok(bob, "read", "--json"); out != "" {
		t.Fatalf("second read printed %q: not burned", out)
	}
	checkMode(t, filepath.Join(bob, "cursor"), 0o600)
	// Burned for the sender too: alice's own copy is gone, so reading her
	// mailbox (from any device) shows nothing either.
	if out := e.ok(alice, "read"); out != "" {
		t.Fatalf("alice read %q", out)
	}

	e.fails("not_friend", alice, "send", "carol", "hi carol")
	e.fails("not_found", alice, "send", "nobody", "hi")
	e.fails("no_request", carol, "friend", "accept", "alice")

	// read --wait gets a message sent while it waits, in text form.
	waiting := e.start(bob, "read", "--wait", "30s")
	// The read may sync before or after the send lands; both must work.
	e.ok(alice, "send", "bob", "are you there?")
	out := waiting.wait(t)
	if !strings.Contains(out, "alice: are you there?") {
		t.Fatalf("read --wait printed %q", out)
	}
	if out := e.ok(bob, "read", "--wait", "100ms"); out != "" {
		t.Fatalf("read after read --wait printed %q", out)
	}

	tok := strings.TrimSpace(e.ok(alice, "token"))
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("token printed %q", tok)
	}

	// Without a session the home logs in again as the same device.
	if err := os.Remove(filepath.Join(alice, "session.json")); err != nil {
		t.Fatal(err)
	}
	if out := e.ok(alice, "device", "list"); strings.Count(out, "\n") != 1 || !strings.Contains(out, "(this device)") {
		t.Fatalf("device list after a new login %q", out)
	}
}

// TestCLIDeviceLink: a third home becomes a second device of alice by
// link and approve, and reads messages sent afterwards.
func TestCLIDeviceLink(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, bob, laptop := filepath.Join(t.TempDir(), "alice"), filepath.Join(t.TempDir(), "bob"), filepath.Join(t.TempDir(), "laptop")
	e.ok(alice, "register", "alice")
	e.ok(bob, "register", "bob")
	e.ok(alice, "friend", "request", "bob")
	e.ok(bob, "friend", "accept", "alice")

	link := e.start(laptop, "device", "link")
	code := link.waitLine(t, "link code: ")
	e.fails("not_found", alice, "device", "approve", "AAAAA-AAAAA")
	e.ok(alice, "device", "approve", code)
	out := link.wait(t)
	if !strings.Contains(out, "linked: this device is") || !strings.Contains(out, "of alice") {
		t.Fatalf("device link printed %q", out)
	}
	e.fails("not_found", alice, "device", "approve", code) // single use

	whoA, whoL := e.ok(alice, "whoami"), e.ok(laptop, "whoami")
	fp := func(s string) string {
		_, after, _ := strings.Cut(s, "fingerprint: ")
		f, _, _ := strings.Cut(after, "\n")
		return f
	}
	if !strings.Contains(whoL, "handle: alice\n") || fp(whoA) != fp(whoL) {
		t.Fatalf("linked whoami %q vs %q", whoL, whoA)
	}
	for _, f := range []string{"identity.json", "session.json"} {
		checkMode(t, filepath.Join(laptop, f), 0o600)
	}
	if out := e.ok(alice, "device", "list"); strings.Count(out, "\n") != 2 || !strings.Contains(out, "(this device)") {
		t.Fatalf("device list %q", out)
	}

	e.ok(bob, "send", "alice", "to every device")
	ms := parseMessages(t, e.ok(laptop, "read", "--json"))
	if len(ms) != 1 || ms[0].Text != "to every device" || ms[0].From != "bob" {
		t.Fatalf("laptop read %+v", ms)
	}
	if out := e.ok(alice, "read"); out != "" {
		t.Fatalf("alice's phone read %q after the laptop burned it", out)
	}

	// Revoking the laptop ends its session.
	var laptopID string
	for line := range strings.Lines(e.ok(alice, "device", "list")) {
		if !strings.Contains(line, "(this device)") {
			laptopID, _, _ = strings.Cut(line, " ")
		}
	}
	e.ok(alice, "device", "revoke", laptopID)
	e.fails("token_revoked", laptop, "device", "list")
}

// TestCLIListen: listen prints live messages as JSON lines and leaves them
// unread; an interrupt ends it with exit 0.
func TestCLIListen(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, bob := filepath.Join(t.TempDir(), "alice"), filepath.Join(t.TempDir(), "bob")
	e.ok(alice, "register", "alice")
	e.ok(bob, "register", "bob")
	e.ok(alice, "friend", "request", "bob")
	e.ok(bob, "friend", "accept", "alice")
	e.ok(alice, "send", "bob", "first")

	l := e.start(bob, "listen", "--json")
	line := l.waitLine(t, `{"type":"message"`)
	if !strings.Contains(line, `"text":"first"`) {
		t.Fatalf("listen printed %q", line)
	}
	e.ok(alice, "send", "bob", "second")
	if line := l.waitLine(t, `{"type":"message"`); !strings.Contains(line, `"text":"second"`) {
		t.Fatalf("listen printed %q", line)
	}
	l.cmd.Process.Signal(syscall.SIGINT)
	l.wait(t)
	// listen consumed nothing: read shows both and burns them.
	ms := parseMessages(t, e.ok(bob, "read", "--json"))
	if len(ms) != 2 || ms[0].Text != "first" || ms[1].Text != "second" {
		t.Fatalf("read after listen %+v", ms)
	}
}

// TestCLIBadInput: usage mistakes and missing state are reported with a
// code on the first stderr line, before any request.
func TestCLIBadInput(t *testing.T) {
	t.Parallel()
	e := &env{t: t, bin: buildMayfly(t), server: "http://127.0.0.1:1"}
	home := filepath.Join(t.TempDir(), "h")
	for _, tc := range []struct {
		code string
		args []string
	}{
		{"usage", nil},
		{"usage", []string{"frobnicate"}},
		{"usage", []string{"send", "bob"}},
		{"usage", []string{"register"}},
		{"usage", []string{"friend", "poke", "bob"}},
		{"usage", []string{"friend", "request"}},
		{"usage", []string{"read", "--wait", "soon"}},
		{"usage", []string{"device"}},
		{"usage", []string{"--bogus", "whoami"}},
		{"not_registered", []string{"whoami"}},
		{"not_registered", []string{"send", "bob", "hi"}},
		{"unavailable", []string{"register", "alice"}},
	} {
		e.fails(tc.code, home, tc.args...)
	}
	if r := e.run(home, "-help"); r.code != 0 || !strings.Contains(r.stdout, "device approve CODE") {
		t.Fatalf("-help: %d %q", r.code, r.stdout)
	}
	if r := e.run(home, "--version"); r.code != 0 || !strings.HasPrefix(r.stdout, "mayfly ") || !strings.Contains(r.stdout, runtime.Version()) {
		t.Errorf("--version: %d %q, want mayfly and the Go version", r.code, r.stdout)
	}
	if _, err := os.Stat(filepath.Join(home, "identity.json")); !os.IsNotExist(err) {
		t.Fatalf("a failed register left identity.json behind: %v", err)
	}
}

// running is a mayfly started in the background.
type running struct {
	cmd    *exec.Cmd
	lines  chan string
	all    *bytes.Buffer
	mu     *sync.Mutex
	stderr *syncBuffer
	done   chan error
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs mayfly in the background, collecting its stdout by line.
func (e *env) start(home string, args ...string) *running {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	e.t.Cleanup(cancel)
	cmd := e.command(ctx, home, args...)
	pr, pw := io.Pipe()
	r := &running{cmd: cmd, lines: make(chan string, 100), all: &bytes.Buffer{}, mu: &sync.Mutex{}, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = pw, r.stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			r.mu.Lock()
			r.all.WriteString(sc.Text() + "\n")
			r.mu.Unlock()
			r.lines <- sc.Text()
		}
		close(r.lines)
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		r.done <- err
	}()
	return r
}

// waitLine returns the rest of the first line starting with prefix (the
// whole line when the prefix is JSON).
func (r *running) waitLine(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case l, ok := <-r.lines:
			if !ok {
				t.Fatalf("output ended before %q; stderr %q", prefix, r.stderr.String())
			}
			if rest, found := strings.CutPrefix(l, prefix); found {
				if strings.HasPrefix(prefix, "{") {
					return l
				}
				return rest
			}
		case <-timeout:
			t.Fatalf("no line %q", prefix)
		}
	}
}

// wait waits for the command to exit 0 and returns all it printed.
func (r *running) wait(t *testing.T) string {
	t.Helper()
	select {
	case err := <-r.done:
		for range r.lines {
		}
		if err != nil {
			t.Fatalf("%v: %v; stderr %q", r.cmd.Args, err, r.stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("%v did not exit", r.cmd.Args)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.all.String()
}
