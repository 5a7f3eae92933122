package mailbox

import (
	"context"
	"time"

	"fmt"
	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/fabric/node"
	"sync/atomic"
	"testing"
)

// benchFixture is a single embedded node with sync_interval always (the
// node's default) and room for b.N messages in one mailbox.
func benchFixture(b *testing.B) (*fixture, user, user) {
	f := newFixture(b, benchConfig)
	x, y := f.friendsPair(b)
	return f, x, y
}

func benchConfig(c *Config) { c.MaxPerMailbox, c.Partitions = 1<<30, DefaultPartitions }

// sealN seals n small envelopes from x to y (outside the timer: sealing is
// the client's work).
func sealN(b *testing.B, x, y user, n int) [][]byte {
	envs := make([][]byte, n)
	for i := range envs {
		envs[i] = seal(b, x, y, fmt.Sprintf("b-%08d", i), "a short message of about eighty bytes, like most chat lines are")
	}
	return envs
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkMailboxSend: one sender, one message at a time; each op stores
// the sync copy and the recipient's copy (two acknowledged writes). The
// sync=1m variant shows what fsync on every write costs: it runs the node
// with a one-minute sync_interval, which Mayfly does not use.
func BenchmarkMailboxSend(b *testing.B) {
	b.Run("sync=always", func(b *testing.B) {
		f, x, y := benchFixture(b)
		benchSend(b, f, x, y)
	})
	b.Run("sync=1m", func(b *testing.B) {
		n, err := node.Start(node.Config{
			Listen: "127.0.0.1:0", StoreDir: b.TempDir(), ServicePassword: natstest.Password,
			SyncInterval: time.Minute,
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(n.Shutdown)
		f := newFixtureOn(b, n, benchConfig)
		x, y := f.friendsPair(b)
		benchSend(b, f, x, y)
	})
}

func benchSend(b *testing.B, f *fixture, x, y user) {
	envs := sealN(b, x, y, b.N)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		if _, err := f.svc.Send(ctx, x.id, x.device, y.id, envs[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportRate(b)
}

// BenchmarkMailboxSendParallel: 64 sender/recipient pairs spread over the
// partitions, 8 goroutines per core: the relay's throughput rather than one
// send's latency.
func BenchmarkMailboxSendParallel(b *testing.B) {
	f, _, _ := benchFixture(b)
	const pairs = 64
	var froms, tos [pairs]user
	for i := range pairs {
		froms[i], tos[i] = f.friendsPair(b)
	}
	envs := make([][]byte, b.N)
	for i := range envs {
		envs[i] = seal(b, froms[i%pairs], tos[i%pairs], fmt.Sprintf("p-%08d", i), "a short message of about eighty bytes, like most chat lines are")
	}
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			p := i % pairs
			if _, err := f.svc.Send(ctx, froms[p].id, froms[p].device, tos[p].id, envs[i]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportRate(b)
}

// BenchmarkMailboxRead: burn after reading; each op loads the message and
// deletes both copies (events included).
func BenchmarkMailboxRead(b *testing.B) {
	f, x, y := benchFixture(b)
	envs := sealN(b, x, y, b.N)
	ctx := context.Background()
	seqs := make([]uint64, b.N)
	for i := range b.N {
		res, err := f.svc.Send(ctx, x.id, x.device, y.id, envs[i])
		if err != nil {
			b.Fatal(err)
		}
		seqs[i] = res.PeerSeq
	}
	b.ResetTimer()
	for _, seq := range seqs {
		if _, err := f.svc.Read(ctx, y.id, seq); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportRate(b)
}

// BenchmarkMailboxRotate: one rotation pass over 16 partitions that each
// stored a message since the previous pass (the worst case: every stream
// is filled and purged), sync_interval always. The filler bytes written
// per pass are reported as MB/op.
func BenchmarkMailboxRotate(b *testing.B) {
	f := newFixture(b, func(c *Config) { benchConfig(c); c.RotateInterval = -1 })
	users := make([]user, 0, 64)
	for len(users) < 64 {
		x, y := f.friendsPair(b)
		users = append(users, x, y)
	}
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		for i := 0; i < len(users); i += 2 { // 32 senders and recipients hit all 16 partitions
			f.send(b, users[i], users[i+1], "keep")
		}
		b.StartTimer()
		if err := f.svc.Rotate(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(DefaultPartitions*fillers*fillerSize)/1e6, "MB/op")
}
