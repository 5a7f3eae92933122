package friends_test

import (
	"context"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/fabric/account"
	"github.com/mayfly-im/mayfly/fabric/friends"
	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/schema"
)

func TestFriendsRequestAccept(t *testing.T) {
	t.Parallel()
	e := newEnv(t, friends.Config{})
	ctx := context.Background()
	a, b := e.user("ann"), e.user("bob")
	bEvents, aEvents := e.events(b), e.events(a)

	res, err := e.svc.Request(ctx, a.ID, b.Handle)
	if err != nil {
		t.Fatal(err)
	}
	r := res.Request
	if res.Friend != nil || r == nil || r.UserID != b.ID || r.Handle != b.Handle {
		t.Fatalf("request result = %+v", res)
	}
	if ttl := r.ExpiresAt.Sub(r.CreatedAt); ttl != friends.DefaultRequestTTL {
		t.Fatalf("request ttl = %v, want %v", ttl, friends.DefaultRequestTTL)
	}
	if ev := nextEvent(t, bEvents); ev.Type != schema.EventFriendRequest || ev.Peer.UserID != a.ID || ev.ByMe {
		t.Fatalf("b's event = %+v", ev)
	}
	if ev := nextEvent(t, aEvents); ev.Type != schema.EventFriendRequest || ev.Peer.UserID != b.ID || !ev.ByMe {
		t.Fatalf("a's event = %+v", ev)
	}
	sa, sb := e.state(a), e.state(b)
	if len(sa.Requests.Outgoing) != 1 || sa.Requests.Outgoing[0] != *r || len(sa.Requests.Incoming) != 0 {
		t.Fatalf("a's requests = %+v", sa.Requests)
	}
	if in := sb.Requests.Incoming; len(in) != 1 || in[0].UserID != a.ID || in[0].Handle != a.Handle {
		t.Fatalf("b's requests = %+v", sb.Requests)
	}
	if err := e.svc.CanMessage(ctx, a.ID, b.ID); !schema.HasCode(err, schema.CodeNotFriend) {
		t.Fatalf("CanMessage before accept = %v", err)
	}

	f, err := e.svc.Accept(ctx, b.ID, a.Handle)
	if err != nil {
		t.Fatal(err)
	}
	pa := account.PublicUser(a)
	if f.UserID != a.ID || f.Handle != a.Handle || f.IK != pa.IK ||
		f.Fingerprint != pa.Fingerprint || f.Fingerprint == "" || f.Since.IsZero() {
		t.Fatalf("friend = %+v, want %+v", f, pa)
	}
	if ev := nextEvent(t, aEvents); ev.Type != schema.EventFriendAccepted || ev.Peer.UserID != b.ID || ev.ByMe {
		t.Fatalf("a's event = %+v", ev)
	}
	if ev := nextEvent(t, bEvents); ev.Type != schema.EventFriendAccepted || !ev.ByMe {
		t.Fatalf("b's event = %+v", ev)
	}
	sa, sb = e.state(a), e.state(b)
	if len(sa.Friends.Friends) != 1 || sa.Friends.Friends[0].UserID != b.ID || sb.Friends.Friends[0] != f {
		t.Fatalf("friend lists: a %+v, b %+v", sa.Friends, sb.Friends)
	}
	if len(sa.Requests.Outgoing)+len(sb.Requests.Incoming) != 0 {
		t.Fatal("the accepted request is still pending")
	}
	for _, pair := range [][2]string{{a.ID, b.ID}, {b.ID, a.ID}} {
		if err := e.svc.CanMessage(ctx, pair[0], pair[1]); err != nil {
			t.Fatalf("CanMessage %v = %v", pair, err)
		}
	}
	ids, err := e.svc.FriendIDs(ctx, a.ID)
	if err != nil || len(ids) != 1 || ids[0] != b.ID {
		t.Fatalf("FriendIDs = %v, %v", ids, err)
	}
	if n := e.rows("friendships", "true"); n != 2 {
		t.Fatalf("friendship rows = %d, want the mirror pair", n)
	}
}

func TestFriendsMutualRequestAccepts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, friends.Config{})
	ctx := context.Background()
	a, b := e.user("ann"), e.user("bob")
	if _, err := e.svc.Request(ctx, a.ID, b.Handle); err != nil {
		t.Fatal(err)
	}
	aEvents := e.events(a)
	res, err := e.svc.Request(ctx, b.ID, a.Handle)
	if err != nil {
		t.Fatal(err)
	}
	if res.Request != nil || res.Friend == nil || res.Friend.UserID != a.ID {
		t.Fatalf("mutual request result = %+v", res)
	}
	if ev := nextEvent(t, aEvents); ev.Type != schema.EventFriendAccepted || ev.Peer.UserID != b.ID {
		t.Fatalf("a's event = %+v", ev)
	}
	sa, sb := e.state(a), e.state(b)
	if len(sa.Friends.Friends) != 1 || len(sb.Friends.Friends) != 1 {
		t.Fatalf("friends: a %+v b %+v", sa.Friends, sb.Friends)
	}
	if len(sa.Requests.Outgoing)+len(sa.Requests.Incoming)+len(sb.Requests.Outgoing)+len(sb.Requests.Incoming) != 0 {
		t.Fatal("requests left pending after mutual accept")
	}
}

func TestFriendsDeclineCancelRemove(t *testing.T) {
	t.Parallel()
	e := newEnv(t, friends.Config{})
	ctx := context.Background()
	a, b := e.user("ann"), e.user("bob")
	aEvents, bEvents := e.events(a), e.events(b)

	t.Run("decline", func(t *testing.T) {
		if _, err := e.svc.Request(ctx, a.ID, b.Handle); err != nil {
			t.Fatal(err)
		}
		nextEvent(t, bEvents)
		nextEvent(t, aEvents)
		if err := e.svc.Decline(ctx, b.ID, a.Handle); err != nil {
			t.Fatal(err)
		}
		if ev := nextEvent(t, aEvents); ev.Type != schema.EventRequestDeclined || ev.Peer.UserID != b.ID || ev.ByMe {
			t.Fatalf("a's event = %+v", ev)
		}
		nextEvent(t, bEvents)
		if s := e.state(a); len(s.Requests.Outgoing) != 0 || len(s.Friends.Friends) != 0 {
			t.Fatalf("a after decline = %+v", s)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		if _, err := e.svc.Request(ctx, a.ID, b.Handle); err != nil {
			t.Fatal(err)
		}
		nextEvent(t, bEvents)
		nextEvent(t, aEvents)
		if err := e.svc.Cancel(ctx, a.ID, b.Handle); err != nil {
			t.Fatal(err)
		}
		if ev := nextEvent(t, bEvents); ev.Type != schema.EventRequestCancelled || ev.Peer.UserID != a.ID || ev.ByMe {
			t.Fatalf("b's event = %+v", ev)
		}
		nextEvent(t, aEvents)
		if s := e.state(b); len(s.Requests.Incoming) != 0 {
			t.Fatalf("b after cancel = %+v", s)
		}
	})
	t.Run("remove", func(t *testing.T) {
		e.befriend(a, b)
		for range 2 {
			nextEvent(t, aEvents)
		}
		for range 2 {
			nextEvent(t, bEvents)
		}
		if err := e.svc.Remove(ctx, b.ID, a.Handle); err != nil {
			t.Fatal(err)
		}
		if ev := nextEvent(t, aEvents); ev.Type != schema.EventFriendRemoved || ev.Peer.UserID != b.ID || ev.ByMe {
			t.Fatalf("a's event = %+v", ev)
		}
		if e.friendCount(a)+e.friendCount(b) != 0 || e.rows("friendships", "true") != 0 {
			t.Fatal("friendship left after remove")
		}
		if err := e.svc.CanMessage(ctx, a.ID, b.ID); !schema.HasCode(err, schema.CodeNotFriend) {
			t.Fatalf("CanMessage after remove = %v", err)
		}
	})
}

func TestFriendsBlock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, friends.Config{})
	ctx := context.Background()
	a, b, c := e.user("ann"), e.user("bob"), e.user("cat")
	e.befriend(a, b)
	if _, err := e.svc.Request(ctx, c.ID, a.Handle); err != nil {
		t.Fatal(err)
	}
	bEvents, cEvents := e.events(b), e.events(c)

	// a blocks b (a friend) and c (who has a pending request to a).
	if err := e.svc.Block(ctx, a.ID, b.Handle); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Block(ctx, a.ID, c.Handle); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, bEvents); ev.Type != schema.EventFriendRemoved || ev.Peer.UserID != a.ID {
		t.Fatalf("blocked friend's event = %+v, want friend_removed", ev)
	}
	if ev := nextEvent(t, cEvents); ev.Type != schema.EventRequestDeclined {
		t.Fatalf("blocked requester's event = %+v, want request_declined", ev)
	}
	e.noEvent(bEvents)
	e.noEvent(cEvents)
	if err := e.svc.CanMessage(ctx, b.ID, a.ID); !schema.HasCode(err, schema.CodeNotFriend) {
		t.Fatalf("CanMessage from blocked = %v", err)
	}
	sa := e.state(a)
	if len(sa.Friends.Friends) != 0 || len(sa.Requests.Incoming) != 0 || len(sa.Blocks.Blocks) != 2 ||
		sa.Blocks.Blocks[0].UserID != b.ID || sa.Blocks.Blocks[1].Handle != c.Handle {
		t.Fatalf("blocker's state = %+v", sa)
	}
	if err := e.svc.Block(ctx, a.ID, b.Handle); err != nil {
		t.Fatalf("blocking twice: %v", err)
	}
	sameState(t, "blocking twice", sa, e.state(a))

	// The blocked user's requests are refused with no reason, and change nothing.
	sb := e.state(b)
	_, err := e.svc.Request(ctx, b.ID, a.Handle)
	wantCode(t, "request to blocker", err, schema.CodeRefused)
	if m := schema.AsError(err).Message; m != "the request was refused" {
		t.Fatalf("refusal message %q says more than a refusal", m)
	}
	sameState(t, "refused request (blocker)", sa, e.state(a))
	sameState(t, "refused request (blocked)", sb, e.state(b))
	e.noEvent(bEvents)

	// The blocker is told to unblock first.
	_, err = e.svc.Request(ctx, a.ID, b.Handle)
	wantCode(t, "request to blocked", err, schema.CodeForbidden)

	if err := e.svc.Unblock(ctx, a.ID, b.Handle); err != nil {
		t.Fatal(err)
	}
	if s := e.state(a); len(s.Blocks.Blocks) != 1 || s.Blocks.Blocks[0].UserID != c.ID {
		t.Fatalf("blocks after unblock = %+v", s.Blocks)
	}
	if s := e.state(b); len(s.Friends.Friends) != 0 {
		t.Fatal("unblock restored the friendship")
	}
	if _, err := e.svc.Request(ctx, b.ID, a.Handle); err != nil {
		t.Fatalf("request after unblock: %v", err)
	}
	wantCode(t, "unblock again", e.svc.Unblock(ctx, a.ID, b.Handle), schema.CodeNotFound)
}

func TestFriendsRequestExpiry(t *testing.T) {
	t.Parallel()
	ttl := 300 * time.Millisecond
	e := newEnv(t, friends.Config{RequestTTL: ttl})
	ctx := context.Background()
	a, b := e.user("ann"), e.user("bob")
	res, err := e.svc.Request(ctx, a.ID, b.Handle)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Request.ExpiresAt.Sub(res.Request.CreatedAt); got != ttl {
		t.Fatalf("ttl = %v, want %v", got, ttl)
	}
	natstest.WaitFor(t, 10*time.Second, "the request to expire", func() bool { return len(e.state(b).Requests.Incoming) == 0 })
	if s := e.state(a); len(s.Requests.Outgoing) != 0 {
		t.Fatalf("expired request still listed as outgoing: %+v", s.Requests)
	}
	_, err = e.svc.Accept(ctx, b.ID, a.Handle)
	wantCode(t, "accept expired", err, schema.CodeNoRequest)
	wantCode(t, "decline expired", e.svc.Decline(ctx, b.ID, a.Handle), schema.CodeNoRequest)
	wantCode(t, "cancel expired", e.svc.Cancel(ctx, a.ID, b.Handle), schema.CodeNoRequest)
	if n := e.rows("friend_requests", "true"); n != 1 {
		t.Fatalf("expired rows = %d, want 1 until pruned", n)
	}
	n, err := e.db.PruneFriends(ctx, time.Hour)
	if err != nil || n != 1 || e.rows("friend_requests", "true") != 0 {
		t.Fatalf("prune = %d, %v", n, err)
	}
	// An expired request neither blocks a new one nor turns it mutual.
	if _, err := e.svc.Request(ctx, a.ID, b.Handle); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 10*time.Second, "the new request to expire", func() bool { return len(e.state(b).Requests.Incoming) == 0 })
	res, err = e.svc.Request(ctx, b.ID, a.Handle)
	if err != nil || res.Request == nil {
		t.Fatalf("request after the other side's expired = %+v, %v; want a new pending request", res, err)
	}
}

func TestFriendsPruneLoop(t *testing.T) {
	t.Parallel()
	e := newEnv(t, friends.Config{RequestTTL: time.Millisecond, PruneInterval: 20 * time.Millisecond})
	a, b := e.user("ann"), e.user("bob")
	if _, err := e.svc.Request(context.Background(), a.ID, b.Handle); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 10*time.Second, "the expired request to be pruned", func() bool { return e.rows("friend_requests", "true") == 0 })
}

func TestFriendsRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, friends.Config{})
	ctx := context.Background()
	a, b, c := e.user("ann"), e.user("bob"), e.user("cat")
	for i := range friends.DefaultRequestRate {
		if _, err := e.svc.Request(ctx, a.ID, b.Handle); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if err := e.svc.Cancel(ctx, a.ID, b.Handle); err != nil {
			t.Fatal(err)
		}
	}
	before := e.state(a)
	_, err := e.svc.Request(ctx, a.ID, c.Handle)
	wantCode(t, "request over the rate", err, schema.CodeRateLimited)
	if !schema.AsError(err).Temporary {
		t.Fatal("rate_limited is not marked temporary")
	}
	sameState(t, "rate-limited request", before, e.state(a))
	if s := e.state(c); len(s.Requests.Incoming) != 0 {
		t.Fatal("rate-limited request arrived")
	}
	// Other users are not affected, and the limit holds for a second
	// service (another process) as well: it is kept in Postgres.
	if _, err := e.svc.Request(ctx, b.ID, c.Handle); err != nil {
		t.Fatal(err)
	}
	_, err = e.service(friends.Config{}).Request(ctx, a.ID, c.Handle)
	wantCode(t, "request over the rate, other process", err, schema.CodeRateLimited)
	// Attempts older than the window stop counting.
	if _, err := e.db.Pool().Exec(ctx, `UPDATE friend_request_attempts SET at = at - interval '61 minutes'`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Request(ctx, a.ID, c.Handle); err != nil {
		t.Fatalf("request after the window: %v", err)
	}
}

func TestFriendsRequestLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, friends.Config{RequestRate: 100})
	ctx := context.Background()
	a := e.user("ann")
	for _, u := range e.users("to", schema.MaxOutgoingRequests) {
		if _, err := e.svc.Request(ctx, a.ID, u.Handle); err != nil {
			t.Fatal(err)
		}
	}
	last := e.user("last")
	before := e.state(a)
	_, err := e.svc.Request(ctx, a.ID, last.Handle)
	wantCode(t, "request over the pending cap", err, schema.CodeRequestLimit)
	sameState(t, "request over the pending cap", before, e.state(a))
	// Requests to you do not count: last may still request a.
	if _, err := e.svc.Request(ctx, last.ID, a.Handle); err != nil {
		t.Fatal(err)
	}
}

func TestFriendsBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, friends.Config{})
	ctx := context.Background()
	a, b, friend, stranger := e.user("ann"), e.user("bob"), e.user("fay"), e.user("sam")
	e.befriend(a, friend)
	if _, err := e.svc.Request(ctx, a.ID, b.Handle); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Block(ctx, a.ID, e.user("blk").Handle); err != nil {
		t.Fatal(err)
	}
	want := [4]state{e.state(a), e.state(b), e.state(friend), e.state(stranger)}
	request := func(h string) error { _, err := e.svc.Request(ctx, a.ID, h); return err }
	accept := func(h string) error { _, err := e.svc.Accept(ctx, a.ID, h); return err }
	cases := []struct {
		name string
		err  error
		code schema.Code
	}{
		{"request unknown handle", request("nobody_here"), schema.CodeNotFound},
		{"request bad handle", request("a b"), schema.CodeInvalidHandle},
		{"request empty handle", request(""), schema.CodeInvalidHandle},
		{"request self", request(a.Handle), schema.CodeSelfRequest},
		{"request duplicate", request(b.Handle), schema.CodeRequestExists},
		{"request duplicate, other case", request(toUpper(b.Handle)), schema.CodeRequestExists},
		{"request friend", request(friend.Handle), schema.CodeAlreadyFriends},
		{"accept without request", accept(stranger.Handle), schema.CodeNoRequest},
		{"accept own outgoing", accept(b.Handle), schema.CodeNoRequest},
		{"accept self", accept(a.Handle), schema.CodeNoRequest},
		{"accept unknown", accept("nobody_here"), schema.CodeNotFound},
		{"decline without request", e.svc.Decline(ctx, a.ID, stranger.Handle), schema.CodeNoRequest},
		{"decline bad handle", e.svc.Decline(ctx, a.ID, "x"), schema.CodeInvalidHandle},
		{"cancel without request", e.svc.Cancel(ctx, a.ID, stranger.Handle), schema.CodeNoRequest},
		{"cancel incoming instead", e.svc.Cancel(ctx, b.ID, a.Handle), schema.CodeNoRequest},
		{"remove non-friend", e.svc.Remove(ctx, a.ID, stranger.Handle), schema.CodeNotFriend},
		{"remove self", e.svc.Remove(ctx, a.ID, a.Handle), schema.CodeNotFriend},
		{"remove unknown", e.svc.Remove(ctx, a.ID, "nobody_here"), schema.CodeNotFound},
		{"block self", e.svc.Block(ctx, a.ID, a.Handle), schema.CodeBadRequest},
		{"block bad handle", e.svc.Block(ctx, a.ID, "no/slash"), schema.CodeInvalidHandle},
		{"unblock not blocked", e.svc.Unblock(ctx, a.ID, stranger.Handle), schema.CodeNotFound},
	}
	// The calls ran, in order, when cases was built.
	for _, c := range cases {
		if !schema.HasCode(c.err, c.code) {
			t.Errorf("%s: err = %v, want %s", c.name, c.err, c.code)
		}
	}
	got := [4]state{e.state(a), e.state(b), e.state(friend), e.state(stranger)}
	for i := range want {
		sameState(t, "bad input", want[i], got[i])
	}
	if err := e.svc.CanMessage(ctx, a.ID, "not-an-id"); !schema.HasCode(err, schema.CodeNotFriend) {
		t.Fatalf("CanMessage with a bad id = %v", err)
	}
	if err := e.svc.CanMessage(ctx, a.ID, a.ID); !schema.HasCode(err, schema.CodeNotFriend) {
		t.Fatalf("CanMessage to self = %v", err)
	}
	if _, err := e.svc.FriendIDs(ctx, "u.*"); err == nil {
		t.Fatal("FriendIDs accepted a malformed id")
	}
}

func toUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func TestFriendsAnnounceKeyChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, friends.Config{})
	a, b, c := e.user("ann"), e.user("bob"), e.user("cat")
	e.befriend(a, b)
	bEvents, cEvents := e.events(b), e.events(c)
	if err := e.svc.AnnounceKeyChange(context.Background(), a.ID); err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, bEvents)
	if ev.Type != schema.EventFriendKeysChanged || ev.Peer.UserID != a.ID || ev.Peer.Fingerprint != account.PublicUser(a).Fingerprint {
		t.Fatalf("friend's event = %+v", ev)
	}
	e.noEvent(cEvents)
	wantCode(t, "unknown user", e.svc.AnnounceKeyChange(context.Background(), schema.NewUserID()), schema.CodeNotFound)
}
