package web_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
)

// buildCLI builds cmd/mayfly (once per test run) and returns the binary's path.
func buildCLI(t *testing.T) string {
	return gatewaytest.Binary(t, "github.com/mayfly-im/mayfly/cmd/mayfly", false)
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
	t.Parallel()
	bin := buildCLI(t)
	a := gatewaytest.Start(t, gatewaytest.Config{})
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
	linkWithCLI(t, a, browser, bin, alice, carol)
	alice.checkNoErrors()
}

// cliLink runs `mayfly device link` for u in the background and returns
// the code it prints and a channel that gets its error once it exits.
func (u cliUser) link() (string, <-chan error) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, u.bin, "--home", u.home, "--server", u.server, "device", "link")
	cmd.Env = append(os.Environ(), "MAYFLY_HOME=", "MAYFLY_SERVER=")
	out, err := cmd.StdoutPipe()
	if err != nil {
		u.t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		u.t.Fatal(err)
	}
	codes := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if code, ok := strings.CutPrefix(sc.Text(), "link code: "); ok {
				codes <- code
			}
		}
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, stderr.String())
		}
		cancel()
		close(codes)
		done <- err
	}()
	code, ok := <-codes
	if !ok {
		u.t.Fatalf("mayfly device link printed no code: %v", <-done)
	}
	return code, done
}

// linkWithCLI links across clients, for alice (web) and carol (CLI), friends
// on a: a web primary approves a CLI device, and a CLI primary approves a
// browser; messages reach every device of both users.
func linkWithCLI(t *testing.T, a *gatewaytest.Server, browser context.Context, bin string, alice *tab, carol cliUser) {
	server := "http://" + a.HTTPAddr()
	// Leave the chat, so that alice's browser does not read (burn) what her
	// linked CLI is to read.
	alice.do("reload", chromedp.Reload())
	alice.waitSignedIn("alice")

	// The web primary approves a CLI device of alice.
	aliceCLI := cliUser{t: t, bin: bin, home: t.TempDir(), server: server}
	code, linked := aliceCLI.link()
	alice.click("open devices", "#devices-btn")
	alice.do("approve the CLI", chromedp.SendKeys(chromedp.CSS("#link-approve-code"), code),
		chromedp.Click(chromedp.CSS("#link-approve button")))
	if err := <-linked; err != nil {
		t.Fatalf("mayfly device link: %v", err)
	}
	alice.waitJS("two listed devices", `document.querySelectorAll('#devices .device[data-listed="true"]').length === 2`)
	alice.click("close devices", "#devices-close")
	if who := aliceCLI.run("whoami"); !strings.Contains(who, alice.text(".topbar .fingerprint")) {
		t.Errorf("the linked CLI's whoami %q does not show the web primary's fingerprint", who)
	}

	// The CLI primary approves a browser of carol.
	carolWeb := openApp(t, browser, a.HTTPAddr(), "carol-web")
	carolWeb.click("link", "#link-start")
	carolWeb.waitSelector("link code", "#link-code")
	carol.run("device", "approve", carolWeb.text("#link-code"))
	carolWeb.waitSignedIn("carol")
	carolWeb.waitOnline()

	// carol's CLI writes to alice: her browser and her CLI both read it, and
	// carol's browser sees its sync copy.
	carol.run("send", "alice", "to all of alice's devices")
	msgs := jsonLines[cliMessage](t, aliceCLI.run("read", "--wait", "30s", "--json"))
	if len(msgs) != 1 || msgs[0].Text != "to all of alice's devices" {
		t.Errorf("alice's linked CLI read %+v", msgs)
	}
	carolWeb.openChat("alice")
	carolWeb.waitJS("sync copy", `[...document.querySelectorAll("#messages .msg.out")].some(li => li.querySelector(".text")?.textContent === "to all of alice's devices")`)

	// carol's browser writes to alice; alice's browser reads it.
	carolWeb.send("from carol's linked browser")
	alice.openChat("carol")
	alice.waitMessage("from carol's linked browser", "read")
	carolWeb.waitMessage("from carol's linked browser", "read")
	alice.checkNoErrors()
	carolWeb.checkNoErrors()
}
