package client_test

import (
	"os"
	"testing"

	"github.com/mayfly-im/mayfly/store/storetest"
)

// TestMain runs the package's tests against the test binary's private
// Postgres: every test starts a gateway in-process (gatewaytest.Start).
func TestMain(m *testing.M) { os.Exit(storetest.MainNoLeaks(m)) }
