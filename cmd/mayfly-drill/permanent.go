package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"time"

	"github.com/mayfly-im/mayfly/fabric/sites"
)

// permanent is what the optional permanent-loss phase measured.
type permanent struct {
	placed     time.Duration // from add-site until every stream has a current replica in d; -1: never
	burned     int
	burnedBack int
	detail     map[string]int
	placement  string
	err        error // why the phase could not run to its end
}

// permanentLoss loses city a for good after the drill proper: a is killed
// again, a replacement city d is added (deploy/dr/sites.sh add-site), a is
// removed (remove-site: fence, mayflyd dr-remove-site, standby list), and
// the drill waits until every stream has a current replica in d, then asks
// d's server for both copies of every burned message.
func permanentLoss(ctx context.Context, d *deployment, rec *recorder, partitions int) (*permanent, error) {
	logf("permanent loss: killing city a again, adding city d, removing a")
	if _, err := d.killCity("a"); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := d.run(nil, "add-site", d.dir, "d"); err != nil {
		return nil, err
	}
	env, err := readEnv(filepath.Join(d.dir, "env-d"))
	if err != nil {
		return nil, err
	}
	d.env["d"] = env
	if err := d.run(nil, "remove-site", d.dir, "a"); err != nil {
		return nil, err
	}
	p := &permanent{placed: -1}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		rep, err := d.placement(ctx, "d")
		if err == nil && rep.OK() && allCurrent(rep, "d") && !slices.ContainsFunc(rep.Streams, func(s sites.Stream) bool {
			return slices.ContainsFunc(s.Peers, func(p sites.Peer) bool { return p.Server == "a" })
		}) {
			p.placed, p.placement = time.Since(start), rep.String()
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	logf("permanent loss: every stream placed with a current replica in d %v after add-site began", p.placed.Round(time.Millisecond))
	var r result
	if err := r.burnsGone(ctx, d, rec, partitions, []string{"d"}); err != nil {
		return nil, err
	}
	p.burned, p.burnedBack, p.detail = r.burned, r.burnedBack, r.backDetail
	return p, nil
}

// print adds the phase's rows to the table and reports whether they passed.
func (p *permanent) print(out io.Writer) bool {
	placed := "never"
	if p.placed >= 0 {
		placed = fmt.Sprintf("%.1f s", p.placed.Seconds())
	}
	okPlaced, okBurns := p.placed >= 0, p.burnedBack == 0 && p.burned > 0 && p.err == nil
	if p.err != nil {
		fmt.Fprintf(out, "  permanent loss phase failed: %v\n", p.err)
	}
	fmt.Fprintf(out, "| permanent loss: every stream with a current replica in the replacement city d, none on a | placed | %s | %s |\n", placed, passFail(okPlaced))
	fmt.Fprintf(out, "| permanent loss: burned messages readable on d's replicas | 0 | %d of %d burns (both copies) | %s |\n", p.burnedBack, p.burned, passFail(okBurns))
	for what, n := range p.detail {
		fmt.Fprintf(out, "  burned but readable after the permanent loss: %d× %s\n", n, what)
	}
	if p.placement != "" {
		fmt.Fprintf(out, "\nplacement after the permanent loss:\n%s", p.placement)
	}
	return okPlaced && okBurns
}

func passFail(ok bool) string {
	if ok {
		return "pass"
	}
	return "FAIL"
}
