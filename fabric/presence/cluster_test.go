package presence_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/schema"
)

// TestPresenceReplicatedCrashExpiry: on a real three-node cluster the
// presence bucket has three replicas, and a device that says hello once
// and vanishes goes online and then offline once its TTL passes, as on
// one node (the expiry is the bucket's, replicated).
func TestPresenceReplicatedCrashExpiry(t *testing.T) {
	t.Parallel()
	c := natstest.RunCluster(t, "", "a", "b", "c")
	friends := newFriends()
	e := newEnvOn(t, friends, c.Nodes[0], 3)
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, "presence")
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas != 3 {
		t.Fatalf("presence bucket config %+v, want 3 replicas", st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config)
	}

	alice, bob := e.user("alice"), e.user("bob")
	friends.befriend(alice, bob)
	bw := e.watch(bob)
	start := time.Now()
	if _, err := e.svc.Online(ctx, alice, schema.NewDeviceID()); err != nil {
		t.Fatalf("Online: %v", err)
	}
	bw.expect(alice, true, eventWait)
	bw.expect(alice, false, crashWait)
	if took := time.Since(start); took < testTTL {
		t.Errorf("offline after %v, before the TTL %v", took, testTTL)
	}
}
