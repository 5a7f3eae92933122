package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/fabric/mailbox"
	"github.com/mayfly-im/mayfly/fabric/sites"
)

// result is what the drill measured.
type result struct {
	killAt                     time.Time
	acked, lost                int
	burned, burnedBack         int
	firstSend, allSends        time.Duration // after the kill; -1: never
	commits, commitsLost       int
	writable                   time.Duration
	caughtUp                   time.Duration
	p99Before, baseP99         time.Duration
	nativeAcked, nativeLost    int
	sendsFailed, burnsFailed   int
	aLedStreams                []string
	promoted, restartedA       time.Duration
	elected                    time.Duration // every stream has a leader again
	placementBefore, placement string
	errs                       map[string]int
	backDetail                 map[string]int // burned messages still served, by copy and server
	otherCopyWarnings          int
	nativeLast                 string
	permanent                  *permanent // the optional permanent-loss phase
}

// drill runs the city-loss drill proper.
func drill(ctx context.Context, o options) (*result, error) {
	d, err := startDeployment(o.script, filepath.Join(o.dir, "dr"), o.bin, o.base, o.partitions, false)
	if d != nil {
		defer d.stop()
	}
	if err != nil {
		return nil, err
	}
	for _, s := range siteNames {
		if err := d.startMayflyd(ctx, s); err != nil {
			return nil, err
		}
	}
	gws := []string{d.httpAddr("a"), d.httpAddr("b"), d.httpAddr("c")}
	pairs, err := makePairs(ctx, gws, o.pairs, "d")
	if err != nil {
		return nil, err
	}
	res := &result{}
	if err := d.leadSomeMailbox(ctx, "a"); err != nil {
		return nil, err
	}
	rep, err := d.placement(ctx, "b")
	if err != nil {
		return nil, err
	}
	res.placementBefore = rep.String()
	for _, s := range rep.Streams {
		if s.Leader == "a" {
			res.aLedStreams = append(res.aLedStreams, s.Name)
		}
	}
	logf("placement before the kill:\n%s", rep)

	rec, w, nat := newRecorder(), &writes{}, &native{}
	cctx, stopClients := context.WithCancel(ctx)
	defer stopClients()
	lctx, stopLoad := context.WithCancel(cctx)
	var wg sync.WaitGroup
	wg.Go(func() { runPairs(cctx, lctx, pairs, o.rate, rec) })
	var side sync.WaitGroup // writes and the native client: done when they return
	side.Go(func() { w.run(lctx, gws, pairs[0].recipient.Identity().Handle) })
	side.Go(func() { nat.run(lctx, d, pairs[0]) })
	start := time.Now()
	sleep(ctx, o.before)

	logf("killing city a: mayflyd, nats-server, postgres primary (SIGKILL)")
	if res.killAt, err = d.killCity("a"); err != nil {
		stopLoad()
		stopClients()
		side.Wait()
		wg.Wait()
		return nil, err
	}
	if err := d.run(nil, "promote", d.dir, "b"); err != nil {
		stopLoad()
		stopClients()
		side.Wait()
		wg.Wait()
		return nil, err
	}
	res.promoted = time.Since(res.killAt)
	res.elected = d.waitLeaders(ctx, "b", 30*time.Second, res.killAt)
	logf("every stream has a leader %v after the kill", res.elected.Round(time.Millisecond))
	logf("postgres standby in b promoted %v after the kill", res.promoted.Round(time.Millisecond))
	sleep(ctx, o.after)

	logf("bringing city a back")
	restart := time.Now()
	// Polled from the start: NATS comes back first, and its replicas catch
	// up while the script rebuilds the Postgres standby and mayflyd starts.
	caught := make(chan time.Duration, 1)
	go func() { caught <- d.waitCaughtUp(ctx, "a", 60*time.Second, restart) }()
	err = d.run(nil, "start-site", d.dir, "a")
	if err == nil {
		logf("city a's NATS server and Postgres standby up %v after start-site began", time.Since(restart).Round(time.Millisecond))
		err = d.startMayflyd(ctx, "a")
	}
	res.caughtUp = <-caught
	if err != nil {
		stopLoad()
		stopClients()
		side.Wait()
		wg.Wait()
		return nil, err
	}
	res.restartedA = time.Since(restart)
	logf("city a's replicas caught up %v after its restart", res.caughtUp.Round(time.Millisecond))
	sleep(ctx, 3*time.Second)
	stopLoad()
	side.Wait()
	rec.waitIdle(45 * time.Second)
	logf("load stopped; waiting for deliveries, then checking")
	err = res.check(ctx, d, o, rec, w, nat, start)
	stopClients()
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if rep, err := d.placement(ctx, "a"); err == nil {
		res.placement = rep.String()
	}
	if o.permanent {
		if res.permanent, err = permanentLoss(ctx, d, rec, o.partitions); err != nil {
			res.permanent = &permanent{placed: -1, err: err}
		}
	}
	return res, nil
}

// leadSomeMailbox makes site lead at least one mailbox stream, so that the
// kill takes a leader with it: it asks MBX_0's leader to step down in
// favour of site's server when site leads none.
func (d *deployment) leadSomeMailbox(ctx context.Context, site string) error {
	for range 10 {
		rep, err := d.placement(ctx, "b")
		if err != nil {
			return err
		}
		if slices.ContainsFunc(rep.Streams, func(s sites.Stream) bool { return s.Leader == site && strings.HasPrefix(s.Name, "MBX_") }) {
			return nil
		}
		nc, err := nats.Connect(d.value("b", "MAYFLY_NATS_URL"), nats.DontRandomize(), nats.Timeout(2*time.Second))
		if err != nil {
			return err
		}
		body, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": site}})
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = nc.RequestWithContext(rctx, "$JS.API.STREAM.LEADER.STEPDOWN.MBX_0", body)
		cancel()
		nc.Close()
		if err != nil {
			logf("stepdown of MBX_0 towards %s: %v", site, err)
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("city %s leads no mailbox stream after 10 stepdowns", site)
}

// placement checks every stream from site's point of view.
func (d *deployment) placement(ctx context.Context, site string) (sites.Report, error) {
	nc, err := nats.Connect(d.value(site, "MAYFLY_NATS_URL"), nats.DontRandomize(), nats.Timeout(2*time.Second))
	if err != nil {
		return sites.Report{}, err
	}
	defer nc.Close()
	sys, err := nats.Connect(d.value(site, "MAYFLY_NATS_SYS_URL"), nats.DontRandomize(), nats.Timeout(2*time.Second))
	if err != nil {
		return sites.Report{}, err
	}
	defer sys.Close()
	where, err := sites.ServerSites(ctx, sys, 300*time.Millisecond) // loopback servers answer in milliseconds
	if err != nil {
		return sites.Report{}, err
	}
	js, _ := jetstream.New(nc)
	return sites.Check(ctx, js, where, sites.Mayfly)
}

// waitCaughtUp polls until site's replica of every stream has been current
// (caught up with its leader) at least once since from, and returns the time
// since from, or -1 after max. Under load a replica that caught up can trail
// its leader by the entries in flight at any one poll, so the streams are
// not required to be current at the same poll.
func (d *deployment) waitCaughtUp(ctx context.Context, site string, max time.Duration, from time.Time) time.Duration {
	deadline := time.Now().Add(max)
	caught := map[string]bool{}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		rep, err := d.placement(ctx, site)
		if err == nil && len(rep.Streams) > 0 {
			for _, s := range rep.Streams {
				if slices.ContainsFunc(s.Peers, func(p sites.Peer) bool { return p.Server == site && p.Current && !p.Offline }) {
					caught[s.Name] = true
				}
			}
			if !slices.ContainsFunc(rep.Streams, func(s sites.Stream) bool { return !caught[s.Name] }) {
				return time.Since(from)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return -1
}

// waitLeaders polls until every stream has a leader and returns the time
// since from, or -1 after max.
func (d *deployment) waitLeaders(ctx context.Context, site string, max time.Duration, from time.Time) time.Duration {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		rep, err := d.placement(ctx, site)
		if err == nil && len(rep.Streams) > 0 && !slices.ContainsFunc(rep.Streams, func(s sites.Stream) bool { return s.Leader == "" }) {
			return time.Since(from)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return -1
}

func allCurrent(r sites.Report, server string) bool {
	if len(r.Streams) == 0 {
		return false
	}
	for _, s := range r.Streams {
		if !slices.ContainsFunc(s.Peers, func(p sites.Peer) bool { return p.Server == server && p.Current && !p.Offline }) {
			return false
		}
	}
	return true
}

// p99 is the 99th percentile latency of successful sends started in
// [from, to) that ended before endBy: a send the kill caught is not one of
// the sends before it.
func p99(sends []sendRec, from, to, endBy time.Time) time.Duration {
	var lat []time.Duration
	for _, s := range sends {
		if s.ok && !s.start.Before(from) && s.start.Before(to) && s.end.Before(endBy) {
			lat = append(lat, s.end.Sub(s.start))
		}
	}
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	return lat[(len(lat)*99)/100]
}

// partitionOf is the mailbox stream of a user.
func partitionOf(uid string, n int) string {
	return fmt.Sprintf("MBX_%d", mailbox.Partition(uid, n))
}
