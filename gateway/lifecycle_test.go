package gateway_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/fabric/callout"
	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
)

// TestAccountDeleteOwn: a user deletes its own account. A body that does
// not name its handle changes nothing; the deletion then ends its
// WebSocket and NATS connections, its friendships (the friend is told) and
// requests, removes the messages it exchanged from its friend's mailbox
// (the friend is told, recalled) and every row of the user; its handle is
// free again.
func TestAccountDeleteOwn(t *testing.T) {
	t.Parallel()
	e := startAcctEnv(t, gatewaytest.Config{Native: true})
	me := &msgEnv{t: t, srv: e.srv, addr: e.addr, dir: e.dir}
	alice, bob := me.friends("alice", "bob")
	carol := gatewaytest.NewUser(t, e.addr, "carol")
	carol.Must(http.MethodPost, "/v1/friends/requests", map[string]string{"handle": "alice"}, nil)
	aws, bws := dialWS(t, me, alice), dialWS(t, me, bob)
	aws.sync(0)
	bws.sync(0)
	toBob := aws.send(bob, "hello bob")
	bws.waitMsg(toBob.PeerSeq)
	fromBob := bws.send(alice, "hello alice")
	aws.waitMsg(fromBob.PeerSeq)
	nc, err := nats.Connect(e.srv.NATSURL(), nats.Token(alice.Session.AccessToken),
		nats.CustomInboxPrefix(callout.InboxPrefix(alice.Session.UserID)), nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("native connect: %v", err)
	}
	defer nc.Close()
	natsClosed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(natsClosed) })

	for _, body := range []any{nil, map[string]string{"handle": "bob"}, map[string]string{"handle": "nobody_here"}, map[string]string{"handle": "a"}} {
		e.refused(t, alice, http.MethodDelete, "/v1/account", body, schema.CodeBadRequest)
	}
	e.refused(t, e.client(), http.MethodDelete, "/v1/account", map[string]string{"handle": "alice"}, schema.CodeUnauthorized)

	if st, err := alice.Do(http.MethodDelete, "/v1/account", map[string]string{"handle": "ALICE"}, nil); st != http.StatusNoContent || err != nil {
		t.Fatalf("delete account = %d %v, want 204", st, err)
	}
	if code := aws.closeCode(); code != schema.CloseTokenRevoked {
		t.Errorf("alice's websocket closed with %d, want %d", code, schema.CloseTokenRevoked)
	}
	select {
	case <-natsClosed:
	case <-time.After(5 * time.Second):
		t.Errorf("alice's NATS connection still %v 5s after the deletion", nc.Status())
	}
	bws.waitFor("friend_removed", func(f any) bool {
		ev, ok := f.(*schema.EventFrame)
		return ok && ev.Event.Type == schema.EventFriendRemoved && ev.Event.Peer != nil && ev.Event.Peer.UserID == alice.Session.UserID
	})
	bws.waitEvent(schema.EventRecalled, toBob.PeerSeq)
	bws.waitEvent(schema.EventRecalled, fromBob.Seq)
	// A new device of bob's replays nothing of alice's.
	fresh := dialWS(t, me, bob.Device("laptop"))
	fresh.sync(0)
	if ms := fresh.msgs(); len(ms) != 0 {
		t.Errorf("bob's mailbox still replays %d messages: %s", len(ms), fresh.dump())
	}

	id := alice.Session.UserID
	for table, where := range map[string]string{
		"users": "id", "devices": "user_id", "friendships": "user_id", "login_challenges": "user_id",
		"user_suspensions": "user_id", "user_deletions": "user_id",
	} {
		var n int
		if err := e.db.Pool().QueryRow(context.Background(), `SELECT count(*) FROM `+table+` WHERE `+where+` = $1`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d rows of the deleted user left in %s", n, table)
		}
	}
	if n := e.count("friend_requests"); n != 0 {
		t.Errorf("%d friend requests left", n)
	}
	var fl schema.FriendList
	bob.Must(http.MethodGet, "/v1/friends", nil, &fl)
	if len(fl.Friends) != 0 {
		t.Errorf("bob's friends after the deletion: %+v", fl.Friends)
	}
	e.refused(t, bob, http.MethodGet, "/v1/users/alice", nil, schema.CodeNotFound)
	e.refused(t, alice, http.MethodGet, "/v1/devices", nil, schema.CodeTokenRevoked)
	gatewaytest.NewUser(t, e.addr, "alice") // the handle is free again
}
