package gateway

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/mayfly-im/mayfly/fabric/mailbox"
	"github.com/mayfly-im/mayfly/schema"
)

// Replay and live delivery of a connection's mailbox (docs/protocol.md,
// "Sync, replay and live delivery").
//
// A device gets msg frames only after it sent sync. The hub subscribes to
// the user's delivery subject before any sync, so every message stored
// after a replay's first Fetch also arrives live. While a replay runs (the
// feed is "replaying"), live messages and message events are buffered, not
// sent; the replay goroutine fetches from the last delivered seq until
// caught up, answers the pending syncs, then drains the buffer in order.
// Live, a message whose seq is not above the last delivered one is a
// duplicate and dropped; one whose previous seq on the subject
// (Nats-Last-Sequence) is above the last delivered one reveals a lost
// delivery and starts a replay from the last delivered seq (gap healing).
// Because only the replay goroutine sends msg frames while replaying, and
// the buffer is drained before the feed goes live again, msg frames leave in
// strictly increasing seq order and every burn event after its message.

// Feed limits.
const (
	// fetchBatch is how many messages one replay Fetch asks for.
	fetchBatch = 100
	// maxBufferedMsgs live messages are kept while replaying; beyond that
	// they are dropped and fetched again once the replay catches up.
	maxBufferedMsgs = 64
	// maxBufferedEvents message events are kept while replaying; beyond
	// that the client is hopelessly behind and closed as a slow consumer.
	maxBufferedEvents = 1024
	// maxPendingSyncs bounds sync requests waiting for their answer.
	maxPendingSyncs = 8
)

// feed is a connection's delivery state. Its fields are guarded by mu,
// which is never held while blocking on the send queue.
type feed struct {
	wg sync.WaitGroup // the replay goroutine

	mu        sync.Mutex
	stopped   bool      // the connection is ending: start no replay
	synced    bool      // a sync was received: msg frames flow
	replaying bool      // a replay goroutine runs: live input is buffered
	last      uint64    // seq of the last msg frame queued, or the cursor
	epoch     uint64    // bumped by each sync; older replay batches are dropped
	fetches   uint64    // Fetch calls started by replays
	syncIDs   []string  // syncs to answer when the replay catches up
	buf       []pending // live input that arrived while replaying, in order
	bufMsgs   int       // messages in buf
	overflow  bool      // messages were dropped from buf: fetch again
	// delivered remembers the received messages queued on this
	// connection and not read here yet (at most maxDelivered; nil while
	// none), so a read of one burns it without looking it up again.
	delivered map[uint64]mailbox.Message
}

// maxDelivered bounds feed.delivered; a read of a message past it is
// looked up as a read of any other seq is.
const maxDelivered = 256

// pending is one buffered live input: a message or a message event.
type pending struct {
	msg   *delivery
	event schema.EncodedFrame // an event frame
	// fetches is feed.fetches when it was buffered: a complete Fetch
	// started later saw the message if it still existed.
	fetches uint64
}

// errSyncPending answers a sync while too many are waiting already.
var errSyncPending = schema.Errorf(schema.CodeRateLimited, "too many sync requests in progress; wait for synced")

// handleSync handles a sync request: the feed restarts from cursor, and the
// replay goroutine answers with synced once it caught up.
func (c *session) handleSync(f *schema.SyncFrame) error {
	if c.s.cfg.Mailbox == nil {
		return errNoMailbox
	}
	d := &c.feed
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.syncIDs) >= maxPendingSyncs {
		return errSyncPending
	}
	d.synced = true
	d.last = f.Cursor
	d.epoch++
	d.syncIDs = append(d.syncIDs, f.ID)
	d.dropBufferedMsgs()
	c.startReplayLocked()
	return nil
}

// dropBufferedMsgs removes buffered messages (a replay fetches them) but
// keeps buffered events. mu must be held.
func (d *feed) dropBufferedMsgs() {
	kept := d.buf[:0]
	for _, p := range d.buf {
		if p.event != nil {
			kept = append(kept, p)
		}
	}
	clear(d.buf[len(kept):])
	d.buf, d.bufMsgs, d.overflow = kept, 0, false
}

// startReplayLocked starts the replay goroutine unless it runs already or
// the connection is ending. c.feed.mu must be held.
func (c *session) startReplayLocked() {
	d := &c.feed
	if d.replaying || d.stopped {
		return
	}
	d.replaying = true
	d.wg.Add(1)
	go c.replay()
}

// stopFeed stops delivery and waits for the replay goroutine.
func (c *session) stopFeed() {
	c.feed.mu.Lock()
	c.feed.stopped = true
	c.feed.mu.Unlock()
	c.feed.wg.Wait()
}

// delivery is a message delivered live on the user's delivery subject,
// shared read-only by the user's connections. Its msg frames are encoded
// once, but for each connection's prev_seq.
type delivery struct {
	mailbox.Message
	prev   uint64            // the message's previous seq on its subject
	frames *schema.MsgFrames // nil if it could not be encoded
	// announced is set by the first connection that queues the message,
	// which tells the sender (delivered.go).
	announced atomic.Bool
}

func newDelivery(m mailbox.Message, prev uint64) *delivery {
	d := &delivery{Message: m, prev: prev}
	// On an error frames stays nil and the frame is encoded (and the error
	// logged) when it is queued.
	d.frames, _ = schema.NewMsgFrames(msgFrame(&d.Message, 0))
	return d
}

// liveDelivery handles a message delivered on the user's delivery subject,
// shared by the hub's dispatcher between the user's connections. It never
// blocks.
func (c *session) liveDelivery(m *delivery) {
	d := &c.feed
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case !d.synced:
	case d.replaying:
		c.bufferLocked(pending{msg: m, fetches: d.fetches})
	case m.Seq <= d.last:
		// A duplicate of a message the replay delivered.
	case m.prev > d.last:
		c.bufferLocked(pending{msg: m, fetches: d.fetches})
		c.startReplayLocked()
	default:
		c.enqueue(c.liveFrameLocked(m))
		c.announceLive(m)
	}
}

// messageEventFrame handles a burned, recalled or withdrawn event, encoded
// once by the hub's dispatcher for all the user's connections: it is queued
// now, or after the running replay so it follows the message it is about.
// It never blocks.
func (c *session) messageEventFrame(frame schema.EncodedFrame) {
	d := &c.feed
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.replaying {
		c.enqueue(frame)
		return
	}
	c.bufferLocked(pending{event: frame})
}

// bufferLocked keeps p for the running replay. c.feed.mu must be held.
func (c *session) bufferLocked(p pending) {
	d := &c.feed
	if p.event != nil {
		if len(d.buf)-d.bufMsgs >= maxBufferedEvents {
			c.close(schema.CloseSlowConsumer, "slow_consumer")
			return
		}
		d.buf = append(d.buf, p)
		return
	}
	if d.bufMsgs >= maxBufferedMsgs {
		d.overflow = true
		return
	}
	d.buf = append(d.buf, p)
	d.bufMsgs++
}

// msgFrameLocked returns the msg frame for m and makes m the last delivered
// message. c.feed.mu must be held.
func (c *session) msgFrameLocked(m *mailbox.Message) *schema.MsgFrame {
	f := msgFrame(m, c.feed.last)
	c.feed.last = m.Seq
	c.rememberLocked(m)
	return f
}

// rememberLocked notes received message m as delivered on c, for
// takeDelivered. c.feed.mu must be held.
func (c *session) rememberLocked(m *mailbox.Message) {
	d := &c.feed
	if m.Self || len(d.delivered) >= maxDelivered {
		return
	}
	if d.delivered == nil {
		d.delivered = make(map[uint64]mailbox.Message)
	}
	d.delivered[m.Seq] = mailbox.Message{Seq: m.Seq, From: m.From, To: m.To, MsgID: m.MsgID, PeerSeq: m.PeerSeq}
}

// takeDelivered returns and forgets the received message seq delivered
// on c; ok is false if c did not deliver it (or forgot it).
func (c *session) takeDelivered(seq uint64) (m mailbox.Message, ok bool) {
	d := &c.feed
	d.mu.Lock()
	defer d.mu.Unlock()
	if m, ok = d.delivered[seq]; ok {
		delete(d.delivered, seq)
		if len(d.delivered) == 0 {
			d.delivered = nil // a map keeps its size: let it go
		}
	}
	return m, ok
}

// liveFrameLocked is msgFrameLocked for a delivery: the frame is encoded
// already, but for prev_seq. c.feed.mu must be held.
func (c *session) liveFrameLocked(m *delivery) any {
	if m.frames == nil {
		return c.msgFrameLocked(&m.Message)
	}
	prev := c.feed.last
	c.feed.last = m.Seq
	c.rememberLocked(&m.Message)
	return m.frames.Frame(prev)
}

// msgFrame returns the msg frame for m after the frame of prevSeq.
func msgFrame(m *mailbox.Message, prevSeq uint64) *schema.MsgFrame {
	return &schema.MsgFrame{
		Type: schema.FrameMsg, Seq: m.Seq, PrevSeq: prevSeq,
		From: m.From, To: m.To, MsgID: m.MsgID, SentAt: m.SentAt, Self: m.Self, Envelope: m.Envelope,
	}
}

// replay is the replay goroutine: it catches up, answers the pending syncs
// and drains the buffer, fetching again whenever a sync restarted the feed,
// the buffer overflowed or a buffered message reveals a gap.
func (c *session) replay() {
	defer c.feed.wg.Done()
	// The hub subscribed to the delivery subject before any sync; a flush
	// makes sure the NATS server has that subscription before the first
	// Fetch, so whatever the Fetch misses arrives live.
	ctx, cancel := c.feedCtx()
	err := c.s.cfg.NATS.FlushWithContext(ctx)
	cancel()
	if err != nil {
		c.s.log.Warn("websocket replay: flush nats", "user_id", c.p.UserID, "err", err)
		c.replayFailed(errNATSDown)
		return
	}
	for {
		epoch, final, err := c.catchUp()
		if err != nil {
			c.replayFailed(err)
			return
		}
		if c.answerSyncs(epoch) && c.drain(epoch, final) {
			return
		}
	}
}

// errNATSDown answers a sync when the gateway cannot reach NATS.
var errNATSDown = schema.Errorf(schema.CodeUnavailable, "messaging is unavailable; retry later")

// errClosed ends a replay whose connection closed.
var errClosed = errors.New("connection closed")

// catchUp fetches from the last delivered seq and queues msg frames until a
// Fetch returns a short batch. It returns the epoch it caught up in and the
// number of that last, complete Fetch.
func (c *session) catchUp() (epoch, final uint64, err error) {
	d := &c.feed
	for {
		d.mu.Lock()
		d.fetches++
		epoch, final, after := d.epoch, d.fetches, d.last
		d.mu.Unlock()
		ctx, cancel := c.feedCtx()
		msgs, _, err := c.s.cfg.Mailbox.Fetch(ctx, c.p.UserID, after, fetchBatch)
		cancel()
		if err != nil {
			return 0, 0, err
		}
		for i := range msgs {
			if !c.replayOne(epoch, &msgs[i]) {
				break
			}
		}
		select {
		case <-c.done():
			return 0, 0, errClosed
		default:
		}
		d.mu.Lock()
		same := epoch == d.epoch
		d.mu.Unlock()
		if same && len(msgs) < fetchBatch {
			return epoch, final, nil
		}
	}
}

// replayOne queues m unless it was delivered already, waiting for room in
// the send queue. It reports false when a sync changed the epoch.
func (c *session) replayOne(epoch uint64, m *mailbox.Message) bool {
	d := &c.feed
	d.mu.Lock()
	if epoch != d.epoch {
		d.mu.Unlock()
		return false
	}
	if m.Seq <= d.last {
		d.mu.Unlock()
		return true
	}
	f := c.msgFrameLocked(m)
	d.mu.Unlock()
	c.enqueueWait(f)
	c.announceDelivered(m)
	return true
}

// answerSyncs sends synced for every pending sync, unless a newer sync
// changed the epoch (then it reports false and the replay starts over).
func (c *session) answerSyncs(epoch uint64) bool {
	d := &c.feed
	d.mu.Lock()
	if epoch != d.epoch {
		d.mu.Unlock()
		return false
	}
	ids, last := d.syncIDs, d.last
	d.syncIDs = nil
	d.mu.Unlock()
	for _, id := range ids {
		c.enqueueWait(schema.SyncedFrame{Type: schema.FrameSynced, ID: id, LastSeq: last})
	}
	return true
}

// drain queues the buffered live input in order. Messages buffered before
// Fetch number final started were seen by that Fetch if they still existed,
// so one not delivered by now is gone (burned or expired). drain reports
// true when the buffer is empty and the feed is live again, false when the
// replay must fetch again (new sync, overflow, or a gap).
func (c *session) drain(epoch, final uint64) bool {
	d := &c.feed
	for {
		d.mu.Lock()
		switch {
		case epoch != d.epoch || d.overflow:
			d.dropBufferedMsgs()
			d.mu.Unlock()
			return false
		case len(d.buf) == 0:
			d.replaying = false
			d.buf = nil
			d.mu.Unlock()
			return true
		}
		p := d.buf[0]
		var f any
		switch {
		case p.event != nil:
			f = p.event
		case p.msg.Seq <= d.last || p.fetches < final:
		case p.msg.prev > d.last:
			d.mu.Unlock()
			return false // a gap: fetch from d.last; this message comes with it
		default:
			f = c.liveFrameLocked(p.msg)
		}
		d.buf[0] = pending{}
		d.buf = d.buf[1:]
		if p.msg != nil {
			d.bufMsgs--
		}
		d.mu.Unlock()
		if f != nil {
			c.enqueueWait(f)
			if p.event == nil {
				c.announceLive(p.msg)
			}
		}
	}
}

// replayFailed answers the pending syncs with the error and stops the feed:
// the device must sync again.
func (c *session) replayFailed(err error) {
	d := &c.feed
	d.mu.Lock()
	ids := d.syncIDs
	events := d.buf
	d.syncIDs, d.buf, d.bufMsgs, d.overflow = nil, nil, 0, false
	d.synced, d.replaying = false, false
	d.mu.Unlock()
	select {
	case <-c.done(): // the connection closed (and its feedCtx with it)
		return
	default:
	}
	if errors.Is(err, errClosed) {
		return
	}
	e := c.publicError("sync", err)
	for _, id := range ids {
		c.enqueue(schema.ErrorFrame{Type: schema.FrameError, ID: id, Error: e})
	}
	for _, p := range events {
		if p.event != nil {
			c.enqueue(p.event)
		}
	}
	if len(ids) == 0 {
		// A gap heal failed: tell the device to sync again.
		c.enqueue(schema.ErrorFrame{Type: schema.FrameError, Error: e})
	}
}

// feedCtx is c.ctx, also ended when the connection closes: a replay has
// nothing to deliver to a closed connection and must not hold its shutdown
// for the rest of a Fetch's timeout. A goroutine watches the connection
// until the context ends; the returned cancel ends it and waits for it, so
// the caller owns it.
func (c *session) feedCtx() (context.Context, context.CancelFunc) {
	ctx, cancel := c.ctx()
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-c.done():
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(); <-watched }
}
