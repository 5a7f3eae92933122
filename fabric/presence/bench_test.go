package presence

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/schema"
)

type noFriends struct{}

func (noFriends) FriendIDs(context.Context, string) ([]string, error) { return nil, nil }

// BenchmarkPresenceRefresh measures the batched refresh path a Tracker uses
// (expected-revision writes with a TTL, asynchronous, trackerBatch in
// flight) on the embedded single node: one op is one device refreshed.
//
//	go test -run XXX -bench PresenceRefresh -benchtime 100000x ./fabric/presence
func BenchmarkPresenceRefresh(b *testing.B) {
	n := natstest.Run(b)
	nc := natstest.Connect(b, n)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := New(ctx, Config{NATS: nc, Friends: noFriends{}})
	if err != nil {
		b.Fatal(err)
	}
	const devices = 10000
	subjects := make([]string, devices)
	msgs := make([]*nats.Msg, devices)
	for i := range subjects {
		subjects[i], _ = s.deviceKey(schema.NewUserID(), schema.NewDeviceID())
		msgs[i] = s.onlineMsg(subjects[i])
	}
	revs := make([]uint64, devices)
	for i, r := range s.publishAll(msgs) {
		if r.err != nil {
			b.Fatal(r.err)
		}
		revs[i] = r.seq
	}
	b.ResetTimer()
	for done := 0; done < b.N; {
		k := min(devices, b.N-done)
		for i := range k {
			msgs[i] = s.refreshMsg(subjects[i], revs[i])
		}
		for i, r := range s.publishAll(msgs[:k]) {
			if r.err != nil {
				b.Fatal(r.err)
			}
			revs[i] = r.seq
		}
		done += k
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refreshes/s")
}
