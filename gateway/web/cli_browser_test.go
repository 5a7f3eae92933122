package web_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
	"github.com/mayfly-im/mayfly/cmd/mayflyd/app/apptest"
)

// buildCLI builds cmd/mayfly (once per test run) and returns the binary's path.
func buildCLI(t *testing.T) string {
	return apptest.Binary(t, "github.com/mayfly-im/mayfly/cmd/mayfly", false)
}

// cliUser runs the mayfly CLI as one user with its own home directory.
type cliUser struct {
	t      *testing.T
	bin    string
	home   string
	server string
}

// run runs the CLI with args and returns its stdout; a non-zero exit fails the test.
func (u cliUser) run(args ...string) string {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, u.bin, append([]string{"--home", u.home, "--server", u.server}, args...)...)
	cmd.Env = append(os.Environ(), "MAYFLY_HOME=", "MAYFLY_SERVER=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		u.t.Fatalf("mayfly %s: %v\nstderr: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// jsonLines decodes the one-object-per-line output of a --json command.
func jsonLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var res []T
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("decode %q: %v", sc.Text(), err)
		}
		res = append(res, v)
	}
	return res
}

type cliMessage struct {
	From, Text string
	Self       bool
}

type cliFriend struct {
	Status, Handle, Fingerprint string
}

// TestWebChatWithCLI has a browser user and a user of the mayfly CLI chat
// both ways through one real mayflyd.
func TestWebChatWithCLI(t *testing.T) {
	pendingIdentityV2(t)
	bin := buildCLI(t)
	a := apptest.Start(t, app.Config{})
	browser := startBrowser(t)
	alice := openApp(t, browser, a.HTTPAddr(), "alice")
	alice.register("alice")
	alice.waitOnline()

	carol := cliUser{t: t, bin: bin, home: t.TempDir(), server: "http://" + a.HTTPAddr()}
	carol.run("register", "carol")
	carol.run("friend", "request", "alice")
	alice.waitSelector("incoming request from carol", `#incoming [data-handle="carol"]`)
	alice.click("accept carol", `#incoming [data-handle="carol"] .accept`)
	alice.openChat("carol")

	// Both see the same keys: the CLI's fingerprint of alice is the one her
	// browser computed from the keys it made.
	var aliceFP string
	for _, f := range jsonLines[cliFriend](t, carol.run("friend", "list", "--json")) {
		if f.Handle == "alice" && f.Status == "friend" {
			aliceFP = f.Fingerprint
		}
	}
	if got := alice.text(".topbar .fingerprint"); aliceFP == "" || got != aliceFP {
		t.Errorf("CLI has alice's fingerprint %q, her browser %q", aliceFP, got)
	}

	// Browser to CLI: the CLI prints it and burns it; the browser sees it read.
	alice.send("hello carol, from the browser ✓")
	alice.waitMessage("hello carol, from the browser ✓", "sent")
	msgs := jsonLines[cliMessage](t, carol.run("read", "--wait", "30s", "--json"))
	if len(msgs) != 1 || msgs[0].From != "alice" || msgs[0].Text != "hello carol, from the browser ✓" {
		t.Fatalf("mayfly read = %+v, want alice's one message", msgs)
	}
	alice.waitMessage("hello carol, from the browser ✓", "read")

	// CLI to browser: shown in the open chat, so read and burned at once;
	// the CLI's next read finds nothing.
	if id := strings.TrimSpace(carol.run("send", "alice", "hi alice, from the CLI")); id == "" {
		t.Error("mayfly send printed no message id")
	}
	alice.waitMessage("hi alice, from the CLI", "read")
	if msgs := jsonLines[cliMessage](t, carol.run("read", "--json")); len(msgs) != 0 {
		t.Errorf("second mayfly read = %+v, want nothing", msgs)
	}
	alice.screenshot("chat-with-cli")
	alice.checkNoErrors()
}
