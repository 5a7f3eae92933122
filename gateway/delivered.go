package gateway

import (
	"github.com/mayfly-im/mayfly/fabric"
	"github.com/mayfly-im/mayfly/fabric/mailbox"
	"github.com/mayfly-im/mayfly/schema"
)

// Delivered receipts (docs/protocol.md, "Burn after reading, recall,
// expiry"). When a
// received message is queued to one of its recipient's connections, the
// sender's devices get a delivered event about their sync copy. A live
// delivery is shared by all the recipient's connections here and announced
// once (delivery.announced); a replay announces what it sends, so a sender
// may hear of one message more than once (a reconnect, another gateway).
// The event is best effort, like every event: core NATS, at most once.

// announceDelivered tells the sender of received message m that a device
// of the recipient got it. Sync copies, and messages without the sender's
// sequence, are not announced.
func (c *session) announceDelivered(m *mailbox.Message) {
	if m.Self || m.PeerSeq == 0 {
		return
	}
	ev := schema.Event{Type: schema.EventDelivered, Seq: m.PeerSeq, MsgID: m.MsgID, PeerID: m.To}
	if err := fabric.PublishEvent(c.s.cfg.NATS, m.From, ev); err != nil {
		c.s.log.Warn("delivered event not published", "user_id", m.From, "err", err)
	}
}

// announceLive is announceDelivered for a live delivery, once for all the
// recipient's connections.
func (c *session) announceLive(d *delivery) {
	if d.announced.CompareAndSwap(false, true) {
		c.announceDelivered(&d.Message)
	}
}
