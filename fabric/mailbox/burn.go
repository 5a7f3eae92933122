package mailbox

import (
	"context"
	"errors"
	"time"

	"github.com/mayfly-im/mayfly/schema"
)

var errUnknownMessage = schema.Errorf(schema.CodeUnknownMessage, "no such message in your mailbox")

// Read burns a message after reading: seq must be a received message in
// reader's own mailbox (not one of reader's sync copies). It deletes the
// sender's sync copy the message links to, then the message itself (the
// commit point), and tells every device of both users (schema.EventBurned:
// to the reader with seq, to the sender with the sync copy's seq, so the
// sender sees it as read). Anything else, including a message already
// burned, recalled or expired, or a concurrent Read of the same seq that
// won, fails with unknown_message.
//
// A burn either removes both copies or fails with unavailable (retryable):
// no delete is best effort. When a delete fails, the reader's copy is
// still there and a retry finishes the burn (a sync copy already gone
// counts as deleted).
//
// Deletion is JetStream's DeleteMsg, not SecureDeleteMsg; docs/fabric.md
// says what it does and does not erase.
func (s *Service) Read(ctx context.Context, reader string, seq uint64) (_ BurnResult, err error) {
	defer s.observe(OpRead, time.Now(), 0, &err)
	m, err := s.load(ctx, reader, seq)
	if err != nil {
		return BurnResult{}, err
	}
	return s.read(ctx, reader, m)
}

// ReadDelivered is Read for a message the caller delivered to reader
// itself: m is a message of reader's mailbox as Deliveries or Fetch gave it
// (Seq, From, MsgID, PeerSeq and Self are used), so the lookup of the
// message that Read begins with is skipped. A gateway that remembers what
// it delivered on a connection burns with one request less. The delete is
// still the commit point: a message burned, recalled or expired meanwhile
// fails with unknown_message, as in Read. Never pass a Message built from
// client input.
func (s *Service) ReadDelivered(ctx context.Context, reader string, m Message) (_ BurnResult, err error) {
	defer s.observe(OpRead, time.Now(), 0, &err)
	if !schema.ValidUserID(reader) {
		return BurnResult{}, errBadUser
	}
	if m.Seq == 0 {
		return BurnResult{}, errUnknownMessage
	}
	return s.read(ctx, reader, m)
}

// read burns m, a message of reader's mailbox.
func (s *Service) read(ctx context.Context, reader string, m Message) (BurnResult, error) {
	if m.Self {
		return BurnResult{}, errUnknownMessage
	}
	// Once started, a burn is not given up because its caller went away:
	// each delete is bounded by jsapi.RequestTimeout instead.
	ctx = context.WithoutCancel(ctx)
	seq := m.Seq
	res := BurnResult{Seq: seq, Peer: m.From, MsgID: m.MsgID}
	if m.PeerSeq > 0 {
		gone, err := s.burnPeer(ctx, m.From, m.PeerSeq)
		if err != nil {
			return BurnResult{}, err
		}
		if !gone {
			res.PeerSeq = m.PeerSeq
		}
	}
	if err := s.burn(ctx, reader, seq); err != nil {
		return BurnResult{}, err
	}
	s.burned(ctx, m.From, reader, m.MsgID)
	s.event(reader, schema.Event{Type: schema.EventBurned, Seq: seq, MsgID: m.MsgID, PeerID: m.From})
	if m.PeerSeq > 0 {
		s.event(m.From, schema.Event{Type: schema.EventBurned, Seq: m.PeerSeq, MsgID: m.MsgID, PeerID: reader})
	}
	return res, nil
}

// Recall withdraws a message its sender sent and the recipient has not
// read: seq is the sender's own sync copy (SendResult.Seq, or a Message
// with Self set). It finds the recipient's copy (a scan of the recipient's
// mailbox for the copy that links to seq), deletes it (the commit point),
// then the sync copy, and tells both users' devices (schema.EventRecalled,
// each with their own seq). A seq that is not a live sync copy of sender's
// fails with unknown_message (a Read deletes the sync copy first, so a
// read message's sync copy is gone).
//
// When the sync copy is live but its recipient copy is gone, a recall
// failed after its commit point (or the recipient's copy was never
// stored): Recall deletes the sync copy and succeeds, with PeerSeq 0 and
// the event to the sender only. A failed delete is unavailable (retry).
func (s *Service) Recall(ctx context.Context, sender string, seq uint64) (_ BurnResult, err error) {
	defer s.observe(OpRecall, time.Now(), 0, &err)
	m, err := s.load(ctx, sender, seq)
	if err != nil {
		return BurnResult{}, err
	}
	if !m.Self {
		return BurnResult{}, errUnknownMessage
	}
	peerSeq, err := s.findRecipientCopy(ctx, m)
	ctx = context.WithoutCancel(ctx) // as in read
	switch {
	case errors.Is(err, errUnknownMessage):
		peerSeq = 0 // finish an interrupted recall
	case err != nil:
		return BurnResult{}, err
	default:
		if err := s.burn(ctx, m.To, peerSeq); err != nil {
			return BurnResult{}, err
		}
	}
	if _, err := s.burnPeer(ctx, sender, seq); err != nil {
		return BurnResult{}, err
	}
	res := BurnResult{Seq: seq, Peer: m.To, PeerSeq: peerSeq, MsgID: m.MsgID}
	s.burned(ctx, sender, m.To, m.MsgID)
	if peerSeq > 0 {
		s.event(m.To, schema.Event{Type: schema.EventRecalled, Seq: peerSeq, MsgID: m.MsgID, PeerID: sender})
	}
	s.event(sender, schema.Event{Type: schema.EventRecalled, Seq: seq, MsgID: m.MsgID, PeerID: m.To})
	return res, nil
}

// load returns message seq of uid's own mailbox; unknown_message when it is
// not stored or belongs to another mailbox of the same stream.
func (s *Service) load(ctx context.Context, uid string, seq uint64) (Message, error) {
	if !schema.ValidUserID(uid) {
		return Message{}, errBadUser
	}
	if e := schema.CheckSeq("seq", seq, 1); e != nil {
		return Message{}, e
	}
	raw, err := s.getSeq(ctx, s.stream(uid), seq)
	if errors.Is(err, errNotFound) && s.cfg.Replicas > 1 {
		// A follower may not have it yet; only the leader's no is final.
		raw, err = s.getSeqLeader(ctx, s.stream(uid), seq)
	}
	if errors.Is(err, errNotFound) {
		return Message{}, errUnknownMessage
	}
	if err != nil {
		return Message{}, s.unavailable("load message", err)
	}
	m, err := parseDirect(raw)
	if err != nil || raw.Header.Get("Nats-Subject") != s.subject(uid) {
		return Message{}, errUnknownMessage
	}
	return m, nil
}

// burn deletes seq from uid's mailbox. It is the commit point of a read or
// recall: of two racing burns of one message, only one succeeds; the other
// gets unknown_message.
func (s *Service) burn(ctx context.Context, uid string, seq uint64) error {
	err := s.deleteMsg(ctx, s.stream(uid), seq)
	if errors.Is(err, errNotFound) {
		return errUnknownMessage
	}
	if err != nil {
		return s.unavailable("burn message", err)
	}
	return nil
}

// burned tells Config.OnBurn that message msgID from from to to is gone.
func (s *Service) burned(ctx context.Context, from, to, msgID string) {
	if s.cfg.OnBurn != nil {
		s.cfg.OnBurn(context.WithoutCancel(ctx), from, to, msgID)
	}
}

// burnPeer deletes the other copy of a message: the sync copy before a
// read commits, or after a recall committed. gone reports that it was not
// stored any more (an earlier attempt, or a racing burn, deleted it). Any
// other failure is unavailable: the caller's burn fails and may be retried.
func (s *Service) burnPeer(ctx context.Context, uid string, seq uint64) (gone bool, err error) {
	err = s.deleteMsg(ctx, s.stream(uid), seq)
	switch {
	case errors.Is(err, errNotFound):
		return true, nil
	case err != nil:
		return false, s.unavailable("burn other copy", err)
	}
	return false, nil
}

// findRecipientCopy returns the sequence of the recipient's copy linked to
// sync copy m, or unknown_message when it is gone.
func (s *Service) findRecipientCopy(ctx context.Context, m Message) (uint64, error) {
	var found uint64
	_, err := s.scan(ctx, m.To, 1, 0, func(r Message) bool {
		if !r.Self && r.From == m.From && r.MsgID == m.MsgID && r.PeerSeq == m.Seq {
			found = r.Seq
			return false
		}
		return true
	})
	if err != nil {
		return 0, s.unavailable("find recipient copy", err)
	}
	if found == 0 {
		return 0, errUnknownMessage
	}
	return found, nil
}
