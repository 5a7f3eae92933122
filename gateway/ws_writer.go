package gateway

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mayfly-im/mayfly/schema"
)

// The write side of a connection. Frames wait in a queue that holds no
// memory while empty; a writer goroutine runs only while there is something
// to write (queued frames, a due ping, the close frame) and exits when the
// queue is drained, so an idle connection costs no goroutine beyond its
// reader. Pings come from a timer, not from a goroutine parked on a ticker.
// All writes of data, pings and the close frame are made by the writer, one
// at a time, in the order the frames were queued.

// frameQueue is a FIFO of encoded frames. Its backing array is allocated
// on the first push and released when the queue is drained. It is not safe
// for concurrent use; wsConn.mu guards it.
type frameQueue struct {
	buf  [][]byte // buf[head:] are the queued frames, oldest first
	head int
}

// len returns the number of queued frames.
func (q *frameQueue) len() int { return len(q.buf) - q.head }

// push appends b. When the array is full and at least half of it was
// popped already, the frames move to its front instead of growing it.
func (q *frameQueue) push(b []byte) {
	if len(q.buf) == cap(q.buf) && q.head > 0 && q.head >= len(q.buf)/2 {
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
	q.buf = append(q.buf, b)
}

// pop removes and returns the oldest frame; ok is false when the queue is
// empty. Popping the last frame releases the backing array.
func (q *frameQueue) pop() (b []byte, ok bool) {
	if q.head == len(q.buf) {
		return nil, false
	}
	b = q.buf[q.head]
	q.buf[q.head] = nil
	q.head++
	if q.head == len(q.buf) {
		q.buf, q.head = nil, 0
	}
	return b, true
}

// reset drops every queued frame and releases the backing array.
func (q *frameQueue) reset() { q.buf, q.head = nil, 0 }

// enqueue queues frame f (a schema.XxxFrame) for the writer without
// blocking. A full queue means the client is not reading: the connection is
// closed as a slow consumer.
func (c *wsConn) enqueue(f any) {
	b, err := schema.EncodeFrame(f)
	if err != nil {
		c.log.Error("encode frame", "frame", fmt.Sprintf("%T", f), "err", err)
		return
	}
	c.enqueueRaw(b)
}

// enqueueRaw queues the encoded frame b like enqueue. b must not be
// modified afterwards.
func (c *wsConn) enqueueRaw(b []byte) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.queue.len() >= c.cfg.SendQueue {
		c.mu.Unlock()
		c.close(schema.CloseSlowConsumer, "slow_consumer")
		return
	}
	c.queue.push(b)
	start := c.wakeLocked()
	c.mu.Unlock()
	if start {
		go c.writer()
	}
}

// enqueueWait queues frame f, waiting for room while the client reads
// (replay uses it: a backlog may be larger than the queue). If the queue
// makes no room within stallWait the client is not reading: the
// connection is closed as a slow consumer.
func (c *wsConn) enqueueWait(f any) {
	b, err := schema.EncodeFrame(f)
	if err != nil {
		c.log.Error("encode frame", "frame", fmt.Sprintf("%T", f), "err", err)
		return
	}
	var stall *time.Timer
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		if c.queue.len() < c.cfg.SendQueue {
			c.queue.push(b)
			start := c.wakeLocked()
			c.mu.Unlock()
			if start {
				go c.writer()
			}
			return
		}
		if c.room == nil {
			c.room = make(chan struct{})
		}
		room := c.room
		c.mu.Unlock()
		if stall == nil {
			stall = time.NewTimer(stallWait)
			defer stall.Stop()
		}
		select {
		case <-room:
		case <-c.quit:
			return
		case <-stall.C:
			c.close(schema.CloseSlowConsumer, "slow_consumer")
			return
		}
	}
}

// wakeLocked marks a writer as running and reports whether the caller must
// start it (none runs, and the close frame was not sent yet). c.mu must be
// held.
func (c *wsConn) wakeLocked() bool {
	if c.writing || c.closeSent {
		return false
	}
	c.writing = true
	c.writers.Add(1)
	return true
}

// pingDue runs on the ping timer: it re-arms the timer and has the writer
// send a ping, writing on the timer's goroutine if no writer runs.
func (c *wsConn) pingDue() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.ping.Reset(c.cfg.PingInterval)
	c.pingNow = true
	start := c.wakeLocked()
	c.mu.Unlock()
	if start {
		c.writer()
	}
}

// writeOp is what the writer does next.
type writeOp int

const (
	opNone  writeOp = iota // nothing left: the writer exits
	opFrame                // write a queued frame
	opPing                 // write a ping
	opClose                // write the close frame and unblock the reader
)

// nextLocked takes the writer's next job; more reports whether frames
// remain queued after it. Once the connection is closing the close frame
// goes next and the backlog is dropped. When nothing is left it marks the
// writer as stopped. c.mu must be held.
func (c *wsConn) nextLocked() (op writeOp, b []byte, more bool) {
	switch {
	case c.closed:
		c.queue.reset()
		return opClose, nil, false
	case c.pingNow:
		c.pingNow = false
		return opPing, nil, c.queue.len() > 0
	}
	b, ok := c.queue.pop()
	if !ok {
		c.writing = false
		return opNone, nil, false
	}
	if c.room != nil {
		close(c.room) // wake enqueueWait: there is room now
		c.room = nil
	}
	return opFrame, b, c.queue.len() > 0
}

// writer writes until nothing is left to write, then exits; after the close
// frame no writer starts again. Started by wakeLocked's caller. While more
// frames are queued it batches them (batchConn); the batch is written after
// its last frame.
func (c *wsConn) writer() {
	defer c.writers.Done()
	for {
		c.mu.Lock()
		op, b, more := c.nextLocked()
		code, why := c.closeCode, c.closeWhy
		c.mu.Unlock()
		if more {
			c.out.batch()
		}
		var err error
		switch op {
		case opNone:
			return
		case opFrame:
			c.ws.SetWriteDeadline(time.Now().Add(writeWait))
			err = c.ws.WriteMessage(websocket.TextMessage, b)
		case opPing:
			err = c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait))
		case opClose:
			c.out.flush() // frames taken from the queue go before the close frame
			msg := websocket.FormatCloseMessage(code, why)
			c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			// Unblock the reader; it sees the error and returns.
			c.ws.UnderlyingConn().SetReadDeadline(time.Now())
			c.mu.Lock()
			c.closeSent, c.writing = true, false
			c.mu.Unlock()
			return
		}
		if !more && err == nil {
			err = c.out.flush()
		}
		if err != nil {
			c.close(websocket.CloseAbnormalClosure, "write_error")
		}
	}
}

// done returns a channel closed by the first close.
func (c *wsConn) done() <-chan struct{} { return c.quit }

// close asks the connection to close with code and reason; the first call
// wins and is counted in the metrics right away (the close frame may have to
// wait for a write in progress). It never blocks.
func (c *wsConn) close(code int, reason string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.closeCode, c.closeWhy = code, reason
	close(c.quit)
	if c.ping != nil {
		c.ping.Stop()
	}
	start := c.wakeLocked()
	c.mu.Unlock()
	if start {
		go c.writer()
	}
	if reason == "" {
		reason = "client"
	}
	c.metrics.wsClosed.WithLabelValues(reason).Inc()
}

// maxBatch bounds the bytes a writer collects before it writes them.
const maxBatch = 16 << 10

// batchConn is the socket as the websocket library sees it. While the
// writer has more frames queued it batches: the library's writes are
// collected in a buffer borrowed from a pool and reach the socket with one
// system call per batch (the library itself writes every frame with one
// call). Otherwise writes go straight through. Writes of the library's own
// replies to the client's pings and close frame, made by the reader, are
// serialized with the writer's by mu.
type batchConn struct {
	net.Conn
	pool *sync.Pool // of *[]byte with cap maxBatch

	mu       sync.Mutex
	batching bool
	buf      *[]byte // collected bytes while batching; nil otherwise
}

// Write writes p, or collects it while batching. A p that does not fit
// goes out with the collected bytes in one vectored write.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.batching {
		return b.Conn.Write(p)
	}
	if b.buf == nil {
		if v, ok := b.pool.Get().(*[]byte); ok {
			b.buf = v
		} else {
			buf := make([]byte, 0, maxBatch)
			b.buf = &buf
		}
	}
	if len(*b.buf)+len(p) <= maxBatch {
		*b.buf = append(*b.buf, p...)
		return len(p), nil
	}
	bufs := net.Buffers{*b.buf, p}
	_, err := bufs.WriteTo(b.Conn)
	*b.buf = (*b.buf)[:0]
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// batch starts collecting writes.
func (b *batchConn) batch() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.batching = true
	b.mu.Unlock()
}

// flush writes the collected bytes, stops batching and returns the buffer
// to the pool.
func (b *batchConn) flush() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batching = false
	if b.buf == nil {
		return nil
	}
	var err error
	if len(*b.buf) > 0 {
		_, err = b.Conn.Write(*b.buf)
	}
	*b.buf = (*b.buf)[:0]
	b.pool.Put(b.buf)
	b.buf = nil
	return err
}
