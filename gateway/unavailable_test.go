package gateway_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/store/storetest"
)

// TestGatewayPostgresDownIsUnavailable: while Postgres drops every
// connection (a restart or a promotion), requests that need it are
// answered 503 unavailable, temporary, not internal; once it is back the
// same requests succeed.
func TestGatewayPostgresDownIsUnavailable(t *testing.T) {
	t.Parallel()
	proxy, dbURL := storetest.NewProxy(t)
	a := gatewaytest.Start(t, gatewaytest.Config{DatabaseURL: dbURL})
	alice := gatewaytest.NewUser(t, a.HTTPAddr(), "alice")
	bob := gatewaytest.NewUser(t, a.HTTPAddr(), "bob")
	alice.Must("GET", "/v1/devices", nil, nil)

	proxy.SetDown(true)
	for _, req := range []struct{ method, path string }{
		{"GET", "/v1/devices"},
		{"GET", "/v1/users/bob"},
		{"POST", "/v1/users/" + bob.User.UserID + "/bundle"},
	} {
		st, e := alice.Do(req.method, req.path, nil, nil)
		if st != http.StatusServiceUnavailable || e == nil || e.Code != schema.CodeUnavailable || !e.Temporary {
			t.Errorf("%s %s with postgres down: %d %v, want 503 unavailable, temporary", req.method, req.path, st, e)
		}
	}

	proxy.SetDown(false)
	natstest.WaitFor(t, 20*time.Second, "GET /v1/devices to succeed after postgres came back", func() bool {
		st, e := alice.Do("GET", "/v1/devices", nil, nil)
		if e != nil && e.Code != schema.CodeUnavailable {
			t.Fatalf("GET /v1/devices after postgres came back: %d %v", st, e)
		}
		return e == nil
	})
}
