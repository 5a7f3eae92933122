package mailbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/fabric"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// Send is the trusted relay: it stores envelope from from to to and returns
// once JetStream acknowledged both copies. from must be the authenticated
// caller. The checks, in order: both ids well formed (bad_request), to !=
// from (self_send), the envelope's shape (message_too_large,
// invalid_envelope; no key is involved), the envelope header's From and To
// equal from and to (invalid_envelope), the per-user rate (rate_limited), the
// friend graph (Permit: not_friend, refused). A failed check stores nothing.
//
// Order and linking (docs/fabric.md): the sync copy goes first into the
// sender's mailbox, then the recipient's copy, whose Mayfly-Peer-Seq header
// names the sync copy. So a message can only be read once both copies
// exist, and Read finds both without a search. If the recipient's mailbox
// is full, the sync copy is deleted again (mailbox_full; the sender's
// devices get EventWithdrawn).
//
// Idempotency: the envelope's message id, with from and to, is the
// Nats-Msg-Id of the recipient's copy; the sync copy has a derived id. A
// send repeated within the duplicate window stores nothing new and returns
// the original sequences with Duplicate set. Outside the window a repeat is
// a new message.
//
// On an unknown outcome (a JetStream timeout) Send returns unavailable; the
// client retries with the same message id and the retry completes the send.
//
// env must be a v2 envelope (docs/envelope.md) sealed by fromDevice, the
// authenticated device of from; a v1 envelope is refused with
// unsupported_version. A canonical envelope (as envelope.SealV2 writes it)
// is stored as it is, without a copy; env is not kept after Send returns.
func (s *Service) Send(ctx context.Context, from, fromDevice, to string, env []byte) (_ SendResult, err error) {
	defer s.observe(OpSend, time.Now(), 0, &err)
	out, err := s.checkSend(ctx, from, fromDevice, to, env)
	if err != nil {
		return SendResult{}, err
	}
	sc, err := s.storeSync(ctx, out)
	if err != nil {
		return SendResult{}, err
	}
	return s.storeRecipient(ctx, out, sc)
}

// outgoing is a checked message on its way into the two mailboxes.
type outgoing struct {
	from, to, msgID string
	dedupID         string // Nats-Msg-Id of the recipient's copy
	sentAt          time.Time
	sentAtHeader    string // sentAt as HeaderSentAt carries it
	envelope        []byte // canonical encoding; may alias the caller's
}

func (s *Service) checkSend(ctx context.Context, from, fromDevice, to string, env []byte) (outgoing, error) {
	switch {
	case !schema.ValidUserID(from):
		return outgoing{}, schema.Errorf(schema.CodeBadRequest, "malformed sender id")
	case !schema.ValidUserID(to):
		return outgoing{}, schema.Errorf(schema.CodeBadRequest, "malformed recipient id")
	case from == to:
		return outgoing{}, schema.Errorf(schema.CodeSelfSend, "you cannot send a message to yourself")
	}
	h, canon, err := envelope.CheckV2(env)
	switch {
	case errors.Is(err, envelope.ErrTooLarge):
		return outgoing{}, schema.Errorf(schema.CodeMessageTooLarge, "the envelope is over the size limit")
	case errors.Is(err, envelope.ErrVersion):
		return outgoing{}, schema.Errorf(schema.CodeUnsupportedVersion, "only version 2 envelopes are accepted; update the client")
	case err != nil:
		return outgoing{}, schema.Errorf(schema.CodeInvalidEnvelope, "the envelope is malformed")
	}
	if h.From != from || h.To != to || h.FromDevice != fromDevice {
		return outgoing{}, schema.Errorf(schema.CodeInvalidEnvelope, "the envelope's sender, sending device or recipient does not match")
	}
	if s.limiter != nil && !s.limiter.Allow(from) {
		return outgoing{}, schema.Errorf(schema.CodeRateLimited, "too many messages; slow down")
	}
	if err := s.cfg.Permit.CanMessage(ctx, from, to); err != nil {
		var se *schema.Error
		if errors.As(err, &se) {
			return outgoing{}, se
		}
		return outgoing{}, fmt.Errorf("mailbox: send: permit: %w", err)
	}
	now := time.Now().UTC()
	return outgoing{
		from: from, to: to, msgID: h.MsgID,
		dedupID:      from + "." + to + "." + h.MsgID,
		sentAt:       now,
		sentAtHeader: now.Format(time.RFC3339Nano),
		envelope:     canon,
	}, nil
}

// natsMsg builds one copy of out for owner's mailbox. peerSeq > 0 links the
// recipient's copy to the sync copy.
func (s *Service) natsMsg(out outgoing, owner, dedupID string, peerSeq uint64) *nats.Msg {
	m := nats.NewMsg(s.subject(owner))
	m.Header.Set(HeaderFrom, out.from)
	m.Header.Set(HeaderTo, out.to)
	m.Header.Set(HeaderMsgID, out.msgID)
	m.Header.Set(HeaderSentAt, out.sentAtHeader)
	if peerSeq > 0 {
		m.Header.Set(HeaderPeerSeq, strconv.FormatUint(peerSeq, 10))
	}
	m.Header.Set(nats.MsgIdHdr, dedupID)
	m.Header.Set("Nats-Expected-Stream", s.stream(owner))
	m.Data = out.envelope
	return m
}

// syncCopy is where storeSync put (or found) the sync copy.
type syncCopy struct {
	seq   uint64
	fresh bool   // stored by this call
	prev  uint64 // seq of the newest earlier sync copy of this message that is gone
}

// maxSyncGenerations bounds how often one message's sync copy is re-created
// within the duplicate window after being withdrawn.
const maxSyncGenerations = 4

// storeSync stores the sync copy in the sender's mailbox. Its Nats-Msg-Id is
// "<dedupID>.s"; when a repeat finds that id's copy already withdrawn (the
// recipient's mailbox was full) or burned, it moves on to the next
// generation "<dedupID>.s.<seq of the gone copy>", which every repeat
// derives the same way, so repeats converge on one live sync copy.
func (s *Service) storeSync(ctx context.Context, out outgoing) (syncCopy, error) {
	id := out.dedupID + ".s"
	var prev uint64
	for range maxSyncGenerations {
		ack, err := s.js.PublishMsg(ctx, s.natsMsg(out, out.from, id, 0))
		if err != nil {
			return syncCopy{}, s.publishErr(out, out.from, err)
		}
		if !ack.Duplicate {
			return syncCopy{seq: ack.Sequence, fresh: true, prev: prev}, nil
		}
		_, err = s.getSeqLeader(ctx, s.stream(out.from), ack.Sequence)
		if err == nil {
			return syncCopy{seq: ack.Sequence, prev: prev}, nil
		}
		if !errors.Is(err, errNotFound) {
			return syncCopy{}, s.unavailable("check sync copy", err)
		}
		prev = ack.Sequence
		id = out.dedupID + ".s." + strconv.FormatUint(prev, 10)
	}
	// Every generation was gone again (seen after a city's loss: repeats
	// meeting leader changes), and every repeat would find the same. Store
	// one under an id no repeat derives: the send completes, and if the
	// recipient's copy turns out stored already, duplicate withdraws this
	// surplus copy as it does any other.
	ack, err := s.js.PublishMsg(ctx, s.natsMsg(out, out.from, id+"."+schema.NewID('s'), 0))
	if err != nil {
		return syncCopy{}, s.publishErr(out, out.from, err)
	}
	s.log.Warn("mailbox: every generation of a sync copy was gone; stored a fresh one", "user_id", out.from, "seq", ack.Sequence)
	return syncCopy{seq: ack.Sequence, fresh: true, prev: prev}, nil
}

// publishAttempts is how often the recipient's copy is published when the
// outcome is unknown (a timeout); the message id makes repeats safe.
const publishAttempts = 3

// storeRecipient stores the recipient's copy, linked to sc.
func (s *Service) storeRecipient(ctx context.Context, out outgoing, sc syncCopy) (SendResult, error) {
	msg := s.natsMsg(out, out.to, out.dedupID, sc.seq)
	var err error
	for range publishAttempts {
		var ack *jetstream.PubAck
		if ack, err = s.js.PublishMsg(ctx, msg); err == nil {
			if ack.Duplicate {
				return s.duplicate(ctx, out, sc, ack.Sequence)
			}
			return SendResult{Seq: sc.seq, PeerSeq: ack.Sequence, SentAt: out.sentAt}, nil
		}
		if isDefinite(err) || ctx.Err() != nil {
			break
		}
	}
	if isDefinite(err) {
		// Nothing was stored for the recipient: the sync copy is unlinked.
		s.withdraw(ctx, out, sc.seq)
	}
	return SendResult{}, s.publishErr(out, out.to, err)
}

// duplicate finishes a send whose recipient copy (peerSeq) was stored by an
// earlier attempt. A sync copy stored by this call is surplus and withdrawn.
func (s *Service) duplicate(ctx context.Context, out outgoing, sc syncCopy, peerSeq uint64) (SendResult, error) {
	res := SendResult{Seq: sc.seq, PeerSeq: peerSeq, Duplicate: true}
	if !sc.fresh {
		return res, nil
	}
	res.Seq = sc.prev
	if m, err := s.getSeqLeader(ctx, s.stream(out.to), peerSeq); err == nil {
		if orig, err := parseDirect(m); err == nil && orig.PeerSeq > 0 {
			res.Seq = orig.PeerSeq
		}
	}
	if res.Seq != sc.seq {
		s.withdraw(ctx, out, sc.seq)
	}
	return res, nil
}

// withdraw deletes a sync copy that no recipient copy links to and tells the
// sender's devices. Failure only leaves the copy until MaxAge; it is logged.
func (s *Service) withdraw(ctx context.Context, out outgoing, seq uint64) {
	err := s.deleteMsg(context.WithoutCancel(ctx), s.stream(out.from), seq)
	if err != nil && !errors.Is(err, errNotFound) {
		s.log.Warn("mailbox: withdraw sync copy", "user_id", out.from, "seq", seq, "err", err)
		return
	}
	s.event(out.from, schema.Event{Type: schema.EventWithdrawn, Seq: seq, MsgID: out.msgID, PeerID: out.to})
}

// publishErr maps a failed publish into owner's mailbox to a client error.
func (s *Service) publishErr(out outgoing, owner string, err error) error {
	if isMailboxFull(err) {
		if owner == out.from {
			return schema.Errorf(schema.CodeMailboxFull, "your mailbox is full; read or recall messages first")
		}
		return schema.Errorf(schema.CodeMailboxFull, "the recipient's mailbox is full; retry later")
	}
	return s.unavailable("store message", err)
}

// unavailable logs a fabric fault and returns the client-safe error.
func (s *Service) unavailable(op string, err error) error {
	level := slog.LevelWarn
	if errors.Is(err, context.Canceled) {
		level = slog.LevelDebug // the caller went away
	}
	s.log.Log(context.Background(), level, "mailbox: "+op, "err", err)
	return fmt.Errorf("mailbox: %s: %w (%w)", op, err, errUnavailable)
}

// event publishes ev to uid's devices; a failure is logged (events are at
// most once; clients heal by replay).
func (s *Service) event(uid string, ev schema.Event) {
	if err := fabric.PublishEvent(s.nc, uid, ev); err != nil {
		s.log.Warn("mailbox: publish event", "user_id", uid, "type", string(ev.Type), "err", err)
	}
}
