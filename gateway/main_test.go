package gateway_test

import (
	"os"
	"testing"

	"github.com/mayfly-im/mayfly/store/storetest"
)

// TestMain runs the package's end-to-end tests against the test binary's
// private Postgres (apptest.Start takes a fresh database from it). It is the
// only TestMain of package gateway_test: add tests, not another TestMain.
func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }
