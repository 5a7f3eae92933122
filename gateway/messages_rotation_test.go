package gateway_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/fabric/mailbox"
	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
)

// TestGatewayMessagesRotation: mayflyd runs the mailbox block rotation. A
// message that stays unread gets its partition's block closed within a few
// rotation intervals: the rotation's marker, republished like every stored
// message, says the block holding the message is closed.
func TestGatewayMessagesRotation(t *testing.T) {
	t.Parallel()
	e := startMsgEnv(t, gatewaytest.Config{MailboxRotateInterval: time.Second})
	sub, err := e.serviceConn().SubscribeSync("dlv.mbx.*.~rotated")
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := e.friends("alice", "bob")
	a := dialWS(t, e, alice)
	s := a.send(bob, "stays unread")
	stream := "MBX_" + strconv.Itoa(mailbox.Partition(bob.User.UserID, mailbox.DefaultPartitions))
	deadline := time.Now().Add(60 * time.Second)
	for {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			t.Fatalf("no rotation marker closing %s past seq %d: %v", stream, s.PeerSeq, err)
		}
		upTo, _ := strconv.ParseUint(m.Header.Get("Mayfly-Rotated-Seq"), 10, 64)
		if m.Header.Get("Nats-Stream") == stream && upTo >= s.PeerSeq {
			return
		}
	}
}
