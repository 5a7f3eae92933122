package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/fabric/jsapi"
)

// check computes every figure of the table from what the load recorded.
func (r *result) check(ctx context.Context, d *deployment, o options, rec *recorder, w *writes, nat *native, start time.Time) error {
	if nat.err != nil {
		return fmt.Errorf("native client: %w", nat.err)
	}
	r.p99Before = p99(rec.sends, start.Add(2*time.Second), r.killAt, r.killAt)
	logTimeline(rec.sends, start, r.killAt)
	r.deliveries(rec, nat)
	r.sendTimes(rec, o.partitions)
	r.nativeAcked, r.nativeLast = len(nat.acked), nat.last
	r.otherCopyWarnings = d.countLog("burn other copy")
	r.errs = rec.errs
	r.burnsFailed = rec.burnErrs
	if err := r.burnsGone(ctx, d, rec, o.partitions, siteNames); err != nil {
		return err
	}
	return r.commitsKept(ctx, d, w)
}

// deliveries waits up to 30s for every acknowledged message to reach its
// recipient and counts the ones that did not.
func (r *result) deliveries(rec *recorder, nat *native) {
	var want []string
	for _, s := range rec.sends {
		if s.ok {
			want = append(want, s.id)
		} else {
			r.sendsFailed++
		}
	}
	r.acked = len(want)
	missing := func(ids []string) int {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		n := 0
		for _, id := range ids {
			if _, ok := rec.received[id]; !ok {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for (missing(want) > 0 || missing(nat.acked) > 0) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	r.lost, r.nativeLost = missing(want), missing(nat.acked)
}

// sendTimes finds, for each stream city a led, the first successful send
// into it started after the kill, and keeps the latest of those; and when
// sends last failed or stalled: took over 4× the p99 before the kill and
// at least 2s (on a loaded machine 1s is within the normal tail).
func (r *result) sendTimes(rec *recorder, partitions int) {
	stalled := max(2*time.Second, 4*r.p99Before)
	first := map[string]time.Duration{}
	for _, s := range rec.sends {
		if s.start.Before(r.killAt) && s.end.Before(r.killAt) {
			continue
		}
		if !s.ok || s.end.Sub(s.start) > stalled {
			r.allSends = max(r.allSends, s.end.Sub(r.killAt))
		}
		if !s.ok || s.start.Before(r.killAt) {
			continue
		}
		for _, stream := range []string{partitionOf(s.to, partitions), partitionOf(s.from, partitions)} {
			if f, ok := first[stream]; !ok || s.end.Sub(r.killAt) < f {
				first[stream] = s.end.Sub(r.killAt)
			}
		}
	}
	r.firstSend = 0
	for _, stream := range r.aLedStreams {
		f, ok := first[stream]
		if !ok && strings.HasPrefix(stream, "MBX_") {
			r.firstSend = -1 // no send into it ever succeeded
			return
		}
		r.firstSend = max(r.firstSend, f)
	}
}

// burnsGone asks the server of every city in cities, city a's included,
// for both copies of every burned message; a server answers from its own
// replica (a local queue subscriber is preferred over remote ones).
func (r *result) burnsGone(ctx context.Context, d *deployment, rec *recorder, partitions int, cities []string) error {
	seqOf := map[string]uint64{} // message id -> sender's copy
	for _, s := range rec.sends {
		if s.ok {
			seqOf[s.id] = s.seq
		}
	}
	r.burned = len(rec.burned)
	r.backDetail = map[string]int{}
	for _, site := range cities {
		u := strings.Split(d.value(site, "MAYFLY_NATS_URL"), ",")[0]
		nc, err := nats.Connect(u, nats.NoReconnect(), nats.Timeout(2*time.Second))
		if err != nil {
			return fmt.Errorf("connect to city %s: %w", site, err)
		}
		for _, b := range rec.burned {
			r.countServed(ctx, nc, site, partitionOf(b.recipient, partitions), b.peerSeq, "recipient's copy")
			if seq, ok := seqOf[b.id]; ok && seq > 0 {
				r.countServed(ctx, nc, site, partitionOf(b.sender, partitions), seq, "sender's copy")
			}
		}
		nc.Close()
	}
	return nil
}

// countServed asks the server nc is connected to for seq of stream and
// counts a burned message it still serves, or a request it never answers.
func (r *result) countServed(ctx context.Context, nc *nats.Conn, site, stream string, seq uint64, what string) {
	for range 3 {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := jsapi.Get(rctx, nc, stream, seq)
		cancel()
		switch {
		case err == nil:
			r.burnedBack++
			r.backDetail[what+" served by "+site]++
			return
		case errors.Is(err, jsapi.ErrNotFound):
			return
		}
	}
	r.burnedBack++ // a check must not pass on silence
	r.backDetail["no answer from "+site]++
}

// commitsKept counts the acknowledged account+friend-request writes that
// the promoted primary has, and when writes first succeeded after the kill.
func (r *result) commitsKept(ctx context.Context, d *deployment, w *writes) error {
	var handles []string
	r.writable = -1
	for _, x := range w.recs {
		if !x.ok {
			continue
		}
		handles = append(handles, strings.ToLower(x.handle))
		if !x.start.Before(r.killAt) && (r.writable < 0 || x.end.Sub(r.killAt) < r.writable) {
			r.writable = x.end.Sub(r.killAt)
		}
	}
	r.commits = len(handles)
	db, err := pgx.Connect(ctx, d.value("b", "MAYFLY_DATABASE_URL"))
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer db.Close(ctx)
	var found int
	err = db.QueryRow(ctx, `SELECT count(*) FROM users u JOIN friend_requests f ON f.from_id = u.id
		WHERE lower(u.handle) = ANY($1)`, handles).Scan(&found)
	if err != nil {
		return fmt.Errorf("count commits: %w", err)
	}
	r.commitsLost = r.commits - found
	return nil
}

// print writes the table and returns whether every check passed.
func (r *result) print(out io.Writer) bool {
	type row struct {
		check, goal, got string
		ok               bool
	}
	secs := func(d time.Duration) string {
		if d < 0 {
			return "never"
		}
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	rows := []row{
		{"acknowledged sends lost", "0", fmt.Sprintf("%d of %d", r.lost, r.acked), r.lost == 0 && r.acked > 0},
		{"NATS-native sends lost", "0", fmt.Sprintf("%d of %d", r.nativeLost, r.nativeAcked), r.nativeLost == 0 && r.nativeAcked > 0},
		{"burned messages readable anywhere afterwards (a included)", "0", fmt.Sprintf("%d of %d burns (both copies, 3 servers)", r.burnedBack, r.burned), r.burnedBack == 0 && r.burned > 0},
		{"first successful send after the kill (into each stream a led)", "≤ 10 s", secs(r.firstSend), r.firstSend >= 0 && r.firstSend <= 10*time.Second},
		{"all sends succeeding again", "≤ 15 s", secs(r.allSends), r.allSends <= 15*time.Second},
		{"Postgres commits lost", "0", fmt.Sprintf("%d of %d", r.commitsLost, r.commits), r.commitsLost == 0 && r.commits > 0},
		{"accounts and friendships writable again", "≤ 30 s", secs(r.writable), r.writable >= 0 && r.writable <= 30*time.Second},
		{"A's replicas caught up after restart", "≤ 30 s", secs(r.caughtUp), r.caughtUp >= 0 && r.caughtUp <= 30*time.Second},
	}
	if r.baseP99 > 0 {
		ratio := float64(r.p99Before) / float64(r.baseP99)
		rows = append(rows, row{"publish p99 before the kill", "≤ 1.5× single-site R3",
			fmt.Sprintf("%v vs %v (%.2f×)", r.p99Before.Round(time.Millisecond), r.baseP99.Round(time.Millisecond), ratio), ratio <= 1.5})
	}
	fmt.Fprintf(out, "\nstreams led by city a before the kill: %s; every stream had a leader %s after it; sends failed: %d; burns failed: %d; standby promoted after %s; city a back (NATS, Postgres standby, mayflyd ready) %s after start-site began\n",
		strings.Join(r.aLedStreams, " "), secs(r.elected), r.sendsFailed, r.burnsFailed, secs(r.promoted), secs(r.restartedA))
	for e, n := range r.errs {
		fmt.Fprintf(out, "  %d× %s\n", n, e)
	}
	for what, n := range r.backDetail {
		fmt.Fprintf(out, "  burned but readable: %d× %s\n", n, what)
	}
	if r.otherCopyWarnings > 0 {
		fmt.Fprintf(out, "  mayflyd logged %d burns whose other copy it could not delete at first (mailbox: burn other copy; answered unavailable, the client retried)\n", r.otherCopyWarnings)
	}
	if r.nativeLast != "" {
		fmt.Fprintf(out, "  native client's last failed attempt: %s\n", r.nativeLast)
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| check | goal | measured | result |")
	fmt.Fprintln(out, "|---|---|---|---|")
	all := true
	for _, x := range rows {
		res := "pass"
		if !x.ok {
			res, all = "FAIL", false
		}
		fmt.Fprintf(out, "| %s | %s | %s | %s |\n", x.check, x.goal, x.got, res)
	}
	if r.permanent != nil && !r.permanent.print(out) {
		all = false
	}
	return all
}

// logTimeline logs, per second of the run (by start time), how many sends
// started, failed, and their slowest and p90 latency: where the time went.
func logTimeline(sends []sendRec, start, killAt time.Time) {
	type sec struct {
		n, failed int
		lat       []time.Duration
	}
	var secs []sec
	for _, s := range sends {
		i := int(s.start.Sub(start) / time.Second)
		if i < 0 {
			continue
		}
		for len(secs) <= i {
			secs = append(secs, sec{})
		}
		secs[i].n++
		if !s.ok {
			secs[i].failed++
		}
		secs[i].lat = append(secs[i].lat, s.end.Sub(s.start))
	}
	var b strings.Builder
	kill := int(killAt.Sub(start) / time.Second)
	for i, x := range secs {
		slices.Sort(x.lat)
		var p90, worst time.Duration
		if len(x.lat) > 0 {
			p90, worst = x.lat[len(x.lat)*9/10], x.lat[len(x.lat)-1]
		}
		mark := ""
		if i == kill {
			mark = "  <- kill"
		}
		fmt.Fprintf(&b, "  t=%3ds sends %3d failed %2d p90 %6.2fs max %6.2fs%s\n", i, x.n, x.failed, p90.Seconds(), worst.Seconds(), mark)
	}
	logf("sends by the second they started:\n%s", b.String())
}
