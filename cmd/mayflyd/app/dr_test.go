package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
	"github.com/mayfly-im/mayfly/cmd/mayflyd/app/apptest"
	"github.com/mayfly-im/mayfly/fabric/callout"
	"github.com/mayfly-im/mayfly/fabric/mailbox"
	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/fabric/node"
	"github.com/mayfly-im/mayfly/fabric/sites"
	"github.com/mayfly-im/mayfly/fabric/token"
	"github.com/mayfly-im/mayfly/gateway/client"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
	"github.com/mayfly-im/mayfly/store/storetest"
)

// drSetup is a three-site in-process NATS cluster with one mayflyd in
// site b, configured the way deploy/dr/sites.sh configures a city.
type drSetup struct {
	cl  *natstest.Cluster
	app *app.App
	cfg app.Config
}

func startDR(t *testing.T) drSetup {
	t.Helper()
	keys := t.TempDir()
	issuer, err := callout.LoadOrCreateIssuer(filepath.Join(keys, "callout.nk"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := issuer.PublicKey()
	if _, err := token.LoadOrCreateKey(filepath.Join(keys, "token.pem")); err != nil {
		t.Fatal(err)
	}
	cl := natstest.RunCluster(t, pub, "a", "b", "c")
	b := cl.Site("b")
	cfg := app.Config{
		NATSURL: cl.URL(b), Replicas: 3, MailboxPartitions: 2, SendRate: -1,
		TokenKeyFile: filepath.Join(keys, "token.pem"),
		DR: app.DRConfig{
			NATSAuthURL: cl.URLAs(b, node.AuthUser), NATSSysURL: cl.URLAs(b, node.SysUser),
			CalloutKeyFile: filepath.Join(keys, "callout.nk"), TokenKeyRequired: true,
		},
	}
	return drSetup{cl: cl, app: apptest.Start(t, cfg), cfg: cfg}
}

// placement checks every Mayfly stream from site i's point of view.
func (d drSetup) placement(t *testing.T, i int) sites.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	where, err := sites.ServerSites(ctx, d.cl.ConnectAs(i, node.SysUser), 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(d.cl.ConnectAs(i, node.ServiceUser))
	r, err := sites.Check(ctx, js, where, sites.Mayfly)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// goClient registers handle on the gateway at addr and runs its connection.
func goClient(t *testing.T, addr, handle string, h client.Handler, log ...*slog.Logger) *client.Client {
	t.Helper()
	ctx := context.Background()
	cfg := client.Config{Server: "http://" + addr, Keys: mustKeys(t), MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second}
	if len(log) > 0 {
		cfg.Logger = log[0]
	}
	cl, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Register(ctx, handle); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Login(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); cl.Run(rctx, h) }()
	t.Cleanup(func() { cancel(); <-done })
	return cl
}

// inbox collects what a client's Handler receives.
type inbox struct {
	mu   sync.Mutex
	seqs map[string]uint64 // message id -> seq in the recipient's mailbox
}

func (b *inbox) handler() client.Handler {
	return client.Handler{Message: func(_ context.Context, m client.Message) error {
		if !m.Self {
			b.mu.Lock()
			b.seqs[m.ID] = m.Seq
			b.mu.Unlock()
		}
		return nil
	}}
}

func (b *inbox) seq(id string) (uint64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.seqs[id]
	return s, ok
}

// TestDRCityLoss loses the site holding the leader of the recipient's
// mailbox stream while a Go client sends: every acknowledged send arrives,
// sends that met the election are retried to success, a NATS-native client
// logged in through the callout of the external cluster keeps working, and
// once the site is back its replicas catch up with the burns: a message
// burned before or during the loss is not served by any server.
func TestDRCityLoss(t *testing.T) {
	t.Parallel()
	d := startDR(t)
	if r := d.placement(t, d.cl.Site("b")); !r.OK() {
		t.Fatalf("placement before the loss:\n%s", r)
	}
	got := &inbox{seqs: map[string]uint64{}}
	alice := goClient(t, d.app.HTTPAddr(), "alice", client.Handler{SendOnly: true})
	bob := goClient(t, d.app.HTTPAddr(), "bob", got.handler())
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := alice.FriendRequest(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.AcceptFriend(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	bobID := bob.Identity().UserID
	stream := fmt.Sprintf("MBX_%d", mailbox.Partition(bobID, 2))
	lost := d.leaderSite(t, stream)

	// Burn one message before the loss; keep sending through it.
	first, err := alice.Send(ctx, "bob", "before")
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 10*time.Second, "first message delivered", func() bool { _, ok := got.seq(first.ID); return ok })
	burned := []uint64{first.PeerSeq}
	if err := bob.Read(ctx, first.PeerSeq); err != nil {
		t.Fatal(err)
	}

	var (
		mu      sync.Mutex
		acked   []string
		fails   []error
		slowest time.Duration
	)
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			s, err := alice.Send(ctx, "bob", fmt.Sprintf("m%d", i))
			mu.Lock()
			slowest = max(slowest, time.Since(start))
			if err != nil {
				fails = append(fails, err)
			} else {
				acked = append(acked, s.ID)
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	ackedN := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	natstest.WaitFor(t, 10*time.Second, "sends before the loss", func() bool { return ackedN() >= 3 })
	t.Logf("losing site %s (leader of %s)", d.cl.Sites[lost], stream)
	d.cl.Kill(lost)
	killed := ackedN()
	survivor := (lost + 1) % 3
	natstest.WaitFor(t, 30*time.Second, "every stream has a new leader", func() bool { return d.placementNoFatal(survivor) })
	natstest.WaitFor(t, 30*time.Second, "sends after the loss", func() bool { return ackedN() >= killed+5 })

	d.nativeThroughLoss(t, ctx, survivor, alice, bob)
	close(stop)
	<-sent
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d sends acknowledged, %d failed, slowest %v", len(acked), len(fails), slowest.Round(time.Millisecond))
	if len(fails) > 0 {
		t.Fatalf("%d sends failed (the client should retry through the election): %v", len(fails), fails[0])
	}
	for _, id := range acked {
		natstest.WaitFor(t, 20*time.Second, "acknowledged message "+id+" delivered", func() bool { _, ok := got.seq(id); return ok })
	}
	// Burn one sent during the loss, while the site is still down.
	during, _ := got.seq(acked[len(acked)-1])
	if err := bob.Read(ctx, during); err != nil {
		t.Fatal(err)
	}
	burned = append(burned, during)

	d.cl.Restart(lost)
	natstest.WaitFor(t, 30*time.Second, "the lost site's replicas caught up", func() bool { return d.caughtUp(lost) })
	for i := range d.cl.Nodes {
		for _, seq := range burned {
			if m := directGet(t, d.cl.ConnectAs(i, node.ServiceUser), stream, seq); m != nil {
				t.Errorf("burned message %s/%d served by site %s", stream, seq, d.cl.Sites[i])
			}
		}
	}
	d.sameState(t, stream)
}

// leaderSite returns the index of the site whose server leads stream.
func (d drSetup) leaderSite(t *testing.T, stream string) int {
	t.Helper()
	for _, s := range d.placement(t, d.cl.Site("b")).Streams {
		if s.Name == stream {
			return d.cl.Site(s.Leader)
		}
	}
	t.Fatalf("no stream %s", stream)
	return 0
}

// placementNoFatal reports whether every stream has a leader, asking site i.
func (d drSetup) placementNoFatal(i int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, err := d.cl.Nodes[i].Connect("dr-check")
	if err != nil {
		return false
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	r, err := sites.Check(ctx, js, nil, sites.Mayfly)
	if err != nil || len(r.Streams) == 0 {
		return false
	}
	for _, s := range r.Streams {
		if s.Leader == "" {
			return false
		}
	}
	return true
}

// caughtUp reports whether site i's replica of every stream is current.
func (d drSetup) caughtUp(i int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, err := d.cl.Nodes[i].Connect("dr-check")
	if err != nil {
		return false
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	r, err := sites.Check(ctx, js, nil, sites.Mayfly)
	if err != nil || len(r.Streams) == 0 {
		return false
	}
	for _, s := range r.Streams {
		ok := false
		for _, p := range s.Peers {
			ok = ok || p.Server == d.cl.Sites[i] && p.Current && !p.Offline
		}
		if !ok {
			return false
		}
	}
	return true
}

// directGet asks the server nc is connected to for message seq of stream;
// the server's own replica answers (a local queue subscriber wins).
func directGet(t *testing.T, nc *nats.Conn, stream string, seq uint64) *nats.Msg {
	t.Helper()
	body, _ := json.Marshal(map[string]uint64{"seq": seq})
	m, err := nc.Request("$JS.API.DIRECT.GET."+stream, body, 3*time.Second)
	if err != nil {
		t.Fatalf("direct get %s/%d: %v", stream, seq, err)
	}
	if m.Header.Get("Status") != "" {
		return nil // 404: no such message
	}
	return m
}

// sameState checks that every server holds the same state of stream.
func (d drSetup) sameState(t *testing.T, stream string) {
	t.Helper()
	var want string
	for i, n := range d.cl.Nodes {
		ad, err := n.Server().JszAccount(&server.JSzOptions{Account: node.AppAccount, Streams: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, sd := range ad.Streams {
			if sd.Name != stream {
				continue
			}
			st := fmt.Sprintf("msgs=%d first=%d last=%d deleted=%d", sd.State.Msgs, sd.State.FirstSeq, sd.State.LastSeq, sd.State.NumDeleted)
			if i == 0 {
				want = st
			} else if st != want {
				t.Errorf("site %s holds %s %s, site %s %s", d.cl.Sites[i], stream, st, d.cl.Sites[0], want)
			}
		}
	}
}

// nativeThroughLoss logs alice in over NATS on a surviving site (the
// callout of the external cluster admits her), sends bob a message with
// the send operation and reads it back over the sync operation as bob.
func (d drSetup) nativeThroughLoss(t *testing.T, ctx context.Context, site int, alice, bob *client.Client) {
	t.Helper()
	conn := func(c *client.Client) *nats.Conn {
		tok, err := c.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(d.cl.Nodes[site].ClientURL(), nats.Token(tok),
			nats.CustomInboxPrefix(callout.InboxPrefix(c.Identity().UserID)))
		if err != nil {
			t.Fatalf("native login on site %s: %v", d.cl.Sites[site], err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	an, bn := conn(alice), conn(bob)
	call := func(nc *nats.Conn, c *client.Client, op string, req any) []byte {
		body, _ := json.Marshal(req)
		s := c.Session()
		m, err := nc.RequestWithContext(ctx, "svc."+s.UserID+"."+s.DeviceID+"."+op, body)
		if err != nil || m.Header.Get("Nats-Service-Error") != "" {
			t.Fatalf("native %s: %v %s", op, err, m.Data)
		}
		return m.Data
	}
	env := sealFor(t, alice, bob, call(an, alice, "keys.claim", map[string]string{"user_id": bob.Identity().UserID}),
		"nmid1", "native during the loss")
	call(an, alice, "send", map[string]any{"to": bob.Identity().UserID, "envelope": env})
	var page struct {
		Messages []schema.MsgFrame `json:"messages"`
		More     bool              `json:"more"`
	}
	// A follower may answer the read a moment before it has the message.
	found := func() bool {
		cursor := uint64(0)
		for {
			page.Messages, page.More = nil, false
			if err := json.Unmarshal(call(bn, bob, "sync", map[string]any{"cursor": cursor, "max": 1000}), &page); err != nil {
				t.Fatal(err)
			}
			for _, m := range page.Messages {
				if m.MsgID == "nmid1" {
					return true
				}
				cursor = m.Seq
			}
			if !page.More || len(page.Messages) == 0 {
				t.Logf("sync: %d messages up to %d, more %v", len(page.Messages), cursor, page.More)
				return false
			}
		}
	}
	natstest.WaitFor(t, 30*time.Second, "native message in bob's mailbox", found)
}

func mustKeys(t *testing.T) client.Keys {
	t.Helper()
	k, err := client.NewKeys(true)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sealFor seals text from one Go client to another as a NATS-native client
// does: it verifies the bundle it claimed for to (keys.claim) against to's
// identity key and seals for its devices with envelope.SealV2 as from's
// device.
func sealFor(t *testing.T, from, to *client.Client, bundle []byte, mid, text string) json.RawMessage {
	t.Helper()
	bu, err := envelope.ParseBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	targets, err := bu.Verify(to.Identity().UserID, to.IdentityKey(), "")
	if err != nil {
		t.Fatal(err)
	}
	h := envelope.HeaderV2{From: from.Identity().UserID, FromDevice: from.Identity().DeviceID, To: to.Identity().UserID, MsgID: mid, SentAt: time.Now()}
	env, err := envelope.SealV2(h, from.Keys().Device, targets, []byte(`{"text":"`+text+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// lines is a slog handler that keeps the messages logged, for polling.
type lines struct {
	mu  sync.Mutex
	msg []string
}

func (l *lines) Enabled(context.Context, slog.Level) bool { return true }
func (l *lines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msg = append(l.msg, r.Message)
	l.mu.Unlock()
	return nil
}
func (l *lines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *lines) WithGroup(string) slog.Handler      { return l }
func (l *lines) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.msg, s)
}

// TestDRSendRetriedWhileUnavailable: a send answered unavailable (here the
// recipient's mailbox stream is gone, as it is while a stream has no
// leader) is repeated with the same message id until the stream is back,
// and is stored once.
func TestDRSendRetriedWhileUnavailable(t *testing.T) {
	t.Parallel()
	d := startDR(t)
	log := &lines{}
	alice := goClient(t, d.app.HTTPAddr(), "alice", client.Handler{SendOnly: true}, slog.New(log))
	bob := goClient(t, d.app.HTTPAddr(), "bob", client.Handler{SendOnly: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := alice.FriendRequest(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.AcceptFriend(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(d.cl.ConnectAs(d.cl.Site("b"), node.ServiceUser))
	name := fmt.Sprintf("MBX_%d", mailbox.Partition(bob.Identity().UserID, 2))
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if err := js.DeleteStream(ctx, name); err != nil {
		t.Fatal(err)
	}
	type result struct {
		sent client.Sent
		err  error
	}
	res := make(chan result, 1)
	go func() {
		s, err := alice.Send(ctx, "bob", "through the outage")
		res <- result{s, err}
	}()
	natstest.WaitFor(t, 20*time.Second, "the client retries", func() bool { return log.has("server unavailable; retrying") })
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil {
		t.Fatalf("send: %v", r.err)
	}
	s, _ = js.Stream(ctx, name)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter("mbx.>"))
	if err != nil {
		t.Fatal(err)
	}
	subj, _ := d.appMailboxSubject(bob.Identity().UserID)
	if n := info.State.Subjects[subj]; n != 1 {
		t.Fatalf("bob's mailbox holds %d messages, want the one sent", n)
	}
}

func (d drSetup) appMailboxSubject(uid string) (string, error) {
	return fmt.Sprintf("mbx.%d.%s", mailbox.Partition(uid, 2), uid), nil
}

// TestDRTokenKeyRequired: with TokenKeyRequired a missing key is an error
// and no key is made (a city with its own key would log everybody out).
func TestDRTokenKeyRequired(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := filepath.Join(dir, "keys", "token.pem")
	_, err := app.Start(context.Background(), app.Config{
		DataDir: dir, DatabaseURL: storetest.NewURL(t), HTTPListen: "127.0.0.1:0",
		NATSListen: "127.0.0.1:0", NATSWebSocketListen: "off", TokenKeyFile: key,
		DR: app.DRConfig{TokenKeyRequired: true},
	})
	if !errors.Is(err, app.ErrTokenKeyMissing) {
		t.Fatalf("start without the key = %v, want ErrTokenKeyMissing", err)
	}
	if _, err := os.Stat(key); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a key was made: %v", err)
	}
}
