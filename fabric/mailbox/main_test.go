package mailbox

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind: a Service
// owns none, so every one must end with its node and connection.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
