package gateway

import (
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/fabric"
	"github.com/mayfly-im/mayfly/fabric/mailbox"
	"github.com/mayfly-im/mayfly/schema"
)

// hub tracks the connected devices per user and holds two NATS
// subscriptions per connected user, shared by the user's devices: its event
// subject evt.<uid> and its mailbox delivery subject dlv.mbx.<p>.<uid>.
// Subscriptions deliver into one shared channel read by one dispatcher
// goroutine, so a connected user costs no goroutine of its own; the
// dispatcher never blocks on a connection. The dispatcher starts with the
// first session added and is stopped by close.
type hub struct {
	s    *Server
	msgs chan *nats.Msg
	done chan struct{}
	wg   sync.WaitGroup // the dispatcher, once started

	mu      sync.Mutex
	started bool                  // the dispatcher was started
	users   map[string]*userConns // guarded by mu
}

type userConns struct {
	conns map[*session]struct{}
	sub   *nats.Subscription // events
	dlv   *nats.Subscription // mailbox deliveries; nil without a mailbox
}

// hubBuffer is the shared delivery channel's capacity.
const hubBuffer = 1 << 16

func newHub(s *Server) *hub {
	return &hub{s: s, msgs: make(chan *nats.Msg, hubBuffer), done: make(chan struct{}), users: map[string]*userConns{}}
}

// add registers c, subscribing to its user's events if it is the first.
func (h *hub) add(c *session) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.started {
		h.started = true
		h.wg.Add(1)
		go h.dispatch()
	}
	u := h.users[c.p.UserID]
	if u == nil {
		var err error
		if u, err = h.subscribe(c.p.UserID); err != nil {
			return err
		}
		h.users[c.p.UserID] = u
	}
	u.conns[c] = struct{}{}
	return nil
}

// subscribe makes userID's subscriptions. h.mu must be held.
func (h *hub) subscribe(userID string) (*userConns, error) {
	subj, err := fabric.UserEvents(userID)
	if err != nil {
		return nil, err
	}
	u := &userConns{conns: map[*session]struct{}{}}
	if u.sub, err = h.s.cfg.NATS.ChanSubscribe(subj, h.msgs); err != nil {
		return nil, fmt.Errorf("subscribe to events: %w", err)
	}
	if mb := h.s.cfg.Mailbox; mb != nil {
		dsubj, err := mb.DeliverySubject(userID)
		if err == nil {
			u.dlv, err = h.s.cfg.NATS.ChanSubscribe(dsubj, h.msgs)
		}
		if err != nil {
			u.sub.Unsubscribe()
			return nil, fmt.Errorf("subscribe to deliveries: %w", err)
		}
	}
	return u, nil
}

// remove unregisters c, unsubscribing when its user has no connection left.
func (h *hub) remove(c *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[c.p.UserID]
	if u == nil {
		return
	}
	delete(u.conns, c)
	if len(u.conns) == 0 {
		u.sub.Unsubscribe()
		if u.dlv != nil {
			u.dlv.Unsubscribe()
		}
		delete(h.users, c.p.UserID)
	}
}

// conns appends a snapshot of userID's connections to dst.
func (h *hub) conns(dst []*session, userID string) []*session {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[userID]
	if u == nil {
		return dst
	}
	for c := range u.conns {
		dst = append(dst, c)
	}
	return dst
}

// connsBuf holds the connections of a user with a few devices without
// allocating.
type connsBuf [4]*session

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

// deliver routes one event or mailbox delivery to the user's connections.
func (h *hub) deliver(m *nats.Msg) {
	if strings.HasPrefix(m.Subject, "dlv.") {
		h.deliverMessage(m)
		return
	}
	userID := m.Subject[len("evt."):]
	ev, err := decodeEvent(m.Data)
	if err != nil {
		h.s.log.Error("bad event on nats", "subject", m.Subject, "err", err)
		return
	}
	var buf connsBuf
	conns := h.conns(buf[:0], userID)
	if len(conns) == 0 {
		return
	}
	// One frame for all the user's connections.
	frame, err := schema.EncodeFrame(schema.EventFrame{Type: schema.FrameEvent, Event: &ev})
	if err != nil {
		h.s.log.Error("encode frame", "frame", "event", "type", string(ev.Type), "err", err)
	}
	for _, c := range conns {
		switch {
		case ev.Type == schema.EventDeviceRevoked && ev.DeviceID == c.p.DeviceID:
			if ev.Generation == 0 || c.p.Generation < ev.Generation {
				c.close(schema.CloseTokenRevoked, "token_revoked")
			}
		case frame == nil:
		case isMessageEvent(ev.Type):
			c.messageEventFrame(frame)
		default:
			c.enqueue(schema.EncodedFrame(frame))
		}
	}
}

// isMessageEvent reports whether events of type t concern a message of the
// user's mailbox, so they must follow its msg frame (ws_feed.go).
func isMessageEvent(t schema.EventType) bool {
	return t == schema.EventBurned || t == schema.EventRecalled || t == schema.EventWithdrawn || t == schema.EventDelivered
}

// deliverMessage routes a message republished on dlv.mbx.<p>.<uid> to the
// connections of <uid>. The message and its encoded frame are shared,
// read-only, by them all.
func (h *hub) deliverMessage(m *nats.Msg) {
	userID := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	msg, prev, err := mailbox.ParseDelivery(m)
	if err != nil {
		h.s.log.Error("bad delivery on nats", "subject", m.Subject, "err", err)
		return
	}
	var buf connsBuf
	conns := h.conns(buf[:0], userID)
	if len(conns) == 0 {
		return
	}
	h.s.metrics.deliveredLive(msg)
	d := newDelivery(msg, prev)
	for _, c := range conns {
		c.liveDelivery(d)
	}
}

// close stops the dispatcher, if it runs, and waits for it. Sessions must
// be gone already.
func (h *hub) close() {
	select {
	case <-h.done:
	default:
		close(h.done)
	}
	h.wg.Wait()
}

// Connection caps, per gateway process: one device seldom needs more than a
// couple of tabs, and every connection of a user multiplies the fan-out of
// each of their messages and events.
const (
	MaxConnsPerDevice = 4
	MaxConnsPerUser   = 16
)

// admit refuses a new connection of deviceID when it or its user is at its
// cap. Concurrent handshakes may overshoot by a few; the cap bounds abuse,
// not honest use.
func (h *hub) admit(userID, deviceID string) *schema.Error {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[userID]
	if u == nil {
		return nil
	}
	if len(u.conns) >= MaxConnsPerUser {
		return schema.Errorf(schema.CodeRateLimited, "too many open connections for this user; close one first")
	}
	n := 0
	for c := range u.conns {
		if c.p.DeviceID == deviceID {
			n++
		}
	}
	if n >= MaxConnsPerDevice {
		return schema.Errorf(schema.CodeRateLimited, "too many open connections for this device; close one first")
	}
	return nil
}
