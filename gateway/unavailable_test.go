package gateway_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
	"github.com/mayfly-im/mayfly/cmd/mayflyd/app/apptest"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/store/storetest"
)

// TestGatewayPostgresDownIsUnavailable: while Postgres drops every
// connection (a restart or a promotion), requests that need it are
// answered 503 unavailable, temporary, not internal; once it is back the
// same requests succeed.
func TestGatewayPostgresDownIsUnavailable(t *testing.T) {
	proxy, dbURL := storetest.NewProxy(t)
	a := apptest.Start(t, app.Config{DatabaseURL: dbURL, DataDir: t.TempDir()})
	alice := apptest.NewUser(t, a.HTTPAddr(), "alice")
	bob := apptest.NewUser(t, a.HTTPAddr(), "bob")
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
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, e := alice.Do("GET", "/v1/devices", nil, nil)
		if e == nil {
			break
		}
		if e.Code != schema.CodeUnavailable || time.Now().After(deadline) {
			t.Fatalf("GET /v1/devices after postgres came back: %d %v", st, e)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
