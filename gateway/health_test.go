package gateway_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestGatewayHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	e := startAcctEnv(t, gatewaytest.Config{})
	if st, body := get(t, e.url("/healthz")); st != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz = %d %q", st, body)
	}
	var ready struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	c := e.client()
	c.Must(http.MethodGet, "/readyz", nil, &ready)
	if !ready.Ready || len(ready.Checks) < 3 {
		t.Errorf("/readyz = %+v", ready)
	}
	for _, name := range []string{"postgres", "nats", "jetstream"} {
		if ready.Checks[name] != "ok" {
			t.Errorf("/readyz check %s = %q, want ok", name, ready.Checks[name])
		}
	}
	for name, state := range ready.Checks {
		if state != "ok" {
			t.Errorf("/readyz check %s = %q", name, state)
		}
	}
	c.Register("alice")
	e.refused(t, c, http.MethodGet, "/v1/no-such-route", nil, schema.CodeNotFound)
	st, body := get(t, e.url("/metrics"))
	if st != http.StatusOK {
		t.Fatalf("/metrics = %d", st)
	}
	for _, want := range []string{
		`mayfly_http_requests_total{code="ok",route="POST /v1/register"} 1`,
		`mayfly_http_requests_total{code="not_found",route="/"} 1`,
		"mayfly_http_request_seconds_bucket",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestGatewayAnonRateLimit: unauthenticated requests are limited per client
// address (refreshes in a bucket ten times as large); authenticated ones are
// not.
func TestGatewayAnonRateLimit(t *testing.T) {
	t.Parallel()
	e := startAcctEnv(t, gatewaytest.Config{AnonRate: 0.001, AnonBurst: 5})
	alice := gatewaytest.NewUser(t, e.addr, "alice") // register, device list, challenge, login: 4 of the burst
	alice.Must(http.MethodPost, "/v1/login/challenge", schema.ChallengeRequest{Handle: "alice"}, nil)
	e.refused(t, e.client(), http.MethodPost, "/v1/register", e.client().RegisterRequest("bob"), schema.CodeRateLimited)
	// Refreshes have their own bucket, ten times the size.
	tok := alice.Session.RefreshToken
	for i := range 50 {
		var sess schema.Session
		if st, err := e.client().Do(http.MethodPost, "/v1/refresh", schema.RefreshRequest{RefreshToken: tok}, &sess); err != nil {
			t.Fatalf("refresh %d within the refresh burst: %d %v", i, st, err)
		}
		tok = sess.RefreshToken
	}
	e.refused(t, e.client(), http.MethodPost, "/v1/refresh", schema.RefreshRequest{RefreshToken: tok}, schema.CodeRateLimited)
	// A 429 says when to come back.
	for _, path := range []string{"/v1/register", "/v1/refresh"} {
		resp, err := http.Post(e.url(path), "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
			t.Errorf("POST %s over the limit: %d, Retry-After %q; want 429 with Retry-After 1", path, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	for range 10 {
		alice.Must(http.MethodGet, "/v1/devices", nil, nil)
	}
}
