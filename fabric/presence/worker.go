package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/fabric"
	"github.com/mayfly-im/mayfly/fabric/subject"
	"github.com/mayfly-im/mayfly/schema"
)

// Worker buffers. The inbound channel also carries every refresh (skipped
// at once), so it is large; a full one drops changes (core NATS is at most
// once), which snapshots on connect make good.
const (
	inBuffer     = 1 << 14
	workerBuffer = 256
	// casAttempts bounds the compare-and-set rounds on a user record.
	casAttempts = 8
)

// change is a device that came online or went offline, or (graph set) a
// user whose friend set changed.
type change struct {
	graph            bool
	userID, deviceID string
	subject          string // the device key's subject
	seq              uint64
	at               time.Time
	online           bool
	expired          bool // went offline because its TTL passed (no goodbye)
}

// Start subscribes the fan-out worker to device key changes and to friend
// graph change notices (fab.graph.<user>: the user gets a fresh
// presence_snapshot event, so a new friend's presence shows at once), in the
// queue group every process shares. It returns an error if it is running
// already or a subscription fails. Stop ends it.
func (s *Service) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return errors.New("presence: worker already running")
	}
	in := make(chan *nats.Msg, inBuffer)
	sub, err := s.nc.ChanQueueSubscribe(subject.PresenceChangesAll, queueGroup, in)
	if err != nil {
		return fmt.Errorf("presence: subscribe changes: %w", err)
	}
	gsub, err := s.nc.ChanQueueSubscribe(subject.GraphChangesAll, queueGroup, in)
	if err != nil {
		sub.Unsubscribe()
		return fmt.Errorf("presence: subscribe graph changes: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.running, s.subs, s.cancel = true, []*nats.Subscription{sub, gsub}, cancel
	queues := make([]chan change, s.cfg.Workers)
	for i := range queues {
		queues[i] = make(chan change, workerBuffer)
		s.wg.Add(1)
		go s.work(ctx, queues[i])
	}
	s.wg.Add(1)
	go s.dispatch(ctx, in, queues)
	return nil
}

// Stop unsubscribes the worker and waits for its goroutines; changes being
// applied are abandoned. It is safe to call when not running.
func (s *Service) Stop() {
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return
	}
	s.running = false
	subs, cancel := s.subs, s.cancel
	s.mu.Unlock()
	for _, sub := range subs {
		sub.Unsubscribe()
	}
	cancel()
	s.wg.Wait()
}

// dispatch skips refreshes and hands each change to the worker owning its
// user, so one process applies one user's changes in order.
func (s *Service) dispatch(ctx context.Context, in <-chan *nats.Msg, queues []chan change) {
	defer s.wg.Done()
	for {
		select {
		case m := <-in:
			ch, ok := s.parseChange(m)
			if !ok {
				continue
			}
			h := fnv.New32a()
			h.Write([]byte(ch.userID))
			select {
			case queues[h.Sum32()%uint32(len(queues))] <- ch:
			case <-ctx.Done():
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

func (s *Service) work(ctx context.Context, q <-chan change) {
	defer s.wg.Done()
	for {
		select {
		case ch := <-q:
			apply := s.apply
			if ch.graph {
				apply = s.resnapshot
			}
			if err := apply(ctx, ch); err != nil && ctx.Err() == nil {
				s.log.Warn("presence change not applied", "user_id", ch.userID, "device_id", ch.deviceID, "err", err)
			}
		case <-ctx.Done():
			return
		}
	}
}

// parseChange reads a republished device key write or a graph change
// notice. It reports false for a refresh (nothing changed) and for anything
// malformed.
func (s *Service) parseChange(m *nats.Msg) (change, bool) {
	if userID, ok := subject.ParseGraphChanges(m.Subject); ok {
		return change{graph: true, userID: userID}, true
	}
	userID, deviceID, ok := subject.ParsePresenceChange(m.Subject)
	if !ok {
		return change{}, false
	}
	ch := change{userID: userID, deviceID: deviceID, subject: s.keyPrefix + userID + "." + deviceID}
	switch {
	case isRemoval(m.Header):
		ch.expired = m.Header.Get(jetstream.MarkerReasonHeader) != ""
	case m.Header.Get(hdrPresence) == valOnline:
		ch.online = true
	default:
		return change{}, false
	}
	ch.seq, _ = strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	at, err := time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.TimeStampHeaer))
	if err != nil {
		at = time.Now()
	}
	ch.at = at
	return ch, true
}

// apply recomputes ch's user's state and compare-and-sets the user record;
// if the state changed, it tells the user's friends. Every change writes the
// record, even an unchanged one: a concurrent apply that read the record
// before must then retry on fresh device state, so the last write always
// reflects every change applied before it.
func (s *Service) apply(ctx context.Context, ch change) error {
	ctx, cancel := context.WithTimeout(ctx, 2*requestTimeout)
	defer cancel()
	for range casAttempts {
		views, err := s.views(ctx, []string{ch.userID})
		if err != nil {
			return err
		}
		v := views[ch.userID]
		next := record{Online: s.onlineAfter(v, ch)}
		changed := v.rec == nil || v.rec.Online != next.Online
		if changed {
			next.Since = s.transitionTime(ch, next.Online)
		} else {
			next.Since = v.rec.Since
		}
		err = s.writeRecord(ctx, ch.userID, next, v.recSeq)
		if isWrongLastSeq(err) {
			continue
		}
		if err != nil {
			return err
		}
		if changed {
			s.log.Debug("presence changed", "user_id", ch.userID, "online", next.Online)
			return s.fanOut(ctx, ch.userID, next)
		}
		return nil
	}
	return fmt.Errorf("user record of %s: still contended after %d attempts", ch.userID, casAttempts)
}

// onlineAfter reports whether the user is online given the device keys read
// and the change being applied. The change wins over what was read for its
// own device when it is newer: a replica may serve a read that lags the
// write the change announces.
func (s *Service) onlineAfter(v *userView, ch change) bool {
	seen := false
	for _, d := range v.devices {
		if d.subject != ch.subject {
			if d.live {
				return true
			}
			continue
		}
		seen = true
		if d.seq >= ch.seq && d.live || d.seq < ch.seq && ch.online {
			return true
		}
	}
	// Nothing read for the device: an online change counts only while it
	// could still be live, so a change handled very late cannot resurrect
	// a device whose key and marker are long gone.
	return !seen && ch.online && time.Since(ch.at) < s.cfg.TTL
}

// transitionTime is when the user came online or went offline. A device
// that expired was last seen about one TTL before its marker.
func (s *Service) transitionTime(ch change, online bool) time.Time {
	t := ch.at
	if !online && ch.expired {
		t = t.Add(-s.cfg.TTL)
	}
	return t.UTC().Truncate(time.Second)
}

// writeRecord stores userID's record if the key's last sequence is still
// seq. The record expires after Retention unless written again.
func (s *Service) writeRecord(ctx context.Context, userID string, r record, seq uint64) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode user record: %w", err)
	}
	m := nats.NewMsg(s.keyPrefix + userID)
	m.Data = b
	m.Header.Set(jetstream.MsgTTLHeader, s.retention)
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(seq, 10))
	if _, err := s.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("write user record: %w", err)
	}
	return nil
}

// fanOut publishes userID's new state to each of their friends, with the
// last-seen time only if the user shares it.
func (s *Service) fanOut(ctx context.Context, userID string, r record) error {
	friends, err := s.cfg.Friends.FriendIDs(ctx, userID)
	if err != nil {
		return fmt.Errorf("friends of %s: %w", userID, err)
	}
	if len(friends) == 0 {
		return nil
	}
	st := schema.PresenceState{UserID: userID, Online: r.Online}
	if !r.Online {
		share, err := s.ShareLastSeen(ctx, userID)
		if err != nil {
			return err
		}
		if share {
			t := r.Since
			st.LastSeen = &t
		}
	}
	var errs []error
	for _, f := range friends {
		if err := fabric.PublishEvent(s.nc, f, schema.Event{Type: schema.EventPresence, Presence: &st}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// resnapshot sends ch's user, whose friend set changed, a fresh snapshot of
// their friends' presence on all their devices. Best effort: the friends
// source may still answer from a cache the change notice has not reached,
// and a later connect sends a snapshot anyway.
func (s *Service) resnapshot(ctx context.Context, ch change) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	states, err := s.Snapshot(ctx, ch.userID)
	if err != nil {
		return err
	}
	return fabric.PublishEvent(s.nc, ch.userID, schema.Event{Type: schema.EventPresenceSnapshot, Presences: states})
}
