package app

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
	"github.com/mayfly-im/mayfly/store/storetest"
)

// TestAppRevocationLostWhileNATSDown revokes a device without any event
// reaching the gateway (as if its NATS connection were down at that moment),
// then breaks the gateway's NATS connection: on reconnect the gateway looks
// at its WebSockets again and closes the revoked device's with 4001.
func TestAppRevocationLostWhileNATSDown(t *testing.T) {
	t.Parallel()
	a, err := Start(context.Background(), Config{
		DatabaseURL: storetest.NewURL(t), DataDir: t.TempDir(),
		HTTPListen: "127.0.0.1:0", NATSListen: "127.0.0.1:0", NATSWebSocketListen: "off",
		AnonRate: 1000, AnonBurst: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop(context.Background()) })
	sess := registerAndLogin(t, "http://"+a.HTTPAddr(), "alice")

	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{schema.SubprotocolV1}}
	ws, _, err := d.Dial("ws://"+a.HTTPAddr()+"/v1/ws", http.Header{"Authorization": {"Bearer " + sess.AccessToken}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	// A pong proves the connection is past its own after-subscribe check.
	if err := ws.WriteJSON(schema.PingFrame{Type: schema.FramePing, ID: "p"}); err != nil {
		t.Fatal(err)
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var f struct{ Type string }
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatalf("waiting for pong: %v", err)
		}
		if f.Type == schema.FramePong {
			break
		}
	}

	if err := a.db.RevokeDevice(context.Background(), sess.UserID, sess.DeviceID); err != nil {
		t.Fatal(err)
	}
	cid, err := a.nc.GetClientID()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.node.Server().DisconnectClientByID(cid); err != nil {
		t.Fatal(err)
	}
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, schema.CloseTokenRevoked) {
			t.Fatalf("websocket ended with %v, want close %d", err, schema.CloseTokenRevoked)
		}
		return
	}
}

func registerAndLogin(t *testing.T, base, handle string) schema.Session {
	t.Helper()
	_, ik, _ := ed25519.GenerateKey(nil)
	_, dk, _ := ed25519.GenerateKey(nil)
	b64 := base64.RawURLEncoding.EncodeToString
	var u schema.User
	post(t, base+"/v1/register", schema.RegisterRequest{Handle: handle, IK: b64(ik.Public().(ed25519.PublicKey))}, &u)
	list, err := envelope.SignDeviceList(u.UserID, 1, time.Now(), []ed25519.PublicKey{dk.Public().(ed25519.PublicKey)}, ik)
	if err != nil {
		t.Fatal(err)
	}
	post(t, base+"/v1/devicelist", schema.DeviceListRequest{List: list}, nil)
	var ch schema.Challenge
	post(t, base+"/v1/login/challenge", schema.ChallengeRequest{Handle: handle}, &ch)
	nonce, _ := base64.RawURLEncoding.DecodeString(ch.Nonce)
	id := envelope.DeviceID(dk.Public().(ed25519.PublicKey))
	sig := ed25519.Sign(dk, schema.LoginMessage(ch.ChallengeID, id, nonce))
	var s schema.Session
	post(t, base+"/v1/login", schema.LoginRequest{ChallengeID: ch.ChallengeID, DeviceID: id, Signature: b64(sig), DeviceName: "phone"}, &s)
	return s
}

func post(t *testing.T, url string, in, out any) {
	t.Helper()
	body, _ := json.Marshal(in)
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("POST %s: %s", url, resp.Status)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}
