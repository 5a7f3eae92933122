package node

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when the tests leave goroutines behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
