package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// WorkerConfig tells one generator which users it owns and where they
// connect. Users come in friend pairs (2i, 2i+1); a worker owns Users
// consecutive users starting at global index FirstUser, an even number.
type WorkerConfig struct {
	ID        int      `json:"id"`
	FirstUser int      `json:"first_user"`
	Users     int      `json:"users"`
	Gateways  []string `json:"gateways"` // base URLs; user g connects to Gateways[g % len]
	RunID     string   `json:"run_id"`   // makes handles unique per run
	// SetupURL, if set, takes every HTTP API call (registration, login,
	// friends) instead of the user's gateway, so the gateways' memory
	// before connecting is a fresh process's.
	SetupURL string `json:"setup_url,omitempty"`
	// SourceIPs spreads connections over 127.0.0.10 .. 127.0.0.(9+n) to
	// get past one source address's ephemeral port range; 0 lets the
	// kernel choose.
	SourceIPs        int `json:"source_ips"`
	SetupConcurrency int `json:"setup_concurrency"`
	DialConcurrency  int `json:"dial_concurrency"`
	PayloadSize      int `json:"payload_size"` // bytes of plaintext payload
}

// Worker is one load generator: it owns a set of users, sets them up over
// HTTP, holds their WebSockets, and sends and burns messages in timed
// steps. Its methods are called one at a time by one driver; the
// connections' reader goroutines update its counters and the current step
// concurrently.
type Worker struct {
	cfg   WorkerConfig
	api   *apiClient
	users []*user
	live  liveCounters

	cur    stepHolder // the step frames are recorded into
	sealed *stepState // made by Seal, taken by Run

	errMu  sync.Mutex
	errors map[string]int64 // outside any step; guarded by errMu
}

// NewWorker validates cfg and makes the users' keys.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	switch {
	case cfg.Users <= 0 || cfg.Users%2 != 0 || cfg.FirstUser%2 != 0:
		return nil, fmt.Errorf("worker %d: users must be a positive even number at an even offset", cfg.ID)
	case len(cfg.Gateways) == 0:
		return nil, fmt.Errorf("worker %d: no gateway", cfg.ID)
	}
	for _, g := range append([]string{cfg.SetupURL}, cfg.Gateways...) {
		if g == "" {
			continue
		}
		if err := checkLoopbackURL(g); err != nil {
			return nil, err
		}
	}
	cfg.SetupConcurrency = max(1, cfg.SetupConcurrency)
	cfg.DialConcurrency = max(1, cfg.DialConcurrency)
	w := &Worker{cfg: cfg, api: newAPIClient(cfg.SetupConcurrency), errors: map[string]int64{}}
	for i := range cfg.Users {
		k := newBenchKeys()
		g := cfg.FirstUser + i
		u := &user{
			idx: i, handle: fmt.Sprintf("b%s_%d", cfg.RunID, g),
			base: cfg.Gateways[g%len(cfg.Gateways)], api: cfg.SetupURL, keys: k,
		}
		if u.api == "" {
			u.api = u.base
		}
		w.users = append(w.users, u)
	}
	for i := 0; i < len(w.users); i += 2 {
		w.users[i].partner, w.users[i+1].partner = w.users[i+1], w.users[i]
	}
	return w, nil
}

// checkLoopbackURL refuses any target outside 127.0.0.0/8: the benchmark
// never sends traffic off the machine.
func checkLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("bad url %q: %w", raw, err)
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil || ip.To4() == nil || ip.To4()[0] != 127 {
		return fmt.Errorf("url %q: only 127.0.0.0/8 addresses are allowed", raw)
	}
	return nil
}

// Setup registers and logs in every user, then makes each pair friends.
func (w *Worker) Setup(ctx context.Context) error {
	par := w.cfg.SetupConcurrency
	err := forEach(ctx, len(w.users), par, func(ctx context.Context, i int) error {
		u := w.users[i]
		if err := w.api.register(ctx, u); err != nil {
			return err
		}
		w.live.registered.Add(1)
		if err := w.api.login(ctx, u); err != nil {
			return err
		}
		w.live.loggedIn.Add(1)
		return nil
	})
	if err != nil {
		return err
	}
	return forEach(ctx, len(w.users)/2, par, func(ctx context.Context, p int) error {
		if err := w.api.befriend(ctx, w.users[2*p], w.users[2*p+1]); err != nil {
			return err
		}
		w.live.befriended.Add(1)
		return nil
	})
}

// Connect opens the WebSockets of the first n users that are not connected
// yet and waits until each answered its sync.
func (w *Worker) Connect(ctx context.Context, n int) error {
	n = min(n, len(w.users))
	return forEach(ctx, n, w.cfg.DialConcurrency, func(ctx context.Context, i int) error {
		u := w.users[i]
		if u.conn != nil {
			return nil
		}
		c, err := w.dialWS(ctx, u, w.sourceAddr(i))
		if err != nil {
			return err
		}
		select {
		case <-c.synced:
		case <-c.done:
			return fmt.Errorf("websocket %s: closed before sync", u.handle)
		case <-time.After(30 * time.Second):
			return fmt.Errorf("websocket %s: no synced in 30s", u.handle)
		case <-ctx.Done():
			return ctx.Err()
		}
		u.conn = c
		w.live.connected.Add(1)
		return nil
	})
}

// sourceAddr picks the source address of connection i.
func (w *Worker) sourceAddr(i int) net.Addr {
	if w.cfg.SourceIPs <= 0 {
		return nil
	}
	n := (w.cfg.FirstUser + i) % w.cfg.SourceIPs
	return &net.TCPAddr{IP: net.IPv4(127, 0, byte(n/200), byte(10+n%200))}
}

// Counters returns the running totals.
func (w *Worker) Counters() Counters { return w.live.snapshot() }

// Close closes every connection and waits for the readers.
func (w *Worker) Close() error {
	for _, u := range w.users {
		if c := u.conn; c != nil {
			c.wmu.Lock()
			c.ws.Close()
			c.wmu.Unlock()
		}
	}
	for _, u := range w.users {
		if c := u.conn; c != nil {
			<-c.done
		}
	}
	return nil
}

// connLost records a connection that ended while the worker still ran.
func (w *Worker) connLost(c *wsConn, err error) {
	if w.cur.closing.Load() {
		return
	}
	w.live.dropped.Add(1)
	w.recordError("conn:" + closeCode(err))
}

// recordError counts one failure outside or inside a step.
func (w *Worker) recordError(key string) {
	w.live.errors.Add(1)
	if st := w.cur.get(); st != nil {
		st.addError(key)
		return
	}
	w.errMu.Lock()
	w.errors[key]++
	w.errMu.Unlock()
}

// parseMsgID splits a message id "w<worker>s<step>m<index>".
func parseMsgID(id string) (worker, step, k int, ok bool) {
	rest, found := strings.CutPrefix(id, "w")
	if !found {
		return 0, 0, 0, false
	}
	ws, rest, found1 := strings.Cut(rest, "s")
	ss, ks, found2 := strings.Cut(rest, "m")
	if !found1 || !found2 {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	worker, err1 = strconv.Atoi(ws)
	step, err2 = strconv.Atoi(ss)
	k, err3 = strconv.Atoi(ks)
	if err1 != nil || err2 != nil || err3 != nil || k < 0 {
		return 0, 0, 0, false
	}
	return worker, step, k, true
}

func msgID(worker, step, k int) string {
	return "w" + strconv.Itoa(worker) + "s" + strconv.Itoa(step) + "m" + strconv.Itoa(k)
}

// errNoStep is returned by Run before Seal.
var errNoStep = errors.New("no sealed messages for this step: call Seal first")
