package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// TestGatewayMessagesBadInput: every refused request gets its documented
// error code, the connection survives, and nothing is stored: the
// recipient's mailbox holds only the one good message afterwards.
func TestGatewayMessagesBadInput(t *testing.T) {
	t.Parallel()
	e := startMsgEnv(t, gatewaytest.Config{})
	alice, bob := e.friends("alice", "bob")
	carol := gatewaytest.NewUser(t, e.addr, "carol")
	a := dialWS(t, e, alice)
	good := a.send(bob, "the only message")

	env := a.seal(bob, "bad-1", "x")
	toCarol := alice.SealDirect(carol, "bad-2", []byte("x"))
	selfEnv := alice.SealDirect(alice, "bad-3", []byte("x"))
	requests := []struct {
		name string
		to   string
		env  []byte
		want schema.Code
	}{
		{"not a friend", carol.User.UserID, toCarol, schema.CodeNotFriend},
		{"to yourself", alice.User.UserID, selfEnv, schema.CodeSelfSend},
		{"header names another recipient", carol.User.UserID, env, schema.CodeInvalidEnvelope},
		{"unknown version", bob.User.UserID, bytes.Replace(env, []byte(`"v":2`), []byte(`"v":3`), 1), schema.CodeUnsupportedVersion},
		{"short signature", bob.User.UserID, shortenSig(t, env), schema.CodeInvalidEnvelope},
		{"unknown field", bob.User.UserID, bytes.Replace(env, []byte(`{"v":2`), []byte(`{"x":0,"v":2`), 1), schema.CodeInvalidEnvelope},
		{"over the envelope limit", bob.User.UserID, hugeCT(t, env), schema.CodeMessageTooLarge},
		{"unknown user", schema.NewUserID(), env, schema.CodeInvalidEnvelope},
	}
	for _, r := range requests {
		id := a.request(schema.FrameSend, map[string]any{"to": r.to, "envelope": json.RawMessage(r.env)})
		f := a.answer(id)
		if ef, ok := f.(*schema.ErrorFrame); !ok || ef.Error.Code != r.want {
			t.Errorf("%s: answer %s, want %s", r.name, frameJSON(f), r.want)
		}
	}

	frames := []struct {
		name, frame string
		id          string
		want        schema.Code
	}{
		{"not JSON", `hello`, "", schema.CodeBadRequest},
		{"unknown type", `{"type":"shout","id":"u1"}`, "u1", schema.CodeBadRequest},
		{"server frame type", `{"type":"msg","id":"u2"}`, "u2", schema.CodeBadRequest},
		{"unknown field", `{"type":"ping","id":"u3","extra":1}`, "u3", schema.CodeBadRequest},
		{"wrong type", `{"type":"read","id":"u4","seq":"7"}`, "u4", schema.CodeBadRequest},
		{"envelope as string", `{"type":"send","id":"u5","to":"` + bob.User.UserID + `","envelope":"{}"}`, "u5", schema.CodeBadRequest},
		{"malformed recipient", `{"type":"send","id":"u6","to":"bob","envelope":{}}`, "u6", schema.CodeBadRequest},
		{"seq zero", `{"type":"read","id":"u7","seq":0}`, "u7", schema.CodeInvalidCursor},
		{"cursor too large", `{"type":"sync","id":"u8","cursor":9007199254740992}`, "u8", schema.CodeInvalidCursor},
		{"unknown seq", `{"type":"read","id":"u9","seq":999999}`, "u9", schema.CodeUnknownMessage},
		{"recall unknown seq", `{"type":"recall","id":"u10","seq":999999}`, "u10", schema.CodeUnknownMessage},
	}
	for _, f := range frames {
		a.write([]byte(f.frame))
		var got *schema.ErrorFrame
		if f.id != "" {
			got, _ = a.answer(f.id).(*schema.ErrorFrame)
		} else {
			got = a.waitFor("error without id", func(x any) bool {
				ef, ok := x.(*schema.ErrorFrame)
				return ok && ef.ID == ""
			}).(*schema.ErrorFrame)
		}
		if got == nil || got.Error.Code != f.want {
			t.Errorf("%s: answer %v, want %s", f.name, got, f.want)
		}
	}
	mustAnswer[*schema.PongFrame](a, a.request(schema.FramePing, nil))

	b := dialWS(t, e, bob)
	if s := b.sync(0); s.LastSeq != good.PeerSeq || len(b.msgs()) != 1 {
		t.Fatalf("bob's mailbox after bad input: %s", b.dump())
	}
	c := dialWS(t, e, carol)
	if s := c.sync(0); s.LastSeq != 0 {
		t.Fatalf("carol's mailbox got a message: %s", c.dump())
	}
}

// shortenSig returns env with its signature cut short.
func shortenSig(t *testing.T, env []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(env, &m); err != nil {
		t.Fatal(err)
	}
	m["sig"] = m["sig"].(string)[:40]
	b, _ := json.Marshal(m)
	return b
}

// hugeCT returns env with a ciphertext that makes it larger than
// envelope.MaxEncoded, while the frame stays under the frame limit.
func hugeCT(t *testing.T, env []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(env, &m); err != nil {
		t.Fatal(err)
	}
	m["ct"] = strings.Repeat("A", envelope.MaxEncoded)
	b, _ := json.Marshal(m)
	if len(b) >= schema.MaxFrameSize-200 {
		t.Fatalf("test envelope %d bytes does not fit a frame", len(b))
	}
	return b
}

// TestGatewayMessagesBadFramesClose: ten malformed frames in a row close
// the connection with 4003; a frame over the limit closes with 1009.
func TestGatewayMessagesBadFramesClose(t *testing.T) {
	t.Parallel()
	e := startMsgEnv(t, gatewaytest.Config{})
	alice := gatewaytest.NewUser(t, e.addr, "alice")
	d := dialWS(t, e, alice)
	for i := range 10 {
		d.write([]byte(fmt.Sprintf(`{"type":"ping","id":"p%d","bad":true}`, i)))
	}
	if code := d.closeCode(); code != schema.CloseBadFrames {
		t.Fatalf("close code %d, want %d", code, schema.CloseBadFrames)
	}

	d = dialWS(t, e, alice)
	big := `{"type":"ping","id":"1","pad":"` + strings.Repeat("x", schema.MaxFrameSize) + `"}`
	d.write([]byte(big))
	if code := d.closeCode(); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code %d, want %d", code, websocket.CloseMessageTooBig)
	}
}

// TestGatewayMessagesRateLimits: frames over the per-connection rate are
// answered rate_limited and a flood closes with 4004; sends over the
// per-user rate are answered rate_limited and store nothing.
func TestGatewayMessagesRateLimits(t *testing.T) {
	t.Parallel()
	e := startMsgEnv(t, gatewaytest.Config{WSFrameRate: 0.1, WSFrameBurst: 5, SendRate: 0.1, SendBurst: 2})
	alice, bob := e.friends("alice", "bob")
	a := dialWS(t, e, alice)
	a.send(bob, "1")
	a.send(bob, "2")
	third := a.sendEnv(bob, a.seal(bob, "m-third", "3"))
	a.wantError(third, schema.CodeRateLimited)

	// Two tokens are left: two pongs, then rate_limited.
	var ids []string
	for range 4 {
		ids = append(ids, a.request(schema.FramePing, nil))
	}
	mustAnswer[*schema.PongFrame](a, ids[0])
	mustAnswer[*schema.PongFrame](a, ids[1])
	a.wantError(ids[3], schema.CodeRateLimited)
	for range 30 {
		if err := a.conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","id":"f"}`)); err != nil {
			break
		}
	}
	if code := a.closeCode(); code != schema.CloseRateLimited {
		t.Fatalf("close code %d, want %d", code, schema.CloseRateLimited)
	}
	b := dialWS(t, e, bob)
	b.sync(0)
	if n := len(b.msgs()); n != 2 {
		t.Fatalf("bob has %d messages, want 2: %s", n, b.dump())
	}
}

// TestGatewayMessagesSlowConsumer: a device that stops reading while
// messages keep arriving is closed with 4002 once its send queue is full;
// the server does not buffer without bound.
func TestGatewayMessagesSlowConsumer(t *testing.T) {
	t.Parallel()
	e := startMsgEnv(t, gatewaytest.Config{WSSendQueue: 2})
	alice, bob := e.friends("alice", "bob")
	a := dialWS(t, e, alice)
	slow := dialRaw(t, e, bob, func(d *websocket.Dialer) {
		d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetReadBuffer(64 << 10)
			}
			return c, err
		}
	})
	if err := slow.WriteMessage(websocket.TextMessage, []byte(`{"type":"sync","id":"s","cursor":0}`)); err != nil {
		t.Fatal(err)
	}
	payload := strings.Repeat("p", 60<<10)
	closed := false
	for i := 0; i < 400 && !closed; i++ {
		a.send(bob, payload)
		closed = slowConsumerClosed(t, e)
	}
	if !closed {
		t.Fatal("no slow-consumer close after 400 messages of 60 KiB")
	}
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := slow.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, schema.CloseSlowConsumer) {
				t.Fatalf("slow connection ended with %v, want close %d", err, schema.CloseSlowConsumer)
			}
			break
		}
	}
}

// slowConsumerClosed reports whether the gateway counted a slow-consumer
// close.
func slowConsumerClosed(t *testing.T, e *msgEnv) bool {
	t.Helper()
	resp, err := http.Get("http://" + e.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return strings.Contains(buf.String(), `mayfly_ws_closed_total{reason="slow_consumer"}`)
}
