package mailbox

import (
	"context"
	"errors"

	"github.com/mayfly-im/mayfly/fabric/jsapi"
	"github.com/mayfly-im/mayfly/schema"
)

// Erase removes every message of userID that the mailboxes hold, for the
// deletion of its account: its whole own mailbox (purged by subject: the
// messages it received and the sync copies of the messages it sent), and
// in the mailbox of each of peers (the users it exchanged messages with:
// its friends) every message it sent and every sync copy of a message sent
// to it. Each peer's devices are told of each removed message with a
// recalled event (PeerID userID), as if it had been recalled. It returns
// how many messages were removed. Erase is idempotent; on an error part of
// the messages may be gone, and a retry removes the rest. Errors:
// bad_request (a malformed id), unavailable (JetStream).
func (s *Service) Erase(ctx context.Context, userID string, peers []string) (removed int, err error) {
	if !schema.ValidUserID(userID) {
		return 0, errBadUser
	}
	n, err := s.purgeSubject(ctx, s.stream(userID), s.subject(userID))
	if err != nil {
		return 0, s.unavailable("erase mailbox", err)
	}
	removed = int(n)
	for _, peer := range peers {
		if !schema.ValidUserID(peer) || peer == userID {
			continue
		}
		n, err := s.eraseFrom(ctx, peer, userID)
		removed += n
		if err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// eraseFrom deletes from owner's mailbox the messages exchanged with peer.
func (s *Service) eraseFrom(ctx context.Context, owner, peer string) (int, error) {
	var doomed []Message
	_, err := s.scan(ctx, owner, 1, 0, func(m Message) bool {
		if (!m.Self && m.From == peer) || (m.Self && m.To == peer) {
			doomed = append(doomed, m)
		}
		return true
	})
	if err != nil {
		return 0, s.unavailable("erase: scan peer mailbox", err)
	}
	n := 0
	for _, m := range doomed {
		err := s.deleteMsg(ctx, s.stream(owner), m.Seq)
		if errors.Is(err, errNotFound) {
			continue // burned or expired meanwhile
		}
		if err != nil {
			return n, s.unavailable("erase: delete message", err)
		}
		n++
		s.event(owner, schema.Event{Type: schema.EventRecalled, Seq: m.Seq, MsgID: m.MsgID, PeerID: peer})
	}
	return n, nil
}

// purgeSubject removes every message on subject from stream and returns
// how many there were.
func (s *Service) purgeSubject(ctx context.Context, stream, subject string) (uint64, error) {
	return jsapi.Purge(ctx, s.nc, stream, subject, 0)
}
