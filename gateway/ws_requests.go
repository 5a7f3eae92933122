package gateway

import (
	"reflect"

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
func (c *session) handleFrame(msg []byte) bool {
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
func (c *session) rateLimited(msg []byte) {
	c.s.metrics.wsFrames.WithLabelValues("limited", string(schema.CodeRateLimited)).Inc()
	if c.limited++; c.limited >= maxLimitedFrames {
		c.close(schema.CloseRateLimited, "rate_limited")
		return
	}
	_, id, _ := schema.DecodeRequest(msg)
	c.enqueue(schema.ErrorFrame{Type: schema.FrameError, ID: id,
		Error: schema.Errorf(schema.CodeRateLimited, "too many frames; slow down")})
}

// frameHandler runs one decoded request of its frame type.
type frameHandler struct {
	// run answers the request, or returns the error to answer it with.
	run func(c *session, req schema.Request) error
	// frame is the request type run takes (*schema.SendFrame, ...), for
	// the test that checks the table against schema.
	frame reflect.Type
	// mailbox: without a mailbox (Config.Mailbox) the request answers
	// unavailable.
	mailbox bool
}

// handles adapts a handler of one request type for the frame table.
func handles[F schema.Request](h func(*session, F) error, mailbox bool) frameHandler {
	return frameHandler{
		run:     func(c *session, req schema.Request) error { return h(c, req.(F)) },
		frame:   reflect.TypeFor[F](),
		mailbox: mailbox,
	}
}

// frames is the frame table: every client frame type (schema.RequestTypes)
// and its handler. Adding a frame type to the protocol is one entry here
// plus its handler; TestGatewayFrameTable fails while a type has no entry,
// no row in docs/protocol.md or no fuzz seed.
var frames = map[string]frameHandler{
	schema.FramePing:   handles((*session).handlePing, false),
	schema.FrameSync:   handles((*session).handleSync, true),
	schema.FrameSend:   handles((*session).handleSend, true),
	schema.FrameRead:   handles((*session).handleRead, true),
	schema.FrameRecall: handles((*session).handleRecall, true),
	schema.FrameUnread: handles((*session).handleUnread, true),
}

// serve runs one decoded request. Requests other than sync are answered
// here; sync is answered by the replay goroutine when it caught up.
func (c *session) serve(req schema.Request) error {
	h, ok := frames[req.RequestType()]
	if !ok {
		return schema.Errorf(schema.CodeBadRequest, "unknown frame type")
	}
	if h.mailbox && c.s.cfg.Mailbox == nil {
		return errNoMailbox
	}
	return h.run(c, req)
}

// handlePing answers a ping with a pong.
func (c *session) handlePing(f *schema.PingFrame) error {
	c.enqueue(schema.PongFrame{Type: schema.FramePong, ID: f.ID})
	return nil
}

// handleSend stores a message and answers with its sequences once JetStream
// acknowledged both copies.
func (c *session) handleSend(f *schema.SendFrame) error {
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.s.cfg.Mailbox.Send(ctx, c.p.UserID, c.p.DeviceID, f.To, f.Envelope)
	if err != nil {
		return err
	}
	c.enqueue(schema.SentFrame{Type: schema.FrameSent, ID: f.ID, Seq: r.Seq, PeerSeq: r.PeerSeq, Duplicate: r.Duplicate})
	return nil
}

// handleRead burns a message of the user's own mailbox; one delivered on
// this connection is burned without being looked up again.
func (c *session) handleRead(f *schema.ReadFrame) error {
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
func (c *session) handleRecall(f *schema.RecallFrame) error {
	ctx, cancel := c.ctx()
	defer cancel()
	if _, err := c.s.cfg.Mailbox.Recall(ctx, c.p.UserID, f.Seq); err != nil {
		return err
	}
	c.enqueue(schema.OKFrame{Type: schema.FrameOK, ID: f.ID})
	return nil
}

// handleUnread answers the unread counts per sender.
func (c *session) handleUnread(f *schema.UnreadFrame) error {
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
func (c *session) publicError(op string, err error) *schema.Error {
	e, fault := schema.ClientError(err)
	if fault {
		c.s.log.Error("websocket request failed", "op", op, "user_id", c.p.UserID, "device_id", c.p.DeviceID, "err", err)
	}
	return e
}
