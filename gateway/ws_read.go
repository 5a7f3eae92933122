package gateway

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// The read side's idle wait. The reader's stack is a large part of an idle
// connection's memory. A reader blocked inside the websocket library
// (message reader, frame parser, buffered reader, socket) needs a 4 KiB
// stack; one blocked in a readiness wait on the socket fits in the
// runtime's smallest, 2 KiB. So between frames the reader waits here until
// the next frame is buffered or the socket is readable, and only then calls
// the library. Handling frames grows the stack, and the runtime halves a
// stack (at a GC) only while a quarter of it holds what is in use plus 800
// bytes, so a 4 KiB stack stays 4 KiB: once the frames at hand are handled
// the reader hands the connection to a fresh goroutine, which starts small,
// and ends (wsConn.run). The pong that answers each server ping would have
// the library block for the frame after it; a complete pong at the front of
// the read buffer is consumed here instead, as the library would (a pong
// changes none of its state; it only extends the read deadline).

// wsReadBuffer is the size of a connection's read buffer. It stays with the
// connection (the library reads frame headers through it); frames larger
// than it are read into the message directly. The library takes a buffer
// handed to it by Hijack only if it is larger than 256 bytes.
const wsReadBuffer = 512

// wsHijacker hands the websocket library a read buffer the connection keeps
// a reference to, so the reader can tell whether bytes are buffered before
// it waits on the socket. The library then uses it as its own (the
// Upgrader's ReadBufferSize must be 0).
type wsHijacker struct {
	http.ResponseWriter
	pool *sync.Pool      // write batch buffers for batchConn
	br   *bufio.Reader   // the read buffer; nil if Hijack did not make one
	out  *batchConn      // the socket as the library writes to it; likewise
	conn syscall.RawConn // the socket, for readiness waits; nil if not a socket
}

// Hijack hijacks the HTTP connection, replaces its read buffer by a
// smaller one and wraps the socket in a batchConn. Bytes the client sent
// before the handshake completed stay in the original buffer, which the
// library refuses.
func (h *wsHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil || brw.Reader.Buffered() > 0 {
		return conn, brw, err
	}
	if sc, ok := conn.(syscall.Conn); ok && canWaitReadable {
		if h.conn, err = sc.SyscallConn(); err != nil {
			h.conn = nil
		}
	}
	h.br = bufio.NewReaderSize(conn, wsReadBuffer)
	h.out = &batchConn{Conn: conn, pool: h.pool}
	return h.out, bufio.NewReadWriter(h.br, brw.Writer), nil
}

// awaitFrame returns once a frame other than a complete pong is buffered
// or the socket is readable, consuming pongs and extending the read
// deadline by timeout for each. It waits on a shallow stack; it returns at
// once when the connection has no raw socket to wait on. An error (the read
// deadline passed, the socket closed) ends the connection.
func (c *wsConn) awaitFrame(timeout time.Duration) error {
	if c.raw == nil || c.br == nil {
		return nil
	}
	for {
		if c.br.Buffered() == 0 {
			if err := waitReadable(c.raw); err != nil {
				return err
			}
			// Readable: this fills the buffer without blocking.
			if _, err := c.br.Peek(1); err != nil {
				return err
			}
		}
		if !c.skipPong() {
			return nil
		}
		c.ws.SetReadDeadline(time.Now().Add(timeout))
	}
}

// skipPong consumes a complete, well-formed pong frame (FIN set, opcode 10,
// masked, payload at most 125 bytes) at the front of the read buffer and
// reports whether it did. The library is at a frame boundary between
// messages, and a pong changes none of its state. Anything else, including
// a pong not fully received yet, is left to the library.
func (c *wsConn) skipPong() bool {
	if c.br.Buffered() < 2 {
		return false
	}
	h, _ := c.br.Peek(2)
	const finPong, maskBit, maxControl = 0x8a, 0x80, 125
	size := int(h[1] &^ maskBit)
	if h[0] != finPong || h[1]&maskBit == 0 || size > maxControl {
		return false
	}
	n := 2 + 4 + size // header, mask key, payload
	if c.br.Buffered() < n {
		return false
	}
	c.br.Discard(n)
	return true
}
