package jsapi_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/fabric/jsapi"
	"github.com/mayfly-im/mayfly/fabric/natstest"
)

// BenchmarkShape measures, on raw JetStream with the mailbox streams'
// settings and sync_interval always (the embedded node's default), what
// one message's life costs in each mailbox shape: stored, then burned.
// It is the ceiling of each shape, without Mayfly's relay, events or
// WebSockets (docs: BENCHMARKS.md, issue 13 session 4).
//
//   - two-copies: today's shape. A sync copy in the sender's partition and
//     the recipient's copy in the recipient's, each acknowledged before the
//     next; the burn deletes both, one after the other.
//   - one-copy: one copy on a per-pair subject mbx.<p>.<to>.<from> in the
//     recipient's partition; the burn deletes it.
//   - one-copy-purge-N: as one-copy, but a reader that burns N messages of
//     a conversation at once purges the pair subject up to the newest
//     (one purge with a subject filter and seq instead of N deletes).
//
// 64 pairs over 16 streams, 16 goroutines (the relay's concurrency on 2
// cores is of that order).
func BenchmarkShape(b *testing.B) {
	for _, shape := range []struct {
		name      string
		copies    int
		purgeEach int // 0: delete each message
	}{
		{"two-copies", 2, 0},
		{"one-copy", 1, 0},
		{"one-copy-purge-1", 1, 1},
		{"one-copy-purge-4", 1, 4},
	} {
		b.Run(shape.name, func(b *testing.B) { benchShape(b, shape.copies, shape.purgeEach) })
	}
}

const (
	shapeStreams = 16
	shapePairs   = 64
)

func benchShape(b *testing.B, copies, purgeEach int) {
	nc := natstest.Connect(b, natstest.Run(b))
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for p := range shapeStreams {
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{
			Name: "MBX_" + strconv.Itoa(p), Subjects: []string{"mbx." + strconv.Itoa(p) + ".>"},
			Storage: jetstream.FileStorage, MaxAge: 55 * time.Minute, MaxMsgsPerSubject: 1000,
			Discard: jetstream.DiscardNew, DiscardNewPerSubject: true, Duplicates: 30 * time.Second,
			AllowDirect: true, RePublish: &jetstream.RePublish{Source: ">", Destination: "dlv.>"},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	env := make([]byte, 718) // the benchmark envelope's size
	rand.Read(env)
	var next atomic.Int64
	var pairs [shapePairs]pairState
	for i := range pairs {
		pairs[i].mu = make(chan struct{}, 1)
	}
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			p := &pairs[i%shapePairs]
			if err := p.life(ctx, js, nc, int(i%shapePairs), i, copies, purgeEach, env); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// pairState is what a pair's reader has not burned yet (purge shapes).
type pairState struct {
	mu      chan struct{} // a one-slot lock over pending
	pending int
}

// life stores message i of pair k and burns it (or, with purgeEach, every
// purgeEach-th message burns the pair's pending ones).
func (p *pairState) life(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, k int, i int64, copies, purgeEach int, env []byte) error {
	to, from := k%shapeStreams, (k+1)%shapeStreams // two partitions per pair
	toStream, fromStream := "MBX_"+strconv.Itoa(to), "MBX_"+strconv.Itoa(from)
	id := fmt.Sprintf("m%d", i)
	pairSubj := fmt.Sprintf("mbx.%d.u%d.u%d", to, k, k+shapePairs)
	if copies == 2 {
		s, err := js.PublishMsg(ctx, &nats.Msg{Subject: fmt.Sprintf("mbx.%d.u%d", from, k+shapePairs), Data: env, Header: nats.Header{nats.MsgIdHdr: {id + ".s"}}})
		if err != nil {
			return err
		}
		r, err := js.PublishMsg(ctx, &nats.Msg{Subject: fmt.Sprintf("mbx.%d.u%d", to, k), Data: env, Header: nats.Header{nats.MsgIdHdr: {id}}})
		if err != nil {
			return err
		}
		if err := jsapi.Delete(ctx, nc, fromStream, s.Sequence); err != nil {
			return err
		}
		return jsapi.Delete(ctx, nc, toStream, r.Sequence)
	}
	r, err := js.PublishMsg(ctx, &nats.Msg{Subject: pairSubj, Data: env, Header: nats.Header{nats.MsgIdHdr: {id}}})
	if err != nil {
		return err
	}
	if purgeEach == 0 {
		return jsapi.Delete(ctx, nc, toStream, r.Sequence)
	}
	p.mu <- struct{}{}
	p.pending++
	burn := p.pending >= purgeEach
	if burn {
		p.pending = 0
	}
	<-p.mu
	if !burn {
		return nil
	}
	_, err = jsapi.Purge(ctx, nc, toStream, pairSubj, r.Sequence+1)
	return err
}
