package mailbox

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/fabric/natstest"
)

// clusterFixture starts a real three-node in-process cluster and a Service
// with Replicas 3 on node i (its connection is in-process: it dies with
// its node).
func clusterFixture(t *testing.T) (*natstest.Cluster, func(i int) *fixture) {
	t.Helper()
	c := natstest.RunCluster(t, "", "a", "b", "c")
	return c, func(i int) *fixture {
		t.Helper()
		return newFixtureOn(t, c.Nodes[i], func(cfg *Config) { cfg.Replicas = 3 })
	}
}

// streamLeader returns the index of the node leading stream and the
// stream's replica count, waiting until the stream has a leader.
func streamLeader(t *testing.T, c *natstest.Cluster, f *fixture, stream string) (leader, replicas int) {
	t.Helper()
	natstest.WaitFor(t, 30*time.Second, stream+" to have a leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := f.svc.js.Stream(ctx, stream)
		if err != nil {
			return false
		}
		info := s.CachedInfo()
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return false
		}
		leader, replicas = c.Site(info.Cluster.Leader), info.Config.Replicas
		return true
	})
	return leader, replicas
}

// TestMailboxReplicatedSurvivesLeaderLoss: on three nodes with Replicas 3
// a message is stored on every node; when the node leading the
// recipient's stream dies, a Service on a survivor sends again (a new
// leader is elected), replays both messages, and burns one (it is gone
// from the replay, the other stays).
func TestMailboxReplicatedSurvivesLeaderLoss(t *testing.T) {
	t.Parallel()
	c, on := clusterFixture(t)
	f0 := on(0)
	a, b := f0.friendsPair(t)
	first := f0.send(t, a, b, "before the loss")
	stream := f0.svc.stream(b.id)
	leader, replicas := streamLeader(t, c, f0, stream)
	if replicas != 3 {
		t.Fatalf("%s has %d replicas, want 3", stream, replicas)
	}
	natstest.WaitFor(t, 30*time.Second, "every replica of "+stream+" to hold the message", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := f0.svc.js.Stream(ctx, stream)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		return err == nil && info.Cluster != nil && len(info.Cluster.Replicas) == 2 &&
			!slices.ContainsFunc(info.Cluster.Replicas, func(p *jetstream.PeerInfo) bool { return !p.Current || p.Lag > 0 })
	})

	survivor := (leader + 1) % len(c.Nodes)
	fs := on(survivor)
	fs.friends.befriend(a.id, b.id)
	c.Kill(leader)

	// One message id for every try: a try that timed out but was stored
	// is deduplicated, so b's mailbox holds it once.
	env := seal(t, a, b, nextMsgID(), "after the loss")
	var second SendResult
	natstest.WaitFor(t, 60*time.Second, "a send after the leader's loss", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		res, err := fs.svc.Send(ctx, a.id, a.device, b.id, env)
		second = res
		return err == nil
	})
	var got []Message
	natstest.WaitFor(t, 30*time.Second, "a replay with both messages", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		got, _, _ = fs.svc.Fetch(ctx, b.id, 0, MaxFetch)
		return len(got) == 2
	})
	if got[0].Seq != first.PeerSeq || got[1].Seq != second.PeerSeq {
		t.Fatalf("replay after the loss = seqs %d, %d; want %d, %d", got[0].Seq, got[1].Seq, first.PeerSeq, second.PeerSeq)
	}
	if _, err := fs.svc.Read(testContext(t), b.id, first.PeerSeq); err != nil {
		t.Fatalf("burn after the loss: %v", err)
	}
	// A follower answering a Direct Get may serve the burned message for a
	// moment (docs/fabric.md); every replica drops it soon after.
	natstest.WaitFor(t, 10*time.Second, "the burned message gone from the replay", func() bool {
		left := fs.fetchAll(t, b.id)
		return len(left) == 1 && left[0].Seq == second.PeerSeq
	})
}
