package web_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// openApp opens the web client of the mayflyd at addr in a fresh browser
// context: a new person with an empty browser.
func openApp(t *testing.T, browser context.Context, addr, name string) *tab {
	t.Helper()
	tb := newTab(t, browser, name)
	tb.do("open app", chromedp.Navigate("http://"+addr+"/"))
	// confirm() dialogs would block the page; the tests mean yes.
	tb.eval(`window.confirm = () => true; true`, nil)
	return tb
}

// register creates an account through the welcome screen.
func (tb *tab) register(handle string) {
	tb.t.Helper()
	tb.do("register "+handle,
		chromedp.WaitVisible(chromedp.CSS("#reg-handle")),
		chromedp.SendKeys(chromedp.CSS("#reg-handle"), handle),
		chromedp.Click(chromedp.CSS("#register-form button[type=submit]")))
	tb.waitSignedIn(handle)
}

func (tb *tab) waitSignedIn(handle string) {
	tb.t.Helper()
	tb.waitJS("signed in as "+handle, fmt.Sprintf(`document.querySelector("#me-handle")?.textContent === %q`, "@"+handle))
	tb.eval(`window.confirm = () => true; true`, nil)
}

// waitOnline waits until the page's WebSocket is synced.
func (tb *tab) waitOnline() {
	tb.t.Helper()
	tb.waitJS("connection online", `document.querySelector("#conn-status")?.textContent === "online"`)
}

func (tb *tab) addFriend(handle string) {
	tb.t.Helper()
	tb.do("add friend "+handle,
		chromedp.SendKeys(chromedp.CSS("#friend-handle"), handle),
		chromedp.Click(chromedp.CSS("#add-friend button")))
}

func (tb *tab) waitSelector(what, sel string) {
	tb.t.Helper()
	tb.waitJS(what, fmt.Sprintf(`!!document.querySelector(%q)`, sel))
}

// click clicks the element matching sel with the mouse. The page may
// re-render the element between lookup and click (a live event arrived);
// then the click is tried again on the new element.
func (tb *tab) click(what, sel string) {
	tb.t.Helper()
	tb.waitSelector(what, sel)
	var err error
	for range 3 {
		ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
		err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel)))
		cancel()
		if err == nil || !strings.Contains(err.Error(), "node") {
			break
		}
	}
	if err != nil {
		tb.screenshot("failed-click")
		tb.t.Fatalf("%s: %s: %v", tb.name, what, err)
	}
}

// openChat opens the chat with a friend from the friend list.
func (tb *tab) openChat(handle string) {
	tb.t.Helper()
	tb.click("open chat with "+handle, fmt.Sprintf(`#friends .friend[data-handle=%q]`, handle))
	tb.waitJS("chat with "+handle, fmt.Sprintf(`document.querySelector(".chat-head h2")?.textContent === %q && !!document.querySelector("#compose-text")`, "@"+handle))
}

// send types a message into the open chat and presses Enter.
func (tb *tab) send(text string) {
	tb.t.Helper()
	tb.do("send "+text, chromedp.SendKeys(chromedp.CSS("#compose-text"), text), chromedp.Click(chromedp.CSS("#send-btn")))
}

// waitMessage waits until the open chat shows text with the given status
// ("sent", "delivered", "read", "unread", "recalled", ...).
func (tb *tab) waitMessage(text, status string) {
	tb.t.Helper()
	tb.waitJS(fmt.Sprintf("message %q %s", text, status), fmt.Sprintf(
		`[...document.querySelectorAll("#messages .msg")].some(li => li.querySelector(".text")?.textContent === %q && li.dataset.status === %q)`,
		text, status))
}

// befriend makes a and b friends through the UI: a requests, b accepts.
func befriend(a, b *tab, aHandle, bHandle string) {
	a.t.Helper()
	a.addFriend(bHandle)
	a.waitSelector("outgoing request to "+bHandle, fmt.Sprintf(`#outgoing [data-handle=%q]`, bHandle))
	b.waitSelector("incoming request from "+aHandle, fmt.Sprintf(`#incoming [data-handle=%q]`, aHandle))
	b.screenshot("friend-request")
	b.click("accept "+aHandle, fmt.Sprintf(`#incoming [data-handle=%q] .accept`, aHandle))
	b.waitSelector("friend "+aHandle, fmt.Sprintf(`#friends .friend[data-handle=%q]`, aHandle))
	a.waitSelector("friend "+bHandle, fmt.Sprintf(`#friends .friend[data-handle=%q]`, bHandle))
}

func TestWebServedByMayflyd(t *testing.T) {
	t.Parallel()
	a := gatewaytest.Start(t, gatewaytest.Config{})
	c := gatewaytest.NewClient(t, a.HTTPAddr())
	for _, tc := range []struct {
		path, contentType string
		status            int
	}{
		{"/", "text/html; charset=utf-8", 200},
		{"/assets/js/app.js", "text/javascript; charset=utf-8", 200},
		{"/assets/app.css", "text/css; charset=utf-8", 200},
		{"/v1/nope", "application/json", 404},
		{"/nope", "application/json", 404},
	} {
		resp := get(t, c.BaseURL+tc.path)
		if resp.status != tc.status || resp.header.Get("Content-Type") != tc.contentType {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, resp.status, resp.header.Get("Content-Type"), tc.status, tc.contentType)
		}
		if tc.status == 200 && !strings.Contains(resp.header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("GET %s: no strict CSP: %q", tc.path, resp.header.Get("Content-Security-Policy"))
		}
	}
}

func TestWebRegisterAndFriends(t *testing.T) {
	t.Parallel()
	a := gatewaytest.Start(t, gatewaytest.Config{})
	browser := startBrowser(t)
	alice := openApp(t, browser, a.HTTPAddr(), "alice")
	bob := openApp(t, browser, a.HTTPAddr(), "bob")

	alice.waitSelector("welcome", "#register-form")
	alice.screenshot("welcome")
	alice.register("alice")
	bob.register("bob")
	befriend(alice, bob, "alice", "bob")

	// Fingerprints and safety numbers: computed in each page from the keys,
	// equal on both sides and to Go's from the keys the server holds.
	carol := gatewaytest.NewUser(t, a.HTTPAddr(), "carol")
	var au, bu schema.User
	carol.Must("GET", "/v1/users/alice", nil, &au)
	carol.Must("GET", "/v1/users/bob", nil, &bu)
	want := envelope.IdentitySafetyNumber(identityKey(t, au), identityKey(t, bu))
	for _, p := range []struct {
		tb   *tab
		peer string
	}{{alice, "bob"}, {bob, "alice"}} {
		p.tb.openChat(p.peer)
		p.tb.click("show safety number", "#safety-btn")
		p.tb.waitSelector("safety number", "#safety-number")
		if got := p.tb.text("#safety-number"); got != want {
			t.Errorf("%s: safety number %q, want %q", p.tb.name, got, want)
		}
	}
	if got := alice.text(".topbar .fingerprint"); got != au.Fingerprint {
		t.Errorf("alice's own fingerprint %q, server has %q", got, au.Fingerprint)
	}
	alice.screenshot("safety-number")

	// A reload keeps the session (keys and tokens are in IndexedDB).
	alice.do("reload", chromedp.Reload())
	alice.waitSignedIn("alice")
	alice.waitSelector("friend list after reload", `#friends .friend[data-handle="bob"]`)

	// Devices: this one is listed (and in the signed device list).
	alice.click("open devices", "#devices-btn")
	alice.waitSelector("device list", "#devices .device")
	alice.screenshot("devices")
	alice.click("close devices", "#devices-close")

	// A second tab of the same browser shares the session; logging out in
	// one ends it in both. The device stays listed: logging in again with
	// the keys kept in the browser is the same device.
	alice2 := alice.sibling("alice-tab2")
	alice2.do("open app", chromedp.Navigate("http://"+a.HTTPAddr()+"/"))
	alice2.waitSignedIn("alice")
	alice2.waitOnline()
	alice.click("log out", "#logout-btn")
	alice.waitSelector("welcome back", "#login-form")
	alice2.waitSelector("revoked tab back at the login screen", "#login-form")
	alice2.screenshot("revoked")
	alice.click("log in", "#login-form button[type=submit]")
	alice.waitSignedIn("alice")
	alice.click("open devices", "#devices-btn")
	alice.waitSelector("device list", "#devices .device")
	if n := alice.count("#devices .device"); n != 1 {
		t.Errorf("alice has %d active devices after logging out and in, want 1", n)
	}
	if n := alice.count(`#devices .device[data-listed="true"]`); n != 1 {
		t.Errorf("alice has %d devices in her signed list, want 1", n)
	}
	alice.checkNoErrors()
	bob.checkNoErrors()
}

// identityKey decodes a user's identity key as the server returns it.
func identityKey(t *testing.T, u schema.User) ed25519.PublicKey {
	t.Helper()
	ik, err := envelope.DecodeKey(u.IK, envelope.SignKeySize)
	if err != nil {
		t.Fatalf("identity key of %s: %v", u.Handle, err)
	}
	return ik
}

// count returns the number of elements matching sel.
func (tb *tab) count(sel string) int {
	tb.t.Helper()
	var n int
	tb.eval(fmt.Sprintf(`document.querySelectorAll(%q).length`, sel), &n)
	return n
}

type response struct {
	status int
	header http.Header
}

// get fetches url and returns its status and headers.
func get(t *testing.T, url string) response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return response{resp.StatusCode, resp.Header}
}

func TestWebChat(t *testing.T) {
	t.Parallel()
	a := gatewaytest.Start(t, gatewaytest.Config{})
	alice, bob := friendsInBrowsers(t, startBrowser(t), a, "alice", "bob")
	alice.waitOnline()
	bob.waitOnline()

	// Presence: each sees the other online, right after the friendship
	// began (the snapshot the server sends on a friend-graph change).
	alice.openChat("bob")
	bob.openChat("alice")
	alice.waitJS("bob online", `document.querySelector("#presence")?.textContent === "online"`)
	bob.waitJS("alice online", `document.querySelector("#presence")?.textContent === "online"`)

	// Both ways, each message shown in the open chat is read and burned.
	alice.send("hello bob")
	bob.waitMessage("hello bob", "read")
	alice.waitMessage("hello bob", "read")
	bob.send("hi alice, ünïcødé 🔥")
	alice.waitMessage("hi alice, ünïcødé 🔥", "read")
	bob.waitMessage("hi alice, ünïcødé 🔥", "read")
	alice.screenshot("chat")
	bob.screenshot("chat")

	// A message to a chat that is not open stays unread, with an unread
	// badge for the reader and a countdown for both; opening the chat
	// burns it.
	bob.do("reload", chromedp.Reload())
	bob.waitSignedIn("bob")
	bob.waitOnline()
	if n := bob.count("#messages .msg"); n != 0 {
		t.Errorf("bob sees %d messages after a reload, want 0: read messages are burned", n)
	}
	alice.send("open me later")
	alice.waitMessage("open me later", "delivered") // on bob's page, not yet read
	bob.waitJS("unread badge", `document.querySelector('#friends .friend[data-handle="alice"] .badge.unread')?.textContent === "1"`)
	alice.waitJS("countdown", `/^(54|55):\d\d left$/.test(document.querySelector("#messages .msg.delivered .countdown")?.textContent)`)
	alice.screenshot("unread-countdown")
	bob.openChat("alice")
	bob.waitMessage("open me later", "read")
	alice.waitMessage("open me later", "read")

	// Recall: an unread message can be withdrawn by its sender; the reader
	// never sees it.
	bob.do("reload", chromedp.Reload())
	bob.waitSignedIn("bob")
	bob.waitOnline()
	alice.send("oops, wrong chat")
	alice.waitMessage("oops, wrong chat", "delivered")
	bob.waitJS("unread badge", `document.querySelector('#friends .friend[data-handle="alice"] .badge.unread')?.textContent === "1"`)
	alice.click("recall", "#messages .msg.delivered .recall")
	alice.waitJS("recalled", `[...document.querySelectorAll("#messages .msg")].some(li => li.dataset.status === "recalled")`)
	bob.waitJS("unread badge gone", `!document.querySelector('#friends .friend[data-handle="alice"] .badge.unread')`)
	bob.openChat("alice")
	if n := bob.count("#messages .msg"); n != 0 {
		t.Errorf("bob sees %d messages after the recall, want 0", n)
	}

	// Presence: bob closes his browser; alice sees him go offline.
	alice.checkNoErrors()
	bob.checkNoErrors()
	bob.close()
	alice.waitJS("bob offline", `document.querySelector("#presence")?.textContent !== "online"`)
	alice.screenshot("friend-offline")
}
