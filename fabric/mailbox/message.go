package mailbox

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/fabric/subject"
	"github.com/mayfly-im/mayfly/schema"
)

// ErrBadDelivery reports a message on a delivery subject that is not a
// well-formed republished mailbox message. ParseDelivery wraps it.
var ErrBadDelivery = errors.New("mailbox: malformed delivery")

// ParseDelivery parses a message the streams republished on
// dlv.mbx.<p>.<uid> (subscribe with [Service.DeliverySubject]). prevSeq is
// the Nats-Last-Sequence header: the sequence of the newest message that
// was still stored in the same mailbox when this one was stored, 0 if none.
//
// Republishing is at most once, so a gateway detects a gap this way: with
// cursor = the last sequence it delivered to a device, prevSeq > cursor
// means messages cursor < seq <= prevSeq were missed; fetch them with
// [Service.Fetch] (after = cursor) before delivering this one. prevSeq <
// cursor is no gap (messages in between were burned or expired), and
// msg.Seq <= cursor is a duplicate to drop. Errors wrap [ErrBadDelivery].
func ParseDelivery(m *nats.Msg) (msg Message, prevSeq uint64, err error) {
	if m == nil || m.Header == nil {
		return Message{}, 0, fmt.Errorf("%w: no headers", ErrBadDelivery)
	}
	subj := m.Header.Get("Nats-Subject")
	if subj == "" {
		subj = strings.TrimPrefix(m.Subject, subject.DeliveryPrefix)
	}
	msg, err = parseStored(subj, m.Header, m.Data)
	if err != nil {
		return Message{}, 0, fmt.Errorf("%w: %v", ErrBadDelivery, err)
	}
	if v := m.Header.Get("Nats-Last-Sequence"); v != "" {
		if prevSeq, err = strconv.ParseUint(v, 10, 64); err != nil {
			return Message{}, 0, fmt.Errorf("%w: bad Nats-Last-Sequence %q", ErrBadDelivery, v)
		}
	}
	return msg, prevSeq, nil
}

// parseDirect parses a Direct Get reply.
func parseDirect(m *nats.Msg) (Message, error) {
	return parseStored(m.Header.Get("Nats-Subject"), m.Header, m.Data)
}

// parseStored builds a Message from a stored message's subject
// (mbx.<p>.<owner>), headers (Nats-Sequence and the relay's Mayfly-*) and
// data. Every id is validated: nothing read back goes into a subject
// unchecked.
func parseStored(subj string, h nats.Header, data []byte) (Message, error) {
	_, owner, ok := subject.ParseMailbox(subj)
	if !ok {
		return Message{}, fmt.Errorf("subject %q is not a mailbox", subj)
	}
	seq, err := strconv.ParseUint(h.Get("Nats-Sequence"), 10, 64)
	if err != nil || seq == 0 {
		return Message{}, fmt.Errorf("bad Nats-Sequence %q", h.Get("Nats-Sequence"))
	}
	m := Message{
		Seq:      seq,
		From:     h.Get(HeaderFrom),
		To:       h.Get(HeaderTo),
		MsgID:    h.Get(HeaderMsgID),
		Envelope: data,
	}
	if !schema.ValidUserID(m.From) || !schema.ValidUserID(m.To) || m.MsgID == "" {
		return Message{}, fmt.Errorf("seq %d: missing or bad relay headers", seq)
	}
	if owner != m.From && owner != m.To {
		return Message{}, fmt.Errorf("seq %d: mailbox of %s holds a message between others", seq, owner)
	}
	m.Self = owner == m.From
	if m.SentAt, err = time.Parse(time.RFC3339Nano, h.Get(HeaderSentAt)); err != nil {
		return Message{}, fmt.Errorf("seq %d: bad %s", seq, HeaderSentAt)
	}
	if v := h.Get(HeaderPeerSeq); v != "" && !m.Self {
		if m.PeerSeq, err = strconv.ParseUint(v, 10, 64); err != nil {
			return Message{}, fmt.Errorf("seq %d: bad %s", seq, HeaderPeerSeq)
		}
	}
	return m, nil
}
