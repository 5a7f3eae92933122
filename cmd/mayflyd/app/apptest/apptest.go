// Package apptest runs a whole mayflyd in-process for end-to-end tests: a
// fresh database on the test binary's private Postgres (see store/storetest,
// whose Main the test package must run), an embedded NATS server on a random
// loopback port and the gateway on another, assembled by cmd/mayflyd/app as
// the binary assembles them. Tests of one part use that part's helpers
// instead (gateway/gatewaytest runs the gateway and the services it serves).
//
// The device client and the command builder live in gateway/gatewaytest;
// the names below forward to them, so tests speak one client in both.
package apptest

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/store/storetest"
)

// Start runs a mayflyd for t with cfg's zero fields filled for a test:
// database, data dir, loopback listeners on random ports, generous anonymous
// rate limits. It is stopped by t.Cleanup.
func Start(t testing.TB, cfg app.Config) *app.App {
	t.Helper()
	if cfg.DatabaseURL == "" {
		cfg.DatabaseURL = storetest.NewURL(t)
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.HTTPListen == "" {
		cfg.HTTPListen = "127.0.0.1:0"
	}
	if cfg.NATSListen == "" {
		cfg.NATSListen = "127.0.0.1:0"
	}
	if cfg.NATSWebSocketListen == "" {
		cfg.NATSWebSocketListen = "127.0.0.1:0"
	}
	if cfg.AnonRate == 0 {
		cfg.AnonRate, cfg.AnonBurst = 10000, 10000
	}
	a, err := app.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("apptest: start mayflyd: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := a.Stop(ctx); err != nil {
			t.Errorf("apptest: stop mayflyd: %v", err)
		}
	})
	return a
}

// Client is gatewaytest.Client: one device of one user on the HTTP API.
type Client = gatewaytest.Client

// Account is gatewaytest.Account: a user's identity key and device list.
type Account = gatewaytest.Account

// NewClient is gatewaytest.NewClient.
func NewClient(t testing.TB, addr string) *Client { return gatewaytest.NewClient(t, addr) }

// NewUser is gatewaytest.NewUser.
func NewUser(t testing.TB, addr, handle string) *Client { return gatewaytest.NewUser(t, addr, handle) }

// Binary is gatewaytest.Binary.
func Binary(t testing.TB, pkg string, race bool) string { return gatewaytest.Binary(t, pkg, race) }

// RemoveBinaries is gatewaytest.RemoveBinaries.
func RemoveBinaries() { gatewaytest.RemoveBinaries() }

// SignChallenge is gatewaytest.SignChallenge.
func SignChallenge(ch schema.Challenge, key ed25519.PrivateKey, device string) schema.LoginRequest {
	return gatewaytest.SignChallenge(ch, key, device)
}
