package gateway_test

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/mayfly-im/mayfly/store/storetest"
)

// TestMain runs the package's end-to-end tests against the test binary's
// private Postgres (apptest.Start takes a fresh database from it). It is the
// only TestMain of package gateway_test: add tests, not another TestMain.
// When every test passed it fails the package if goroutines are left
// behind (goleak): every goroutine of a Server, its connections and the
// servers the tests start must end with them.
func TestMain(m *testing.M) {
	code := storetest.Main(m)
	if code == 0 {
		// Keep-alive connections of the tests' HTTP clients are not the
		// server's goroutines.
		http.DefaultClient.CloseIdleConnections()
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
