// Package sites checks that Mayfly's JetStream streams survive the loss of a
// city: every stream has a leader and its replicas sit on servers of
// distinct sites. A server's site is its "site:<city>" server tag, the tag
// the deployment names as JetStream's unique_tag (docs/dr.md).
//
// The server tags are only visible to the system account, so [Check] asks
// every server once over a system-account connection ($SYS.REQ.SERVER.PING),
// then reads each stream's cluster information over the service connection.
// Functions are safe for concurrent use; they own no goroutines.
package sites

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TagPrefix marks the server tag that names a server's site.
const TagPrefix = "site:"

// Peer is one replica of a stream.
type Peer struct {
	Server string // server name
	Site   string // from the server's site: tag; "" when it has none or is unknown
	Leader bool
	// Current reports a follower that is caught up with the leader; the
	// leader is always current. Offline followers are not current.
	Current bool
	Offline bool
	Lag     uint64 // operations behind the leader
}

// Stream is the placement of one stream.
type Stream struct {
	Name     string
	Replicas int    // configured replica count
	Leader   string // server name; "" while there is none
	Peers    []Peer // leader first
	// Problems says what keeps the stream from surviving a city's loss;
	// empty when it would.
	Problems []string
}

// OK reports whether the stream has a leader and distinct sites.
func (s Stream) OK() bool { return len(s.Problems) == 0 }

// Report is the outcome of a Check.
type Report struct {
	Streams []Stream
	// ServerSites maps every server that answered to its site.
	ServerSites map[string]string
}

// OK reports whether every stream is OK and there is at least one.
func (r Report) OK() bool {
	if len(r.Streams) == 0 {
		return false
	}
	for _, s := range r.Streams {
		if !s.OK() {
			return false
		}
	}
	return true
}

// String renders the report as a table, one stream a line.
func (r Report) String() string {
	var b strings.Builder
	for _, s := range r.Streams {
		peers := make([]string, 0, len(s.Peers))
		for _, p := range s.Peers {
			mark := ""
			switch {
			case p.Leader:
				mark = "*"
			case p.Offline:
				mark = " offline"
			case !p.Current:
				mark = fmt.Sprintf(" lag %d", p.Lag)
			}
			peers = append(peers, fmt.Sprintf("%s@%s%s", p.Server, orDash(p.Site), mark))
		}
		status := "ok"
		if !s.OK() {
			status = "FAIL: " + strings.Join(s.Problems, "; ")
		}
		fmt.Fprintf(&b, "%-16s R%d  %-40s %s\n", s.Name, s.Replicas, strings.Join(peers, " "), status)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Filter picks the streams to check by name; nil checks all.
type Filter func(name string) bool

// Mayfly picks Mayfly's own streams: the mailboxes (MBX_*) and the presence
// bucket (KV_presence).
func Mayfly(name string) bool {
	return strings.HasPrefix(name, "MBX_") || name == "KV_presence"
}

// ServerSites asks every server of the system account's cluster for its
// tags and returns server name -> site. It waits up to wait for answers
// (servers answer in milliseconds; the wait bounds a slow one).
func ServerSites(ctx context.Context, sys *nats.Conn, wait time.Duration) (map[string]string, error) {
	inbox := sys.NewRespInbox()
	sub, err := sys.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("sites: subscribe: %w", err)
	}
	defer sub.Unsubscribe()
	if err := sys.PublishRequest("$SYS.REQ.SERVER.PING", inbox, nil); err != nil {
		return nil, fmt.Errorf("sites: ping servers: %w", err)
	}
	out := map[string]string{}
	deadline := time.Now().Add(wait)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		m, err := sub.NextMsgWithContext(withMax(ctx, left))
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("sites: ping servers: %w", ctx.Err())
			}
			break // the wait is over
		}
		var ping struct {
			Server struct {
				Name string   `json:"name"`
				Tags []string `json:"tags"`
			} `json:"server"`
		}
		if json.Unmarshal(m.Data, &ping) != nil || ping.Server.Name == "" {
			continue
		}
		out[ping.Server.Name] = siteOf(ping.Server.Tags)
	}
	if len(out) == 0 {
		return nil, errors.New("sites: no server answered the ping (is the connection in the system account?)")
	}
	return out, nil
}

// withMax bounds ctx by d; its cancel is released when ctx or d ends.
func withMax(ctx context.Context, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(ctx, d)
	context.AfterFunc(c, cancel)
	return c
}

func siteOf(tags []string) string {
	for _, t := range tags {
		if s, ok := strings.CutPrefix(strings.ToLower(t), TagPrefix); ok {
			return s
		}
	}
	return ""
}

// Check reads the placement of every stream keep picks (nil: all) and
// judges it with serverSites (from [ServerSites]). Each stream info request
// gets its own short timeout, so a stream without a leader does not stall
// the rest; such a stream is reported with a problem, not as an error.
func Check(ctx context.Context, js jetstream.JetStream, serverSites map[string]string, keep Filter) (Report, error) {
	r := Report{ServerSites: serverSites}
	names, err := streamNames(ctx, js)
	if err != nil {
		return r, err
	}
	for _, name := range names {
		if keep != nil && !keep(name) {
			continue
		}
		r.Streams = append(r.Streams, checkStream(ctx, js, name, serverSites))
	}
	return r, nil
}

func streamNames(ctx context.Context, js jetstream.JetStream) ([]string, error) {
	var names []string
	lister := js.StreamNames(ctx)
	for n := range lister.Name() {
		names = append(names, n)
	}
	if err := lister.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return nil, fmt.Errorf("sites: list streams: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

// infoTimeout bounds one stream info request.
const infoTimeout = 2 * time.Second

func checkStream(ctx context.Context, js jetstream.JetStream, name string, serverSites map[string]string) Stream {
	st := Stream{Name: name}
	ictx, cancel := context.WithTimeout(ctx, infoTimeout)
	defer cancel()
	s, err := js.Stream(ictx, name)
	if err != nil {
		st.Problems = append(st.Problems, "no answer (no leader?): "+err.Error())
		return st
	}
	info := s.CachedInfo()
	st.Replicas = info.Config.Replicas
	if c := info.Cluster; c != nil {
		st.Leader = c.Leader
		if c.Leader != "" {
			st.Peers = append(st.Peers, Peer{Server: c.Leader, Site: serverSites[c.Leader], Leader: true, Current: true})
		}
		for _, p := range c.Replicas {
			st.Peers = append(st.Peers, Peer{Server: p.Name, Site: serverSites[p.Name], Current: p.Current, Offline: p.Offline, Lag: p.Lag})
		}
	}
	st.Problems = append(st.Problems, judge(st)...)
	return st
}

// judge lists what keeps st from surviving the loss of one site.
func judge(st Stream) []string {
	var out []string
	if st.Leader == "" {
		out = append(out, "no leader")
	}
	if st.Replicas < 3 {
		out = append(out, fmt.Sprintf("R%d: a city's loss takes it down", st.Replicas))
	}
	if len(st.Peers) < st.Replicas {
		out = append(out, fmt.Sprintf("%d of %d replicas placed", len(st.Peers), st.Replicas))
	}
	var seen []string
	for _, p := range st.Peers {
		switch {
		case p.Site == "":
			out = append(out, p.Server+" has no site: tag")
		case slices.Contains(seen, p.Site):
			out = append(out, "two replicas in site "+p.Site)
		}
		seen = append(seen, p.Site)
	}
	return out
}

// Removed is what [RemoveServer] did.
type Removed struct {
	// Meta reports that the metadata group dropped the server (false when
	// it was no longer a member).
	Meta bool
	// Streams are the streams whose replica on the server was removed by a
	// peer-remove request (the metadata group's removal usually moves them
	// first, and then none are left to remove).
	Streams []string
}

// RemoveServer removes a server whose city is lost for good: from
// JetStream's metadata group over the system-account connection sys
// ($JS.API.SERVER.REMOVE), then from every stream keep picks that still
// lists it ($JS.API.STREAM.PEER.REMOVE over js's connection nc). Each
// affected stream gets a replacement replica in a site that holds none yet,
// when the cluster has one (unique_tag); otherwise it runs on the replicas
// left until one joins. The server must stay down: a removed server that
// comes back disables its JetStream. Each request gets its own short
// timeout; a stream without a leader is reported as an error.
func RemoveServer(ctx context.Context, sys, nc *nats.Conn, server string, keep Filter) (Removed, error) {
	var out Removed
	body, _ := json.Marshal(map[string]string{"peer": server})
	var err error
	out.Meta, err = removeFromMeta(ctx, sys, body)
	if err != nil {
		return out, fmt.Errorf("sites: remove %s from the metadata group: %w", server, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return out, fmt.Errorf("sites: %w", err)
	}
	r, err := Check(ctx, js, nil, keep)
	if err != nil {
		return out, err
	}
	for _, s := range r.Streams {
		if !slices.ContainsFunc(s.Peers, func(p Peer) bool { return p.Server == server }) {
			continue
		}
		err := apiRequest(ctx, nc, "$JS.API.STREAM.PEER.REMOVE."+s.Name, body)
		if err != nil && strings.Contains(err.Error(), "not a member") {
			continue // the metadata group's removal is moving it already
		}
		if err != nil {
			return out, fmt.Errorf("sites: remove %s from stream %s: %w", server, s.Name, err)
		}
		out.Streams = append(out.Streams, s.Name)
	}
	return out, nil
}

// removeFromMeta asks the metadata leader to drop the server named in body.
// Only the leader answers, once the change is applied; while a leader is
// being elected or another change is under way it asks again, until ctx
// ends. It reports false when the server was no member (removed before).
func removeFromMeta(ctx context.Context, sys *nats.Conn, body []byte) (bool, error) {
	for {
		err := apiRequest(ctx, sys, "$JS.API.SERVER.REMOVE", body)
		switch {
		case err == nil:
			return true, nil
		case strings.Contains(err.Error(), "not a member"):
			return false, nil
		case !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) &&
			!errors.Is(err, nats.ErrNoResponders) && !strings.Contains(err.Error(), "in progress"):
			return false, err
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// apiRequest sends one JetStream API request and returns its error
// description, if it answered one.
func apiRequest(ctx context.Context, nc *nats.Conn, subj string, body []byte) error {
	rctx, cancel := context.WithTimeout(ctx, infoTimeout)
	defer cancel()
	m, err := nc.RequestWithContext(rctx, subj, body)
	if err != nil {
		return err
	}
	var resp struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	if resp.Error != nil {
		return errors.New(resp.Error.Description)
	}
	return nil
}
