package app_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
	"github.com/mayfly-im/mayfly/cmd/mayflyd/app/apptest"
	"github.com/mayfly-im/mayfly/fabric/callout"
)

// nativeConn connects to url as c's device, collecting async errors.
func nativeConn(t *testing.T, url string, c *apptest.Client) (*nats.Conn, *asyncErrs, error) {
	t.Helper()
	ae := &asyncErrs{}
	nc, err := nats.Connect(url,
		nats.Token(c.Session.AccessToken),
		nats.CustomInboxPrefix(callout.InboxPrefix(c.Session.UserID)),
		nats.MaxReconnects(2), nats.ReconnectWait(100*time.Millisecond),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { ae.add(err) }),
	)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, ae, err
}

type asyncErrs struct {
	mu   sync.Mutex
	errs []error
}

func (a *asyncErrs) add(err error) { a.mu.Lock(); a.errs = append(a.errs, err); a.mu.Unlock() }

// waitFor polls for an async error containing s.
func (a *asyncErrs) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		a.mu.Lock()
		for _, e := range a.errs {
			if strings.Contains(strings.ToLower(e.Error()), s) {
				a.mu.Unlock()
				return
			}
		}
		a.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no async error containing %q; got %v", s, a.errs)
}

func TestNativeCalloutPermissions(t *testing.T) {
	a := apptest.Start(t, app.Config{NATSWebSocketListen: "127.0.0.1:0"})
	alice := apptest.NewUser(t, a.HTTPAddr(), "alice")
	bob := apptest.NewUser(t, a.HTTPAddr(), "bob")

	t.Run("bad token refused", func(t *testing.T) {
		_, err := nats.Connect(a.NATSURL(), nats.Token("not-a-token"), nats.MaxReconnects(0))
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Fatalf("connect with bad token: %v, want authorization violation", err)
		}
		_, err = nats.Connect(a.NATSURL(), nats.MaxReconnects(0))
		if err == nil {
			t.Fatal("connect without token succeeded")
		}
	})

	nc, ae, err := nativeConn(t, a.NATSURL(), alice)
	if err != nil {
		t.Fatalf("connect with access token: %v", err)
	}

	t.Run("own subjects allowed", func(t *testing.T) {
		for _, subj := range []string{"evt." + alice.Session.UserID, "dlv.mbx.3." + alice.Session.UserID} {
			if _, err := nc.SubscribeSync(subj); err != nil {
				t.Fatal(err)
			}
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	})

	denied := []struct{ name, op, subj string }{
		{"other user's deliveries", "sub", "dlv.mbx.3." + bob.Session.UserID},
		{"other user's events", "sub", "evt." + bob.Session.UserID},
		{"all deliveries", "sub", "dlv.>"},
		{"write into a mailbox", "pub", "mbx.3." + bob.Session.UserID},
		{"impersonate another user in a service subject", "pub", "svc." + bob.Session.UserID + "." + bob.Session.DeviceID + ".send"},
		{"impersonate another device in a service subject", "pub", "svc." + alice.Session.UserID + ".dother2345678901234567890123.send"},
		{"jetstream delete", "pub", "$JS.API.STREAM.MSG.DELETE.MBX_3"},
		{"jetstream purge", "pub", "$JS.API.STREAM.PURGE.MBX_3"},
		{"jetstream direct get", "pub", "$JS.API.DIRECT.GET.MBX_3"},
		{"consumer create", "pub", "$JS.API.CONSUMER.CREATE.MBX_3"},
		{"system account", "pub", "$SYS.REQ.SERVER.PING"},
	}
	for _, d := range denied {
		t.Run("denied "+d.name, func(t *testing.T) {
			var err error
			if d.op == "sub" {
				_, err = nc.SubscribeSync(d.subj)
			} else {
				err = nc.Publish(d.subj, []byte("x"))
			}
			if err != nil {
				t.Fatal(err)
			}
			nc.Flush()
			ae.waitFor(t, "permissions violation for "+map[string]string{"sub": "subscription", "pub": "publish"}[d.op]+" to \""+strings.ToLower(d.subj)+"\"")
		})
	}

	t.Run("websocket listener uses the callout too", func(t *testing.T) {
		url := a.NATSWebSocketURL()
		if url == "" {
			t.Fatal("no nats websocket url")
		}
		ws, _, err := nativeConn(t, url, bob)
		if err != nil {
			t.Fatalf("connect over websocket: %v", err)
		}
		if _, err := nats.Connect(url, nats.Token("garbage"), nats.MaxReconnects(0)); err == nil {
			t.Fatal("websocket connect with bad token succeeded")
		}
		ws.Close()
	})
}

func TestNativeRevokeDisconnects(t *testing.T) {
	a := apptest.Start(t, app.Config{})
	alice := apptest.NewUser(t, a.HTTPAddr(), "alice")
	laptop := alice.Device("laptop")
	nc, _, err := nativeConn(t, a.NATSURL(), laptop)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	alice.Must("DELETE", "/v1/devices/"+laptop.Session.DeviceID, nil, nil)
	start := time.Now()
	select {
	case <-closed:
		t.Logf("revoked native connection closed after %v", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatalf("native connection still %v 5s after revocation", nc.Status())
	}
	if err := nc.LastError(); err != nil && !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Logf("last error: %v", err)
	}
	if _, _, err := nativeConn(t, a.NATSURL(), laptop); err == nil {
		t.Fatal("revoked device reconnected")
	}
}
