package gateway

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mayfly-im/mayfly/fabric/account"
	"github.com/mayfly-im/mayfly/fabric/natstest"
)

// TestGatewayNewStartsNothing: New starts no goroutine (the hub's
// dispatcher starts with the first WebSocket), and Shutdown of a Server
// that never served one returns at once, leaving none behind.
func TestGatewayNewStartsNothing(t *testing.T) {
	nc := natstest.Connect(t, natstest.Run(t))
	before := goleak.IgnoreCurrent()
	s, err := New(Config{Accounts: new(account.Service), NATS: nc})
	if err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, before)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, before)
}
