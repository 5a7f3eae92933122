package gateway_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/gateway"
	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
)

func decodeBody(resp *http.Response, v any) error {
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// wsOpen opens c's WebSocket, with the token in the Authorization header or
// (inSubprotocol) in a mayfly.token.<jwt> subprotocol, and reads the hello.
func wsOpen(t *testing.T, c *gatewaytest.Client, addr string, inSubprotocol bool) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{schema.SubprotocolV1}}
	h := http.Header{}
	if inSubprotocol {
		d.Subprotocols = append(d.Subprotocols, schema.TokenSubprotocolPrefix+c.Session.AccessToken)
	} else {
		h.Set("Authorization", "Bearer "+c.Session.AccessToken)
	}
	conn, resp, err := d.Dial("ws://"+addr+"/v1/ws", h)
	if err != nil {
		t.Fatalf("websocket dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	if p := conn.Subprotocol(); p != schema.SubprotocolV1 {
		t.Errorf("negotiated subprotocol %q, want %q (the token must never be echoed)", p, schema.SubprotocolV1)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hello struct {
		Type     string `json:"type"`
		UserID   string `json:"user_id"`
		DeviceID string `json:"device_id"`
	}
	if err := conn.ReadJSON(&hello); err != nil {
		t.Fatalf("read hello: %v", err)
	}
	if hello.Type != schema.FrameHello || hello.UserID != c.Session.UserID || hello.DeviceID != c.Session.DeviceID {
		t.Fatalf("hello = %+v", hello)
	}
	return conn
}

// wsCloseCode reads from conn until it is closed or deadline passes and
// returns the close code (0 if the deadline passed first).
func wsCloseCode(conn *websocket.Conn, deadline time.Time) int {
	conn.SetReadDeadline(deadline)
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			return 0
		}
	}
}

// wsAwaitEvent reads frames until an event of type typ about deviceID
// arrives (true) or the connection fails or deadline passes (false). Other
// frames are skipped.
func wsAwaitEvent(conn *websocket.Conn, typ schema.EventType, deviceID string, deadline time.Time) bool {
	conn.SetReadDeadline(deadline)
	for {
		var f struct {
			Type  string        `json:"type"`
			Event *schema.Event `json:"event"`
		}
		if err := conn.ReadJSON(&f); err != nil {
			return false
		}
		if f.Type == schema.FrameEvent && f.Event != nil && f.Event.Type == typ && f.Event.DeviceID == deviceID {
			return true
		}
	}
}

// TestAccountRevokeDevice revokes a device that has two live WebSockets:
// both close with CloseTokenRevoked within a second, and its tokens are
// refused from then on.
func TestAccountRevokeDevice(t *testing.T) {
	t.Parallel()
	e := startAcctEnv(t, gatewaytest.Config{})
	alice := gatewaytest.NewUser(t, e.addr, "alice")
	laptop := alice.Device("laptop")
	bob := gatewaytest.NewUser(t, e.addr, "bob")
	byHeader := wsOpen(t, laptop, e.addr, false)
	bySubprotocol := wsOpen(t, laptop, e.addr, true)
	phoneWS := wsOpen(t, alice, e.addr, false)

	e.refused(t, bob, http.MethodDelete, "/v1/devices/"+laptop.Session.DeviceID, nil, schema.CodeNotFound)
	e.refused(t, alice, http.MethodDelete, "/v1/devices/"+schema.NewDeviceID(), nil, schema.CodeNotFound)
	e.refused(t, alice, http.MethodDelete, "/v1/devices/not-an-id", nil, schema.CodeNotFound)

	start := time.Now()
	if st, err := alice.Do(http.MethodDelete, "/v1/devices/"+laptop.Session.DeviceID, nil, nil); st != http.StatusNoContent || err != nil {
		t.Fatalf("revoke = %d %v, want 204", st, err)
	}
	deadline := time.Now().Add(time.Second)
	for name, conn := range map[string]*websocket.Conn{"header": byHeader, "subprotocol": bySubprotocol} {
		if code := wsCloseCode(conn, deadline); code != schema.CloseTokenRevoked {
			t.Errorf("laptop websocket (token in %s): close code %d within 1s, want %d", name, code, schema.CloseTokenRevoked)
		}
		t.Logf("websocket (token in %s) closed %v after the revoke request was sent", name, time.Since(start))
	}

	e.refused(t, laptop, http.MethodGet, "/v1/devices", nil, schema.CodeTokenRevoked)
	if st, code := wsRefused(t, e.addr, laptop.Session.AccessToken); code != schema.CodeTokenRevoked {
		t.Errorf("websocket with the revoked token = %d %s, want token_revoked", st, code)
	}
	e.refused(t, e.client(), http.MethodPost, "/v1/refresh", schema.RefreshRequest{RefreshToken: laptop.Session.RefreshToken}, schema.CodeRefreshInvalid)
	e.refused(t, alice, http.MethodDelete, "/v1/devices/"+laptop.Session.DeviceID, nil, schema.CodeNotFound)

	var devs schema.DeviceList
	alice.Must(http.MethodGet, "/v1/devices", nil, &devs)
	if len(devs.Devices) != 1 || devs.Devices[0].DeviceID != alice.Session.DeviceID {
		t.Errorf("devices after revoke = %+v", devs)
	}
	// The phone's own connection stays open and hears about it.
	if !wsAwaitEvent(phoneWS, schema.EventDeviceRevoked, laptop.Session.DeviceID, time.Now().Add(5*time.Second)) {
		t.Error("phone got no device_revoked event for the laptop")
	}

	// The revoked device cannot log in again, nor be listed again.
	var ch schema.Challenge
	alice.Must(http.MethodPost, "/v1/login/challenge", schema.ChallengeRequest{Handle: "alice"}, &ch)
	e.refused(t, laptop, http.MethodPost, "/v1/login", gatewaytest.SignChallenge(ch, laptop.DK, "laptop"), schema.CodeDeviceRevoked)
	e.refused(t, alice, http.MethodPost, "/v1/devicelist", schema.DeviceListRequest{List: alice.SignList(alice.Acct.Keys)}, schema.CodeDeviceRevoked)

	// A device may revoke itself.
	alice.Must(http.MethodDelete, "/v1/devices/"+alice.Session.DeviceID, nil, nil)
	if code := wsCloseCode(phoneWS, time.Now().Add(time.Second)); code != schema.CloseTokenRevoked {
		t.Errorf("phone websocket after self-revoke: close code %d, want %d", code, schema.CloseTokenRevoked)
	}
}

// TestAccountWebSocketAuth checks where the handshake takes a token from:
// the Authorization header or the token subprotocol, never the query string.
func TestAccountWebSocketAuth(t *testing.T) {
	t.Parallel()
	e := startAcctEnv(t, gatewaytest.Config{})
	alice := gatewaytest.NewUser(t, e.addr, "alice")
	tok := alice.Session.AccessToken
	for _, q := range []string{"?token=", "?access_token=", "?authorization=Bearer%20"} {
		st, code := wsDialRefused(t, "ws://"+e.addr+"/v1/ws"+q+tok, nil, []string{schema.SubprotocolV1})
		if st != http.StatusUnauthorized || code != schema.CodeUnauthorized {
			t.Errorf("token in query %q: %d %s, want 401 unauthorized", q, st, code)
		}
	}
	h := http.Header{"Origin": {"https://evil.example"}, "Authorization": {"Bearer " + tok}}
	if st, code := wsDialRefused(t, "ws://"+e.addr+"/v1/ws", h, []string{schema.SubprotocolV1}); code != schema.CodeForbidden {
		t.Errorf("foreign origin: %d %s, want 403 forbidden", st, code)
	}
	// The mayfly.v1 subprotocol is required, with either token place.
	bearer := http.Header{"Authorization": {"Bearer " + tok}}
	for name, try := range map[string]struct {
		h         http.Header
		protocols []string
	}{
		"bearer, no subprotocol":              {bearer, nil},
		"bearer, other subprotocol":           {bearer, []string{"mayfly.v2"}},
		"token subprotocol without v1":        {nil, []string{schema.TokenSubprotocolPrefix + tok}},
		"token subprotocol, v1 in other case": {nil, []string{"MAYFLY.V1", schema.TokenSubprotocolPrefix + tok}},
	} {
		if st, code := wsDialRefused(t, "ws://"+e.addr+"/v1/ws", try.h, try.protocols); st != http.StatusBadRequest || code != schema.CodeBadRequest {
			t.Errorf("%s: %d %s, want 400 bad_request", name, st, code)
		}
	}
	wsOpen(t, alice, e.addr, true)
}

// TestAccountReloginEndsOldSession logs a device in again under the same
// name (what a user does to kick out whoever stole its token): the old
// session's WebSocket closes with CloseTokenRevoked, the new one stays.
func TestAccountReloginEndsOldSession(t *testing.T) {
	t.Parallel()
	e := startAcctEnv(t, gatewaytest.Config{})
	alice := gatewaytest.NewUser(t, e.addr, "alice")
	stolen := wsOpen(t, alice, e.addr, false)
	again := alice.Device("phone") // same device name: same device, next generation
	if again.Session.DeviceID != alice.Session.DeviceID {
		t.Fatalf("re-login made a new device %s, want %s", again.Session.DeviceID, alice.Session.DeviceID)
	}
	fresh := wsOpen(t, again, e.addr, false)
	if code := wsCloseCode(stolen, time.Now().Add(time.Second)); code != schema.CloseTokenRevoked {
		t.Fatalf("old session's websocket: close code %d within 1s, want %d", code, schema.CloseTokenRevoked)
	}
	if err := fresh.WriteJSON(schema.PingFrame{Type: schema.FramePing, ID: "p"}); err != nil {
		t.Fatal(err)
	}
	fresh.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var f struct{ Type string }
		if err := fresh.ReadJSON(&f); err != nil {
			t.Fatalf("new session's websocket: %v", err)
		}
		if f.Type == schema.FramePong {
			break
		}
	}
}

// TestGatewayConnectionCaps: a device may hold gateway.MaxConnsPerDevice
// WebSockets; one more is refused with 429 rate_limited, and closing one
// makes room again.
func TestGatewayConnectionCaps(t *testing.T) {
	t.Parallel()
	e := startAcctEnv(t, gatewaytest.Config{})
	alice := gatewaytest.NewUser(t, e.addr, "alice")
	var open []*websocket.Conn
	for i := 0; i < gateway.MaxConnsPerDevice; i++ {
		open = append(open, wsOpen(t, alice, e.addr, false))
	}
	if st, code := wsRefused(t, e.addr, alice.Session.AccessToken); st != http.StatusTooManyRequests || code != schema.CodeRateLimited {
		t.Fatalf("connection past the cap = %d %s, want 429 rate_limited", st, code)
	}
	open[0].Close()
	natstest.WaitFor(t, 5*time.Second, "room for a connection after closing one", func() bool {
		d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{schema.SubprotocolV1}}
		c, _, err := d.Dial("ws://"+e.addr+"/v1/ws", http.Header{"Authorization": {"Bearer " + alice.Session.AccessToken}})
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}
