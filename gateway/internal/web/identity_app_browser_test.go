package web_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"

	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
	"github.com/mayfly-im/mayfly/store/storetest"
)

// startWithDB runs a mayflyd and returns it with a connection to its
// database, for changing what the server serves behind the clients' backs.
func startWithDB(t *testing.T) (*gatewaytest.Server, *pgx.Conn) {
	t.Helper()
	url := storetest.NewURL(t)
	a := gatewaytest.Start(t, gatewaytest.Config{DatabaseURL: url})
	db, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	return a, db
}

func dbExec(t *testing.T, db *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := db.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// friendsInBrowsers opens two people in browser, who register on a with
// the handles h1 and h2 and become friends.
func friendsInBrowsers(t *testing.T, browser context.Context, a *gatewaytest.Server, h1, h2 string) (*tab, *tab) {
	t.Helper()
	one := openApp(t, browser, a.HTTPAddr(), h1)
	two := openApp(t, browser, a.HTTPAddr(), h2)
	one.register(h1)
	two.register(h2)
	befriend(one, two, h1, h2)
	return one, two
}

// TestWebIdentityApp runs the identity v2 flows of the app on one mayflyd
// and one browser: key changes that stop the sender (alice and bob), and
// linking and revoking a second browser (erin and dave).
func TestWebIdentityApp(t *testing.T) {
	t.Parallel()
	a, db := startWithDB(t)
	browser := startBrowser(t)
	t.Run("KeyChangeStopsSender", func(t *testing.T) { keyChangeStopsSender(t, a, db, browser) })
	t.Run("LinkAndRevoke", func(t *testing.T) { linkAndRevoke(t, a, browser) })
}

// usedOPKs counts the one-time prekey private keys the page holds that
// opened a message (and are deleted once it burned).
const usedOPKs = `(await (await import("/assets/js/keystore.js")).get("prekeys")).opks.filter((k) => k.seq).length`

// waitAsync polls an async JavaScript expression (the body of an async
// function's return) until it is true.
func (tb *tab) waitAsync(what, expr string) {
	tb.t.Helper()
	deadline := time.Now().Add(actionTimeout)
	for {
		var ok bool
		tb.eval(`(async () => `+expr+`)()`, &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.screenshot("timeout-" + strings.ReplaceAll(what, " ", "-"))
			tb.t.Fatalf("%s: waiting for %s (%s)", tb.name, what, expr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFailed waits until the open chat shows text as not sent with code.
func (tb *tab) waitFailed(text, code string) {
	tb.t.Helper()
	tb.waitMessage(text, "failed")
	var state string
	tb.eval(fmt.Sprintf(`[...document.querySelectorAll("#messages .msg")].find(li => li.querySelector(".text")?.textContent === %q).querySelector(".state").textContent`, text), &state)
	if !strings.Contains(state, code) {
		tb.t.Errorf("%s: message %q shows %q, want the code %s", tb.name, text, state, code)
	}
}

// keyChangeStopsSender changes bob's keys in Postgres behind the
// clients' backs, as a server that wants to read alice's messages would,
// and checks that alice's page seals nothing to them until she accepts.
func keyChangeStopsSender(t *testing.T, a *gatewaytest.Server, db *pgx.Conn, browser context.Context) {
	alice, bob := friendsInBrowsers(t, browser, a, "alice", "bob")
	alice.openChat("bob")
	alice.send("before")

	// Forward secrecy on the page: bob's device opened the message with a
	// one-time prekey (noted with the message's seq); once he has read it
	// (the burn), that private key is gone from his browser.
	bob.waitJS("unread badge", `document.querySelector('#friends .friend[data-handle="alice"] .badge.unread')?.textContent === "1"`)
	bob.waitAsync("a one-time prekey noted as used", usedOPKs+" > 0")
	bob.openChat("alice")
	bob.waitMessage("before", "read")
	bob.waitAsync("the used one-time prekey deleted", usedOPKs+" === 0")

	var bobID string
	var oldIK, oldList []byte
	var oldVersion int64
	if err := db.QueryRow(context.Background(), "SELECT id, ik, device_list, list_version FROM users WHERE handle = 'bob'").
		Scan(&bobID, &oldIK, &oldList, &oldVersion); err != nil {
		t.Fatal(err)
	}
	list, err := envelope.ParseDeviceList(oldList)
	if err != nil {
		t.Fatal(err)
	}

	// 1. The server serves a device list of bob's devices signed by a key
	// of its own: the bundle does not verify under the pinned IK.
	_, evilIK, _ := ed25519.GenerateKey(rand.Reader)
	var keys []ed25519.PublicKey
	for _, d := range list.Devices {
		keys = append(keys, d.Key)
	}
	forged, err := envelope.SignDeviceList(bobID, oldVersion+1, time.Now(), keys, evilIK)
	if err != nil {
		t.Fatal(err)
	}
	dbExec(t, db, "UPDATE users SET device_list = $1, list_version = $2 WHERE id = $3", forged, oldVersion+1, bobID)
	alice.send("to a forged list")
	alice.waitFailed("to a forged list", "untrusted_keys")
	alice.waitSelector("keys-changed notice", "#keys-changed")
	alice.waitSelector("flag in the friend list", `#friends .friend[data-handle="bob"] .badge.warn`)
	alice.screenshot("untrusted-list")
	dbExec(t, db, "UPDATE users SET device_list = $1, list_version = $2 WHERE id = $3", oldList, oldVersion, bobID)
	alice.send("still stopped")
	alice.waitFailed("still stopped", "untrusted_keys") // until she accepts
	alice.click("accept", "#accept-keys-anyway")
	alice.waitJS("notice gone", `!document.querySelector("#keys-changed")`)
	alice.send("after accepting")
	bob.waitMessage("after accepting", "read")

	// 2. The server names another identity key for bob. After a reload
	// (the friend list is read again) alice's page flags it and refuses.
	_, newIK, _ := ed25519.GenerateKey(rand.Reader)
	newPub := newIK.Public().(ed25519.PublicKey)
	dbExec(t, db, "UPDATE users SET ik = $1 WHERE id = $2", []byte(newPub), bobID)
	alice.do("reload", chromedp.Reload())
	alice.waitSignedIn("alice")
	alice.openChat("bob")
	alice.waitSelector("keys-changed notice", "#keys-changed")
	alice.send("to a new key")
	alice.waitFailed("to a new key", "untrusted_keys")
	// The safety number shown is the one of the new key, to compare.
	alice.click("compare", "#verify-keys")
	alice.waitSelector("safety number", "#safety-number")
	var aliceIK []byte
	if err := db.QueryRow(context.Background(), "SELECT ik FROM users WHERE handle = 'alice'").Scan(&aliceIK); err != nil {
		t.Fatal(err)
	}
	if got, want := alice.text("#safety-number"), envelope.IdentitySafetyNumber(aliceIK, newPub); got != want {
		t.Errorf("safety number after the change %q, want the new key's %q", got, want)
	}
	if got, want := alice.text("#pinned-fingerprint"), envelope.IdentityFingerprint(oldIK); got != want {
		t.Errorf("pinned fingerprint shown %q, want the old key's %q", got, want)
	}
	alice.screenshot("keys-changed")

	// The server puts the real key back: nothing to accept, and messages flow.
	dbExec(t, db, "UPDATE users SET ik = $1 WHERE id = $2", oldIK, bobID)
	alice.do("reload", chromedp.Reload())
	alice.waitSignedIn("alice")
	alice.openChat("bob")
	alice.waitOnline()
	alice.send("back to normal")
	bob.waitMessage("back to normal", "read")
	for _, never := range []string{"to a forged list", "still stopped", "to a new key"} {
		if strings.Contains(bob.text("#messages"), never) {
			t.Errorf("bob received %q, which alice's page should not have sent", never)
		}
	}
	alice.checkNoErrors()
	bob.checkNoErrors()
}

// linkAndRevoke links a second browser to a web account (the
// primary approves its code), chats from both, then revokes it: its page
// is closed, it cannot log in again, and it is not sealed for any more.
func linkAndRevoke(t *testing.T, a *gatewaytest.Server, browser context.Context) {
	alice, bob := friendsInBrowsers(t, browser, a, "erin", "dave")

	// bob's laptop: a new browser links to bob's account.
	laptop := openApp(t, browser, a.HTTPAddr(), "dave-laptop")
	laptop.click("link", "#link-start")
	laptop.waitSelector("link code", "#link-code")
	code := laptop.text("#link-code")
	laptop.screenshot("link-code")
	bob.click("open devices", "#devices-btn")
	bob.waitSelector("approve form", "#link-approve-code")
	bob.do("type code", chromedp.SendKeys(chromedp.CSS("#link-approve-code"), code),
		chromedp.Click(chromedp.CSS("#link-approve button")))
	laptop.waitSignedIn("dave")
	laptop.waitOnline()
	bob.waitJS("two listed devices", `document.querySelectorAll('#devices .device[data-listed="true"]').length === 2`)
	bob.screenshot("devices-linked")
	bob.click("close devices", "#devices-close")
	if got, want := laptop.text(".topbar .fingerprint"), bob.text(".topbar .fingerprint"); got != want {
		t.Errorf("the linked browser trusts fingerprint %q, the primary has %q", got, want)
	}

	// Both of bob's browsers read alice's message; what the laptop sends
	// reaches alice and bob's first browser (a sync copy).
	alice.openChat("dave")
	alice.send("to both of bob's devices")
	laptop.waitSelector("friend erin", `#friends .friend[data-handle="erin"]`)
	laptop.openChat("erin")
	laptop.waitMessage("to both of bob's devices", "read")
	laptop.send("from bob's laptop")
	alice.waitMessage("from bob's laptop", "read")
	bob.openChat("erin")
	bob.waitJS("sync copy", `[...document.querySelectorAll("#messages .msg.out")].some(li => li.querySelector(".text")?.textContent === "from bob's laptop")`)

	// A linked device cannot add devices; the primary revokes the laptop.
	laptop.click("open devices", "#devices-btn")
	if laptop.count("#link-approve-code") != 0 {
		t.Error("a linked device offers to approve links; only the primary can")
	}
	laptop.click("close devices", "#devices-close")
	bob.click("open devices", "#devices-btn")
	bob.click("revoke the laptop", `#devices .device:not(:has(.badge:not(.warn))) .revoke`)
	laptop.waitSelector("revoked laptop at the login screen", "#login-form")
	bob.waitJS("one listed device", `document.querySelectorAll('#devices .device[data-listed="true"]').length === 1`)
	laptop.click("log in again", "#login-form button[type=submit]")
	laptop.waitJS("login refused", `(document.querySelector("#welcome-error .detail")?.textContent || "").startsWith("device_revoked")`)
	laptop.screenshot("revoked-login")

	// Nothing sent after the revocation is sealed for the laptop.
	bob.click("close devices", "#devices-close")
	alice.send("after the revocation")
	bob.waitMessage("after the revocation", "read")
	var u schema.User
	carol := gatewaytest.NewUser(t, a.HTTPAddr(), "carol")
	carol.Must("GET", "/v1/users/dave", nil, &u)
	l, err := envelope.ParseDeviceList(u.DeviceList)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Devices) != 1 {
		t.Errorf("bob's signed list names %d devices after the revocation, want 1", len(l.Devices))
	}
	alice.checkNoErrors()
	bob.checkNoErrors()
}
