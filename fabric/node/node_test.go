package node

import (
	"bytes"
	"runtime"
	"runtime/pprof"
	"testing"
)

// TestNodeAPIWorkers checks that the JetStream API pool is sized by
// Config.APIWorkers, not by the machine's cores, and that the process keeps
// its own GOMAXPROCS.
func TestNodeAPIWorkers(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	for _, tc := range []struct{ cfg, want int }{{0, MaxAPIWorkers}, {3, max(3, before)}} {
		n, err := Start(Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), ServicePassword: "test-password-0123456789", APIWorkers: tc.cfg})
		if err != nil {
			t.Fatal(err)
		}
		if got := apiWorkers(); got != min(tc.want, MaxAPIWorkers) {
			t.Errorf("APIWorkers %d: %d API workers, want %d", tc.cfg, got, min(tc.want, MaxAPIWorkers))
		}
		if got := runtime.GOMAXPROCS(0); got != before {
			t.Errorf("GOMAXPROCS is %d after Start, was %d", got, before)
		}
		n.Shutdown()
	}
}

// apiWorkers counts the goroutines of nats-server's JetStream API pool.
func apiWorkers() int {
	var buf bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&buf, 2)
	return bytes.Count(buf.Bytes(), []byte("server.(*Server).processJSAPIRoutedRequests("))
}
