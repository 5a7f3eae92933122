package client_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/gateway/client"
)

// TestClientFailover: a client given two gateways loses the one it uses
// (its port closes, as when a city is lost) while a send's answer is on
// the way; the send is repeated through the other gateway with the same
// message id and stored once, and HTTP requests move to the other gateway
// too, also for a client whose first gateway was gone before it started.
func TestClientFailover(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	cityA, cityB := newProxy(t, s), newProxy(t, s)
	hc := &http.Client{Timeout: 30 * time.Second}
	both := func(c *client.Config) { c.Server, c.Servers, c.HTTPClient = cityA.url(), []string{cityB.url()}, hc }
	alice := s.user("alice")
	bob := newClient(t, cityA.url(), "phone", both)
	register(t, bob, "bob")
	befriend(t, alice, bob)
	ain, bin := run(t, alice), run(t, bob)
	ain.waitSyncs(1)
	bin.waitSyncs(1)

	hc.CloseIdleConnections() // the claim's HTTP connection is a new one, not held
	cityA.holdDown()
	wait := sendAsync(ctx, bob, "alice", "exactly once")
	got := ain.waitReceived(1) // stored, but bob never heard back
	cityA.close()              // city a is gone: its port refuses from now on
	sent, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	if !sent.Duplicate || sent.ID != got[0].ID {
		t.Fatalf("send repeated through city b: %+v; alice got %+v", sent, got[0])
	}
	bin.waitSyncs(2) // bob's WebSocket is back, through city b
	if _, err := bob.Send(ctx, "alice", "after"); err != nil {
		t.Fatalf("send after the failover (claim over HTTP, then the frame): %v", err)
	}
	ain.waitReceived(2)
	if texts := ain.received(); !slices.Equal(texts, []string{"exactly once", "after"}) {
		t.Fatalf("alice got %q", texts)
	}

	carol := newClient(t, cityA.url(), "phone", both)
	register(t, carol, "carol") // city a refuses: every request goes on to city b
	if _, err := carol.FriendRequest(ctx, "alice"); err != nil {
		t.Fatalf("friend request with the first gateway gone: %v", err)
	}
}
