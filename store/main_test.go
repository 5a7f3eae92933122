package store_test

import (
	"os"
	"testing"

	"github.com/mayfly-im/mayfly/store/storetest"
)

// TestMain runs the package's tests against the test binary's private
// Postgres. It is the only TestMain of package store_test: add tests, not
// another TestMain.
func TestMain(m *testing.M) { os.Exit(storetest.MainNoLeaks(m)) }
