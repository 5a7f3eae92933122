package friends_test

import (
	"context"
	"testing"

	"github.com/mayfly-im/mayfly/fabric/friends"
)

// BenchmarkFriendsCanMessageHot measures the send path's check for a user
// whose friend list is cached: no database or network round trip.
func BenchmarkFriendsCanMessageHot(b *testing.B) {
	e := newEnv(b, friends.Config{})
	ctx := context.Background()
	me := e.user("me")
	var last string
	for _, f := range e.users("f", 20) {
		e.befriend(me, f)
		last = f.ID
	}
	if err := e.svc.CanMessage(ctx, me.ID, last); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := e.svc.CanMessage(ctx, me.ID, last); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFriendsCanMessageCold measures a check that loads the friend
// list from Postgres: the one-entry cache is pointed at another user before
// every check, so each op is two loads.
func BenchmarkFriendsCanMessageCold(b *testing.B) {
	e := newEnv(b, friends.Config{GraphSize: 1})
	ctx := context.Background()
	me, other := e.user("me"), e.user("other")
	f := e.user("f")
	e.befriend(me, f)
	b.ReportAllocs()
	for b.Loop() {
		e.svc.FriendIDs(ctx, other.ID) // evicts me
		if err := e.svc.CanMessage(ctx, me.ID, f.ID); err != nil {
			b.Fatal(err)
		}
	}
}
