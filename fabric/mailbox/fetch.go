package mailbox

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/fabric/jsapi"
	"github.com/mayfly-im/mayfly/schema"
)

// Fetch returns, in sequence order, up to max messages of userID's mailbox
// with a sequence greater than after: received messages and the user's own
// sync copies, as long as they are neither burned nor expired. max <= 0 means
// DefaultFetch; more than MaxFetch is cut to MaxFetch.
//
// It returns fewer than max messages only when it reached the end of the
// mailbox. last is then the newest sequence in the mailbox (0 when empty);
// when max messages came back, last is that of the final one, and the caller
// fetches again from there. A cursor beyond the mailbox is not an error: it
// yields no messages, and last shows where the mailbox really ends.
//
// Replay reads the literal subject with Direct Get batches (no consumer);
// in a cluster any replica may answer, so a message burned a moment ago may
// still come back once (docs/fabric.md). Errors: bad_request for a malformed
// id, unavailable when JetStream does not answer.
func (s *Service) Fetch(ctx context.Context, userID string, after uint64, max int) (msgs []Message, last uint64, err error) {
	defer func(start time.Time) { s.observe(OpFetch, start, len(msgs), &err) }(time.Now())
	if !schema.ValidUserID(userID) {
		return nil, 0, errBadUser
	}
	if after == math.MaxUint64 {
		return nil, 0, schema.Errorf(schema.CodeInvalidCursor, "cursor out of range")
	}
	if max <= 0 {
		max = DefaultFetch
	}
	max = min(max, MaxFetch)
	exhausted, err := s.scan(ctx, userID, after+1, max, func(m Message) bool {
		msgs = append(msgs, m)
		return true
	})
	if err != nil {
		return nil, 0, s.unavailable("fetch", err)
	}
	if len(msgs) > 0 {
		last = msgs[len(msgs)-1].Seq
	}
	if !exhausted || len(msgs) > 0 {
		return msgs, last, nil
	}
	last, err = s.lastSeq(ctx, userID)
	if err != nil {
		return nil, 0, s.unavailable("fetch", err)
	}
	return msgs, last, nil
}

// Unread returns how many received messages userID's mailbox holds per
// sender user id (senders with none are absent). The count comes from the
// stream itself, a scan of the literal mailbox subject, never from a second
// counter that could drift: a burned or expired message is simply no longer
// counted. Errors as for Fetch.
func (s *Service) Unread(ctx context.Context, userID string) (map[string]int, error) {
	if !schema.ValidUserID(userID) {
		return nil, errBadUser
	}
	counts := map[string]int{}
	_, err := s.scan(ctx, userID, 1, 0, func(m Message) bool {
		if !m.Self {
			counts[m.From]++
		}
		return true
	})
	if err != nil {
		return nil, s.unavailable("unread", err)
	}
	return counts, nil
}

// scan calls fn for every message of userID's mailbox from sequence from on,
// in order, with Direct Get batches on the literal subject, until fn returns
// false or limit messages were seen (limit 0: no limit). exhausted reports
// that the end of the mailbox was reached. Messages that fail to parse are
// logged and skipped (they cannot have been written by the relay).
func (s *Service) scan(ctx context.Context, userID string, from uint64, limit int, fn func(Message) bool) (exhausted bool, err error) {
	stream, subj := s.stream(userID), s.subject(userID)
	seen := 0
	for {
		n := batchSize
		if limit > 0 {
			n = min(n, limit-seen)
		}
		got, stop := 0, false
		pending, err := s.getBatch(ctx, stream, getRequest{Seq: from, NextFor: subj, Batch: n, MaxBytes: batchBytes}, func(raw *nats.Msg) bool {
			got++
			m, err := parseDirect(raw)
			if err != nil {
				s.log.Warn("mailbox: skip unreadable message", "stream", stream, "err", err)
			} else if !fn(m) {
				stop = true
			}
			from = jsapi.Seq(raw, from) + 1
			return !stop
		})
		if err != nil {
			return false, err
		}
		seen += got
		switch {
		case got == 0 || pending == 0:
			return true, nil
		case stop || (limit > 0 && seen >= limit):
			return false, nil
		}
	}
}

// lastSeq returns the newest sequence in userID's mailbox, 0 when empty.
func (s *Service) lastSeq(ctx context.Context, userID string) (uint64, error) {
	m, err := s.getLast(ctx, s.stream(userID), s.subject(userID))
	if errors.Is(err, errNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return jsapi.Seq(m, 0), nil
}
