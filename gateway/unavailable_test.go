package gateway_test

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/store/storetest"
)

// pgProxy forwards TCP connections on 127.0.0.1 to the test Postgres's
// socket. While down it drops every connection it holds and every new one
// at once, as a Postgres that restarts or fails over does.
type pgProxy struct {
	t      *testing.T
	l      net.Listener
	socket string // the Postgres unix socket

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// newPGProxy returns a proxy to a fresh test database and the database URL
// through it.
func newPGProxy(t *testing.T) (*pgProxy, string) {
	t.Helper()
	u, err := url.Parse(storetest.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	socks, _ := filepath.Glob(filepath.Join(u.Query().Get("host"), ".s.PGSQL.*[0-9]"))
	if len(socks) != 1 {
		t.Fatalf("postgres sockets %v, want one", socks)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{t: t, l: l, socket: socks[0], conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		l.Close()
		p.setDown(true)
		p.wg.Wait()
	})
	q := u.Query()
	q.Del("host")
	u.Host, u.RawQuery = l.Addr().String(), q.Encode()
	return p, u.String()
}

func (p *pgProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.mu.Unlock()
		pg, err := net.Dial("unix", p.socket)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[pg] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, pg)
		go p.pipe(pg, c)
	}
}

func (p *pgProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// setDown drops every connection and refuses new ones (true), or forwards
// again (false).
func (p *pgProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
	}
}

// TestGatewayPostgresDownIsUnavailable: while Postgres drops every
// connection (a restart or a promotion), requests that need it are
// answered 503 unavailable, temporary, not internal; once it is back the
// same requests succeed.
func TestGatewayPostgresDownIsUnavailable(t *testing.T) {
	t.Parallel()
	proxy, dbURL := newPGProxy(t)
	a := gatewaytest.Start(t, gatewaytest.Config{DatabaseURL: dbURL})
	alice := gatewaytest.NewUser(t, a.HTTPAddr(), "alice")
	bob := gatewaytest.NewUser(t, a.HTTPAddr(), "bob")
	alice.Must("GET", "/v1/devices", nil, nil)

	proxy.setDown(true)
	for _, req := range []struct{ method, path string }{
		{"GET", "/v1/devices"},
		{"GET", "/v1/users/bob"},
		{"POST", "/v1/users/" + bob.User.UserID + "/bundle"},
	} {
		st, e := alice.Do(req.method, req.path, nil, nil)
		if st != http.StatusServiceUnavailable || e == nil || e.Code != schema.CodeUnavailable || !e.Temporary {
			t.Errorf("%s %s with postgres down: %d %v, want 503 unavailable, temporary", req.method, req.path, st, e)
		}
	}

	proxy.setDown(false)
	natstest.WaitFor(t, 20*time.Second, "GET /v1/devices to succeed after postgres came back", func() bool {
		st, e := alice.Do("GET", "/v1/devices", nil, nil)
		if e != nil && e.Code != schema.CodeUnavailable {
			t.Fatalf("GET /v1/devices after postgres came back: %d %v", st, e)
		}
		return e == nil
	})
}
