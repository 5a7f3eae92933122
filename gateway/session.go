package gateway

import (
	"golang.org/x/time/rate"

	"github.com/mayfly-im/mayfly/fabric/account"
	"github.com/mayfly-im/mayfly/schema"
)

// The protocol session of one client connection (docs/protocol.md), apart
// from the transport that moves its frames. The WebSocket transport
// (wsConn, ws*.go) reads frames and hands each to the session; the session
// decodes and answers them (ws_requests.go), runs the mailbox feed
// (ws_feed.go), presence and the device checks, and queues its frames on a
// sink. Nothing in the session touches a socket, so a session runs, and is
// tested, on any sink.

// sink is where a session's frames go: the transport's send queue. The
// WebSocket transport (wsConn) is the one in production.
type sink interface {
	// enqueue queues frame f (a schema.XxxFrame, or a schema.EncodedFrame)
	// without blocking. A sink that cannot take it closes the connection
	// as a slow consumer.
	enqueue(f any)
	// enqueueWait queues f, waiting a bounded time for room; a replay
	// uses it. It returns at once once the sink is closed.
	enqueueWait(f any)
	// close asks the transport to close the connection with code and
	// reason; the first call wins. It never blocks.
	close(code int, reason string)
	// done returns a channel closed by the first close.
	done() <-chan struct{}
}

// session is one client's protocol session: who it is, its frame limits
// and its delivery state. Frames it sends go to the embedded sink.
type session struct {
	sink
	s *Server
	p account.Principal

	limiter *rate.Limiter // frames per second; used by the reader only
	limited int           // rate-limited frames in a row; reader only
	bad     int           // malformed frames in a row; reader only
	offline func()        // takes the device offline; called by end
	feed    feed          // mailbox delivery state (ws_feed.go)
}

// newSession returns the session of p, whose frames go to out. A
// WebSocket transport out gets it as the session it reads for.
func (s *Server) newSession(out sink, p account.Principal) *session {
	c := &session{
		sink: out, s: s, p: p,
		limiter: rate.NewLimiter(rate.Limit(s.cfg.FrameRate), s.cfg.FrameBurst),
		offline: func() {},
	}
	if t, ok := out.(*wsConn); ok {
		t.sess = c
	}
	return c
}

// received handles one frame the client sent. It returns a reason when the
// frame ended the session (too many malformed frames in a row); the
// session is closed then.
func (c *session) received(msg []byte) (reason string) {
	if ok := c.handleFrame(msg); ok {
		c.bad = 0
	} else if c.bad++; c.bad >= maxBadFrames {
		c.close(schema.CloseBadFrames, "bad_frames")
		return "bad_frames"
	}
	return ""
}
