package gateway

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/mayfly-im/mayfly/fabric/presence"
	"github.com/mayfly-im/mayfly/schema"
)

// Presence at the edge (docs/fabric.md, "Presence"). A WebSocket makes its
// device online through the gateway's one presence.Tracker, which refreshes
// every connected device from a single goroutine; the device gets its
// friends' presence as a presence_snapshot event right after the hello
// frame, and live presence events through the hub like any other event. A
// clean close takes the device offline at once; a gateway that dies stops
// refreshing, and its devices go offline within the TTL.

// snapshotTimeout bounds the presence snapshot a new WebSocket waits for.
const snapshotTimeout = 5 * time.Second

// presenceRoutes registers the presence privacy settings when a presence
// service is configured.
func (s *Server) presenceRoutes() {
	if s.cfg.Presence == nil {
		return
	}
	s.handle("GET /v1/settings/presence", s.authed(s.presenceSettings))
	s.handle("PUT /v1/settings/presence", s.authed(s.setPresenceSettings))
}

// presenceTracker returns the gateway's presence tracker, starting it for
// the first connection; nil without a presence service or once Shutdown
// began.
func (s *Server) presenceTracker() *presence.Tracker {
	if s.cfg.Presence == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tracker == nil && !s.closing {
		s.tracker = s.cfg.Presence.NewTracker()
	}
	return s.tracker
}

// closePresence takes every device of this gateway offline and stops the
// tracker, if it was started, waiting until ctx ends at most. Shutdown
// calls it after it set s.closing, so no tracker starts afterwards.
func (s *Server) closePresence(ctx context.Context) error {
	s.mu.Lock()
	tr := s.tracker
	s.mu.Unlock()
	if tr == nil {
		return nil
	}
	return tr.Close(ctx)
}

func (s *Server) presenceSettings(w http.ResponseWriter, r *http.Request) error {
	share, err := s.cfg.Presence.ShareLastSeen(r.Context(), principal(r).UserID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, schema.PresenceSettings{ShareLastSeen: share})
	return nil
}

// setPresenceSettings replaces the caller's presence settings; an absent
// member takes its zero value.
func (s *Server) setPresenceSettings(w http.ResponseWriter, r *http.Request) error {
	var req schema.PresenceSettings
	if err := decode(w, r, &req); err != nil {
		return err
	}
	err := s.cfg.Presence.SetShareLastSeen(r.Context(), principal(r).UserID, req.ShareLastSeen)
	if errors.Is(err, presence.ErrNoSettings) {
		return errNotFound
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, req)
	return nil
}

// presenceOnline makes c's device online and sends it the presence of the
// user's friends. It returns the function that takes the device offline
// again when the connection ends (a no-op if it never went online). The
// hub's subscription is in place already, so a change after the snapshot
// was read arrives as an event.
func (c *session) presenceOnline() (offline func()) {
	select {
	case <-c.done(): // closed before it began (a revoked device)
		return func() {}
	default:
	}
	tr := c.s.presenceTracker()
	if tr == nil {
		return func() {}
	}
	if err := tr.Connect(c.p.UserID, c.p.DeviceID); err != nil {
		if !errors.Is(err, presence.ErrClosed) {
			c.s.log.Error("presence connect failed", "user_id", c.p.UserID, "device_id", c.p.DeviceID, "err", err)
		}
		return func() {}
	}
	ctx, cancel := context.WithTimeout(context.Background(), snapshotTimeout)
	defer cancel()
	states, err := c.s.cfg.Presence.Snapshot(ctx, c.p.UserID)
	if err != nil {
		c.s.log.Warn("presence snapshot failed", "user_id", c.p.UserID, "err", err)
	} else {
		c.enqueue(schema.EventFrame{Type: schema.FrameEvent, Event: &schema.Event{Type: schema.EventPresenceSnapshot, Presences: states}})
	}
	return func() { tr.Disconnect(c.p.UserID, c.p.DeviceID) }
}
