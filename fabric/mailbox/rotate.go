package mailbox

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
// block of every partition that stored anything since the previous pass,
// by writing filler messages until the block is full, and purges them
// again. A closed block is then compacted by the server's periodic pass
// when more than half of its bytes are deleted (the fillers alone often
// are), and removed whole once its newest message is burned or expired.
const (
	// DefaultRotateInterval is how often the rotation runs; a message's
	// bytes leave the files at most MaxAge plus this long after it was sent.
	DefaultRotateInterval = 5 * time.Minute
	// rotateBlockSize is the block size nats-server picks for streams with
	// MaxMsgsPerSubject and no byte or message limit (defaultKVBlockSize).
	rotateBlockSize = 4 << 20
	// fillerSize is one filler's payload, under maxMsgSize with its header.
	fillerSize = maxMsgSize - 1024
	// fillerToken is the mailbox token of fillers: never a user id.
	fillerToken = "~rotate"
)

// fillers is how many fillers always overflow a block, however empty.
const fillers = rotateBlockSize/fillerSize + 2

// RunRotation closes the mailbox streams' last blocks every RotateInterval
// (see [Service.Rotate]) until ctx ends, and returns ctx's error. Errors of
// one pass are logged, and the next pass tries again. It does nothing and
// returns at once when the rotation is disabled (RotateInterval < 0).
func (s *Service) RunRotation(ctx context.Context) error {
	if s.cfg.RotateInterval < 0 {
		return nil
	}
	t := time.NewTicker(s.cfg.RotateInterval)
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
// the previous Rotate, and still holds one, start a new block file, so
// that deleted messages in the block it wrote to can be compacted away. It
// writes up to 4 MiB of fillers per such stream (subject
// mbx.<p>.~rotate, republished to nobody) and purges them. It blocks until
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

// rotate closes partition p's last block if anything was stored since the
// last rotation and a message is still there.
func (s *Service) rotate(ctx context.Context, p int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	name := streamName(p)
	stream, err := s.js.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("mailbox: stream info %s: %w", name, err)
	}
	st := stream.CachedInfo().State
	s.rotMu.Lock()
	last := s.rotated[p]
	s.rotMu.Unlock()
	if st.LastSeq <= last {
		return nil
	}
	if st.Msgs > 0 {
		if st.LastSeq, err = s.fill(ctx, stream, p); err != nil {
			return err
		}
	}
	s.rotMu.Lock()
	s.rotated[p] = st.LastSeq
	s.rotMu.Unlock()
	return nil
}

// fill writes fillers into partition p until its block is full, purges
// them, and returns the last filler's sequence. Fillers are published one
// at a time, so sends to the partition interleave with them, and purged
// whenever the subject holds MaxPerMailbox of them.
func (s *Service) fill(ctx context.Context, stream jetstream.Stream, p int) (uint64, error) {
	name := streamName(p)
	subj := subjectPrefix + strconv.Itoa(p) + "." + fillerToken
	body := make([]byte, fillerSize)
	var last uint64
	for i := range fillers {
		m := nats.NewMsg(subj)
		m.Data = body
		m.Header.Set(jetstream.ExpectedStreamHeader, name)
		ack, err := s.js.PublishMsg(ctx, m)
		if err != nil {
			return 0, fmt.Errorf("mailbox: rotate %s: publish filler: %w", name, err)
		}
		last = ack.Sequence
		if held := int64(i+1) % s.cfg.MaxPerMailbox; held != 0 && i+1 < fillers {
			continue
		}
		if err := stream.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			return 0, fmt.Errorf("mailbox: rotate %s: purge fillers: %w", name, err)
		}
	}
	return last, nil
}
