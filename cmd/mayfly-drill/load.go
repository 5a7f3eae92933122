package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/mayfly-im/mayfly/gateway/client"
)

// sendRec is one Send: when it started and ended, and how.
type sendRec struct {
	start, end time.Time
	ok         bool
	from, to   string // user ids
	id         string // message id when ok
	seq        uint64 // sender's copy
	peerSeq    uint64 // recipient's copy
}

// pair is a sender and a recipient, each a Go client on a gateway.
type pair struct {
	sender, recipient *client.Client
	toHandle          string
}

// recorder collects what the load saw. Its methods are safe for concurrent use.
type recorder struct {
	mu       sync.Mutex
	sends    []sendRec
	received map[string]uint64 // message id -> seq in the recipient's mailbox
	burned   []burn            // messages read (burned) by their recipients
	burnErrs int
	inflight int            // sends and burns under way
	errs     map[string]int // failed sends and burns by error
}

// waitIdle waits until no send or burn is under way, at most max.
func (r *recorder) waitIdle(max time.Duration) {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		n := r.inflight
		r.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *recorder) busy(d int) { r.mu.Lock(); r.inflight += d; r.mu.Unlock() }

// burn is one burned message: both copies' sequences and owners.
type burn struct {
	recipient, sender string
	peerSeq           uint64 // the recipient's copy
	id                string // message id
}

func newRecorder() *recorder { return &recorder{received: map[string]uint64{}, errs: map[string]int{}} }

// addSend records a finished send that busy(1) announced.
func (r *recorder) addSend(s sendRec) {
	r.mu.Lock()
	r.sends = append(r.sends, s)
	r.inflight--
	r.mu.Unlock()
}

// newClient registers handle through the gateways at addrs (its own city's
// first, the others to fail over to) and logs in.
func newClient(ctx context.Context, addrs []string, handle string) (*client.Client, error) {
	keys, err := client.NewKeys(true)
	if err != nil {
		return nil, err
	}
	var urls []string
	for _, a := range addrs {
		urls = append(urls, "http://"+a)
	}
	c, err := client.New(client.Config{Server: urls[0], Servers: urls[1:], Keys: keys, DeviceName: "drill",
		MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		return nil, err
	}
	if _, err := c.Register(ctx, handle); err != nil {
		return nil, fmt.Errorf("register %s: %w", handle, err)
	}
	if _, err := c.Login(ctx); err != nil {
		return nil, fmt.Errorf("login %s: %w", handle, err)
	}
	return c, nil
}

// makePairs registers n pairs of friends, spread over the cities: pair i's
// sender lives in city i mod 3, its recipient in the next city, each with
// its own city's gateway first.
func makePairs(ctx context.Context, gateways []string, n int, tag string) ([]pair, error) {
	var out []pair
	for i := range n {
		s, err := newClient(ctx, localFirst(gateways, i), fmt.Sprintf("drs%s%03d", tag, i))
		if err != nil {
			return nil, err
		}
		rh := fmt.Sprintf("drr%s%03d", tag, i)
		r, err := newClient(ctx, localFirst(gateways, i+1), rh)
		if err != nil {
			return nil, err
		}
		if _, err := s.FriendRequest(ctx, rh); err != nil {
			return nil, fmt.Errorf("friend request: %w", err)
		}
		if _, err := r.AcceptFriend(ctx, s.Identity().Handle); err != nil {
			return nil, fmt.Errorf("accept: %w", err)
		}
		out = append(out, pair{sender: s, recipient: r, toHandle: rh})
	}
	return out, nil
}

// localFirst returns the gateways starting with city i mod len(gateways).
func localFirst(gateways []string, i int) []string {
	i %= len(gateways)
	return append(slices.Clone(gateways[i:]), gateways[:i]...)
}

// runPairs runs every client's connection until ctx ends and the load
// until sendCtx ends: each sender sends at rate per second; each recipient
// burns every second message it receives. It returns once every goroutine
// is done.
func runPairs(ctx, sendCtx context.Context, pairs []pair, rate float64, rec *recorder) {
	var wg sync.WaitGroup
	for _, p := range pairs {
		toBurn := make(chan burn, 1024)
		wg.Go(func() { p.sender.Run(ctx, client.Handler{SendOnly: true}) })      //nolint:errcheck
		wg.Go(func() { p.recipient.Run(ctx, recipientHandler(p, rec, toBurn)) }) //nolint:errcheck
		wg.Go(func() { burner(sendCtx, p.recipient, rec, toBurn) })
		wg.Go(func() { sender(sendCtx, p, rate, rec) })
	}
	wg.Wait()
}

func recipientHandler(p pair, rec *recorder, toBurn chan<- burn) client.Handler {
	n := 0
	return client.Handler{Message: func(_ context.Context, m client.Message) error {
		if m.Self {
			return nil
		}
		rec.mu.Lock()
		rec.received[m.ID] = m.Seq
		rec.mu.Unlock()
		if n++; n%2 == 0 {
			select {
			case toBurn <- burn{recipient: m.To, sender: m.From, peerSeq: m.Seq, id: m.ID}:
			default: // the burner is behind; skip this one
			}
		}
		return nil
	}}
}

// burner reads (burns) the messages it is handed, from its own goroutine:
// a Handler must not wait on the connection that calls it.
func burner(ctx context.Context, c *client.Client, rec *recorder, in <-chan burn) {
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-in:
			rec.busy(1)
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			err := c.Read(rctx, b.peerSeq)
			cancel()
			rec.mu.Lock()
			rec.inflight--
			if err == nil {
				rec.burned = append(rec.burned, b)
			} else {
				rec.burnErrs++
				rec.errs["burn: "+err.Error()]++
			}
			rec.mu.Unlock()
		}
	}
}

// sender sends to its recipient at rate per second (jittered start).
func sender(ctx context.Context, p pair, rate float64, rec *recorder) {
	every := time.Duration(float64(time.Second) / rate)
	if !sleep(ctx, time.Duration(rand.Int64N(int64(every)))) {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ctx.Err() != nil { // a tick and the end came together: a send now would wait for a closed connection
			return
		}
		start := time.Now()
		rec.busy(1)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 40*time.Second)
		s, err := p.sender.Send(sctx, p.toHandle, fmt.Sprintf("drill message %d", i))
		cancel()
		if err != nil {
			rec.mu.Lock()
			rec.errs["send: "+err.Error()]++
			rec.mu.Unlock()
		}
		rec.addSend(sendRec{start: start, end: time.Now(), ok: err == nil, from: p.sender.Identity().UserID,
			to: p.recipient.Identity().UserID, id: s.ID, seq: s.Seq, peerSeq: s.PeerSeq})
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// writes registers accounts and asks an existing user for friendship, one
// after the other, until ctx ends: the Postgres side of the drill.
type writes struct {
	mu   sync.Mutex
	recs []writeRec
}

type writeRec struct {
	start, end time.Time
	handle     string
	ok         bool
}

func (w *writes) run(ctx context.Context, gateways []string, friend string) {
	for i := 0; ctx.Err() == nil; i++ {
		start := time.Now()
		h := fmt.Sprintf("drw%05d", i)
		ok := w.one(ctx, localFirst(gateways, i), h, friend)
		w.mu.Lock()
		w.recs = append(w.recs, writeRec{start: start, end: time.Now(), handle: h, ok: ok})
		w.mu.Unlock()
		sleep(ctx, 100*time.Millisecond)
	}
}

func (w *writes) one(ctx context.Context, gws []string, handle, friend string) bool {
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := newClient(wctx, gws, handle)
	if err != nil {
		return false
	}
	_, err = c.FriendRequest(wctx, friend)
	return err == nil
}
