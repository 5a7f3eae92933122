package gateway_test

import (
	"slices"
	"testing"

	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
)

// TestGatewayMessagesDelivered: the sender's devices hear "delivered" about
// their own copy once a device of the recipient got the message, in a
// replay and live, and "burned" once it is read.
func TestGatewayMessagesDelivered(t *testing.T) {
	t.Parallel()
	e := startMsgEnv(t, gatewaytest.Config{})
	alice, bob := e.friends("alice", "bob")
	alicePhone := dialWS(t, e, alice)
	alicePhone.sync(0)
	s1 := alicePhone.send(bob, "while you were away") // bob has no device connected

	bobPhone := dialWS(t, e, bob)
	bobPhone.sync(0) // the replay delivers s1
	m1 := bobPhone.waitMsg(s1.PeerSeq)
	ev := alicePhone.waitEvent(schema.EventDelivered, s1.Seq)
	if ev.PeerID != bob.User.UserID || ev.MsgID != m1.MsgID {
		t.Errorf("delivered event %+v, want peer %s and msg_id %s", ev, bob.User.UserID, m1.MsgID)
	}

	s2 := alicePhone.send(bob, "live")
	bobPhone.waitMsg(s2.PeerSeq)
	alicePhone.waitEvent(schema.EventDelivered, s2.Seq)
	mustAnswer[*schema.OKFrame](bobPhone, bobPhone.request(schema.FrameRead, map[string]any{"seq": s2.PeerSeq}))
	alicePhone.waitEvent(schema.EventBurned, s2.Seq)

	// The recipient hears nothing of the kind about messages it received.
	bobPhone.mu.Lock()
	frames := slices.Clone(bobPhone.frames)
	bobPhone.mu.Unlock()
	for _, f := range frames {
		if ev, ok := f.(*schema.EventFrame); ok && ev.Event.Type == schema.EventDelivered {
			t.Errorf("the recipient got a delivered event: %+v", ev.Event)
		}
	}
}
