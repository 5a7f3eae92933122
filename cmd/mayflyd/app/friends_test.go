package app_test

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
	"github.com/mayfly-im/mayfly/cmd/mayflyd/app/apptest"
	"github.com/mayfly-im/mayfly/schema"
)

// friendsView is everything a user sees of their friend graph over HTTP.
type friendsView struct {
	Friends  schema.FriendList
	Requests schema.FriendRequests
	Blocks   schema.BlockList
}

func viewOf(c *apptest.Client) friendsView {
	c.T.Helper()
	var v friendsView
	c.Must(http.MethodGet, "/v1/friends", nil, &v.Friends)
	c.Must(http.MethodGet, "/v1/friends/requests", nil, &v.Requests)
	c.Must(http.MethodGet, "/v1/blocks", nil, &v.Blocks)
	return v
}

// wantErr sends a request that must fail with code and status.
func wantErr(t *testing.T, c *apptest.Client, method, path string, body any, code schema.Code) {
	t.Helper()
	st, e := c.Do(method, path, body, nil)
	if e == nil || e.Code != code || st != code.Status() {
		t.Errorf("%s %s: %d %v, want %d %s", method, path, st, e, code.Status(), code)
	}
}

func TestFriendsHTTPFlow(t *testing.T) {
	t.Parallel()
	a := apptest.Start(t, app.Config{})
	alice := apptest.NewUser(t, a.HTTPAddr(), "alice")
	bob := apptest.NewUser(t, a.HTTPAddr(), "bob")
	carol := apptest.NewUser(t, a.HTTPAddr(), "carol")

	var res schema.FriendRequestResult
	if st, e := alice.Do(http.MethodPost, "/v1/friends/requests", schema.HandleRequest{Handle: "bob"}, &res); e != nil || st != http.StatusCreated {
		t.Fatalf("request: %d %v", st, e)
	}
	if res.Request == nil || res.Friend != nil || res.Request.Handle != "bob" || res.Request.UserID != bob.User.UserID ||
		!res.Request.ExpiresAt.After(res.Request.CreatedAt.Add(13*24*time.Hour)) {
		t.Fatalf("request result = %+v", res)
	}
	v := viewOf(bob)
	if len(v.Requests.Incoming) != 1 || v.Requests.Incoming[0].Handle != "alice" || len(v.Requests.Outgoing) != 0 {
		t.Fatalf("bob's requests = %+v", v.Requests)
	}

	var acc schema.FriendRequestResult
	if st, e := bob.Do(http.MethodPost, "/v1/friends/requests/alice/accept", nil, &acc); e != nil || st != http.StatusOK {
		t.Fatalf("accept: %d %v", st, e)
	}
	if f := acc.Friend; f == nil || f.UserID != alice.User.UserID || f.IK != alice.User.IK ||
		f.Fingerprint != alice.User.Fingerprint || f.Since.IsZero() {
		t.Fatalf("accept result = %+v, want alice %+v", acc, alice.User)
	}
	if v := viewOf(alice); len(v.Friends.Friends) != 1 || v.Friends.Friends[0].Handle != "bob" ||
		len(v.Requests.Outgoing) != 0 {
		t.Fatalf("alice after accept = %+v", v)
	}

	// Mutual: carol requests alice, alice requests carol back: 200 with the friend.
	carol.Must(http.MethodPost, "/v1/friends/requests", schema.HandleRequest{Handle: "ALICE"}, nil)
	res = schema.FriendRequestResult{}
	if st, e := alice.Do(http.MethodPost, "/v1/friends/requests", schema.HandleRequest{Handle: "carol"}, &res); e != nil || st != http.StatusOK {
		t.Fatalf("mutual request: %d %v", st, e)
	}
	if res.Friend == nil || res.Friend.Handle != "carol" || res.Request != nil {
		t.Fatalf("mutual result = %+v", res)
	}

	// Decline and cancel answer 204.
	dave := apptest.NewUser(t, a.HTTPAddr(), "dave")
	dave.Must(http.MethodPost, "/v1/friends/requests", schema.HandleRequest{Handle: "alice"}, nil)
	if st, e := alice.Do(http.MethodPost, "/v1/friends/requests/dave/decline", nil, nil); e != nil || st != http.StatusNoContent {
		t.Fatalf("decline: %d %v", st, e)
	}
	dave.Must(http.MethodPost, "/v1/friends/requests", schema.HandleRequest{Handle: "alice"}, nil)
	if st, e := dave.Do(http.MethodDelete, "/v1/friends/requests/alice", nil, nil); e != nil || st != http.StatusNoContent {
		t.Fatalf("cancel: %d %v", st, e)
	}
	if v := viewOf(alice); len(v.Requests.Incoming) != 0 {
		t.Fatalf("alice's requests after decline and cancel = %+v", v.Requests)
	}

	// Remove: 204, gone on both sides.
	if st, e := bob.Do(http.MethodDelete, "/v1/friends/alice", nil, nil); e != nil || st != http.StatusNoContent {
		t.Fatalf("remove: %d %v", st, e)
	}
	if v := viewOf(bob); len(v.Friends.Friends) != 0 {
		t.Fatalf("bob's friends after remove = %+v", v.Friends)
	}
	if v := viewOf(alice); len(v.Friends.Friends) != 1 || v.Friends.Friends[0].Handle != "carol" {
		t.Fatalf("alice's friends after remove = %+v", v.Friends)
	}

	// Block and unblock.
	if st, e := alice.Do(http.MethodPost, "/v1/blocks", schema.HandleRequest{Handle: "carol"}, nil); e != nil || st != http.StatusNoContent {
		t.Fatalf("block: %d %v", st, e)
	}
	v = viewOf(alice)
	if len(v.Friends.Friends) != 0 || len(v.Blocks.Blocks) != 1 || v.Blocks.Blocks[0].Handle != "carol" ||
		v.Blocks.Blocks[0].UserID != carol.User.UserID || v.Blocks.Blocks[0].Since.IsZero() {
		t.Fatalf("alice after block = %+v", v)
	}
	if st, e := alice.Do(http.MethodDelete, "/v1/blocks/carol", nil, nil); e != nil || st != http.StatusNoContent {
		t.Fatalf("unblock: %d %v", st, e)
	}
	if v := viewOf(alice); len(v.Blocks.Blocks) != 0 {
		t.Fatalf("blocks after unblock = %+v", v.Blocks)
	}
}

func TestFriendsHTTPBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	a := apptest.Start(t, app.Config{})
	alice := apptest.NewUser(t, a.HTTPAddr(), "alice")
	bob := apptest.NewUser(t, a.HTTPAddr(), "bob")
	carol := apptest.NewUser(t, a.HTTPAddr(), "carol")
	apptest.NewUser(t, a.HTTPAddr(), "stranger")
	alice.Must(http.MethodPost, "/v1/friends/requests", schema.HandleRequest{Handle: "bob"}, nil)
	carol.Must(http.MethodPost, "/v1/friends/requests", schema.HandleRequest{Handle: "alice"}, nil)
	alice.Must(http.MethodPost, "/v1/friends/requests/carol/accept", nil, nil)
	before := [3]friendsView{viewOf(alice), viewOf(bob), viewOf(carol)}

	const reqs = "/v1/friends/requests"
	cases := []struct {
		method, path string
		body         any
		code         schema.Code
	}{
		{"POST", reqs, schema.HandleRequest{Handle: "nobody"}, schema.CodeNotFound},
		{"POST", reqs, schema.HandleRequest{Handle: "alice"}, schema.CodeSelfRequest},
		{"POST", reqs, schema.HandleRequest{Handle: "bob"}, schema.CodeRequestExists},
		{"POST", reqs, schema.HandleRequest{Handle: "carol"}, schema.CodeAlreadyFriends},
		{"POST", reqs, schema.HandleRequest{Handle: "a b"}, schema.CodeInvalidHandle},
		{"POST", reqs, schema.HandleRequest{Handle: ""}, schema.CodeInvalidHandle},
		{"POST", reqs, schema.HandleRequest{Handle: strings.Repeat("x", 33)}, schema.CodeInvalidHandle},
		{"POST", reqs, `{"handle":`, schema.CodeBadRequest},
		{"POST", reqs, `{"handle":"bob","extra":1}`, schema.CodeBadRequest},
		{"POST", reqs, `{"handle":7}`, schema.CodeBadRequest},
		{"POST", reqs, `["bob"]`, schema.CodeBadRequest},
		{"POST", reqs, `{"handle":"stranger"} {}`, schema.CodeBadRequest},
		{"POST", reqs, []byte{}, schema.CodeBadRequest},
		{"POST", reqs, `{"handle":"` + strings.Repeat("x", 20<<10) + `"}`, schema.CodeBodyTooLarge},
		{"POST", reqs + "/stranger/accept", nil, schema.CodeNoRequest},
		{"POST", reqs + "/bob/accept", nil, schema.CodeNoRequest},
		{"POST", reqs + "/nobody/accept", nil, schema.CodeNotFound},
		{"POST", reqs + "/x/accept", nil, schema.CodeInvalidHandle},
		{"POST", reqs + "/a%20b/accept", nil, schema.CodeInvalidHandle},
		{"POST", reqs + "/stranger/decline", nil, schema.CodeNoRequest},
		{"DELETE", reqs + "/stranger", nil, schema.CodeNoRequest},
		{"DELETE", "/v1/friends/stranger", nil, schema.CodeNotFriend},
		{"DELETE", "/v1/friends/bob", nil, schema.CodeNotFriend},
		{"DELETE", "/v1/friends/nobody", nil, schema.CodeNotFound},
		{"POST", "/v1/blocks", schema.HandleRequest{Handle: "alice"}, schema.CodeBadRequest},
		{"POST", "/v1/blocks", `{"user":"bob"}`, schema.CodeBadRequest},
		{"POST", "/v1/blocks", schema.HandleRequest{Handle: "nobody"}, schema.CodeNotFound},
		{"DELETE", "/v1/blocks/stranger", nil, schema.CodeNotFound},
	}
	for _, c := range cases {
		wantErr(t, alice, c.method, c.path, c.body, c.code)
	}
	after := [3]friendsView{viewOf(alice), viewOf(bob), viewOf(carol)}
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("bad input changed the graph:\nbefore %+v\nafter  %+v", before, after)
	}

	// Without a token nothing is served.
	anon := apptest.NewClient(t, a.HTTPAddr())
	wantErr(t, anon, "GET", "/v1/friends", nil, schema.CodeUnauthorized)
	wantErr(t, anon, "POST", reqs, schema.HandleRequest{Handle: "bob"}, schema.CodeUnauthorized)
}

func TestFriendsHTTPBlockedUserIsRefused(t *testing.T) {
	t.Parallel()
	a := apptest.Start(t, app.Config{})
	alice := apptest.NewUser(t, a.HTTPAddr(), "alice")
	mallory := apptest.NewUser(t, a.HTTPAddr(), "mallory")
	alice.Must(http.MethodPost, "/v1/blocks", schema.HandleRequest{Handle: "mallory"}, nil)
	ws := dialWS(t, alice)
	before := [2]friendsView{viewOf(alice), viewOf(mallory)}

	st, e := mallory.Do(http.MethodPost, "/v1/friends/requests", schema.HandleRequest{Handle: "alice"}, nil)
	if e == nil || e.Code != schema.CodeRefused || st != http.StatusForbidden {
		t.Fatalf("blocked request: %d %v, want 403 refused", st, e)
	}
	if strings.Contains(strings.ToLower(e.Message), "block") {
		t.Fatalf("refusal tells the blocked user why: %q", e.Message)
	}
	if after := [2]friendsView{viewOf(alice), viewOf(mallory)}; !reflect.DeepEqual(before, after) {
		t.Fatalf("refused request changed the graph:\nbefore %+v\nafter  %+v", before, after)
	}
	// alice is not bothered: the next event she gets is the one that
	// follows, not a request from mallory.
	bob := apptest.NewUser(t, a.HTTPAddr(), "bob")
	bob.Must(http.MethodPost, "/v1/friends/requests", schema.HandleRequest{Handle: "alice"}, nil)
	if ev := nextWSEvent(t, ws); ev.Type != schema.EventFriendRequest || ev.Peer == nil || ev.Peer.Handle != "bob" {
		t.Fatalf("alice's next event = %+v, want bob's request", ev)
	}
}

func TestFriendsWebSocketNotification(t *testing.T) {
	t.Parallel()
	a := apptest.Start(t, app.Config{})
	alice := apptest.NewUser(t, a.HTTPAddr(), "alice")
	bob := apptest.NewUser(t, a.HTTPAddr(), "bob")
	ws := dialWS(t, bob)

	alice.Must(http.MethodPost, "/v1/friends/requests", schema.HandleRequest{Handle: "bob"}, nil)
	ev := nextWSEvent(t, ws)
	if ev.Type != schema.EventFriendRequest || ev.ByMe || ev.Peer == nil || ev.Peer.Handle != "alice" ||
		ev.Peer.UserID != alice.User.UserID || ev.Peer.Fingerprint != alice.User.Fingerprint {
		t.Fatalf("event = %+v", ev)
	}
	bob.Must(http.MethodPost, "/v1/friends/requests/alice/accept", nil, nil)
	if ev := nextWSEvent(t, ws); ev.Type != schema.EventFriendAccepted || !ev.ByMe || ev.Peer.Handle != "alice" {
		t.Fatalf("event after own accept = %+v", ev)
	}
	alice.Must(http.MethodDelete, "/v1/friends/bob", nil, nil)
	if ev := nextWSEvent(t, ws); ev.Type != schema.EventFriendRemoved || ev.ByMe || ev.Peer.Handle != "alice" {
		t.Fatalf("event after removal = %+v", ev)
	}
}

// wsFrame is the part of any server frame these tests look at.
type wsFrame struct {
	Type  string        `json:"type"`
	Event *schema.Event `json:"event"`
}

// dialWS opens c's WebSocket and reads the hello frame.
func dialWS(t *testing.T, c *apptest.Client) *websocket.Conn {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + c.Session.AccessToken}}
	d := websocket.Dialer{Subprotocols: []string{schema.SubprotocolV1}, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial("ws"+strings.TrimPrefix(c.BaseURL, "http")+"/v1/ws", h)
	if err != nil {
		t.Fatalf("dial websocket: %v", err)
	}
	resp.Body.Close()
	t.Cleanup(func() { ws.Close() })
	var hello wsFrame
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := ws.ReadJSON(&hello); err != nil || hello.Type != schema.FrameHello {
		t.Fatalf("hello = %+v, %v", hello, err)
	}
	return ws
}

// nextWSEvent returns the next event frame, skipping other frames and
// presence events (presence_test.go covers those), failing after five seconds.
func nextWSEvent(t *testing.T, ws *websocket.Conn) schema.Event {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var f wsFrame
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatalf("read websocket: %v", err)
		}
		if f.Type == schema.FrameEvent && f.Event != nil &&
			f.Event.Type != schema.EventPresence && f.Event.Type != schema.EventPresenceSnapshot {
			return *f.Event
		}
	}
}
