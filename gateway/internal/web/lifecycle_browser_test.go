package web_test

import (
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
)

// TestWebDeleteAccount: the devices dialog deletes the account once the
// user types its handle; a wrong handle deletes nothing. Afterwards the page
// is back at registration with no keys kept, the friend's list no longer
// shows the user, and the server knows it no more.
func TestWebDeleteAccount(t *testing.T) {
	t.Parallel()
	a := gatewaytest.Start(t, gatewaytest.Config{})
	browser := startBrowser(t)
	alice := openApp(t, browser, a.HTTPAddr(), "alice")
	bob := openApp(t, browser, a.HTTPAddr(), "bob")
	alice.register("alice")
	bob.register("bob")
	befriend(alice, bob, "alice", "bob")
	carol := gatewaytest.NewUser(t, a.HTTPAddr(), "carol")

	alice.click("open devices", "#devices-btn")
	alice.eval(`window.prompt = () => "bob"; true`, nil)
	alice.click("delete account, wrong handle", "#delete-account")
	alice.waitSelector("mismatch toast", ".toast.error")
	carol.Must(http.MethodGet, "/v1/users/alice", nil, nil)

	alice.eval(`window.prompt = () => "Alice"; true`, nil)
	alice.click("delete account", "#delete-account")
	alice.waitSelector("registration after the deletion", "#register-form")
	alice.screenshot("account-deleted")
	bob.waitJS("alice gone from bob's friends", `!document.querySelector('#friends .friend[data-handle="alice"]')`)
	if _, e := carol.Do(http.MethodGet, "/v1/users/alice", nil, nil); e == nil || e.Code != schema.CodeNotFound {
		t.Errorf("lookup of the deleted alice = %v, want not_found", e)
	}
	alice.do("reload", chromedp.Reload())
	alice.waitSelector("no identity kept after a reload", "#register-form")
	alice.checkNoErrors()
	bob.checkNoErrors()
}
