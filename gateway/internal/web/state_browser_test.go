package web_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/store/storetest"
)

// reconnectTimeout bounds a page's reconnection on its own: its backoff
// grows to several seconds while a server restarts on a loaded machine.
const reconnectTimeout = 90 * time.Second

// checkNoErrorsBut is checkNoErrors ignoring console errors that contain
// one of expected (the browser's own log of a refused connection while the
// server is down).
func (tb *tab) checkNoErrorsBut(expected ...string) {
	tb.t.Helper()
	tb.mu.Lock()
	var left []string
	for _, e := range tb.errors {
		if !containsAny(e, expected) {
			left = append(left, e)
		}
	}
	tb.errors = left
	tb.mu.Unlock()
	tb.checkNoErrors()
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// friendDot is a predicate: handle's presence dot in the friend list has class.
func friendDot(handle, class string) string {
	return fmt.Sprintf(`!!document.querySelector('#friends .friend[data-handle=%q] .dot.%s')`, handle, class)
}

// atPhoneWidth makes the tab a 390 px wide phone screen.
func (tb *tab) atPhoneWidth() {
	tb.t.Helper()
	tb.do("phone width", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
}

// atDesktopWidth makes the tab a desktop window again.
func (tb *tab) atDesktopWidth() {
	tb.t.Helper()
	tb.do("desktop width", chromedp.EmulateViewport(1280, 820))
}

// checkFitsWidth fails the test if the page is wider than its viewport
// (a horizontal scrollbar), naming the widest elements.
func (tb *tab) checkFitsWidth(where string) {
	tb.t.Helper()
	var r struct {
		Scroll, Client int
		Wide           []string
	}
	tb.eval(`(() => {
		const w = document.documentElement.clientWidth;
		const wide = [...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > w + 0.5)
			.slice(0, 5).map(e => e.tagName + "." + e.className + "#" + e.id);
		return {Scroll: document.documentElement.scrollWidth, Client: w, Wide: wide};
	})()`, &r)
	if r.Scroll > r.Client {
		tb.t.Errorf("%s: %s: page is %d px wide in a %d px viewport; too wide: %v", tb.name, where, r.Scroll, r.Client, r.Wide)
	}
}

func TestWebConnectionState(t *testing.T) {
	t.Parallel()
	cfg := gatewaytest.Config{DatabaseURL: storetest.NewURL(t), DataDir: t.TempDir()}
	srv := gatewaytest.Start(t, cfg)
	addr := srv.HTTPAddr()
	browser := startBrowser(t)
	alice := openApp(t, browser, addr, "alice")
	bob := openApp(t, browser, addr, "bob")
	alice.register("alice")
	bob.register("bob")
	alice.waitOnline()
	bob.waitOnline()

	// A new friend's presence shows at once on both sides, without a reload.
	befriend(alice, bob, "alice", "bob")
	alice.waitJS("bob online in the list", friendDot("bob", "online"))
	bob.waitJS("alice online in the list", friendDot("alice", "online"))
	alice.openChat("bob")
	alice.waitJS("bob online in the chat", `document.querySelector("#presence")?.dataset.presence === "online"`)
	alice.screenshot("desktop-connected")

	// The server goes away: a banner says so, presence turns unknown and
	// sending is off.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("stop mayflyd: %v", err)
	}
	cancel()
	for _, tb := range []*tab{alice, bob} {
		tb.waitJS("the connection-lost banner", `(b => b && !b.hidden && b.dataset.state === "lost")(document.querySelector("#conn-banner"))`)
	}
	alice.waitJS("presence unknown", friendDot("bob", "unknown")+` && document.querySelector("#presence").dataset.presence === "unknown"`)
	var off struct{ Text, Button bool }
	alice.eval(`({Text: document.querySelector("#compose-text").disabled, Button: document.querySelector("#send-btn").disabled})`, &off)
	if !off.Text || !off.Button {
		t.Errorf("alice can still send while the server is gone: composer disabled %v, send button disabled %v", off.Text, off.Button)
	}
	if got := alice.text("#conn-banner"); !strings.Contains(got, "Not connected") {
		t.Errorf("banner says %q, want it to say the page is not connected", got)
	}
	alice.screenshot("desktop-server-gone")
	alice.atPhoneWidth()
	alice.checkFitsWidth("server gone")
	alice.screenshot("phone-server-gone")
	alice.atDesktopWidth()

	// It comes back on the same address and data: both pages reconnect on
	// their own (alice sooner, with "Try now"), say so, and show presence
	// and the composer again.
	cfg.HTTPListen = addr
	gatewaytest.Start(t, cfg)
	alice.waitJSWithin("reconnected", `(document.querySelector("#conn-retry")?.click(), document.querySelector("#conn-banner")?.dataset.state === "back")`, reconnectTimeout)
	alice.screenshot("desktop-back")
	if got := alice.text("#conn-banner"); !strings.Contains(got, "Connected again") {
		t.Errorf("banner says %q after reconnecting, want it to say the connection is back", got)
	}
	bob.waitJSWithin("bob reconnected on his own", `document.querySelector("#conn-status")?.textContent === "online"`, reconnectTimeout)
	alice.waitJS("bob online again", friendDot("bob", "online")+` && document.querySelector("#presence").dataset.presence === "online"`)
	alice.waitJS("composer on", `!document.querySelector("#compose-text").disabled && !document.querySelector("#send-btn").disabled`)
	alice.waitJS("banner hides", `document.querySelector("#conn-banner").hidden`)
	alice.send("after the outage")
	bob.openChat("alice")
	bob.waitMessage("after the outage", "read")
	alice.waitMessage("after the outage", "read")

	refused := []string{"ERR_CONNECTION_REFUSED", "WebSocket connection to"}
	alice.checkNoErrorsBut(refused...)
	bob.checkNoErrorsBut(refused...)
}

func TestWebPhoneAndErrors(t *testing.T) {
	t.Parallel()
	a := gatewaytest.Start(t, gatewaytest.Config{})
	browser := startBrowser(t)
	alice := openApp(t, browser, a.HTTPAddr(), "alice")
	bob := openApp(t, browser, a.HTTPAddr(), "bob")
	alice.atPhoneWidth()
	alice.waitSelector("welcome", "#register-form")
	alice.checkFitsWidth("welcome")
	alice.screenshot("phone-welcome")

	// Errors read as sentences; the code stays in a detail line.
	bob.register("bob")
	alice.do("register a taken handle",
		chromedp.SendKeys(chromedp.CSS("#reg-handle"), "bob"),
		chromedp.Click(chromedp.CSS("#register-form button[type=submit]")))
	alice.waitJS("handle taken", `document.querySelector("#welcome-error .detail")?.textContent.startsWith("handle_taken: ")`)
	if got := alice.text("#welcome-error"); !strings.HasPrefix(got, "That handle is taken.") {
		t.Errorf("taken handle: error %q, want a sentence first", got)
	}
	alice.screenshot("phone-handle-taken")
	alice.eval(`document.querySelector("#reg-handle").value = ""; true`, nil)
	alice.register("alice")
	alice.waitOnline()
	alice.addFriend("nobody_here")
	alice.waitJS("not found toast", `[...document.querySelectorAll(".toast.error")].some(t => t.textContent.startsWith("No such user") && t.querySelector(".detail")?.textContent.startsWith("not_found: "))`)
	alice.screenshot("phone-not-found")
	alice.eval(`document.querySelector("#friend-handle").value = ""; true`, nil)

	// The signed-in page fits a phone: friend list, requests, chat with a
	// long message and the safety number.
	befriend(alice, bob, "alice", "bob")
	alice.checkFitsWidth("friend list")
	alice.screenshot("phone-friends")
	alice.openChat("bob")
	alice.send("a long line without spaces: " + strings.Repeat("burn", 30))
	alice.waitJS("sent", `!!document.querySelector("#messages .msg.sent, #messages .msg.delivered")`)
	alice.checkFitsWidth("chat")
	alice.screenshot("phone-chat")
	alice.click("show safety number", "#safety-btn")
	alice.waitSelector("safety number", "#safety-number")
	alice.checkFitsWidth("safety number")
	alice.screenshot("phone-safety-number")
	alice.click("open devices", "#devices-btn")
	alice.waitSelector("device list", "#devices .device")
	alice.checkFitsWidth("devices")
	alice.screenshot("phone-devices")
	alice.checkNoErrorsBut("the server responded with a status of 409", "the server responded with a status of 404")
	bob.checkNoErrors()
}
