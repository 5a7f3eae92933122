package app_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
	"github.com/mayfly-im/mayfly/cmd/mayflyd/app/apptest"
	"github.com/mayfly-im/mayfly/schema"
)

// nextPresence returns the next presence or presence_snapshot event on ws,
// skipping other frames, failing after five seconds.
func nextPresence(t *testing.T, ws *websocket.Conn) schema.Event {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var f wsFrame
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatalf("read websocket: %v", err)
		}
		if f.Type == schema.FrameEvent && f.Event != nil &&
			(f.Event.Type == schema.EventPresence || f.Event.Type == schema.EventPresenceSnapshot) {
			return *f.Event
		}
	}
}

// expectPresence reads the next presence change event and checks it is
// about userID with the given state and last_seen presence. Snapshots are
// skipped: one sent for a friend graph change may arrive after the one sent
// on connect, and each only restates the state.
func expectPresence(t *testing.T, ws *websocket.Conn, userID string, online, lastSeen bool) {
	t.Helper()
	ev := nextPresence(t, ws)
	for ev.Type == schema.EventPresenceSnapshot {
		ev = nextPresence(t, ws)
	}
	if ev.Type != schema.EventPresence || ev.Presence == nil || ev.Presence.UserID != userID ||
		ev.Presence.Online != online || (ev.Presence.LastSeen != nil) != lastSeen {
		t.Fatalf("presence event = %+v (state %+v), want %s online=%v last_seen=%v", ev, ev.Presence, userID, online, lastSeen)
	}
}

// closeWS closes ws cleanly, as a client app does when it quits.
func closeWS(ws *websocket.Conn) {
	ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
	ws.Close()
}

func TestPresenceWebSocket(t *testing.T) {
	t.Parallel()
	a := apptest.Start(t, app.Config{PresenceTTL: 3 * time.Second})
	alice := apptest.NewUser(t, a.HTTPAddr(), "alice")
	bob := apptest.NewUser(t, a.HTTPAddr(), "bob")
	carol := apptest.NewUser(t, a.HTTPAddr(), "carol")
	mallory := apptest.NewUser(t, a.HTTPAddr(), "mallory")
	alice.Must(http.MethodPost, "/v1/friends/requests", schema.HandleRequest{Handle: "bob"}, nil)
	bob.Must(http.MethodPost, "/v1/friends/requests/alice/accept", nil, nil)
	// mallory was a friend until alice blocked her.
	alice.Must(http.MethodPost, "/v1/friends/requests", schema.HandleRequest{Handle: "mallory"}, nil)
	mallory.Must(http.MethodPost, "/v1/friends/requests/alice/accept", nil, nil)
	alice.Must(http.MethodPost, "/v1/blocks", schema.HandleRequest{Handle: "mallory"}, nil)

	bws := dialWS(t, bob)
	if ev := nextPresence(t, bws); ev.Type != schema.EventPresenceSnapshot || len(ev.Presences) != 1 ||
		ev.Presences[0].UserID != alice.User.UserID || ev.Presences[0].Online {
		t.Fatalf("bob's snapshot = %+v, want alice offline", ev)
	}
	cws, mws := dialWS(t, carol), dialWS(t, mallory)
	for _, ws := range []*websocket.Conn{cws, mws} {
		if ev := nextPresence(t, ws); ev.Type != schema.EventPresenceSnapshot || len(ev.Presences) != 0 {
			t.Fatalf("a non-friend's snapshot = %+v, want empty", ev)
		}
	}

	// Online on connect, with a snapshot for alice; offline on a clean close.
	aws := dialWS(t, alice)
	expectPresence(t, bws, alice.User.UserID, true, false)
	if ev := nextPresence(t, aws); ev.Type != schema.EventPresenceSnapshot || len(ev.Presences) != 1 ||
		ev.Presences[0].UserID != bob.User.UserID || !ev.Presences[0].Online {
		t.Fatalf("alice's snapshot = %+v, want bob online", ev)
	}
	closeWS(aws)
	expectPresence(t, bws, alice.User.UserID, false, true)

	// Neither the stranger nor the blocked user heard a thing: a friend
	// request to each, published after alice's changes, is their first event.
	bob.Must(http.MethodPost, "/v1/friends/requests", schema.HandleRequest{Handle: "carol"}, nil)
	bob.Must(http.MethodPost, "/v1/friends/requests", schema.HandleRequest{Handle: "mallory"}, nil)
	for _, ws := range []*websocket.Conn{cws, mws} {
		if ev := nextWSEventAny(t, ws); ev.Type != schema.EventFriendRequest {
			t.Fatalf("a non-friend got %+v before the friend request", ev)
		}
	}

	// carol befriends alice while both are connected: carol's devices get
	// a fresh snapshot with alice online at once.
	aws = dialWS(t, alice)
	expectPresence(t, bws, alice.User.UserID, true, false)
	alice.Must(http.MethodPost, "/v1/friends/requests", schema.HandleRequest{Handle: "carol"}, nil)
	carol.Must(http.MethodPost, "/v1/friends/requests/alice/accept", nil, nil)
	for {
		ev := nextPresence(t, cws)
		if ev.Type != schema.EventPresenceSnapshot {
			t.Fatalf("carol got %+v, want a snapshot", ev)
		}
		if len(ev.Presences) == 1 && ev.Presences[0].UserID == alice.User.UserID && ev.Presences[0].Online {
			break // (an earlier snapshot may still show no friends)
		}
	}
	closeWS(aws)
	expectPresence(t, bws, alice.User.UserID, false, true)
	expectPresence(t, cws, alice.User.UserID, false, true)

	// alice hides "last seen": bob still sees online/offline, without the time.
	var set schema.PresenceSettings
	alice.Must(http.MethodPut, "/v1/settings/presence", schema.PresenceSettings{ShareLastSeen: false}, &set)
	alice.Must(http.MethodGet, "/v1/settings/presence", nil, &set)
	if set.ShareLastSeen {
		t.Fatalf("settings after opting out = %+v", set)
	}
	aws = dialWS(t, alice)
	expectPresence(t, bws, alice.User.UserID, true, false)
	closeWS(aws)
	expectPresence(t, bws, alice.User.UserID, false, false)
}

// nextWSEventAny returns the next event frame of any type but empty
// presence snapshots (a friend graph change sends one).
func nextWSEventAny(t *testing.T, ws *websocket.Conn) schema.Event {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var f wsFrame
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatalf("read websocket: %v", err)
		}
		if f.Type == schema.FrameEvent && f.Event != nil &&
			!(f.Event.Type == schema.EventPresenceSnapshot && len(f.Event.Presences) == 0) {
			return *f.Event
		}
	}
}

func TestPresenceMultiDeviceWebSocket(t *testing.T) {
	t.Parallel()
	a := apptest.Start(t, app.Config{PresenceTTL: 3 * time.Second})
	alice := apptest.NewUser(t, a.HTTPAddr(), "alice")
	bob := apptest.NewUser(t, a.HTTPAddr(), "bob")
	alice.Must(http.MethodPost, "/v1/friends/requests", schema.HandleRequest{Handle: "bob"}, nil)
	bob.Must(http.MethodPost, "/v1/friends/requests/alice/accept", nil, nil)
	laptop := alice.Device("laptop")
	bws := dialWS(t, bob)
	nextPresence(t, bws) // the snapshot

	phoneWS := dialWS(t, alice)
	expectPresence(t, bws, alice.User.UserID, true, false)
	laptopWS := dialWS(t, laptop)
	nextPresence(t, laptopWS) // its snapshot: the laptop is being made online
	closeWS(phoneWS)
	// alice stays online while the laptop is connected: the next presence
	// event bob sees is the offline one after the laptop closes too.
	closeWS(laptopWS)
	expectPresence(t, bws, alice.User.UserID, false, true)
}
