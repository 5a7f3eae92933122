package presence

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/fabric"
	"github.com/mayfly-im/mayfly/fabric/jsapi"
	"github.com/mayfly-im/mayfly/schema"
)

// entry is the last message of one key.
type entry struct {
	subject string
	seq     uint64
	at      time.Time
	live    bool // a value, not a delete, purge or expiry marker
	data    []byte
}

// maxFiltersPerRead bounds the subject filters of one batched read; the
// server answers at most 1024 messages per request.
const maxFiltersPerRead = 64

// lastMsgs returns the last message of every key matching filters (device
// key wildcards or literal keys), with one batched Direct Get ("multi_last")
// per maxFiltersPerRead filters. The server resolves the filters on its
// per-subject index, so the cost follows the keys matched, not the bucket.
func (s *Service) lastMsgs(ctx context.Context, filters []string) ([]entry, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	var out []entry
	for len(filters) > 0 {
		n := min(len(filters), maxFiltersPerRead)
		es, err := s.multiLast(ctx, filters[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, es...)
		filters = filters[n:]
	}
	return out, nil
}

func (s *Service) multiLast(ctx context.Context, filters []string) ([]entry, error) {
	var out []entry
	_, err := jsapi.Batch(ctx, s.nc, s.stream, jsapi.GetRequest{MultiLast: filters}, func(m *nats.Msg) bool {
		out = append(out, parseEntry(m))
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("read presence: %w", err)
	}
	return out, nil
}

// parseEntry reads one Direct Get answer.
func parseEntry(m *nats.Msg) entry {
	e := entry{subject: m.Header.Get(jetstream.SubjectHeader), data: m.Data}
	e.seq, _ = strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	e.at, _ = time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.TimeStampHeaer))
	e.live = !isRemoval(m.Header)
	return e
}

// isRemoval reports whether a key message with headers h removes the key: a
// KV delete or purge, or a marker the server left when the value expired.
func isRemoval(h nats.Header) bool {
	if h.Get(jetstream.MarkerReasonHeader) != "" {
		return true
	}
	op := h.Get(hdrKVOp)
	return op == kvPurge || op == kvDelete
}

// record is a user record: the user-level state the worker last announced.
type record struct {
	Online bool      `json:"online"`
	Since  time.Time `json:"since"` // when the user came online or went offline
}

// userView is what the bucket holds for one user.
type userView struct {
	devices []entry // last message of each device key, live or not
	rec     *record // nil when absent, removed or unreadable
	recSeq  uint64  // last sequence of the record key; 0 if it has none
}

// online reports whether any device key is live.
func (v userView) online() bool {
	for _, d := range v.devices {
		if d.live {
			return true
		}
	}
	return false
}

// views reads the device keys and user records of userIDs, which must be
// valid user ids.
func (s *Service) views(ctx context.Context, userIDs []string) (map[string]*userView, error) {
	filters := make([]string, 0, 2*len(userIDs))
	out := make(map[string]*userView, len(userIDs))
	for _, id := range userIDs {
		filters = append(filters, s.keyPrefix+id+".*", s.keyPrefix+id)
		out[id] = &userView{}
	}
	es, err := s.lastMsgs(ctx, filters)
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		key, ok := strings.CutPrefix(e.subject, s.keyPrefix)
		if !ok {
			continue
		}
		userID, _, isDevice := strings.Cut(key, ".")
		v := out[userID]
		if v == nil {
			continue
		}
		if isDevice {
			v.devices = append(v.devices, e)
			continue
		}
		v.recSeq = e.seq
		var r record
		if e.live && json.Unmarshal(e.data, &r) == nil {
			v.rec = &r
		}
	}
	return out, nil
}

// Snapshot returns the presence of each of userID's friends, in the order
// the Friends source lists them: online while any of the friend's devices
// is, and when offline the time the friend was last online, if the friend
// shares it and it is still known. It reads the device keys themselves, so
// it holds even when a change event was lost.
func (s *Service) Snapshot(ctx context.Context, userID string) ([]schema.PresenceState, error) {
	if !schema.ValidUserID(userID) {
		return nil, fmt.Errorf("presence snapshot: %w", fabric.ErrBadID)
	}
	ids, err := s.cfg.Friends.FriendIDs(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("presence snapshot: friends: %w", err)
	}
	valid := make([]string, 0, len(ids))
	for _, id := range ids {
		if schema.ValidUserID(id) {
			valid = append(valid, id)
		}
	}
	out := make([]schema.PresenceState, 0, len(valid))
	if len(valid) == 0 {
		return out, nil
	}
	views, err := s.views(ctx, valid)
	if err != nil {
		return nil, fmt.Errorf("presence snapshot: %w", err)
	}
	var seen []string // offline friends with a known last-seen time
	for _, id := range valid {
		v := views[id]
		st := schema.PresenceState{UserID: id, Online: v.online()}
		if !st.Online && v.rec != nil && !v.rec.Online {
			t := v.rec.Since
			st.LastSeen = &t
			seen = append(seen, id)
		}
		out = append(out, st)
	}
	return s.hideLastSeen(ctx, out, seen)
}

// hideLastSeen clears LastSeen in states of users (listed in ids) who do not
// share it.
func (s *Service) hideLastSeen(ctx context.Context, states []schema.PresenceState, ids []string) ([]schema.PresenceState, error) {
	if len(ids) == 0 {
		return states, nil
	}
	share := map[string]bool{}
	if s.cfg.Settings != nil {
		var err error
		if share, err = s.cfg.Settings.ShareLastSeen(ctx, ids); err != nil {
			return nil, fmt.Errorf("presence settings: %w", err)
		}
	}
	for i := range states {
		if !share[states[i].UserID] {
			states[i].LastSeen = nil
		}
	}
	return states, nil
}
