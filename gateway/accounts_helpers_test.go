package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/store"
)

// acctEnv is a running gateway plus a direct handle on its database, so a
// test can prove that a refused request changed nothing.
type acctEnv struct {
	t    *testing.T
	srv  *gatewaytest.Server
	db   *store.DB
	addr string
	dir  string // the data directory; the token key is in keys/token.pem
}

// startAcctEnv starts a gateway for t with cfg (zero fields filled by
// gatewaytest) on a database the test can read.
func startAcctEnv(t *testing.T, cfg gatewaytest.Config) *acctEnv {
	t.Helper()
	a := gatewaytest.Start(t, cfg)
	return &acctEnv{t: t, srv: a, db: a.DB, addr: a.HTTPAddr(), dir: a.Config().DataDir}
}

func (e *acctEnv) url(path string) string { return "http://" + e.addr + path }

func (e *acctEnv) tokenKeyFile() string { return filepath.Join(e.dir, "keys", "token.pem") }

// client returns a fresh client (new keys, no account) for the server.
func (e *acctEnv) client() *gatewaytest.Client { return gatewaytest.NewClient(e.t, e.addr) }

// snapshot renders every row of the account tables as text.
func (e *acctEnv) snapshot(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []string{"users", "devices", "login_challenges", "refresh_tokens"} {
		var rows string
		err := e.db.Pool().QueryRow(context.Background(),
			`SELECT coalesce(string_agg(t::text, E'\n' ORDER BY t::text), '') FROM `+table+` t`).Scan(&rows)
		if err != nil {
			t.Fatalf("snapshot %s: %v", table, err)
		}
		b.WriteString(table + ":\n" + rows + "\n")
	}
	return b.String()
}

// count returns the number of rows in table.
func (e *acctEnv) count(table string) int {
	e.t.Helper()
	var n int
	if err := e.db.Pool().QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// refused sends a request as c (body as gatewaytest.Client.Do takes it) and
// checks that it fails with want, with want's HTTP status, and that the
// stored data is exactly as before.
func (e *acctEnv) refused(t testing.TB, c *gatewaytest.Client, method, path string, body any, want schema.Code) {
	t.Helper()
	prev := c.T
	c.T = t // fail the (sub)test that sends
	defer func() { c.T = prev }()
	before := e.snapshot(t)
	status, got := c.Do(method, path, body, nil)
	if got == nil || got.Code != want || status != want.Status() {
		t.Errorf("%s %s = %d %v, want %d %s", method, path, status, got, want.Status(), want)
	}
	if got != nil && got.Temporary != want.Temporary() {
		t.Errorf("%s %s: temporary = %v, want %v", method, path, got.Temporary, want.Temporary())
	}
	if after := e.snapshot(t); after != before {
		t.Errorf("%s %s (%s) changed stored data:\nbefore:\n%s\nafter:\n%s", method, path, want, before, after)
	}
}

// rawCall sends one request without a testing.TB, for use from goroutines.
func rawCall(method, url, bearerToken string, body []byte) (int, schema.Code, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if bearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+bearerToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode < 300 {
		return resp.StatusCode, "", err
	}
	var eb schema.ErrorBody
	if err := json.Unmarshal(raw, &eb); err != nil || eb.Error == nil {
		return resp.StatusCode, "", err
	}
	return resp.StatusCode, eb.Error.Code, nil
}
