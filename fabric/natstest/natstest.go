// Package natstest starts real in-process NATS servers for tests: each test
// gets its own server with JetStream on a random loopback port, its store in
// the test's temp dir, shut down by t.Cleanup.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/fabric/node"
)

// Password is the service user's password on test nodes.
const Password = "test-service-password"

// Run starts an embedded Mayfly NATS node for t.
func Run(t testing.TB) *node.Node {
	t.Helper()
	return RunWith(t, func(*node.Config) {})
}

// ConnectWait is the connect timeout of the tests' connections: far above
// nats.go's 2s default, which a loaded machine (several test binaries on
// two cores) exceeds even in-process.
const ConnectWait = 30 * time.Second

// Connect returns a service connection to n, closed by t.Cleanup.
func Connect(t testing.TB, n *node.Node) *nats.Conn {
	t.Helper()
	nc, err := n.Connect(t.Name(), nats.Timeout(ConnectWait))
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// RunWith starts an embedded Mayfly NATS node for t after edit adjusted its
// Config (the listen address, store and password are set already).
func RunWith(t testing.TB, edit func(*node.Config)) *node.Node {
	t.Helper()
	cfg := node.Config{
		Listen:          "127.0.0.1:0",
		StoreDir:        t.TempDir(),
		ServicePassword: Password,
		ServerName:      "test",
	}
	edit(&cfg)
	n, err := node.Start(cfg)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	t.Cleanup(n.Shutdown)
	return n
}
