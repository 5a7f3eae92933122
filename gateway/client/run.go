package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/mayfly-im/mayfly/schema"
)

// Handler receives what arrives over the connection Run keeps. Its
// functions are called one at a time from Run's goroutine, in mailbox
// order; they may call the Client's methods (Send, Read, ...), whose
// answers arrive on another goroutine. Nil functions are skipped; with a
// nil Message, messages count as handled and move the cursor.
type Handler struct {
	// Message is called once for each message of the device's mailbox
	// after the cursor: messages received (Self false) and copies of
	// messages the user sent from any device (Self true). When it returns
	// nil the cursor moves to m.Seq and is saved. An error leaves the
	// cursor where it was and makes Run reconnect and replay from it, so m
	// comes again: return one only for a failure worth retrying.
	Message func(ctx context.Context, m Message) error
	// Event is called for each live event (friends, presence, burns,
	// recalls, device revocations).
	Event func(ctx context.Context, e schema.Event)
	// Synced is called on every connection once the replay from the cursor
	// has caught up: every message stored before has been handled, and
	// live ones follow. lastSeq is the cursor at that point.
	Synced func(ctx context.Context, lastSeq uint64)
	// SendOnly asks for no messages at all, neither replayed nor live (the
	// connection syncs from the highest possible cursor), for processes that
	// only send, read or recall; the cursor stays as it is.
	SendOnly bool
}

// Run keeps a WebSocket connected until ctx ends, then returns nil. On
// every connection it syncs from the cursor, hands each message and event
// to h, and serves Send, Read, Recall and Unread. A lost connection is
// re-established after an exponential backoff with jitter (MinBackoff
// doubling up to MaxBackoff; reset once a connection has synced). Run
// returns an error, without retrying, when the session cannot continue:
// ErrNotLoggedIn, token_revoked (the device was revoked or its session
// ended), refresh_invalid or refresh_reused. Only one Run may be active per
// Client.
func (c *Client) Run(ctx context.Context, h Handler) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return errors.New("client: Run is already active")
	}
	c.running, c.runErr = true, nil
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}()
	failures := 0
	for {
		synced, err := c.connection(ctx, h)
		if ctx.Err() != nil {
			return nil
		}
		if fatal(err) {
			c.ended(err)
			return fmt.Errorf("run: %w", err)
		}
		if synced {
			failures = 0
		}
		d := c.backoff(failures)
		failures++
		c.log.Info("mayfly connection lost; reconnecting", "err", err, "delay", d)
		if !sleepCtx(ctx, d) {
			return nil
		}
	}
}

// fatal reports whether err ends Run: the session is gone and only a new
// login (or setting the device up anew) helps.
func fatal(err error) bool {
	if errors.Is(err, ErrNotLoggedIn) {
		return true
	}
	for _, code := range []schema.Code{schema.CodeTokenRevoked, schema.CodeRefreshInvalid, schema.CodeRefreshReused,
		schema.CodeTokenInvalid, schema.CodeUnauthorized} {
		if schema.HasCode(err, code) {
			return true
		}
	}
	return false
}

// backoff returns the delay before reconnection attempt n (0-based):
// "equal jitter", half of min(MaxBackoff, MinBackoff*2^n) plus a random
// part up to the other half, so clients cut off together spread out.
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.MaxBackoff
	if n < 30 {
		d = min(d, c.cfg.MinBackoff<<n)
	}
	return d/2 + rand.N(d/2+1)
}

// connection runs one connection: dial, sync from the cursor, dispatch until
// it ends. synced reports whether the replay caught up.
func (c *Client) connection(ctx context.Context, h Handler) (synced bool, err error) {
	cn, err := c.dial(ctx)
	if err != nil {
		return false, err
	}
	defer cn.close()
	c.mu.Lock()
	if c.userID == "" {
		c.userID = cn.hello.UserID
	}
	cursor := c.cursor
	c.mu.Unlock()
	if h.SendOnly {
		cursor = schema.MaxSeq
	}
	syncID := cn.nextID("sync")
	if err := cn.write(schema.SyncFrame{Type: schema.FrameSync, ID: syncID, Cursor: cursor}); err != nil {
		return false, err
	}
	c.setConn(cn)
	defer c.clearConn(cn)
	stopPing := c.pinger(cn)
	defer stopPing()
	stopMaintain := c.maintainer(ctx, cn)
	defer stopMaintain()
	d := dispatch{c: c, h: h, last: cursor, syncID: syncID}
	for {
		f, err := cn.next(ctx)
		if err != nil {
			return d.synced, err
		}
		if err := d.handle(ctx, f); err != nil {
			return d.synced, err
		}
	}
}

// pinger sends a ping frame every pingInterval so a dead connection is
// noticed (the reader's deadline) even if the server does not ping.
func (c *Client) pinger(cn *conn) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(pingInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				cn.write(schema.PingFrame{Type: schema.FramePing, ID: cn.nextID("ping")})
			case <-done:
				return
			case <-cn.done:
				return
			}
		}
	}()
	return func() { close(done); <-exited }
}

// maintainInterval is how often a connected device checks its prekeys: the
// signed prekey is replaced at 50 minutes, so it is never over an hour old.
const maintainInterval = 5 * time.Minute

// maintainer runs MaintainPrekeys now and every maintainInterval while cn
// is open. Failures are logged: the next run tries again.
func (c *Client) maintainer(ctx context.Context, cn *conn) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(maintainInterval)
		defer t.Stop()
		for {
			if err := c.MaintainPrekeys(ctx); err != nil && ctx.Err() == nil {
				c.log.Warn("maintain prekeys", "err", err)
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			case <-cn.done:
				return
			}
		}
	}()
	return func() { cancel(); <-exited }
}

// dispatch is the Run goroutine's state for one connection.
type dispatch struct {
	c      *Client
	h      Handler
	last   uint64 // seq of the last msg frame on this connection, or the sync cursor
	syncID string // request id of the connection's sync
	synced bool
}

// errGap reports msg frames that do not chain (prev_seq): the connection is
// dropped and the replay resumes from the cursor.
var errGap = errors.New("client: message sequence gap")

func (d *dispatch) handle(ctx context.Context, f any) error {
	switch f := f.(type) {
	case *schema.MsgFrame:
		if f.PrevSeq != d.last || f.Seq <= d.last {
			return fmt.Errorf("%w: got seq %d after %d, server says previous %d", errGap, f.Seq, d.last, f.PrevSeq)
		}
		d.last = f.Seq
		return d.message(ctx, f)
	case *schema.EventFrame:
		if f.Event != nil {
			d.c.onEvent(*f.Event)
			if d.h.Event != nil {
				d.h.Event(ctx, *f.Event)
			}
		}
	case *schema.SyncedFrame:
		d.synced = true
		if d.h.Synced != nil {
			d.h.Synced(ctx, d.c.Cursor())
		}
	case *schema.ErrorFrame:
		// A failed sync, or (without id) a failed gap heal: the server asks
		// for a new sync. Errors of requests nobody waits for any more are
		// dropped.
		if f.ID == "" || f.ID == d.syncID {
			return fmt.Errorf("server asked to sync again: %w", f.Error)
		}
	}
	return nil
}

// message opens one msg frame and hands it to the Handler, moving the
// cursor when it is handled. Messages at or below the cursor were handled
// already (a replay overlapping what this process saw) and are skipped.
func (d *dispatch) message(ctx context.Context, f *schema.MsgFrame) error {
	if f.Seq <= d.c.Cursor() {
		return nil
	}
	m := d.c.open(ctx, f)
	if d.h.Message != nil {
		if err := d.h.Message(ctx, m); err != nil {
			return fmt.Errorf("handler refused message %d: %w", f.Seq, err)
		}
	}
	d.c.advance(f.Seq)
	return nil
}

// advance moves the cursor to seq and saves it. A failure to save is
// logged: the message was handled, and at worst it comes again after a
// restart.
func (c *Client) advance(seq uint64) {
	c.mu.Lock()
	if seq <= c.cursor {
		c.mu.Unlock()
		return
	}
	c.cursor = seq
	c.mu.Unlock()
	if err := c.store.SaveCursor(seq); err != nil {
		c.log.Error("save cursor", "err", err)
	}
}

// onEvent keeps pinned keys current from friend events and deletes the
// one-time prekey of a burned message.
func (c *Client) onEvent(e schema.Event) {
	switch e.Type {
	case schema.EventBurned, schema.EventRecalled, schema.EventWithdrawn:
		c.burned(e.Seq)
	case schema.EventFriendAccepted, schema.EventFriendKeysChanged:
		if p := e.Peer; p != nil {
			if _, err := c.pin(p.UserID, p.Handle, p.IK, p.Fingerprint); err != nil {
				c.log.Warn("friend event with unusable keys", "user_id", p.UserID, "err", err)
			}
		}
	}
}

func (c *Client) setConn(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = cn
	close(c.connCh)
}

func (c *Client) clearConn(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == cn {
		c.conn = nil
		c.connCh = make(chan struct{})
	}
}

// ended records the error that stopped Run and wakes the requests waiting
// for a connection, which fail with it.
func (c *Client) ended(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runErr = err
	close(c.connCh)
	c.connCh = make(chan struct{})
}

// waitConn returns the live connection, waiting for Run to establish one.
// It fails with Run's error if Run stopped because the session ended.
func (c *Client) waitConn(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		cn, ch, runErr := c.conn, c.connCh, c.runErr
		c.mu.Unlock()
		if cn == nil && runErr != nil {
			return nil, runErr
		}
		if cn != nil {
			select {
			case <-cn.done:
				// Ended; Run is about to replace it.
				if !sleepCtx(ctx, 10*time.Millisecond) {
					return nil, fmt.Errorf("waiting for a connection: %w", ctx.Err())
				}
				continue
			default:
				return cn, nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a connection (is Run active?): %w", ctx.Err())
		}
	}
}
