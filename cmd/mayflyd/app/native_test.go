package app_test

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
	"github.com/mayfly-im/mayfly/cmd/mayflyd/app/apptest"
	"github.com/mayfly-im/mayfly/fabric/callout"
	"github.com/mayfly-im/mayfly/fabric/mailbox"
	"github.com/mayfly-im/mayfly/fabric/natsapi"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// nativeConn connects to url as c's device, collecting async errors.
func nativeConn(t *testing.T, url string, c *apptest.Client) (*nats.Conn, *asyncErrs, error) {
	t.Helper()
	ae := &asyncErrs{}
	nc, err := nats.Connect(url,
		nats.Token(c.Session.AccessToken),
		nats.CustomInboxPrefix(callout.InboxPrefix(c.Session.UserID)),
		nats.MaxReconnects(2), nats.ReconnectWait(100*time.Millisecond),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { ae.add(err) }),
	)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, ae, err
}

type asyncErrs struct {
	mu   sync.Mutex
	errs []error
}

func (a *asyncErrs) add(err error) { a.mu.Lock(); a.errs = append(a.errs, err); a.mu.Unlock() }

// waitFor polls for an async error containing s.
func (a *asyncErrs) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		a.mu.Lock()
		for _, e := range a.errs {
			if strings.Contains(strings.ToLower(e.Error()), s) {
				a.mu.Unlock()
				return
			}
		}
		a.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no async error containing %q; got %v", s, a.errs)
}

func TestNativeCalloutPermissions(t *testing.T) {
	t.Parallel()
	a := apptest.Start(t, app.Config{NATSWebSocketListen: "127.0.0.1:0"})
	alice := apptest.NewUser(t, a.HTTPAddr(), "alice")
	bob := apptest.NewUser(t, a.HTTPAddr(), "bob")

	t.Run("bad token refused", func(t *testing.T) {
		_, err := nats.Connect(a.NATSURL(), nats.Token("not-a-token"), nats.MaxReconnects(0))
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Fatalf("connect with bad token: %v, want authorization violation", err)
		}
		_, err = nats.Connect(a.NATSURL(), nats.MaxReconnects(0))
		if err == nil {
			t.Fatal("connect without token succeeded")
		}
	})

	nc, ae, err := nativeConn(t, a.NATSURL(), alice)
	if err != nil {
		t.Fatalf("connect with access token: %v", err)
	}

	t.Run("own subjects allowed", func(t *testing.T) {
		for _, subj := range []string{"evt." + alice.Session.UserID, "dlv.mbx.3." + alice.Session.UserID} {
			if _, err := nc.SubscribeSync(subj); err != nil {
				t.Fatal(err)
			}
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	})

	denied := []struct{ name, op, subj string }{
		{"other user's deliveries", "sub", "dlv.mbx.3." + bob.Session.UserID},
		{"other user's events", "sub", "evt." + bob.Session.UserID},
		{"all deliveries", "sub", "dlv.>"},
		{"write into a mailbox", "pub", "mbx.3." + bob.Session.UserID},
		{"impersonate another user in a service subject", "pub", "svc." + bob.Session.UserID + "." + bob.Session.DeviceID + ".send"},
		{"impersonate another device in a service subject", "pub", "svc." + alice.Session.UserID + ".dother2345678901234567890123.send"},
		{"jetstream delete", "pub", "$JS.API.STREAM.MSG.DELETE.MBX_3"},
		{"jetstream purge", "pub", "$JS.API.STREAM.PURGE.MBX_3"},
		{"jetstream direct get", "pub", "$JS.API.DIRECT.GET.MBX_3"},
		{"consumer create", "pub", "$JS.API.CONSUMER.CREATE.MBX_3"},
		{"system account", "pub", "$SYS.REQ.SERVER.PING"},
		{"write an attachment chunk", "pub", "att." + alice.Session.UserID + "." + bob.Session.UserID + ".m-1.aaaaaaaaaaaaaaaaaaaaaaaaaaa.c"},
		{"read attachments", "sub", "att.>"},
		{"attachment direct get", "pub", "$JS.API.DIRECT.GET.ATTACH"},
		{"attachment purge", "pub", "$JS.API.STREAM.PURGE.ATTACH"},
	}
	for _, d := range denied {
		t.Run("denied "+d.name, func(t *testing.T) {
			var err error
			if d.op == "sub" {
				_, err = nc.SubscribeSync(d.subj)
			} else {
				err = nc.Publish(d.subj, []byte("x"))
			}
			if err != nil {
				t.Fatal(err)
			}
			nc.Flush()
			ae.waitFor(t, "permissions violation for "+map[string]string{"sub": "subscription", "pub": "publish"}[d.op]+" to \""+strings.ToLower(d.subj)+"\"")
		})
	}

	t.Run("websocket listener uses the callout too", func(t *testing.T) {
		url := a.NATSWebSocketURL()
		if url == "" {
			t.Fatal("no nats websocket url")
		}
		ws, _, err := nativeConn(t, url, bob)
		if err != nil {
			t.Fatalf("connect over websocket: %v", err)
		}
		if _, err := nats.Connect(url, nats.Token("garbage"), nats.MaxReconnects(0)); err == nil {
			t.Fatal("websocket connect with bad token succeeded")
		}
		ws.Close()
	})
}

func TestNativeRevokeDisconnects(t *testing.T) {
	t.Parallel()
	a := apptest.Start(t, app.Config{})
	alice := apptest.NewUser(t, a.HTTPAddr(), "alice")
	laptop := alice.Device("laptop")
	nc, _, err := nativeConn(t, a.NATSURL(), laptop)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	alice.Must("DELETE", "/v1/devices/"+laptop.Session.DeviceID, nil, nil)
	start := time.Now()
	select {
	case <-closed:
		t.Logf("revoked native connection closed after %v", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatalf("native connection still %v 5s after revocation", nc.Status())
	}
	if err := nc.LastError(); err != nil && !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Logf("last error: %v", err)
	}
	if _, _, err := nativeConn(t, a.NATSURL(), laptop); err == nil {
		t.Fatal("revoked device reconnected")
	}
}

// native is a NATS-native client of one device.
type native struct {
	t  *testing.T
	nc *nats.Conn
	c  *apptest.Client
}

func newNative(t *testing.T, a *app.App, c *apptest.Client) *native {
	t.Helper()
	nc, _, err := nativeConn(t, a.NATSURL(), c)
	if err != nil {
		t.Fatal(err)
	}
	return &native{t: t, nc: nc, c: c}
}

// call runs operation op and returns the error code ("" on success).
func (n *native) call(op string, req, out any) string {
	n.t.Helper()
	body, _ := json.Marshal(req)
	subj := "svc." + n.c.Session.UserID + "." + n.c.Session.DeviceID + "." + op
	msg, err := n.nc.Request(subj, body, 5*time.Second)
	if err != nil {
		n.t.Fatalf("%s: %v", op, err)
	}
	if code := msg.Header.Get("Nats-Service-Error"); code != "" {
		var eb schema.ErrorBody
		if err := json.Unmarshal(msg.Data, &eb); err != nil || eb.Error == nil || string(eb.Error.Code) != code {
			n.t.Fatalf("%s: error header %q with body %q", op, code, msg.Data)
		}
		return code
	}
	if out != nil {
		if err := json.Unmarshal(msg.Data, out); err != nil {
			n.t.Fatalf("%s: decode %q: %v", op, msg.Data, err)
		}
	}
	return ""
}

func (n *native) must(op string, req, out any) {
	n.t.Helper()
	if code := n.call(op, req, out); code != "" {
		n.t.Fatalf("%s: %s", op, code)
	}
}

func (n *native) seal(to *apptest.Client, mid, text string) json.RawMessage {
	n.t.Helper()
	var raw json.RawMessage
	n.must("keys.claim", map[string]string{"user_id": to.User.UserID}, &raw)
	bu, err := envelope.ParseBundle(raw)
	if err != nil {
		n.t.Fatal(err)
	}
	targets, err := bu.Verify(to.User.UserID, to.Acct.IK.Public().(ed25519.PublicKey), "")
	if err != nil {
		n.t.Fatal(err)
	}
	return n.c.SealTo(to, mid, []byte(`{"text":"`+text+`"}`), targets)
}

func nextMsg(t *testing.T, sub *nats.Subscription) *nats.Msg {
	t.Helper()
	m, err := sub.NextMsg(3 * time.Second)
	if err != nil {
		t.Fatalf("no message on %s: %v", sub.Subject, err)
	}
	return m
}

func TestNativeEverything(t *testing.T) {
	t.Parallel()
	a := apptest.Start(t, app.Config{})
	ac := apptest.NewUser(t, a.HTTPAddr(), "alice")
	bc := apptest.NewUser(t, a.HTTPAddr(), "bob")
	cc := apptest.NewUser(t, a.HTTPAddr(), "carol")
	alice, bob, carol := newNative(t, a, ac), newNative(t, a, bc), newNative(t, a, cc)

	bobDlv, _ := bob.nc.SubscribeSync("dlv.mbx.*." + bc.Session.UserID)
	aliceEvt, _ := alice.nc.SubscribeSync("evt." + ac.Session.UserID)
	bob.nc.Flush()
	alice.nc.Flush()

	var u schema.User
	alice.must("keys.lookup", map[string]string{"handle": "BOB"}, &u)
	if u.UserID != bc.Session.UserID || u.Fingerprint == "" {
		t.Fatalf("lookup = %+v", u)
	}
	if code := alice.call("keys.claim", map[string]string{"user_id": bc.Session.UserID}, nil); code != "not_friend" {
		t.Fatalf("claim from a non-friend = %q, want not_friend", code)
	}
	if code := alice.call("send", map[string]any{"to": bc.Session.UserID, "envelope": json.RawMessage(ac.SealDirect(bc, "m0", []byte("too early")))}, nil); code != "not_friend" {
		t.Fatalf("send to non-friend = %q, want not_friend", code)
	}
	alice.must("friends.request", map[string]string{"handle": "bob"}, nil)
	bob.must("friends.accept", map[string]string{"handle": "alice"}, nil)
	var fl schema.FriendList
	alice.must("friends.list", nil, &fl)
	if len(fl.Friends) != 1 || fl.Friends[0].UserID != bc.Session.UserID {
		t.Fatalf("friends = %+v", fl)
	}

	var sent schema.SentFrame
	alice.must("send", map[string]any{"to": bc.Session.UserID, "envelope": alice.seal(bc, "m1", "hello bob")}, &sent)
	live := nextMsg(t, bobDlv)
	if live.Header.Get("Mayfly-From") != ac.Session.UserID || live.Header.Get("Nats-Sequence") != strconv.FormatUint(sent.PeerSeq, 10) {
		t.Fatalf("live headers %v, want from alice seq %d", live.Header, sent.PeerSeq)
	}
	if text, err := bc.Open(live.Data, ac); err != nil || !strings.Contains(string(text), "hello bob") {
		t.Fatalf("open live message: %q %v", text, err)
	}

	var unread schema.UnreadCountsFrame
	bob.must("unread", nil, &unread)
	if unread.Counts[ac.Session.UserID] != 1 {
		t.Fatalf("unread = %v", unread.Counts)
	}
	var synced natsapi.SyncAnswer
	bob.must("sync", map[string]any{"cursor": 0}, &synced)
	if len(synced.Messages) != 1 || synced.Messages[0].Seq != sent.PeerSeq || synced.Messages[0].Self {
		t.Fatalf("sync = %+v", synced)
	}
	if code := carol.call("read", map[string]any{"seq": sent.PeerSeq}, nil); code != "unknown_message" {
		t.Fatalf("carol reads bob's message: %q", code)
	}
	bob.must("read", map[string]any{"seq": sent.PeerSeq}, nil)
	for {
		var ev schema.Event
		json.Unmarshal(nextMsg(t, aliceEvt).Data, &ev)
		if ev.Type == schema.EventBurned {
			break
		}
	}
	bob.must("sync", map[string]any{"cursor": 0}, &synced)
	if len(synced.Messages) != 0 {
		t.Fatalf("burned message still synced: %+v", synced)
	}

	alice.must("send", map[string]any{"to": bc.Session.UserID, "envelope": alice.seal(bc, "m2", "oops")}, &sent)
	alice.must("recall", map[string]any{"seq": sent.Seq}, nil)
	if code := bob.call("read", map[string]any{"seq": sent.PeerSeq}, nil); code != "unknown_message" {
		t.Fatalf("read of recalled message: %q", code)
	}

	var pres struct{ Rev uint64 }
	bob.must("presence.online", nil, &pres)
	var snap struct {
		Friends []schema.PresenceState `json:"friends"`
	}
	alice.must("presence.snapshot", nil, &snap)
	if len(snap.Friends) != 1 || !snap.Friends[0].Online {
		t.Fatalf("snapshot = %+v", snap)
	}
	bob.must("presence.refresh", map[string]any{"rev": pres.Rev}, &pres)
	if code := bob.call("presence.offline", "garbage", nil); code != "bad_request" {
		t.Fatalf("presence.offline with a garbage body = %q, want bad_request", code)
	}
	bob.must("presence.offline", map[string]any{"rev": pres.Rev}, nil)

	if _, err := alice.nc.Request("svc."+ac.Session.UserID+"."+ac.Session.DeviceID+".nope", nil, 2*time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("unknown operation: %v, want no responders", err)
	}
	if code := alice.call("send", "not json", nil); code != "bad_request" {
		t.Fatalf("malformed send = %q", code)
	}

	// A removal reaches the connected native client's send path within a second.
	bob.must("friends.remove", map[string]string{"handle": "alice"}, nil)
	deadline := time.Now().Add(time.Second)
	for i := 0; ; i++ {
		code := alice.call("send", map[string]any{"to": bc.Session.UserID, "envelope": json.RawMessage(ac.SealDirect(bc, "r"+strconv.Itoa(i), []byte("after")))}, nil)
		if code == "not_friend" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("send still %q a second after removal", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNativeReplySubjectInjection: NATS checks the permission to publish a
// request, not its reply subject; the service must never answer on a subject
// the client chose outside its own inbox (here: the JetStream API, to delete
// a mailbox stream, and another user's mailbox).
func TestNativeReplySubjectInjection(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := apptest.Start(t, app.Config{DataDir: dir})
	ac := apptest.NewUser(t, a.HTTPAddr(), "alice")
	bc := apptest.NewUser(t, a.HTTPAddr(), "bob")
	alice := newNative(t, a, ac)
	svc := "svc." + ac.Session.UserID + "." + ac.Session.DeviceID + "."
	bobStream := fmt.Sprintf("MBX_%d", mailbox.Partition(bc.Session.UserID, 16))
	victims := []string{"$JS.API.STREAM.DELETE.MBX_0", "$JS.API.STREAM.PURGE.MBX_1", "mbx." + bobStream[4:] + "." + bc.Session.UserID}
	for _, reply := range victims {
		// friends.block answers {}: a valid delete or purge request, and a message.
		if err := alice.nc.PublishMsg(&nats.Msg{Subject: svc + "friends.block", Reply: reply, Data: []byte(`{"handle":"bob"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	alice.nc.Flush()
	// A normal request on the same endpoint is answered after the others.
	alice.must("friends.blocks", nil, nil)

	svcConn, err := nats.Connect(a.NATSURL(), nats.UserInfo("mayfly-service", readPassword(t, dir)))
	if err != nil {
		t.Fatal(err)
	}
	defer svcConn.Close()
	for _, stream := range []string{"MBX_0", "MBX_1", bobStream} {
		msg, err := svcConn.Request("$JS.API.STREAM.INFO."+stream, nil, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var info struct {
			Error *struct{ Description string }
			State struct{ Messages uint64 }
		}
		json.Unmarshal(msg.Data, &info)
		if info.Error != nil || info.State.Messages != 0 {
			t.Fatalf("stream %s after injected replies: %s", stream, msg.Data)
		}
	}
}

func readPassword(t *testing.T, dataDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "nats", "service.password"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestNativeSyncLargeMessages: a sync answer never exceeds NATS's max
// payload; with large envelopes it carries fewer messages and says more.
func TestNativeSyncLargeMessages(t *testing.T) {
	t.Parallel()
	a := apptest.Start(t, app.Config{})
	ac := apptest.NewUser(t, a.HTTPAddr(), "alice")
	bc := apptest.NewUser(t, a.HTTPAddr(), "bob")
	alice, bob := newNative(t, a, ac), newNative(t, a, bc)
	alice.must("friends.request", map[string]string{"handle": "bob"}, nil)
	bob.must("friends.accept", map[string]string{"handle": "alice"}, nil)
	big := strings.Repeat("x", envelope.MaxPlaintext-32)
	for i := 0; i < 4; i++ {
		alice.must("send", map[string]any{"to": bc.Session.UserID, "envelope": alice.seal(bc, "big"+strconv.Itoa(i), big)}, nil)
	}
	var got []schema.MsgFrame
	cursor := uint64(0)
	for i := 0; i < 10; i++ {
		var ans natsapi.SyncAnswer
		bob.must("sync", map[string]any{"cursor": cursor}, &ans)
		if len(ans.Messages) == 0 {
			t.Fatalf("sync from %d returned nothing: %+v", cursor, ans)
		}
		got = append(got, ans.Messages...)
		cursor = ans.Messages[len(ans.Messages)-1].Seq
		if !ans.More {
			break
		}
	}
	if len(got) != 4 {
		t.Fatalf("synced %d large messages, want 4", len(got))
	}
}
