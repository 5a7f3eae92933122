package natsapi

import (
	"context"
	"encoding/json"

	"github.com/mayfly-im/mayfly/schema"
)

// Request and answer bodies that have no WebSocket or HTTP counterpart.
type (
	// SendRequest stores a message for To.
	SendRequest struct {
		To       string          `json:"to"`
		Envelope json.RawMessage `json:"envelope"`
	}
	// SyncRequest fetches messages after Cursor (at most Max, default 100).
	SyncRequest struct {
		Cursor uint64 `json:"cursor"`
		Max    int    `json:"max,omitempty"`
	}
	// SyncAnswer holds the messages and the mailbox's last sequence; More
	// says another sync from the last message's Seq has more.
	SyncAnswer struct {
		Messages []schema.MsgFrame `json:"messages"`
		LastSeq  uint64            `json:"last_seq"`
		More     bool              `json:"more"`
	}
	// SeqRequest names a message by its mailbox sequence (read, recall).
	SeqRequest struct {
		Seq uint64 `json:"seq"`
	}
	// HandleRequest names a user by handle (friend actions, key lookup).
	HandleRequest struct {
		Handle string `json:"handle"`
	}
	// PresenceRequest carries the revision the last presence answer gave.
	PresenceRequest struct {
		Rev uint64 `json:"rev"`
	}
	// PresenceAnswer is the device's presence key revision.
	PresenceAnswer struct {
		Rev uint64 `json:"rev"`
	}
)

// maxSync bounds the messages of one sync answer.
const maxSync = 500

// maxAnswer is how many bytes of envelopes one answer may carry: the
// server's max_payload less room for the JSON around them.
func (s *Service) maxAnswer() int {
	return int(s.cfg.NATS.MaxPayload()) - 16<<10
}

func (s *Service) operations() map[string]handler {
	return map[string]handler{
		"send":        s.send,
		"sync":        s.sync,
		"read":        s.read,
		"recall":      s.recall,
		"unread":      s.unread,
		"keys.lookup": s.lookup,
		"keys.claim":  s.claim,
		"keys.list":   s.deviceList,
		"prekeys.status": func(ctx context.Context, c caller, _ []byte) (any, error) {
			return s.cfg.Accounts.PrekeyStatus(ctx, c.principal())
		},
		"prekeys.put": func(ctx context.Context, c caller, body []byte) (any, error) {
			var req schema.PrekeysUpload
			if err := decode(body, &req); err != nil {
				return nil, err
			}
			return s.cfg.Accounts.PutPrekeys(ctx, c.principal(), req)
		},
		"friends.list": func(ctx context.Context, c caller, _ []byte) (any, error) { return s.cfg.Friends.List(ctx, c.userID) },
		"friends.requests": func(ctx context.Context, c caller, _ []byte) (any, error) {
			return s.cfg.Friends.Requests(ctx, c.userID)
		},
		"friends.blocks":    func(ctx context.Context, c caller, _ []byte) (any, error) { return s.cfg.Friends.Blocks(ctx, c.userID) },
		"friends.request":   withHandle(func(ctx context.Context, u, h string) (any, error) { return s.cfg.Friends.Request(ctx, u, h) }),
		"friends.accept":    withHandle(func(ctx context.Context, u, h string) (any, error) { return s.cfg.Friends.Accept(ctx, u, h) }),
		"friends.decline":   withHandle(noAnswer(s.cfg.Friends.Decline)),
		"friends.cancel":    withHandle(noAnswer(s.cfg.Friends.Cancel)),
		"friends.remove":    withHandle(noAnswer(s.cfg.Friends.Remove)),
		"friends.block":     withHandle(noAnswer(s.cfg.Friends.Block)),
		"friends.unblock":   withHandle(noAnswer(s.cfg.Friends.Unblock)),
		"presence.online":   s.presenceOp(s.presenceOnline),
		"presence.refresh":  s.presenceOp(s.presenceRefresh),
		"presence.offline":  s.presenceOp(s.presenceOffline),
		"presence.snapshot": s.presenceOp(s.presenceSnapshot),
	}
}

func withHandle(f func(ctx context.Context, userID, handle string) (any, error)) handler {
	return func(ctx context.Context, c caller, body []byte) (any, error) {
		var req HandleRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		return f(ctx, c.userID, req.Handle)
	}
}

func noAnswer(f func(ctx context.Context, userID, handle string) error) func(context.Context, string, string) (any, error) {
	return func(ctx context.Context, u, h string) (any, error) { return nil, f(ctx, u, h) }
}

func (s *Service) send(ctx context.Context, c caller, body []byte) (any, error) {
	var req SendRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	r, err := s.cfg.Mailbox.Send(ctx, c.userID, c.deviceID, req.To, req.Envelope)
	if err != nil {
		return nil, err
	}
	return schema.SentFrame{Type: schema.FrameSent, Seq: r.Seq, PeerSeq: r.PeerSeq, Duplicate: r.Duplicate}, nil
}

func (s *Service) sync(ctx context.Context, c caller, body []byte) (any, error) {
	var req SyncRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if req.Cursor > schema.MaxSeq {
		return nil, schema.Errorf(schema.CodeInvalidCursor, "cursor is out of range")
	}
	if req.Max <= 0 || req.Max > maxSync {
		req.Max = 100
	}
	msgs, last, err := s.cfg.Mailbox.Fetch(ctx, c.userID, req.Cursor, req.Max)
	if err != nil {
		return nil, err
	}
	out := SyncAnswer{Messages: make([]schema.MsgFrame, 0, len(msgs)), LastSeq: last}
	prev, size := req.Cursor, 0
	for i, m := range msgs {
		// The answer must fit in one NATS message: stop early (at least one
		// message, which always fits) and say there is more.
		if size += len(m.Envelope) + 512; i > 0 && size > s.maxAnswer() {
			out.More = true
			return out, nil
		}
		out.Messages = append(out.Messages, schema.MsgFrame{
			Type: schema.FrameMsg, Seq: m.Seq, PrevSeq: prev, From: m.From, To: m.To,
			MsgID: m.MsgID, SentAt: m.SentAt, Self: m.Self, Envelope: m.Envelope,
		})
		prev = m.Seq
	}
	out.More = prev < last && len(msgs) == req.Max
	return out, nil
}

func (s *Service) read(ctx context.Context, c caller, body []byte) (any, error) {
	var req SeqRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if _, err := s.cfg.Mailbox.Read(ctx, c.userID, req.Seq); err != nil {
		return nil, err
	}
	return nil, nil
}

func (s *Service) recall(ctx context.Context, c caller, body []byte) (any, error) {
	var req SeqRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if _, err := s.cfg.Mailbox.Recall(ctx, c.userID, req.Seq); err != nil {
		return nil, err
	}
	return nil, nil
}

func (s *Service) unread(ctx context.Context, c caller, body []byte) (any, error) {
	if err := decode(body, &struct{}{}); err != nil {
		return nil, err
	}
	counts, err := s.cfg.Mailbox.Unread(ctx, c.userID)
	if err != nil {
		return nil, err
	}
	return schema.UnreadCountsFrame{Type: schema.FrameUnread, Counts: counts}, nil
}

func (s *Service) lookup(ctx context.Context, c caller, body []byte) (any, error) {
	var req HandleRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	return s.cfg.Accounts.Lookup(ctx, req.Handle)
}

// UserRequest names a user by id: the body of keys.claim and keys.list.
type UserRequest struct {
	UserID string `json:"user_id"`
}

// claim hands out a user's prekey bundle (docs/envelope.md, Bundles), at
// most claimRate per second per caller, like the HTTP API.
func (s *Service) claim(ctx context.Context, c caller, body []byte) (any, error) {
	var req UserRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if !s.claims.Allow(c.userID) {
		return nil, schema.Errorf(schema.CodeRateLimited, "too many prekey claims; slow down")
	}
	return s.cfg.Accounts.ClaimBundle(ctx, c.principal(), req.UserID)
}

func (s *Service) deviceList(ctx context.Context, c caller, body []byte) (any, error) {
	var req UserRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	return s.cfg.Accounts.DeviceListOf(ctx, req.UserID)
}

// presenceOp wraps a presence operation: it answers unavailable when
// presence is not running and decodes the request into a PresenceRequest.
func (s *Service) presenceOp(f func(ctx context.Context, c caller, rev uint64) (any, error)) handler {
	return func(ctx context.Context, c caller, body []byte) (any, error) {
		if s.cfg.Presence == nil {
			return nil, schema.Errorf(schema.CodeUnavailable, "presence is not running")
		}
		var req PresenceRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		return f(ctx, c, req.Rev)
	}
}

func (s *Service) presenceOnline(ctx context.Context, c caller, _ uint64) (any, error) {
	rev, err := s.cfg.Presence.Online(ctx, c.userID, c.deviceID)
	return PresenceAnswer{Rev: rev}, err
}

func (s *Service) presenceRefresh(ctx context.Context, c caller, rev uint64) (any, error) {
	rev, err := s.cfg.Presence.Refresh(ctx, c.userID, c.deviceID, rev)
	return PresenceAnswer{Rev: rev}, err
}

func (s *Service) presenceOffline(ctx context.Context, c caller, rev uint64) (any, error) {
	return nil, s.cfg.Presence.Offline(ctx, c.userID, c.deviceID, rev)
}

func (s *Service) presenceSnapshot(ctx context.Context, c caller, _ uint64) (any, error) {
	states, err := s.cfg.Presence.Snapshot(ctx, c.userID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"friends": states}, nil
}
