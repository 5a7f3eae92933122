package gateway

import (
	"context"

	"github.com/mayfly-im/mayfly/schema"
)

// RecheckDevices closes every WebSocket whose device was revoked, or whose
// session ended, since it connected. Revocation reaches gateways as an
// at-most-once NATS event; one published while this gateway's NATS
// connection was down is lost, so the owner calls RecheckDevices when the
// connection comes back. It makes one database query per connected device
// and returns early when ctx ends.
func (s *Server) RecheckDevices(ctx context.Context) {
	closed := 0
	for _, c := range s.hub.all() {
		if ctx.Err() != nil {
			return
		}
		active, err := s.cfg.Accounts.Active(ctx, c.p)
		if err != nil {
			s.log.Warn("device recheck failed", "user_id", c.p.UserID, "device_id", c.p.DeviceID, "err", err)
			continue
		}
		if !active {
			c.close(schema.CloseTokenRevoked, "token_revoked")
			closed++
		}
	}
	if closed > 0 {
		s.log.Info("closed websockets of revoked devices after recheck", "closed", closed)
	}
}

// all returns a snapshot of every connection.
func (h *hub) all() []*session {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*session
	for _, u := range h.users {
		for c := range u.conns {
			out = append(out, c)
		}
	}
	return out
}
