package sites_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/fabric/node"
	"github.com/mayfly-im/mayfly/fabric/sites"
)

// TestSitesRemoveServer loses city a for good: its server is killed, a
// replacement city d joins, and RemoveServer drops a. Every stream then has
// one replica per site, d's among them, and d's replica (built from the
// others) serves the messages kept and none of the ones deleted (burned)
// before the loss.
func TestSitesRemoveServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl := natstest.RunCluster(t, "", "a", "b", "c")
	b := cl.Site("b")
	nc := cl.ConnectAs(b, node.ServiceUser)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s := createStream(ctx, t, js, jetstream.StreamConfig{Name: "MBX_0", Subjects: []string{"mbx.0.*"},
		Replicas: 3, AllowDirect: true, Storage: jetstream.FileStorage})
	var kept, burned []uint64
	for i := range 40 {
		ack, err := js.Publish(ctx, "mbx.0.u"+fmt.Sprint(i%4), []byte(fmt.Sprintf("message %d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			if err := s.DeleteMsg(ctx, ack.Sequence); err != nil {
				t.Fatal(err)
			}
			burned = append(burned, ack.Sequence)
		} else {
			kept = append(kept, ack.Sequence)
		}
	}

	cl.Kill(cl.Site("a"))
	d := cl.AddSite("d")
	sys := cl.ConnectAs(b, node.SysUser)
	rm, err := sites.RemoveServer(ctx, sys, nc, "a", sites.Mayfly)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("removed: %+v", rm)
	if !rm.Meta {
		t.Fatal("RemoveServer did not remove a from the metadata group")
	}
	rep := waitPlaced(ctx, t, sys, js, "d")
	if got := rep.Streams[0].Peers; slices.ContainsFunc(got, func(p sites.Peer) bool { return p.Server == "a" }) {
		t.Fatalf("a still holds a replica: %s", rep)
	}

	// A direct get is answered by the asked server's own replica.
	dc := cl.ConnectAs(d, node.ServiceUser)
	for _, seq := range kept {
		if !served(ctx, t, dc, seq) {
			t.Fatalf("d's replica lacks kept message %d", seq)
		}
	}
	for _, seq := range burned {
		if served(ctx, t, dc, seq) {
			t.Fatalf("d's replica serves burned message %d", seq)
		}
	}
	if again, err := sites.RemoveServer(ctx, sys, nc, "a", sites.Mayfly); err != nil || again.Meta || len(again.Streams) > 0 {
		t.Fatalf("second removal = %+v, %v; want nothing left to do", again, err)
	}
}

// createStream creates cfg, repeating while the new cluster settles.
func createStream(ctx context.Context, t *testing.T, js jetstream.JetStream, cfg jetstream.StreamConfig) jetstream.Stream {
	t.Helper()
	var err error
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		var s jetstream.Stream
		s, err = js.CreateStream(cctx, cfg)
		cancel()
		if err == nil {
			return s
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("create stream %s: %v", cfg.Name, err)
	return nil
}

// waitPlaced polls until every stream has a leader, one replica per site,
// and site's replica current.
func waitPlaced(ctx context.Context, t *testing.T, sys *nats.Conn, js jetstream.JetStream, site string) sites.Report {
	t.Helper()
	var rep sites.Report
	for ctx.Err() == nil {
		where, err := sites.ServerSites(ctx, sys, 500*time.Millisecond)
		if err == nil {
			rep, err = sites.Check(ctx, js, where, sites.Mayfly)
		}
		if err == nil && rep.OK() && !slices.ContainsFunc(rep.Streams, func(s sites.Stream) bool {
			return !slices.ContainsFunc(s.Peers, func(p sites.Peer) bool { return p.Site == site && p.Current && !p.Offline })
		}) {
			return rep
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("streams not placed with a current replica in %s: %s", site, rep)
	return rep
}

// served reports whether the server nc is connected to serves seq of MBX_0.
func served(ctx context.Context, t *testing.T, nc *nats.Conn, seq uint64) bool {
	t.Helper()
	body, _ := json.Marshal(map[string]uint64{"seq": seq})
	var err error
	for range 5 {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var m *nats.Msg
		m, err = nc.RequestWithContext(rctx, "$JS.API.DIRECT.GET.MBX_0", body)
		cancel()
		if err == nil {
			return m.Header.Get("Status") == ""
		}
	}
	t.Fatalf("direct get %d: %v", seq, err)
	return false
}
