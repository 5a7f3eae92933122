package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
	"github.com/mayfly-im/mayfly/fabric/sites"
)

// drFlags adds the flags of a deployment over several cities (docs/dr.md)
// to fs; the returned function finishes them once fs is parsed.
func drFlags(fs *flag.FlagSet, str func(p *string, name, env, def, usage string), d *app.DRConfig) func() error {
	var tags, required string
	str(&d.PlacementCluster, "placement-cluster", "MAYFLY_PLACEMENT_CLUSTER", "", "NATS cluster for the replicas of the mailbox streams and presence bucket (default: the servers choose)")
	str(&tags, "placement-tags", "MAYFLY_PLACEMENT_TAGS", "", "comma-separated server tags every replica's server must have")
	str(&d.NATSAuthURL, "nats-auth-url", "MAYFLY_NATS_AUTH_URL", "", "with --nats-url: the callout account's user URL(s); serves the auth callout for NATS-native clients")
	str(&d.NATSSysURL, "nats-sys-url", "MAYFLY_NATS_SYS_URL", "", "with --nats-url: the system account's user URL(s), to kick revoked devices and for dr-check")
	str(&d.CalloutKeyFile, "callout-key", "MAYFLY_CALLOUT_KEY", "", "callout issuer account seed (default <data>/keys/callout.nk; must exist with --nats-auth-url)")
	str(&required, "token-key-required", "MAYFLY_TOKEN_KEY_REQUIRED", "false", "refuse to start without an existing --token-key instead of making one")
	return func() error {
		for _, t := range strings.Split(tags, ",") {
			if t = strings.TrimSpace(t); t != "" {
				d.PlacementTags = append(d.PlacementTags, t)
			}
		}
		switch required {
		case "true", "1":
			d.TokenKeyRequired = true
		case "false", "0", "":
		default:
			return fmt.Errorf("bad -token-key-required %q: want true or false", required)
		}
		if (d.NATSAuthURL != "" || d.NATSSysURL != "") && fs.Lookup("nats-url").Value.String() == "" {
			return errors.New("-nats-auth-url and -nats-sys-url need -nats-url")
		}
		return nil
	}
}

// drConnect connects as the service and the system user, for the dr-*
// commands.
func drConnect(o options, cmd string) (nc, sys *nats.Conn, err error) {
	if o.cfg.NATSURL == "" || o.cfg.DR.NATSSysURL == "" {
		return nil, nil, fmt.Errorf("%s needs -nats-url and -nats-sys-url (server tags are visible to the system account only)", cmd)
	}
	opts := []nats.Option{nats.DontRandomize(), nats.Timeout(2 * time.Second)}
	nc, err = nats.Connect(o.cfg.NATSURL, append(opts, nats.Name("mayflyd-"+cmd))...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nats: %w", err)
	}
	sys, err = nats.Connect(o.cfg.DR.NATSSysURL, append(opts, nats.Name("mayflyd-"+cmd+"-sys"))...)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("connect to nats as the system user: %w", err)
	}
	return nc, sys, nil
}

// drRemoveSite is "mayflyd dr-remove-site SERVER [flags]": it removes the
// NATS server of a city lost for good from JetStream's metadata group and
// from Mayfly's streams, which move their replica to a site that has none
// yet (docs/dr.md, "Permanent loss of a city").
func drRemoveSite(args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return errors.New("usage: mayflyd dr-remove-site SERVER [flags] (SERVER: the lost server's name)")
	}
	server := args[0]
	o, err := parseFlags(args[1:])
	if err != nil {
		return err
	}
	nc, sys, err := drConnect(o, "dr-remove-site")
	if err != nil {
		return err
	}
	defer nc.Close()
	defer sys.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rm, err := sites.RemoveServer(ctx, sys, nc, server, sites.Mayfly)
	if err != nil {
		return err
	}
	switch {
	case rm.Meta:
		fmt.Fprintf(os.Stdout, "removed %s from the JetStream metadata group\n", server)
	default:
		fmt.Fprintf(os.Stdout, "%s was no member of the metadata group (removed before)\n", server)
	}
	if len(rm.Streams) > 0 {
		fmt.Fprintf(os.Stdout, "removed its replica of %s\n", strings.Join(rm.Streams, " "))
	}
	fmt.Fprintln(os.Stdout, "streams move their replica to a site without one; mayflyd dr-check shows when they have")
	return nil
}

// drCheck is "mayflyd dr-check": it prints where the replicas of every
// Mayfly stream are and fails unless each has a leader and its replicas in
// distinct sites.
func drCheck(args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	nc, sys, err := drConnect(o, "dr-check")
	if err != nil {
		return err
	}
	defer nc.Close()
	defer sys.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	where, err := sites.ServerSites(ctx, sys, time.Second)
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	r, err := sites.Check(ctx, js, where, sites.Mayfly)
	if err != nil {
		return err
	}
	fmt.Fprint(os.Stdout, r.String())
	if !r.OK() {
		return errors.New("dr-check: a stream would not survive the loss of a site (see above)")
	}
	fmt.Fprintf(os.Stdout, "ok: %d streams, each with a leader and one replica per site\n", len(r.Streams))
	return nil
}
