package attach

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Block rotation, as fabric/mailbox does it for the mailbox streams
// (docs/fabric.md, "What stays on disk"): nats-server deletes a message by
// marking it, and its bytes stay in the block file until the block is
// compacted or removed; it never compacts the block it writes to and starts
// a new one only when that one is full (8 MiB for this stream). Rotate
// closes the last block by writing fillers until it overflows, then purges
// them: burned chunks in the closed block go at the server's next
// compaction pass, expired ones when the block is removed, at the latest
// MaxAge after the rotation. Processes share the work through the marker
// on att.~rotated, which says up to which sequence everything is in a
// closed block.
const (
	rotateTicks     = 5
	rotateBlockSize = 8 << 20 // FileStoreMaxBlkSize: the block size nats-server picks with MaxBytes ≥ 32 MiB
	fillerSize      = ChunkSize
	fillers         = rotateBlockSize/fillerSize + 2
	fillerSubject   = subjectRoot + "~rotate"
	markerSubject   = subjectRoot + "~rotated"
	headerRotated   = "Mayfly-Rotated-Seq"
)

// RunRotation calls Rotate every RotateInterval/5 until ctx ends and
// returns ctx's error; a failed pass is logged and retried at the next.
// It returns nil at once when the rotation is disabled.
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
			s.log.Warn("attach: rotate blocks", "err", err)
		}
	}
}

// Rotate makes the stream start a new block file when it stored anything
// since the last rotation (by any process) and still holds a chunk, unless
// another process rotated less than 4/5 of RotateInterval ago. It writes up
// to 8 MiB of fillers, purges them and writes the marker. It blocks until
// done or ctx ends.
func (s *Service) Rotate(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	info, err := s.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("attach: rotate: stream info: %w", err)
	}
	st, now := info.State, info.TimeStamp
	if now.IsZero() {
		now = time.Now()
	}
	upTo, at, ok, err := s.lastMark(ctx)
	if err != nil {
		return err
	}
	msgs := st.Msgs
	if ok {
		msgs--
	}
	switch {
	case st.LastSeq <= upTo:
		return nil
	case ok && s.cfg.RotateInterval > 0 && now.Sub(at) < s.cfg.RotateInterval-s.cfg.RotateInterval/rotateTicks:
		return nil
	case msgs == 0:
		return s.writeMark(ctx, st.LastSeq)
	}
	upTo, err = s.fill(ctx, st.LastSeq)
	if err != nil {
		return err
	}
	return s.writeMark(ctx, upTo)
}

// lastMark reads the marker: up to which sequence the files are rotated,
// and when.
func (s *Service) lastMark(ctx context.Context) (upTo uint64, at time.Time, ok bool, err error) {
	m, err := s.stream.GetLastMsgForSubject(ctx, markerSubject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, time.Time{}, false, nil
	}
	if err != nil {
		return 0, time.Time{}, false, fmt.Errorf("attach: rotate: read marker: %w", err)
	}
	upTo, _ = strconv.ParseUint(m.Header.Get(headerRotated), 10, 64)
	if m.Sequence == upTo+1 {
		upTo = m.Sequence // nothing but the marker came after
	}
	return upTo, m.Time, true, nil
}

// writeMark stores the marker saying upTo and drops the previous one.
func (s *Service) writeMark(ctx context.Context, upTo uint64) error {
	m := nats.NewMsg(markerSubject)
	m.Header.Set(jetstream.ExpectedStreamHeader, StreamName)
	m.Header.Set(headerRotated, strconv.FormatUint(upTo, 10))
	if _, err := s.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("attach: rotate: write marker: %w", err)
	}
	if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(markerSubject), jetstream.WithPurgeKeep(1)); err != nil {
		return fmt.Errorf("attach: rotate: purge old markers: %w", err)
	}
	return nil
}

// fill writes fillers one at a time until the last block overflowed, then
// purges them; it returns the sequence up to which every message is in a
// closed block or a filler.
func (s *Service) fill(ctx context.Context, last uint64) (uint64, error) {
	body := make([]byte, fillerSize)
	upTo, gap := last, false
	for range fillers {
		m := nats.NewMsg(fillerSubject)
		m.Data = body
		m.Header.Set(jetstream.ExpectedStreamHeader, StreamName)
		ack, err := s.js.PublishMsg(ctx, m)
		if err != nil {
			return 0, fmt.Errorf("attach: rotate: publish filler: %w", err)
		}
		if gap = gap || ack.Sequence != upTo+1; !gap {
			upTo = ack.Sequence
		}
	}
	if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(fillerSubject)); err != nil {
		return 0, fmt.Errorf("attach: rotate: purge fillers: %w", err)
	}
	return upTo, nil
}
