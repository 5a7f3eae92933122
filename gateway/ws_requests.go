package gateway

import (
	"github.com/mayfly-im/mayfly/schema"
)

// Per-connection frame limits; docs/protocol.md, "Limits".
const (
	// maxLimitedFrames rate-limited frames in a row close the connection
	// with CloseRateLimited.
	maxLimitedFrames = 20
)

var errNoMailbox = schema.Errorf(schema.CodeUnavailable, "messaging is not available on this server")

// handleFrame answers one client frame. It reports false for a frame that
// could not be decoded (malformed, unknown type, bad values), which counts
// towards the bad-frame limit; a decoded request that fails is answered
// with an error frame and counts as good.
func (c *wsConn) handleFrame(msg []byte) bool {
	if !c.limiter.Allow() {
		c.rateLimited(msg)
		return true
	}
	c.limited = 0
	req, id, e := schema.DecodeRequest(msg)
	if e != nil {
		c.s.metrics.wsFrames.WithLabelValues("malformed", string(e.Code)).Inc()
		c.enqueue(schema.ErrorFrame{Type: schema.FrameError, ID: id, Error: e})
		return false
	}
	code := "ok"
	if err := c.serve(req); err != nil {
		e := c.publicError(req.RequestType(), err)
		code = string(e.Code)
		c.enqueue(schema.ErrorFrame{Type: schema.FrameError, ID: req.RequestID(), Error: e})
	}
	c.s.metrics.wsFrames.WithLabelValues(req.RequestType(), code).Inc()
	return true
}

// rateLimited answers a frame over the connection's frame rate, closing the
// connection when the client keeps it up.
func (c *wsConn) rateLimited(msg []byte) {
	c.s.metrics.wsFrames.WithLabelValues("limited", string(schema.CodeRateLimited)).Inc()
	if c.limited++; c.limited >= maxLimitedFrames {
		c.close(schema.CloseRateLimited, "rate_limited")
		return
	}
	_, id, _ := schema.DecodeRequest(msg)
	c.enqueue(schema.ErrorFrame{Type: schema.FrameError, ID: id,
		Error: schema.Errorf(schema.CodeRateLimited, "too many frames; slow down")})
}

// serve runs one decoded request. Requests other than sync are answered
// here; sync is answered by the replay goroutine when it caught up.
func (c *wsConn) serve(req schema.Request) error {
	switch f := req.(type) {
	case *schema.PingFrame:
		c.enqueue(schema.PongFrame{Type: schema.FramePong, ID: f.ID})
		return nil
	case *schema.SyncFrame:
		return c.handleSync(f)
	}
	if c.s.cfg.Mailbox == nil {
		return errNoMailbox
	}
	switch f := req.(type) {
	case *schema.SendFrame:
		return c.handleSend(f)
	case *schema.ReadFrame:
		return c.handleRead(f)
	case *schema.RecallFrame:
		return c.handleRecall(f)
	case *schema.UnreadFrame:
		return c.handleUnread(f)
	}
	return schema.Errorf(schema.CodeBadRequest, "unknown frame type")
}

// handleSend stores a message and answers with its sequences once JetStream
// acknowledged both copies.
func (c *wsConn) handleSend(f *schema.SendFrame) error {
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.s.cfg.Mailbox.Send(ctx, c.p.UserID, f.To, f.Envelope)
	if err != nil {
		return err
	}
	c.enqueue(schema.SentFrame{Type: schema.FrameSent, ID: f.ID, Seq: r.Seq, PeerSeq: r.PeerSeq, Duplicate: r.Duplicate})
	return nil
}

// handleRead burns a message of the user's own mailbox; one delivered on
// this connection is burned without being looked up again.
func (c *wsConn) handleRead(f *schema.ReadFrame) error {
	ctx, cancel := c.ctx()
	defer cancel()
	var err error
	if m, ok := c.takeDelivered(f.Seq); ok {
		_, err = c.s.cfg.Mailbox.ReadDelivered(ctx, c.p.UserID, m)
	} else {
		_, err = c.s.cfg.Mailbox.Read(ctx, c.p.UserID, f.Seq)
	}
	if err != nil {
		return err
	}
	c.enqueue(schema.OKFrame{Type: schema.FrameOK, ID: f.ID})
	return nil
}

// handleRecall withdraws an unread message the user sent.
func (c *wsConn) handleRecall(f *schema.RecallFrame) error {
	ctx, cancel := c.ctx()
	defer cancel()
	if _, err := c.s.cfg.Mailbox.Recall(ctx, c.p.UserID, f.Seq); err != nil {
		return err
	}
	c.enqueue(schema.OKFrame{Type: schema.FrameOK, ID: f.ID})
	return nil
}

// handleUnread answers the unread counts per sender.
func (c *wsConn) handleUnread(f *schema.UnreadFrame) error {
	ctx, cancel := c.ctx()
	defer cancel()
	counts, err := c.s.cfg.Mailbox.Unread(ctx, c.p.UserID)
	if err != nil {
		return err
	}
	if counts == nil {
		counts = map[string]int{}
	}
	c.enqueue(schema.UnreadCountsFrame{Type: schema.FrameUnread, ID: f.ID, Counts: counts})
	return nil
}

// publicError maps err to what the client may see, logging internal
// faults (never the frame's content).
func (c *wsConn) publicError(op string, err error) *schema.Error {
	e, fault := schema.ClientError(err)
	if fault {
		c.s.log.Error("websocket request failed", "op", op, "user_id", c.p.UserID, "device_id", c.p.DeviceID, "err", err)
	}
	return e
}
