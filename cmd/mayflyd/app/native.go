package app

import (
	"fmt"
	"net"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/mayfly-im/mayfly/fabric/account"
	"github.com/mayfly-im/mayfly/fabric/callout"
	"github.com/mayfly-im/mayfly/fabric/natsapi"
	"github.com/mayfly-im/mayfly/fabric/node"
	"github.com/mayfly-im/mayfly/gateway"
)

// nativeAuth runs the auth callout that admits NATS-native clients to the
// embedded server, or to an external NATS cluster whose configuration names
// the callout account and issuer key (DRConfig.NATSAuthURL, dr.go); with an
// external NATS and no auth URL this part stays off.
type nativeAuth struct {
	issuer    nkeys.KeyPair
	auth, sys *nats.Conn
	responder *callout.Responder
	api       *natsapi.Service
	metrics   *nativeMetrics // the service's Observer (metrics.go)
}

// loadIssuer loads or makes the callout's account key and returns its
// public key for the server config.
func (n *nativeAuth) loadIssuer(path string) (string, error) {
	kp, err := callout.LoadOrCreateIssuer(path)
	if err != nil {
		return "", err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", fmt.Errorf("callout issuer: %w", err)
	}
	n.issuer = kp
	return pub, nil
}

// start connects the callout's users and subscribes the responder.
func (n *nativeAuth) start(a *App, accounts *account.Service) error {
	var err error
	switch {
	case a.node != nil:
		if n.auth, err = a.node.ConnectAs(node.AuthUser, "mayflyd-callout"); err != nil {
			return err
		}
		if n.sys, err = a.node.ConnectAs(node.SysUser, "mayflyd-sys"); err != nil {
			return err
		}
	case a.cfg.DR.NATSAuthURL != "":
		if err := a.connectCallout(n); err != nil {
			return err
		}
	default:
		return nil
	}
	n.responder, err = callout.Start(callout.Config{
		Auth: n.auth, Service: a.nc, Sys: n.sys, Issuer: n.issuer, Accounts: accounts, Logger: a.log,
		MaxConnsPerDevice: gateway.MaxConnsPerDevice, MaxConnsPerUser: gateway.MaxConnsPerUser,
	})
	return err
}

// startAPI registers the micro services native clients call. They run in
// every mayflyd, embedded NATS or not: the queue group spreads the load.
func (n *nativeAuth) startAPI(a *App, accounts *account.Service) error {
	var err error
	n.api, err = natsapi.Start(natsapi.Config{
		NATS: a.nc, Mailbox: a.mailbox, Friends: a.friends, Accounts: accounts, Presence: a.presence,
		Logger: a.log.With("src", "natsapi"), Observer: n.metrics,
		RequestRate: a.cfg.WSFrameRate, RequestBurst: a.cfg.WSFrameBurst,
	})
	return err
}

func (n *nativeAuth) stop() {
	if n.api != nil {
		n.api.Stop()
	}
	if n.responder != nil {
		n.responder.Stop()
	}
	for _, c := range []*nats.Conn{n.auth, n.sys} {
		if c != nil {
			c.Close()
		}
	}
}

// natsWebSocketListen is the NATS WebSocket address, "" when off.
func (a *App) natsWebSocketListen() string {
	switch a.cfg.NATSWebSocketListen {
	case "off":
		return ""
	case "":
		return "127.0.0.1:4223"
	}
	return a.cfg.NATSWebSocketListen
}

// webOrigins are the browser origins allowed on the NATS WebSocket listener:
// the gateway's own (where the web client is served) and the configured ones.
func (a *App) webOrigins() []string {
	out := append([]string(nil), a.cfg.AllowedOrigins...)
	if host, port, err := net.SplitHostPort(a.cfg.HTTPListen); err == nil && port != "0" {
		out = append(out, "http://"+net.JoinHostPort(host, port))
		if host == "127.0.0.1" {
			out = append(out, "http://localhost:"+port)
		}
	}
	return out
}

// NATSWebSocketURL returns the ws:// URL of the embedded NATS WebSocket
// listener, or "" when it is off or NATS is external.
func (a *App) NATSWebSocketURL() string {
	if a.node == nil {
		return ""
	}
	return a.node.WebSocketURL()
}
