package gateway_test

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
)

// TestGatewayMessagesReadDelivered: a device burns a message that was
// delivered on its connection without looking it up again (no Direct Get);
// a message it was not delivered is looked up, and burns the same way.
func TestGatewayMessagesReadDelivered(t *testing.T) {
	t.Parallel()
	e := startMsgEnv(t, gatewaytest.Config{})
	alice, bob := e.friends("alice", "bob")
	alicePhone, bobPhone := dialWS(t, e, alice), dialWS(t, e, bob)
	alicePhone.sync(0)
	bobPhone.sync(0)
	gets := e.countDirectGets()

	s1 := alicePhone.send(bob, "one")
	s2 := alicePhone.send(bob, "two")
	bobPhone.waitMsg(s2.PeerSeq)
	before := gets.Load()
	mustAnswer[*schema.OKFrame](bobPhone, bobPhone.request(schema.FrameRead, map[string]any{"seq": s1.PeerSeq}))
	alicePhone.waitEvent(schema.EventBurned, s1.Seq)
	if n := gets.Load() - before; n != 0 {
		t.Errorf("reading a delivered message made %d Direct Gets, want 0", n)
	}

	tablet := dialWS(t, e, bob.Device("tablet")) // not synced: delivered nothing
	before = gets.Load()
	mustAnswer[*schema.OKFrame](tablet, tablet.request(schema.FrameRead, map[string]any{"seq": s2.PeerSeq}))
	alicePhone.waitEvent(schema.EventBurned, s2.Seq)
	if n := gets.Load() - before; n == 0 {
		t.Errorf("reading a message not delivered on the connection made no Direct Get")
	}
	bobPhone.wantError(bobPhone.request(schema.FrameRead, map[string]any{"seq": s2.PeerSeq}), schema.CodeUnknownMessage)
	bobPhone.wantError(bobPhone.request(schema.FrameRead, map[string]any{"seq": s1.PeerSeq}), schema.CodeUnknownMessage)
}

// countDirectGets counts the JetStream Direct Gets of mailbox streams made
// in the application account from now on (presence reads are not counted).
func (e *msgEnv) countDirectGets() *atomic.Int64 {
	e.t.Helper()
	nc := e.serviceConn()
	var n atomic.Int64
	count := func(m *nats.Msg) {
		if strings.HasPrefix(m.Subject, "$JS.API.DIRECT.GET.MBX_") {
			n.Add(1)
		}
	}
	if _, err := nc.Subscribe("$JS.API.DIRECT.GET.>", count); err != nil {
		e.t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		e.t.Fatal(err)
	}
	return &n
}

// serviceConn connects to the gateway's NATS as the service user;
// closed by Cleanup.
func (e *msgEnv) serviceConn() *nats.Conn {
	e.t.Helper()
	return e.srv.ServiceConn()
}
