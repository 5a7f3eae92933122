package gateway

import (
	"encoding/json"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/fabric"
	"github.com/mayfly-im/mayfly/schema"
)

// hub tracks the connected devices per user and holds one NATS subscription
// per connected user on its event subject. Subscriptions deliver into one
// shared channel read by one dispatcher goroutine, so a connected user costs
// no goroutine of its own.
type hub struct {
	s    *Server
	msgs chan *nats.Msg
	done chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	users map[string]*userConns // guarded by mu
}

type userConns struct {
	conns map[*wsConn]struct{}
	sub   *nats.Subscription
}

// hubBuffer is the shared delivery channel's capacity.
const hubBuffer = 1 << 16

func newHub(s *Server) *hub {
	h := &hub{s: s, msgs: make(chan *nats.Msg, hubBuffer), done: make(chan struct{}), users: map[string]*userConns{}}
	h.wg.Add(1)
	go h.dispatch()
	return h
}

// add registers c, subscribing to its user's events if it is the first.
func (h *hub) add(c *wsConn) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[c.p.UserID]
	if u == nil {
		subj, err := fabric.UserEvents(c.p.UserID)
		if err != nil {
			return err
		}
		sub, err := h.s.cfg.NATS.ChanSubscribe(subj, h.msgs)
		if err != nil {
			return err
		}
		sub.SetPendingLimits(-1, -1)
		u = &userConns{conns: map[*wsConn]struct{}{}, sub: sub}
		h.users[c.p.UserID] = u
	}
	u.conns[c] = struct{}{}
	return nil
}

// remove unregisters c, unsubscribing when its user has no connection left.
func (h *hub) remove(c *wsConn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[c.p.UserID]
	if u == nil {
		return
	}
	delete(u.conns, c)
	if len(u.conns) == 0 {
		u.sub.Unsubscribe()
		delete(h.users, c.p.UserID)
	}
}

// conns returns a snapshot of userID's connections.
func (h *hub) conns(userID string) []*wsConn {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[userID]
	if u == nil {
		return nil
	}
	out := make([]*wsConn, 0, len(u.conns))
	for c := range u.conns {
		out = append(out, c)
	}
	return out
}

func (h *hub) dispatch() {
	defer h.wg.Done()
	for {
		select {
		case m := <-h.msgs:
			h.deliver(m)
		case <-h.done:
			return
		}
	}
}

// deliver routes one event to the user's connections.
func (h *hub) deliver(m *nats.Msg) {
	userID := m.Subject[len("evt."):]
	var ev schema.Event
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		h.s.log.Error("bad event on nats", "subject", m.Subject, "err", err)
		return
	}
	for _, c := range h.conns(userID) {
		if ev.Type == schema.EventDeviceRevoked && ev.DeviceID == c.p.DeviceID {
			c.close(schema.CloseTokenRevoked, "token_revoked")
			continue
		}
		c.enqueue(schema.Frame{Type: schema.FrameEvent, Event: &ev})
	}
}

// close stops the dispatcher. Connections must be gone already.
func (h *hub) close() {
	select {
	case <-h.done:
	default:
		close(h.done)
	}
	h.wg.Wait()
}
