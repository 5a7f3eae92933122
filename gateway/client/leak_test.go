package client_test

import (
	"net/http"
	"testing"

	"go.uber.org/goleak"

	"github.com/mayfly-im/mayfly/gateway/client"
)

// TestClientNoLeaks: once Run has returned, none of the client's
// goroutines (connection reader, pinger) is left, here or on the server.
func TestClientNoLeaks(t *testing.T) {
	s := startServer(t)
	tr := &http.Transport{}
	ignore := goleak.IgnoreCurrent()
	alice := s.user("alice", func(c *client.Config) { c.HTTPClient = &http.Client{Transport: tr} })
	in := run(t, alice)
	in.waitSyncs(1)
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}
	tr.CloseIdleConnections()
	goleak.VerifyNone(t, ignore,
		// The server's NATS connection starts these lazily on its first
		// JetStream publish; they live as long as the server.
		goleak.IgnoreAnyFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats%2ego.(*Conn).waitForMsgs"),
		// The gateway starts its hub's dispatcher and its presence tracker
		// with its first WebSocket; they live as long as the server.
		goleak.IgnoreAnyFunction("github.com/mayfly-im/mayfly/gateway.(*hub).dispatch"),
		goleak.IgnoreAnyFunction("github.com/mayfly-im/mayfly/fabric/presence.(*Tracker).run"))
}
