package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/gateway/client"
	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
)

// server is a gateway running for one test.
type server struct {
	t   *testing.T
	srv *gatewaytest.Server
	url string // http://host:port
}

// startServer starts a gateway with a send rate generous enough for tests.
func startServer(t *testing.T) *server {
	t.Helper()
	a := gatewaytest.Start(t, gatewaytest.Config{SendRate: 1000, SendBurst: 1000})
	return &server{t: t, srv: a, url: "http://" + a.HTTPAddr()}
}

// ctx returns a context that ends with the test or after a minute.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newClient returns a client with a fresh identity key and device key for
// url (a primary device), not registered.
func newClient(t *testing.T, url, device string, mod ...func(*client.Config)) *client.Client {
	t.Helper()
	k, err := client.NewKeys(true)
	if err != nil {
		t.Fatal(err)
	}
	cfg := client.Config{Server: url, Keys: k, DeviceName: device, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// register registers handle and logs the client in.
func register(t *testing.T, c *client.Client, handle string) {
	t.Helper()
	ctx := testCtx(t)
	if _, err := c.Register(ctx, handle); err != nil {
		t.Fatalf("register %s: %v", handle, err)
	}
	if _, err := c.Login(ctx); err != nil {
		t.Fatalf("login %s: %v", handle, err)
	}
}

// user registers and logs in a fresh client.
func (s *server) user(handle string, mod ...func(*client.Config)) *client.Client {
	s.t.Helper()
	c := newClient(s.t, s.url, "phone", mod...)
	register(s.t, c, handle)
	return c
}

// directHTTP sends a client's HTTP requests (claims, lookups) straight to
// the server, so a test proxy between it and the server carries only its
// WebSocket.
func (s *server) directHTTP(c *client.Config) {
	addr := strings.TrimPrefix(s.url, "http://")
	c.HTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// link adds a device named name to primary's user through the real link
// flow and logs it in.
func (s *server) link(primary *client.Client, name string, mod ...func(*client.Config)) *client.Client {
	s.t.Helper()
	ctx := testCtx(s.t)
	keys, err := client.NewKeys(false)
	if err != nil {
		s.t.Fatal(err)
	}
	pl, err := client.StartLink(ctx, client.LinkConfig{Server: s.url, Keys: keys, PollInterval: 10 * time.Millisecond})
	if err != nil {
		s.t.Fatal(err)
	}
	if err := primary.ApproveLink(ctx, pl.Code()); err != nil {
		s.t.Fatalf("approve link of %s: %v", name, err)
	}
	l, err := pl.Wait(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	c := newClient(s.t, s.url, name, append([]func(*client.Config){func(c *client.Config) {
		c.Keys, c.IdentityKey, c.UserID, c.Handle = l.Keys, l.IdentityKey, l.UserID, l.Handle
	}}, mod...)...)
	if _, err := c.Login(ctx); err != nil {
		s.t.Fatalf("login %s: %v", name, err)
	}
	return c
}

// noCursor is a Dir that does not save the cursor.
type noCursor struct{ *client.Dir }

func (noCursor) SaveCursor(uint64) error { return nil }

// befriend makes a and b friends (a asks, b accepts).
func befriend(t *testing.T, a, b *client.Client) {
	t.Helper()
	ctx := testCtx(t)
	if _, err := a.FriendRequest(ctx, b.Identity().Handle); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AcceptFriend(ctx, a.Identity().Handle); err != nil {
		t.Fatal(err)
	}
}

// inbox runs a client and records what its Handler sees.
type inbox struct {
	t      *testing.T
	c      *client.Client
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	msgs   []client.Message // guarded by mu
	events []schema.Event   // guarded by mu
	syncs  int              // guarded by mu
	fail   func(client.Message) error
	change chan struct{} // closed and replaced on every record; guarded by mu
}

// run starts c.Run with a recording Handler; the test's cleanup stops it.
func run(t *testing.T, c *client.Client) *inbox {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &inbox{t: t, c: c, cancel: cancel, done: make(chan error, 1), change: make(chan struct{})}
	go func() {
		in.done <- c.Run(ctx, client.Handler{
			Message: func(_ context.Context, m client.Message) error {
				in.mu.Lock()
				defer in.mu.Unlock()
				if in.fail != nil {
					if err := in.fail(m); err != nil {
						return err
					}
				}
				in.msgs = append(in.msgs, m)
				in.changedLocked()
				return nil
			},
			Event: func(_ context.Context, e schema.Event) {
				in.mu.Lock()
				defer in.mu.Unlock()
				in.events = append(in.events, e)
				in.changedLocked()
			},
			Synced: func(context.Context, uint64) {
				in.mu.Lock()
				defer in.mu.Unlock()
				in.syncs++
				in.changedLocked()
			},
		})
	}()
	t.Cleanup(func() { in.stop() })
	return in
}

// stop ends Run and returns its error.
func (in *inbox) stop() error {
	in.cancel()
	select {
	case err, ok := <-in.done:
		if ok {
			close(in.done)
		}
		return err
	case <-time.After(20 * time.Second):
		in.t.Error("Run did not return after cancel")
		return nil
	}
}

func (in *inbox) changedLocked() {
	close(in.change)
	in.change = make(chan struct{})
}

// waitFor polls cond (under the lock) until it holds or 20 seconds pass.
func (in *inbox) waitFor(what string, cond func(in *inbox) bool) {
	in.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		in.mu.Lock()
		ok, ch := cond(in), in.change
		in.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			in.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// messages returns what the Handler got so far.
func (in *inbox) messages() []client.Message {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]client.Message(nil), in.msgs...)
}

// received returns the non-Self messages' texts.
func (in *inbox) received() []string {
	var out []string
	for _, m := range in.messages() {
		if !m.Self {
			out = append(out, m.Text)
		}
	}
	return out
}

// waitReceived waits until n non-Self messages arrived.
func (in *inbox) waitReceived(n int) []client.Message {
	in.t.Helper()
	in.waitFor("messages", func(in *inbox) bool {
		k := 0
		for _, m := range in.msgs {
			if !m.Self {
				k++
			}
		}
		return k >= n
	})
	var out []client.Message
	for _, m := range in.messages() {
		if !m.Self {
			out = append(out, m)
		}
	}
	return out
}

// waitSyncs waits for n synced callbacks.
func (in *inbox) waitSyncs(n int) {
	in.t.Helper()
	in.waitFor("synced", func(in *inbox) bool { return in.syncs >= n })
}

// waitEvent waits for an event of type typ and returns it.
func (in *inbox) waitEvent(typ schema.EventType) schema.Event {
	in.t.Helper()
	var ev schema.Event
	in.waitFor("event "+string(typ), func(in *inbox) bool {
		for _, e := range in.events {
			if e.Type == typ {
				ev = e
				return true
			}
		}
		return false
	})
	return ev
}

// proxy is a TCP forwarder between clients and the server that a test can
// cut, to break connections the way a network does.
type proxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu      sync.Mutex
	conns   map[net.Conn]bool // guarded by mu
	refuse  bool              // guarded by mu
	held    map[net.Conn]bool // drop what the server sends on these; guarded by mu
	wg      sync.WaitGroup
	stopped chan struct{}
}

// newProxy forwards a loopback port to the server's HTTP address.
func newProxy(t *testing.T, s *server) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: s.srv.HTTPAddr(), conns: map[net.Conn]bool{}, held: map[net.Conn]bool{}, stopped: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// url is the proxy's base URL.
func (p *proxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.refuse {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up, true)
		go p.pipe(up, c, false)
	}
}

// pipe copies src to dst; for the server's side (down) it drops the data
// while the proxy holds.
func (p *proxy) pipe(dst, src net.Conn, down bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			drop := down && p.held[src]
			p.mu.Unlock()
			if !drop {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

// holdDown drops everything the server sends from now on on the open
// connections, so requests go out but their answers never arrive.
// Connections made later are not held.
func (p *proxy) holdDown() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		p.held[c] = true
	}
}

// cut closes every forwarded connection; with refuse, new ones are refused
// until restore.
func (p *proxy) cut(refuse bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = refuse
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	clear(p.held)
}

// restore accepts connections again.
func (p *proxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = false
}

func (p *proxy) close() {
	p.ln.Close()
	p.cut(true)
	p.wg.Wait()
}

// isCode fails the test unless err carries code.
func isCode(t *testing.T, err error, code schema.Code) {
	t.Helper()
	if !schema.HasCode(err, code) {
		var e *schema.Error
		errors.As(err, &e)
		t.Fatalf("error %v (schema error %v), want code %s", err, e, code)
	}
}

// sendAsync starts c.Send(to, text) and returns a function that waits for
// its outcome.
func sendAsync(ctx context.Context, c *client.Client, to, text string) (wait func() (client.Sent, error)) {
	type outcome struct {
		sent client.Sent
		err  error
	}
	res := make(chan outcome, 1)
	go func() {
		s, err := c.Send(ctx, to, text)
		res <- outcome{s, err}
	}()
	return func() (client.Sent, error) {
		o := <-res
		return o.sent, o.err
	}
}
