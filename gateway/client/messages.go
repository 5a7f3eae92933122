package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
	"github.com/mayfly-im/mayfly/schema/payload"
)

// Message is one message of the device's mailbox, opened.
type Message struct {
	// Seq is the message's sequence in this user's mailbox: what Read
	// burns, and for a Self copy what Recall withdraws.
	Seq uint64
	// ID is the sender's message id (the envelope's mid).
	ID string
	// From and To are user ids; FromHandle and ToHandle their handles when
	// known.
	From, To             string
	FromHandle, ToHandle string
	// Self marks a copy of a message this user sent (from any device).
	Self bool
	// SentAt is when the server accepted the message.
	SentAt time.Time
	// Text is the message text (docs/payload.md).
	Text string
	// Files are the attached files (docs/payload.md); Download fetches one.
	Files []payload.File
	// Err is set, and Text empty, when the message could not be opened: the
	// sender is unknown, the signature or decryption failed, or the signed
	// header disagrees with the server's (it wraps ErrBadMessage).
	Err error
}

// open verifies and decrypts a msg frame with this device's prekeys.
func (c *Client) open(ctx context.Context, f *schema.MsgFrame) Message {
	m := Message{Seq: f.Seq, ID: f.MsgID, From: f.From, To: f.To, Self: f.Self, SentAt: f.SentAt}
	me := c.Identity()
	m.FromHandle, m.ToHandle = c.handleOf(f.From, me), c.handleOf(f.To, me)
	pt, err := c.openEnvelope(ctx, f, me)
	m.FromHandle, m.ToHandle = c.handleOf(f.From, me), c.handleOf(f.To, me) // opening may have pinned the sender
	if err != nil {
		m.Err = err
		return m
	}
	pl := payload.Decode(pt)
	m.Text, m.Files = pl.Text, pl.Files
	c.raiseListVersion(f.From, pl.LV)
	return m
}

func (c *Client) openEnvelope(ctx context.Context, f *schema.MsgFrame, me Identity) ([]byte, error) {
	e, err := envelope.ParseV2(f.Envelope)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	h := e.Header()
	if h.From != f.From || h.To != f.To || h.MsgID != f.MsgID {
		return nil, fmt.Errorf("%w: signed header names other users or id than the server", ErrBadMessage)
	}
	if h.FromDevice == me.DeviceID {
		return nil, ErrSentHere
	}
	w, ok := e.WrapFor(me.DeviceID)
	if !ok {
		return nil, fmt.Errorf("%w: not sealed for this device (sent before it was linked?)", ErrBadMessage)
	}
	key, err := c.deviceKey(ctx, h.From, h.FromDevice)
	if err != nil {
		return nil, fmt.Errorf("%w: sending device: %w", ErrBadMessage, err)
	}
	spk, opk, ok := c.pk.find(w)
	if !ok {
		return nil, fmt.Errorf("%w: the prekey it was sealed to is gone (burned or expired)", ErrBadMessage)
	}
	pt, err := e.Open(me.DeviceID, key, spk, opk)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	c.usedOPK(w, f.Seq)
	return pt, nil
}

// handleOf returns the handle of a user id: the user's own or a pinned peer's.
func (c *Client) handleOf(userID string, me Identity) string {
	if userID == me.UserID {
		return me.Handle
	}
	if p, ok := c.Peer(userID); ok {
		return p.Handle
	}
	return ""
}

// Sent is the outcome of a Send: the message is stored.
type Sent struct {
	// ID is the message id (the envelope's mid).
	ID string
	// Seq is the sequence of the copy in the sender's own mailbox, for
	// Recall; PeerSeq that of the recipient's copy. Seq is 0 on a
	// Duplicate whose original copy the server could no longer tell.
	Seq, PeerSeq uint64
	// Duplicate reports that a retry found the message stored already.
	Duplicate bool
}

// dedupWindow is how long after the first attempt a send (or a burn, see
// burnRequest) is retried on a new connection or after an unavailable
// answer. The server recognises a repeated message id for 30 seconds
// (docs/protocol.md); past that a retry could store it twice. It covers a JetStream leader election after the
// loss of a city (docs/dr.md: 7-10 s).
const dedupWindow = 25 * time.Second

// unavailablePause is the first pause before a send that met unavailable
// is repeated; each further pause doubles, up to maxUnavailablePause.
const (
	unavailablePause    = 250 * time.Millisecond
	maxUnavailablePause = time.Second // a repeat finds a new stream leader at most 1 s late
)

// Send seals text for every listed device of handle and every other listed
// device of the user, and stores it. Before sealing it claims both users'
// prekey bundles and verifies them against the pinned identity keys: if
// handle's identity key changed, or a list or prekey is not signed by the
// pinned key, nothing is sealed and the error is untrusted_keys (compare
// safety numbers, then AcceptKey). It returns once the server acknowledged
// both copies. If the claim of the bundles meets unavailable (the database
// is failing over), it is claimed again and sealed anew; if the connection
// drops before the answer, or the server answers unavailable (a failover
// under way), the same envelope is sent again (the server drops the repeat
// by its message id), on the next gateway of Config.Servers when the one in
// use is gone. Both repeat for up to 25 seconds after Send started; a send
// that still fails then fails with unavailable, its outcome unknown. Send
// needs Run to be active and waits
// for its connection until ctx ends (or fails with Run's error if the
// session ended, token_revoked for example). Errors: untrusted_keys,
// not_friend, refused, mailbox_full, rate_limited, message_too_large,
// not_found (no such handle, or no device of it has prekeys yet),
// unavailable.
func (c *Client) Send(ctx context.Context, handle, text string) (Sent, error) {
	me := c.Identity()
	if me.UserID == "" {
		return Sent{}, fmt.Errorf("send: %w", ErrNotLoggedIn)
	}
	until := time.Now().Add(dedupWindow)
	var p Peer
	err := c.retryUnavailable(ctx, "send", until, func() (err error) {
		p, err = c.recipient(ctx, handle)
		return err
	})
	if err != nil {
		return Sent{}, fmt.Errorf("send: %w", err)
	}
	mid := schema.NewID('m')
	env, err := c.sealRetrying(ctx, p, mid, payload.Encode(payload.Payload{Text: text, LV: c.ownListVersion()}), until)
	if err != nil {
		return Sent{}, fmt.Errorf("send: %w", err)
	}
	return c.sendSealed(ctx, p, mid, env, until)
}

// sendSealed stores env, sealed for p with message id mid, as Send does,
// repeating the frame while it is answered unavailable until retryUntil.
func (c *Client) sendSealed(ctx context.Context, p Peer, mid string, env []byte, retryUntil time.Time) (Sent, error) {
	a, err := c.request(ctx, "send", retryUntil, func(id string) any {
		return schema.SendFrame{Type: schema.FrameSend, ID: id, To: p.UserID, Envelope: env}
	})
	if err != nil {
		return Sent{}, err
	}
	s := a.(*schema.SentFrame)
	return Sent{ID: mid, Seq: s.Seq, PeerSeq: s.PeerSeq, Duplicate: s.Duplicate}, nil
}

// Seal claims the prekey bundles of p and of the user's other devices,
// verifies them against the pinned identity keys and seals payload for
// every device in them, as Send does; it returns the envelope and its
// message id without sending it (for NATS-native senders and benchmarks).
// Errors: untrusted_keys, not_found, message_too_large, and the claim's.
func (c *Client) Seal(ctx context.Context, p Peer, payload []byte) (env []byte, mid string, err error) {
	mid = schema.NewID('m')
	env, err = c.sealAs(ctx, p, mid, payload)
	return env, mid, err
}

// sealAs is Seal with the message id given.
func (c *Client) sealAs(ctx context.Context, p Peer, mid string, payload []byte) ([]byte, error) {
	me := c.Identity()
	if p.KeyChanged {
		return nil, untrusted(p.Handle, errUntrusted)
	}
	targets, err := c.claim(ctx, p)
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, schema.Errorf(schema.CodeNotFound, p.Handle+" has no device ready to receive yet")
	}
	own, err := c.ownTargets(ctx)
	if err != nil {
		return nil, err
	}
	h := envelope.HeaderV2{From: me.UserID, FromDevice: me.DeviceID, To: p.UserID, MsgID: mid, SentAt: time.Now()}
	env, err := envelope.SealV2(h, c.keys.Device, append(targets, own...), payload)
	if errors.Is(err, envelope.ErrTooLarge) {
		return nil, schema.Errorf(schema.CodeMessageTooLarge, "the text is over 64 KiB")
	}
	return env, err
}

// sealRetrying is sealAs, tried again after a growing pause while the
// bundle claims answer unavailable (Postgres failing over), until
// retryUntil. Nothing is sent before sealing, so a repeat is safe; the
// one-time prekeys an unanswered claim may have taken are never used.
func (c *Client) sealRetrying(ctx context.Context, p Peer, mid string, pl []byte, retryUntil time.Time) (env []byte, err error) {
	err = c.retryUnavailable(ctx, "seal", retryUntil, func() (err error) {
		env, err = c.sealAs(ctx, p, mid, pl)
		return err
	})
	return env, err
}

// recipient returns the pinned peer for handle: a friend's, or, for anyone
// else, the looked-up key (the server then refuses the send with
// not_friend, which is the answer the caller should see).
func (c *Client) recipient(ctx context.Context, handle string) (Peer, error) {
	p, err := c.friendByHandle(ctx, handle)
	if errors.Is(err, ErrUnknownPeer) {
		return c.Lookup(ctx, handle)
	}
	return p, err
}

// Read burns message seq of this user's mailbox (a received message, not a
// Self copy): it is deleted with the sender's copy, and every device of
// both users is told. A burn the server could not finish (unavailable: the
// message is still there) is sent again for up to 25 seconds, as Send is.
// Errors: unknown_message (never sent, burned already, expired, or a Self
// copy), unavailable.
//
// Once the burn is confirmed the one-time prekey the message was sealed to
// is deleted from this device: nobody can open a kept copy of it any more.
func (c *Client) Read(ctx context.Context, seq uint64) error {
	err := c.burnRequest(ctx, "read", func(id string) any {
		return schema.ReadFrame{Type: schema.FrameRead, ID: id, Seq: seq}
	})
	if err == nil {
		c.burned(seq)
	}
	return err
}

// Recall withdraws a message the user sent and the recipient has not read:
// seq is the sender's copy (Sent.Seq, or the Seq of a Self Message). An
// unavailable answer is retried as in Read. Errors: unknown_message (read,
// recalled, expired, or not a Self copy), unavailable.
func (c *Client) Recall(ctx context.Context, seq uint64) error {
	return c.burnRequest(ctx, "recall", func(id string) any {
		return schema.RecallFrame{Type: schema.FrameRecall, ID: id, Seq: seq}
	})
}

// burnRequest sends a read or recall as request does (again after each
// lost connection), and again after a growing pause when the server
// answers unavailable, until dedupWindow after the first attempt: the
// server then did not finish the burn, and a repeat does (docs/protocol.md).
// unknown_message on a repeat counts as success: an earlier attempt did it.
func (c *Client) burnRequest(ctx context.Context, op string, build func(id string) any) error {
	until := time.Now().Add(dedupWindow)
	pause := unavailablePause
	for attempt := 0; ; attempt++ {
		_, err := c.request(ctx, op, time.Time{}, build)
		switch {
		case err == nil:
			return nil
		case attempt > 0 && schema.HasCode(err, schema.CodeUnknownMessage):
			return nil
		case !schema.HasCode(err, schema.CodeUnavailable) || !time.Now().Add(pause).Before(until):
			return err
		}
		c.log.Debug("burn not finished; retrying", "op", op, "attempt", attempt+1, "pause", pause)
		if !sleepCtx(ctx, pause) {
			return err
		}
		pause = min(2*pause, maxUnavailablePause)
	}
}

// Unread returns the number of unread messages in the user's mailbox per
// sender user id; senders with none are absent.
func (c *Client) Unread(ctx context.Context) (map[string]int, error) {
	a, err := c.request(ctx, "unread", time.Time{}, func(id string) any {
		return schema.UnreadFrame{Type: schema.FrameUnread, ID: id}
	})
	if err != nil {
		return nil, err
	}
	return a.(*schema.UnreadCountsFrame).Counts, nil
}

// request sends the frame build makes (given a request id) over Run's
// connection and returns the answer. When the connection drops first, it is
// sent again on the next one, until retryUntil if that is set. With
// retryUntil set, an unavailable answer (the server could not tell whether
// it stored the message, e.g. while a stream elects a new leader after a
// server or a city was lost) is retried too, after a growing pause. A Read
// or Recall repeated that way may find its first attempt done:
// unknown_message on a repeat counts as success.
func (c *Client) request(ctx context.Context, op string, retryUntil time.Time, build func(id string) any) (any, error) {
	pause := pauser{next: unavailablePause}
	for attempt := 0; ; attempt++ {
		cn, err := c.waitConn(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		id := cn.nextID(op)
		a, err := cn.request(ctx, id, build(id))
		switch {
		case err == nil:
			return a, nil
		case errors.Is(err, errConnLost) && (retryUntil.IsZero() || time.Now().Before(retryUntil)):
			continue
		case errors.Is(err, errConnLost):
			return nil, fmt.Errorf("%s: %w", op, schema.Errorf(schema.CodeUnavailable, "connection lost; the outcome is unknown"))
		case !retryUntil.IsZero() && pause.wait(ctx, op, err, retryUntil, c.log):
			continue
		case attempt > 0 && (op == "read" || op == "recall") && schema.HasCode(err, schema.CodeUnknownMessage):
			return nil, nil
		}
		return nil, fmt.Errorf("%s: %w", op, err)
	}
}

// retryUnavailable calls fn until it succeeds, fails with another code than
// unavailable, or until would pass during the next pause.
func (c *Client) retryUnavailable(ctx context.Context, op string, until time.Time, fn func() error) error {
	pause := pauser{next: unavailablePause}
	for {
		err := fn()
		if err == nil || !pause.wait(ctx, op, err, until, c.log) {
			return err
		}
	}
}

// pauser spaces the repeats of an operation that met unavailable.
type pauser struct {
	next     time.Duration // the next pause
	attempts int
}

// wait pauses before a repeat when err is unavailable and the pause ends
// before until. It reports whether to repeat: false when err is another
// error, when until would pass, or when ctx ended.
func (p *pauser) wait(ctx context.Context, op string, err error, until time.Time, log *slog.Logger) bool {
	if !schema.HasCode(err, schema.CodeUnavailable) || !time.Now().Add(p.next).Before(until) {
		return false
	}
	p.attempts++
	log.Debug("server unavailable; retrying", "op", op, "attempt", p.attempts, "pause", p.next)
	if !sleepCtx(ctx, p.next) {
		return false
	}
	p.next = min(2*p.next, maxUnavailablePause)
	return true
}
