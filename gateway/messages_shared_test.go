package gateway_test

import (
	"testing"

	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
)

// TestGatewayMessagesSharedFrameOwnPrevSeq: a live message is encoded once
// for all the user's devices, yet each connection's frame carries its own
// prev_seq. bob's phone got message 1; his tablet synced after it was
// burned, so message 2 follows seq 1 on the phone and nothing (prev_seq
// omitted) on the tablet. The message, the shared burned event and the
// rest of both frames are the same.
func TestGatewayMessagesSharedFrameOwnPrevSeq(t *testing.T) {
	t.Parallel()
	e := startMsgEnv(t, gatewaytest.Config{})
	alice, bob := e.friends("alice", "bob")
	a, phone := dialWS(t, e, alice), dialWS(t, e, bob)
	a.sync(0)
	phone.sync(0)
	first := a.send(bob, "one")
	phone.waitMsg(first.PeerSeq)
	mustAnswer[*schema.OKFrame](phone, phone.request(schema.FrameRead, map[string]any{"seq": first.PeerSeq}))
	phone.waitEvent(schema.EventBurned, first.PeerSeq)

	tablet := dialWS(t, e, bob.Device("tablet"))
	if s := tablet.sync(0); s.LastSeq != 0 {
		t.Fatalf("tablet synced = %+v after the burn", s)
	}
	second := a.send(bob, "two")
	onPhone, onTablet := phone.waitMsg(second.PeerSeq), tablet.waitMsg(second.PeerSeq)
	if onPhone.PrevSeq != first.PeerSeq || onTablet.PrevSeq != 0 {
		t.Fatalf("prev_seq %d on the phone, %d on the tablet; want %d, 0", onPhone.PrevSeq, onTablet.PrevSeq, first.PeerSeq)
	}
	same := *onPhone
	same.PrevSeq = 0
	if frameJSON(&same) != frameJSON(onTablet) {
		t.Fatalf("frames differ beyond prev_seq:\n%s\n%s", frameJSON(onPhone), frameJSON(onTablet))
	}
	if got := tablet.open(onTablet, alice); got != "two" {
		t.Fatalf("tablet opened %q", got)
	}
	mustAnswer[*schema.OKFrame](tablet, tablet.request(schema.FrameRead, map[string]any{"seq": second.PeerSeq}))
	for _, d := range []*wsDevice{phone, tablet} {
		if ev := d.waitEvent(schema.EventBurned, second.PeerSeq); ev.PeerID != alice.User.UserID || ev.MsgID == "" {
			t.Fatalf("%v: burned event = %+v", d.c, ev)
		}
	}
	phone.checkChain(0)
	tablet.checkChain(0)
}
