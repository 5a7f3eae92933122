package app

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/fabric/token"
)

// DRConfig is what a deployment over several cities adds to a mayflyd
// (docs/dr.md). The zero value is a single-site mayflyd.
type DRConfig struct {
	// PlacementCluster and PlacementTags place the replicas of the mailbox
	// streams and the presence bucket: a NATS cluster name and server tags
	// every replica's server must carry. Empty lets the servers choose
	// (with unique_tag "site:" they still put each replica in its own site).
	PlacementCluster string
	PlacementTags    []string
	// NATSAuthURL and NATSSysURL connect the auth callout responder to an
	// external NATS (NATSURL) as the callout account's user and the system
	// account's user; with NATSAuthURL set, NATS-native clients can log in
	// to that cluster. NATSSysURL is optional: without it revoked devices'
	// NATS connections are not kicked (their tokens still expire).
	NATSAuthURL, NATSSysURL string
	// CalloutKeyFile is the callout issuer's account seed; default
	// DataDir/keys/callout.nk. With NATSAuthURL it must exist: the servers'
	// configuration names its public key, so a new one would be refused.
	CalloutKeyFile string
	// TokenKeyRequired refuses to start when TokenKeyFile does not exist,
	// instead of making a new key: in a deployment of several cities every
	// gateway must hold the one key, and a new one would log everybody out
	// whose token another city signed.
	TokenKeyRequired bool
}

// placement is the JetStream placement of Mayfly's streams, nil for none.
func (d DRConfig) placement() *jetstream.Placement {
	if d.PlacementCluster == "" && len(d.PlacementTags) == 0 {
		return nil
	}
	return &jetstream.Placement{Cluster: d.PlacementCluster, Tags: d.PlacementTags}
}

func (d DRConfig) calloutKey(dataDir string) string {
	if d.CalloutKeyFile != "" {
		return d.CalloutKeyFile
	}
	return filepath.Join(dataDir, "keys", "callout.nk")
}

// externalOptions apply to every connection to an external NATS: its URLs
// are tried in the order given (the local city's server first, nats.go
// shuffles them otherwise), and a lost server is left quickly.
var externalOptions = []nats.Option{
	nats.DontRandomize(),
	nats.ReconnectWait(250 * time.Millisecond),
	nats.Timeout(2 * time.Second),
}

// connectCallout connects the callout responder's users to the external
// NATS and loads the issuer key, which must exist already.
func (a *App) connectCallout(n *nativeAuth) error {
	path := a.cfg.DR.calloutKey(a.cfg.DataDir)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("callout issuer key %s (the NATS servers' auth_callout issuer; copy it from another city, docs/dr.md): %w", path, err)
	}
	if _, err := n.loadIssuer(path); err != nil {
		return err
	}
	opts := append([]nats.Option{nats.MaxReconnects(-1)}, externalOptions...)
	var err error
	if n.auth, err = nats.Connect(a.cfg.DR.NATSAuthURL, append(opts, nats.Name("mayflyd-callout"))...); err != nil {
		return fmt.Errorf("connect to nats as the callout user: %w", err)
	}
	if a.cfg.DR.NATSSysURL == "" {
		a.log.Warn("no NATS system-account URL: revoked devices' NATS connections end only when their tokens expire")
		return nil
	}
	if n.sys, err = nats.Connect(a.cfg.DR.NATSSysURL, append(opts, nats.Name("mayflyd-sys"))...); err != nil {
		return fmt.Errorf("connect to nats as the system user: %w", err)
	}
	return nil
}

// ErrTokenKeyMissing means DRConfig.TokenKeyRequired is set and the token
// key file does not exist.
var ErrTokenKeyMissing = errors.New("token key missing")

// loadTokenKey loads the token signing key, making one on first start
// unless DR.TokenKeyRequired forbids it.
func (a *App) loadTokenKey() (ed25519.PrivateKey, error) {
	if a.cfg.DR.TokenKeyRequired {
		if _, err := os.Stat(a.cfg.TokenKeyFile); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s does not exist and --token-key-required forbids making a new one (copy the deployment's key there, docs/dr.md)",
				ErrTokenKeyMissing, a.cfg.TokenKeyFile)
		}
	}
	return token.LoadOrCreateKey(a.cfg.TokenKeyFile)
}
