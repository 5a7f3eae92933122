package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/store/storetest"
)

func TestMain(m *testing.M) {
	code := storetest.Main(m)
	gatewaytest.RemoveBinaries()
	os.Exit(code)
}

// chromiumPath is Debian's chromium package; MAYFLY_CHROMIUM overrides it.
const chromiumPath = "/usr/bin/chromium"

// actionTimeout bounds one browser step (a navigation, a click, a wait).
const actionTimeout = 30 * time.Second

// maxBrowsers bounds the Chromiums running at once, whatever go test's
// -parallel: each takes most of a core while a page loads, and the machines
// that run make test have two.
const maxBrowsers = 2

// browserSlots holds one token per running Chromium (maxBrowsers).
var browserSlots = make(chan struct{}, maxBrowsers)

// startBrowser starts a headless Chromium for t with a fresh profile and
// returns its root context; t.Cleanup stops it. It waits while maxBrowsers
// run already. The browser is required: without it the test fails (never
// skips) and says how to install it.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	browserSlots <- struct{}{}
	t.Cleanup(func() { <-browserSlots })
	path := os.Getenv("MAYFLY_CHROMIUM")
	if path == "" {
		path = chromiumPath
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("browser tests need headless Chromium at %s: install it with `apt-get install -y chromium` "+
			"(or point MAYFLY_CHROMIUM at a Chromium binary): %v", path, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 820),
		// The machine may have no internet: keep Chromium from phoning home.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// BackForwardCache: Chromium 156 keeps a page it navigated away from,
		// WebSocket and all, in the back/forward cache; a tab that "closes"
		// (navigates to about:blank) must really go, or its user stays online.
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints,BackForwardCache"),
		// Background tabs must keep their timers and visibility: two users
		// share one browser.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		// A fake microphone that needs no permission prompt, for voice notes.
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium at %s: %v", path, err)
	}
	return bctx
}

// tab is one page in its own browser context (own cookies, storage and
// IndexedDB), standing for one person's browser.
type tab struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu     sync.Mutex
	errors []string // console errors and uncaught exceptions
}

// newTab opens a page in a new browser context of browser. Console output
// of the page is logged to t; errors are kept for checkNoErrors.
func newTab(t *testing.T, browser context.Context, name string) *tab {
	t.Helper()
	return openTab(t, browser, name, chromedp.WithNewBrowserContext())
}

// sibling opens another tab in tb's browser context: the same person's
// browser, sharing its storage (and so its keys and session).
func (tb *tab) sibling(name string) *tab {
	tb.t.Helper()
	return openTab(tb.t, tb.ctx, name)
}

// alwaysVisible makes a page report itself visible.
const alwaysVisible = `Object.defineProperty(document, "visibilityState", {get: () => "visible"});
Object.defineProperty(document, "hidden", {get: () => false});`

func openTab(t *testing.T, parent context.Context, name string, opts ...chromedp.ContextOption) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent, opts...)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		t.Fatalf("%s: open tab: %v", name, err)
	}
	// Each tab stands for a person looking at their screen, but a headless
	// browser shows one tab at a time and reports the others hidden; the app
	// reads (burns) only on a visible page. Make every page visible, on every
	// load, before the app's scripts run.
	_, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (page.AddScriptToEvaluateOnNewDocumentResult, error) {
		return cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: alwaysVisible})
	})
	if err != nil {
		cancel()
		t.Fatalf("%s: make the tab visible: %v", name, err)
	}
	tb := &tab{t: t, name: name, ctx: ctx}
	consoleCtx, stopConsole := context.WithCancel(ctx)
	messages := chromedp.Console(consoleCtx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			tb.console(m)
		}
	}()
	t.Cleanup(func() { stopConsole(); <-done; cancel() })
	return tb
}

func (tb *tab) console(m chromedp.ConsoleMessage) {
	tb.t.Logf("%s console %s: %s", tb.name, m.Type, m.Text)
	if m.IsException() || m.Type == chromedp.ConsoleError {
		tb.mu.Lock()
		tb.errors = append(tb.errors, m.Text)
		tb.mu.Unlock()
	}
}

// checkNoErrors fails the test if the page logged an error or threw: a CSP
// violation, a failed request or a bug in the client.
func (tb *tab) checkNoErrors() {
	tb.t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.errors) > 0 {
		tb.t.Errorf("%s: page logged errors:\n%s", tb.name, strings.Join(tb.errors, "\n"))
	}
}

// do runs browser steps with a timeout, failing the test on error.
func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.screenshot("failed-" + what)
		tb.t.Fatalf("%s: %s: %v", tb.name, what, err)
	}
}

// eval evaluates a JavaScript expression (awaiting a promise) and decodes
// its JSON result into out (nil to ignore it).
func (tb *tab) eval(expr string, out any) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("%s: evaluate %.80q: %v", tb.name, expr, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			tb.t.Fatalf("%s: decode result of %.80q: %v (%s)", tb.name, expr, err, raw)
		}
	}
}

// waitJS polls a JavaScript predicate until it is truthy.
func (tb *tab) waitJS(what, predicate string) {
	tb.t.Helper()
	tb.waitJSWithin(what, predicate, actionTimeout)
}

// waitJSWithin polls a JavaScript predicate until it is truthy, for up to d.
func (tb *tab) waitJSWithin(what, predicate string, d time.Duration) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, d)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](predicate,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil {
		tb.screenshot("timeout-" + strings.ReplaceAll(what, " ", "-"))
		tb.t.Fatalf("%s: waiting for %s (%s): %v", tb.name, what, predicate, err)
	}
}

// text returns the trimmed text content of the first element matching sel.
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	var s string
	tb.eval(fmt.Sprintf(`(document.querySelector(%q)||{textContent:""}).textContent.trim()`, sel), &s)
	return s
}

// screenshot saves a full-page PNG into the test's temp dir and returns its path.
func (tb *tab) screenshot(name string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Logf("%s: screenshot %s: %v", tb.name, name, err)
		return ""
	}
	path := filepath.Join(screenshotDir(tb.t), tb.name+"-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Errorf("write screenshot: %v", err)
	}
	tb.t.Logf("%s: screenshot %s", tb.name, path)
	return path
}

var (
	shotMu   sync.Mutex
	shotDirs = map[*testing.T]string{}
)

// screenshotDir is the test's temp dir for screenshots, or
// MAYFLY_SCREENSHOTS when set (to keep them after the test).
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("MAYFLY_SCREENSHOTS"); d != "" {
		os.MkdirAll(d, 0o755)
		return d
	}
	shotMu.Lock()
	defer shotMu.Unlock()
	d, ok := shotDirs[t]
	if !ok {
		d = t.TempDir()
		shotDirs[t] = d
	}
	return d
}

// jsString returns s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// close closes the tab (the person closes the browser window).
func (tb *tab) close() {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		tb.t.Fatalf("%s: close: %v", tb.name, err)
	}
}
