package mailbox

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/fabric/subject"
)

// Block rotation: what bounds how long a message's bytes stay in the
// stream's files (docs/fabric.md, "What stays on disk").
//
// nats-server's file store deletes a message by marking it: its bytes stay
// in the block file until the block is compacted (rewritten without deleted
// messages) or removed (all its messages gone). It never compacts the last
// block, the one it writes to, and starts a new one only when that block is
// full (4 MiB for these streams), so on a quiet partition with one unread
// message burned ciphertext stayed for days. The rotation closes the last
// block of every partition that stored anything since the previous
// rotation, by writing filler messages until the block is full, and purges
// them again. A closed block is then compacted by the server's periodic
// pass when more than half of its bytes are deleted (the fillers alone
// often are), and removed whole once its newest message is burned or
// expired.
//
// Every process running the service rotates, so they share the work
// through a marker: after a rotation, the one message on mbx.<p>.~rotated
// says up to which sequence the partition's messages are in closed blocks
// (header Mayfly-Rotated-Seq). A process skips a partition whose marker
// covers every stored message, or was written less than 4/5 of
// RotateInterval ago (both times are the server's: the marker's and the
// stream info's); it looks every RotateInterval/5. So a message is in
// a closed block at most about RotateInterval after it was stored, and the
// partition is filled about once per interval whatever the number of
// processes.
const (
	// DefaultRotateInterval is how long a message may stay in the block
	// the server writes to; a message's bytes leave the files at most MaxAge
	// plus this long after it was sent.
	DefaultRotateInterval = 5 * time.Minute
	// rotateTicks is how many times per RotateInterval a process looks.
	rotateTicks = 5
	// rotateBlockSize is the block size nats-server picks for streams with
	// MaxMsgsPerSubject and no byte or message limit (defaultKVBlockSize).
	rotateBlockSize = 4 << 20
	// fillerSize is one filler's payload, under maxMsgSize with its header.
	fillerSize = maxMsgSize - 1024
	// headerRotatedSeq on a marker: every message up to this sequence is
	// in a closed block, or is a filler or marker.
	headerRotatedSeq = "Mayfly-Rotated-Seq"
)

// fillers is how many fillers always overflow a block, however empty.
const fillers = rotateBlockSize/fillerSize + 2

// RunRotation closes the mailbox streams' last blocks (see
// [Service.Rotate]), looking every RotateInterval/5, until ctx ends, and
// returns ctx's error. Errors of one pass are logged, and the next pass
// tries again. It does nothing and returns at once when the rotation is
// disabled (RotateInterval < 0).
func (s *Service) RunRotation(ctx context.Context) error {
	if s.cfg.RotateInterval < 0 {
		return nil
	}
	t := time.NewTicker(s.cfg.RotateInterval / rotateTicks)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if err := s.Rotate(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("mailbox: rotate blocks", "err", err)
		}
	}
}

// Rotate makes the stream of every partition that stored a message since
// its last rotation (by any process), and still holds one, start a new
// block file, so that deleted messages in the block it wrote to can be
// compacted away; it skips partitions another process rotated less than
// 4/5 of RotateInterval ago. For each partition it rotates it writes up to
// 4 MiB of fillers (subject mbx.<p>.~rotate, republished to nobody),
// purges them and writes a marker (mbx.<p>.~rotated). It blocks until
// every stream answered or ctx ends and returns the first error.
func (s *Service) Rotate(ctx context.Context) error {
	var first error
	for p := range s.cfg.Partitions {
		if err := s.rotate(ctx, p); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// rotationMark is what a partition's marker says.
type rotationMark struct {
	upTo uint64    // every message up to upTo is closed, a filler or a marker
	at   time.Time // when the marker was stored
	ok   bool      // a marker exists
}

// rotate closes partition p's last block when it holds a message stored
// after the last rotation and the last rotation is not recent.
func (s *Service) rotate(ctx context.Context, p int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	name := streamName(p)
	stream, err := s.js.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("mailbox: stream info %s: %w", name, err)
	}
	info := stream.CachedInfo()
	st, now := info.State, info.TimeStamp
	if now.IsZero() {
		now = time.Now() // a server older than 2.10 gives no time stamp
	}
	mark, err := s.lastMark(ctx, p)
	if err != nil {
		return err
	}
	msgs := st.Msgs
	if mark.ok {
		msgs-- // the marker itself
	}
	switch {
	case st.LastSeq <= mark.upTo:
		return nil // nothing stored since the last rotation
	case mark.ok && now.Sub(mark.at) < s.cfg.RotateInterval-s.cfg.RotateInterval/rotateTicks:
		return nil // rotated recently; a later look rotates again
	case msgs == 0:
		// Every message is gone, and with it the blocks that held them.
		return s.writeMark(ctx, stream, p, st.LastSeq)
	}
	upTo, err := s.fill(ctx, stream, p, st.LastSeq)
	if err != nil {
		return err
	}
	return s.writeMark(ctx, stream, p, upTo)
}

// lastMark reads partition p's marker.
func (s *Service) lastMark(ctx context.Context, p int) (rotationMark, error) {
	m, err := s.getLast(ctx, streamName(p), markerSubject(p))
	if errors.Is(err, errNotFound) {
		return rotationMark{}, nil
	}
	if err != nil {
		return rotationMark{}, fmt.Errorf("mailbox: rotate %s: read marker: %w", streamName(p), err)
	}
	upTo, _ := strconv.ParseUint(m.Header.Get(headerRotatedSeq), 10, 64)
	if seq, _ := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64); seq == upTo+1 {
		upTo = seq // nothing but the marker came after
	}
	at, _ := time.Parse(time.RFC3339Nano, m.Header.Get("Nats-Time-Stamp"))
	return rotationMark{upTo: upTo, at: at, ok: true}, nil
}

// writeMark stores partition p's marker saying upTo and removes the
// previous one.
func (s *Service) writeMark(ctx context.Context, stream jetstream.Stream, p int, upTo uint64) error {
	m := nats.NewMsg(markerSubject(p))
	m.Header.Set(jetstream.ExpectedStreamHeader, streamName(p))
	m.Header.Set(headerRotatedSeq, strconv.FormatUint(upTo, 10))
	if _, err := s.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("mailbox: rotate %s: write marker: %w", streamName(p), err)
	}
	if err := stream.Purge(ctx, jetstream.WithPurgeSubject(markerSubject(p)), jetstream.WithPurgeKeep(1)); err != nil {
		return fmt.Errorf("mailbox: rotate %s: purge old markers: %w", streamName(p), err)
	}
	return nil
}

func markerSubject(p int) string { return subject.RotateMarker(p) }

// fill writes fillers into partition p, whose last sequence was last,
// until its block is full, and purges them whenever the subject holds
// MaxPerMailbox of them and at the end. Fillers are published one at a
// time, so sends to the partition interleave with them. It returns the
// sequence up to which every message is in a closed block or a filler:
// last, then as far as the fillers' sequences follow it without a gap.
func (s *Service) fill(ctx context.Context, stream jetstream.Stream, p int, last uint64) (uint64, error) {
	name := streamName(p)
	subj := subject.RotateFiller(p)
	body := make([]byte, fillerSize)
	upTo, gap := last, false
	for i := range fillers {
		m := nats.NewMsg(subj)
		m.Data = body
		m.Header.Set(jetstream.ExpectedStreamHeader, name)
		ack, err := s.js.PublishMsg(ctx, m)
		if err != nil {
			return 0, fmt.Errorf("mailbox: rotate %s: publish filler: %w", name, err)
		}
		if gap = gap || ack.Sequence != upTo+1; !gap {
			upTo = ack.Sequence
		}
		if held := int64(i+1) % s.cfg.MaxPerMailbox; held != 0 && i+1 < fillers {
			continue
		}
		if err := stream.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			return 0, fmt.Errorf("mailbox: rotate %s: purge fillers: %w", name, err)
		}
	}
	return upTo, nil
}
