package natstest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/fabric/node"
)

// Cluster is a NATS cluster of in-process Mayfly nodes, one per site, each
// tagged site:<name> with unique_tag "site:" so that an R3 stream keeps one
// replica per site (docs/dr.md). Its methods are for the test goroutine.
type Cluster struct {
	t     testing.TB
	Sites []string
	Nodes []*node.Node // nil while a site is down
	cfgs  []node.Config
}

// RunCluster starts one node per site (site names must be subject-safe)
// and waits until JetStream has a metadata leader. Every node is shut
// down by t.Cleanup. calloutIssuer is passed to every node (node.Config).
func RunCluster(t testing.TB, calloutIssuer string, sites ...string) *Cluster {
	t.Helper()
	var err error
	for range 5 { // a route port taken between the probe and the start: pick again
		c := &Cluster{t: t, Sites: sites, Nodes: make([]*node.Node, len(sites))}
		ports := routePorts(len(sites))
		for i, s := range sites {
			var routes []string
			for j, p := range ports {
				if j != i {
					routes = append(routes, "127.0.0.1:"+strconv.Itoa(p))
				}
			}
			c.cfgs = append(c.cfgs, node.Config{
				Listen: "127.0.0.1:0", StoreDir: t.TempDir(), ServerName: s,
				ServicePassword: Password, CalloutIssuer: calloutIssuer,
				Cluster: node.ClusterConfig{
					Name: "mayfly", Listen: "127.0.0.1:" + strconv.Itoa(ports[i]), Routes: routes,
					Tags: []string{"site:" + s}, UniqueTag: "site:",
				},
			})
		}
		if err = c.startAll(); err == nil {
			t.Cleanup(c.shutdown)
			c.waitMeta()
			return c
		}
		c.shutdown()
	}
	t.Fatalf("natstest: start cluster: %v", err)
	return nil
}

func (c *Cluster) startAll() error {
	for i := range c.Sites {
		n, err := node.Start(c.cfgs[i])
		if err != nil {
			return err
		}
		c.Nodes[i] = n
	}
	return nil
}

func (c *Cluster) shutdown() {
	for i, n := range c.Nodes {
		if n != nil {
			n.Shutdown()
			c.Nodes[i] = nil
		}
	}
}

// routePorts returns n loopback ports that were free a moment ago, below
// the usual ephemeral range so outgoing connections do not take them.
func routePorts(n int) []int {
	var out []int
	for len(out) < n {
		p := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		ln.Close()
		out = append(out, p)
	}
	return out
}

// waitMeta waits until a node is the JetStream metadata leader and knows
// every node as an online JetStream peer with its stats (tags included):
// before that, placing an R3 stream over three sites can fail with "no
// suitable peers for placement" (seen under load).
func (c *Cluster) waitMeta() {
	c.t.Helper()
	WaitFor(c.t, 30*time.Second, "natstest: a JetStream metadata leader that knows every node", func() bool {
		for _, n := range c.Nodes {
			if n != nil && n.Server().JetStreamIsLeader() && len(n.Server().JetStreamClusterPeers()) >= len(c.Nodes) {
				return true
			}
		}
		return false
	})
}

// URL returns the client URLs of the running nodes, site i's first, comma
// separated, with the service user's credentials.
func (c *Cluster) URL(i int) string { return c.URLAs(i, node.ServiceUser) }

// URLAs is URL with the credentials of user, one of node's fixed users.
func (c *Cluster) URLAs(i int, user string) string {
	var urls []string
	for j := range c.Nodes {
		k := (i + j) % len(c.Nodes)
		if n := c.Nodes[k]; n != nil {
			urls = append(urls, strings.Replace(n.ClientURL(), "nats://", "nats://"+user+":"+Password+"@", 1))
		}
	}
	return strings.Join(urls, ",")
}

// Kill stops site i's node at once (its clients see the connection drop).
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	if c.Nodes[i] == nil {
		c.t.Fatalf("natstest: site %s is down already", c.Sites[i])
	}
	c.Nodes[i].Shutdown()
	c.Nodes[i] = nil
}

// Restart starts site i's node again on its store and route port.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	n, err := node.Start(c.cfgs[i])
	if err != nil {
		c.t.Fatalf("natstest: restart site %s: %v", c.Sites[i], err)
	}
	c.Nodes[i] = n
}

// Site returns the index of the site named s.
func (c *Cluster) Site(s string) int {
	for i, name := range c.Sites {
		if name == s {
			return i
		}
	}
	panic(fmt.Sprintf("natstest: no site %q", s))
}

// ConnectAs connects to site i's node as one of node's fixed users.
func (c *Cluster) ConnectAs(i int, user string) *nats.Conn {
	c.t.Helper()
	nc, err := c.Nodes[i].ConnectAs(user, c.t.Name(), nats.Timeout(ConnectWait))
	if err != nil {
		c.t.Fatalf("natstest: %v", err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// AddSite starts a node for a new site (a replacement city) that routes to
// every other site's node, and returns its index.
func (c *Cluster) AddSite(name string) int {
	c.t.Helper()
	var routes []string
	for _, cfg := range c.cfgs {
		routes = append(routes, cfg.Cluster.Listen)
	}
	cfg := c.cfgs[0]
	cfg.StoreDir, cfg.ServerName = c.t.TempDir(), name
	cfg.Cluster.Listen = "127.0.0.1:" + strconv.Itoa(routePorts(1)[0])
	cfg.Cluster.Routes, cfg.Cluster.Tags = routes, []string{"site:" + name}
	n, err := node.Start(cfg)
	if err != nil {
		c.t.Fatalf("natstest: add site %s: %v", name, err)
	}
	c.Sites, c.Nodes, c.cfgs = append(c.Sites, name), append(c.Nodes, n), append(c.cfgs, cfg)
	return len(c.Nodes) - 1
}
