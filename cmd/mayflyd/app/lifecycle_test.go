package app_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
	"github.com/mayfly-im/mayfly/cmd/mayflyd/app/apptest"
	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/store/storetest"
)

// loginCode logs c in as device and returns the error code ("" on success).
func loginCode(c *apptest.Client, device string) schema.Code {
	c.T.Helper()
	var ch schema.Challenge
	if _, e := c.Do(http.MethodPost, "/v1/login/challenge", schema.ChallengeRequest{Handle: c.User.Handle}, &ch); e != nil {
		return e.Code
	}
	var s schema.Session
	if _, e := c.Do(http.MethodPost, "/v1/login", apptest.SignChallenge(ch, c.DK, device), &s); e != nil {
		return e.Code
	}
	c.Session = s
	return ""
}

// TestLifecycleAdminSuspend: an operator suspends a user in another process
// (app.Admin on the same database, as `mayflyd admin` does): its WebSocket
// closes with 4001 and its NATS connection ends within a poll, login and
// refresh answer account_suspended, its old token is refused, and a new
// NATS connection is refused. Unsuspended, it logs in again; deleted, it is
// gone. Unknown handles and actions are errors.
func TestLifecycleAdminSuspend(t *testing.T) {
	t.Parallel()
	db := storetest.NewURL(t)
	a := apptest.Start(t, app.Config{DatabaseURL: db, LifecycleInterval: 100 * time.Millisecond})
	alice := apptest.NewUser(t, a.HTTPAddr(), "alice")
	bob := apptest.NewUser(t, a.HTTPAddr(), "bob")
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{schema.SubprotocolV1}}
	ws, _, err := d.Dial("ws://"+a.HTTPAddr()+"/v1/ws", http.Header{"Authorization": {"Bearer " + alice.Session.AccessToken}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	nc, _, err := nativeConn(t, a.NATSURL(), alice)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })

	admin := func(action, handle string) (string, error) {
		return app.Admin(context.Background(), app.Config{DatabaseURL: db, DataDir: t.TempDir()}, action, handle)
	}
	if msg, err := admin(app.AdminSuspend, "ALICE"); err != nil || !strings.Contains(msg, "suspended") {
		t.Fatalf("admin suspend = %q, %v", msg, err)
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) && ce.Code == schema.CloseTokenRevoked {
			break
		}
		if err != nil {
			t.Fatalf("websocket of a suspended user: %v, want close %d", err, schema.CloseTokenRevoked)
		}
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatalf("NATS connection of a suspended user still %v", nc.Status())
	}
	// Refresh first: a login of the same device (identity v2: the device
	// key names the device) replaces its refresh tokens, suspended or not.
	if _, e := alice.Do(http.MethodPost, "/v1/refresh", schema.RefreshRequest{RefreshToken: alice.Session.RefreshToken}, nil); e == nil || e.Code != schema.CodeAccountSuspended {
		t.Errorf("refresh of a suspended user = %v, want account_suspended", e)
	}
	if code := loginCode(alice, "laptop"); code != schema.CodeAccountSuspended {
		t.Errorf("login of a suspended user = %q, want account_suspended", code)
	}
	if _, e := alice.Do(http.MethodGet, "/v1/devices", nil, nil); e == nil || e.Code != schema.CodeTokenRevoked {
		t.Errorf("old token of a suspended user = %v, want token_revoked", e)
	}
	if _, _, err := nativeConn(t, a.NATSURL(), alice); err == nil {
		t.Error("NATS connection of a suspended user accepted")
	}
	if msg, err := admin(app.AdminSuspend, "alice"); err != nil || !strings.Contains(msg, "already") {
		t.Errorf("second suspend = %q, %v", msg, err)
	}

	if msg, err := admin(app.AdminUnsuspend, "alice"); err != nil || !strings.Contains(msg, "unsuspended") {
		t.Fatalf("admin unsuspend = %q, %v", msg, err)
	}
	if code := loginCode(alice, "laptop"); code != "" {
		t.Fatalf("login after unsuspend = %q", code)
	}
	alice.Must(http.MethodGet, "/v1/devices", nil, nil)

	if msg, err := admin(app.AdminDelete, "alice"); err != nil || !strings.Contains(msg, "deletion recorded") {
		t.Fatalf("admin delete = %q, %v", msg, err)
	}
	natstest.WaitFor(t, 10*time.Second, "alice gone after admin delete", func() bool {
		_, e := bob.Do(http.MethodGet, "/v1/users/alice", nil, nil)
		return e != nil && e.Code == schema.CodeNotFound
	})
	for _, bad := range [][2]string{{app.AdminSuspend, "nobody"}, {app.AdminDelete, "alice"}} {
		if _, err := admin(bad[0], bad[1]); !errors.Is(err, app.ErrUnknownUser) {
			t.Errorf("admin %s %s = %v, want ErrUnknownUser", bad[0], bad[1], err)
		}
	}
	if _, err := admin("purge", "bob"); err == nil {
		t.Error("unknown admin action accepted")
	}
}
