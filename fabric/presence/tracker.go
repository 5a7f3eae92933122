package presence

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Tracker keeps the devices connected to one gateway online: one goroutine
// writes their keys in asynchronous batches (going online and offline as
// soon as connections come and go, and refreshing each of them every TTL/3),
// so a connection costs a map entry, not a goroutine or a timer. Refreshes
// are spread evenly over the period: devices fall into refreshSlots slots,
// one slot refreshed per tick, so a gateway with 13,000 devices writes ~650
// keys a second instead of 13,000 at once every 20 seconds. Several
// connections of one device share its key; it goes offline when the last
// one closes. Connect and Disconnect never block on NATS.
type Tracker struct {
	s      *Service
	period time.Duration
	kick   chan struct{} // capacity 1: pending goes and goodbyes
	stop   chan struct{} // closed by Close
	done   chan struct{} // closed when run returns

	mu       sync.Mutex
	nextSlot int                  // slot of the next new device; guarded by mu
	closed   bool                 // guarded by mu
	devs     map[string]*device   // by key subject; guarded by mu
	hello    map[*device]struct{} // devices to write online; guarded by mu
	bye      []goodbye            // keys to purge; guarded by mu
}

// device is one device connected to this gateway. Its fields are guarded by
// Tracker.mu.
type device struct {
	subject string // its key
	slot    int    // refreshed on the ticks of this slot
	conns   int    // connections open on this gateway
	rev     uint64 // the key's last revision known here; 0: not written yet
	// shared is set once another writer (a connection of the same device on
	// another gateway) was seen refreshing the key. A shared key is never
	// purged from here: it expires unless the other writer keeps it.
	shared bool
}

// goodbye is a key to purge if rev is still its last revision.
type goodbye struct {
	subject string
	rev     uint64
}

// trackerBatch bounds the writes in flight at once.
const trackerBatch = 1024

// refreshSlots is how many ticks one refresh period is cut into.
const refreshSlots = 20

// NewTracker returns a Tracker refreshing every TTL/3. The caller must Close it.
func (s *Service) NewTracker() *Tracker {
	t := &Tracker{
		s:      s,
		period: s.cfg.TTL / 3,
		kick:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		devs:   map[string]*device{},
		hello:  map[*device]struct{}{},
	}
	go t.run()
	return t
}

// Connect records a new connection of a device; the first one makes the
// device online. It returns fabric.ErrBadID for malformed ids and ErrClosed
// after Close.
func (t *Tracker) Connect(userID, deviceID string) error {
	subj, err := t.s.deviceKey(userID, deviceID)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	d := t.devs[subj]
	if d == nil {
		d = &device{subject: subj, slot: t.nextSlot}
		t.nextSlot = (t.nextSlot + 1) % refreshSlots
		t.devs[subj] = d
		t.hello[d] = struct{}{}
		t.poke()
	}
	d.conns++
	return nil
}

// Disconnect records that a connection of a device closed; the last one
// makes the device offline. Ids not connected are ignored.
func (t *Tracker) Disconnect(userID, deviceID string) {
	subj, err := t.s.deviceKey(userID, deviceID)
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.devs[subj]
	if d == nil {
		return
	}
	if d.conns--; d.conns > 0 {
		return
	}
	t.dropLocked(d)
}

// dropLocked forgets d and queues the purge of its key, unless the key was
// never written or is shared. t.mu must be held.
func (t *Tracker) dropLocked(d *device) {
	delete(t.devs, d.subject)
	delete(t.hello, d)
	if d.rev != 0 && !d.shared {
		t.bye = append(t.bye, goodbye{d.subject, d.rev})
		t.poke()
	}
}

// poke wakes the goroutine without blocking.
func (t *Tracker) poke() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// Len returns how many devices the tracker keeps online.
func (t *Tracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.devs)
}

// Close takes every device still connected offline, writes the pending
// changes and stops the goroutine. It waits for that, or until ctx ends.
func (t *Tracker) Close(ctx context.Context) error {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		for _, d := range t.devs {
			t.dropLocked(d)
		}
		close(t.stop)
	}
	t.mu.Unlock()
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *Tracker) run() {
	defer close(t.done)
	tick := time.NewTicker(t.period / refreshSlots)
	defer tick.Stop()
	for slot := 0; ; {
		select {
		case <-t.kick:
			t.flush()
		case <-tick.C:
			t.flush()
			t.refresh(slot)
			slot = (slot + 1) % refreshSlots
		case <-t.stop:
			t.flush()
			return
		}
	}
}

// flush writes pending devices online, then pending goodbyes. Online first:
// a user switching devices stays online, and a goodbye meant for an earlier
// write of a reconnecting device finds the new revision and does nothing.
func (t *Tracker) flush() {
	t.mu.Lock()
	bye := t.bye
	t.bye = nil
	hello := make([]*device, 0, len(t.hello))
	for d := range t.hello {
		hello = append(hello, d)
	}
	clear(t.hello)
	t.mu.Unlock()
	if len(bye) == 0 && len(hello) == 0 {
		return
	}
	msgs := make([]*nats.Msg, 0, len(hello)+len(bye))
	for _, d := range hello {
		msgs = append(msgs, t.s.onlineMsg(d.subject))
	}
	for _, g := range bye {
		msgs = append(msgs, t.s.offlineMsg(g.subject, g.rev))
	}
	res := t.s.publishAll(msgs)
	for i, r := range res[len(hello):] {
		if r.err != nil && !isWrongLastSeq(r.err) {
			// The key will expire instead, as after a crash.
			t.s.log.Warn("presence offline failed", "key", bye[i].subject, "err", r.err)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, r := range res[:len(hello)] {
		t.wroteLocked(hello[i], r, true)
	}
}

// wroteLocked applies the result of writing d online (hello) or refreshing
// it. t.mu must be held.
func (t *Tracker) wroteLocked(d *device, r pubResult, hello bool) {
	current := t.devs[d.subject] == d
	switch {
	case r.err == nil && current:
		d.rev = r.seq
	case r.err == nil && !d.shared:
		// Disconnected while the write was in flight: undo it.
		t.bye = append(t.bye, goodbye{d.subject, r.seq})
		t.poke()
	case hello && current:
		t.s.log.Warn("presence online failed; retrying", "key", d.subject, "err", r.err)
		t.hello[d] = struct{}{}
	case !isWrongLastSeq(r.err) && current:
		t.s.log.Warn("presence refresh failed; retrying", "key", d.subject, "err", r.err)
	}
}

// refresh renews the written keys of slot, expecting the revision last
// known. Keys that changed meanwhile are sorted out by recover.
func (t *Tracker) refresh(slot int) {
	t.mu.Lock()
	devs := make([]*device, 0, len(t.devs)/refreshSlots+1)
	msgs := make([]*nats.Msg, 0, len(t.devs)/refreshSlots+1)
	for _, d := range t.devs {
		if d.rev == 0 || d.slot != slot {
			continue // not this tick's, or its online write is pending
		}
		devs = append(devs, d)
		msgs = append(msgs, t.s.refreshMsg(d.subject, d.rev))
	}
	t.mu.Unlock()
	res := t.s.publishAll(msgs)
	var lost []*device
	t.mu.Lock()
	for i, r := range res {
		t.wroteLocked(devs[i], r, false)
		if isWrongLastSeq(r.err) && t.devs[devs[i].subject] == devs[i] {
			lost = append(lost, devs[i])
		}
	}
	t.mu.Unlock()
	for _, d := range lost {
		t.recover(d)
	}
}

// recover handles a device whose key changed under it: it adopts the
// revision of another live writer or writes the device online again.
func (t *Tracker) recover(d *device) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	rev, wrote, err := t.s.recover(ctx, d.subject)
	t.mu.Lock()
	defer t.mu.Unlock()
	current := t.devs[d.subject] == d
	switch {
	case err != nil:
		t.s.log.Warn("presence recover failed; retrying", "key", d.subject, "err", err)
	case current:
		d.rev = rev
		d.shared = d.shared || !wrote
	case wrote && !d.shared:
		t.bye = append(t.bye, goodbye{d.subject, rev})
		t.poke()
	}
}

// pubResult is the outcome of one asynchronous write.
type pubResult struct {
	seq uint64
	err error
}

// publishAll writes msgs asynchronously, at most trackerBatch in flight, and
// returns each one's result in order.
func (s *Service) publishAll(msgs []*nats.Msg) []pubResult {
	res := make([]pubResult, len(msgs))
	for start := 0; start < len(msgs); start += trackerBatch {
		end := min(start+trackerBatch, len(msgs))
		futs := make([]jetstream.PubAckFuture, end-start)
		for i := start; i < end; i++ {
			f, err := s.js.PublishMsgAsync(msgs[i])
			if err != nil {
				res[i].err = err
				continue
			}
			futs[i-start] = f
		}
		for i, f := range futs {
			if f == nil {
				continue
			}
			select {
			case ack := <-f.Ok():
				res[start+i].seq = ack.Sequence
			case err := <-f.Err():
				res[start+i].err = err
			}
		}
	}
	return res
}
