// Package apptest runs a whole mayflyd in-process for end-to-end tests: a
// fresh database on the test binary's private Postgres (see store/storetest,
// whose Main the test package must run), an embedded NATS server on a random
// loopback port and the gateway on another. It also has a small HTTP client
// that speaks the public API the way a device would.
package apptest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
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

// Client talks to a mayflyd's HTTP API as one device of one user.
type Client struct {
	T       testing.TB
	BaseURL string // http://host:port
	Keys    envelope.Keys
	User    schema.User
	Session schema.Session
}

// NewClient returns a client with fresh keys for the server at addr (host:port).
func NewClient(t testing.TB, addr string) *Client {
	t.Helper()
	k, err := envelope.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	return &Client{T: t, BaseURL: "http://" + addr, Keys: k}
}

// Do sends a JSON request (body may be nil, a []byte sent as-is, or a value
// to encode) with the client's access token if it has one, and decodes a 2xx
// answer into out. It returns the HTTP status and, for errors, the decoded
// *schema.Error.
func (c *Client) Do(method, path string, body, out any) (int, *schema.Error) {
	c.T.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.T.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.BaseURL+path, rd)
	if err != nil {
		c.T.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Session.AccessToken != "" {
		req.Header.Set("Authorization", "Bearer "+c.Session.AccessToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.T.Fatalf("apptest: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		var eb schema.ErrorBody
		if err := json.Unmarshal(raw, &eb); err != nil || eb.Error == nil {
			c.T.Fatalf("apptest: %s %s: status %d with non-error body %q", method, path, resp.StatusCode, raw)
		}
		return resp.StatusCode, eb.Error
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.T.Fatalf("apptest: %s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, nil
}

// Must is Do that fails the test on any error answer.
func (c *Client) Must(method, path string, body, out any) {
	c.T.Helper()
	if st, e := c.Do(method, path, body, out); e != nil {
		c.T.Fatalf("apptest: %s %s: %d %v", method, path, st, e)
	}
}

// RegisterRequest returns the registration body for handle with c's keys.
func (c *Client) RegisterRequest(handle string) schema.RegisterRequest {
	pk := c.Keys.Public()
	return schema.RegisterRequest{
		Handle:  handle,
		SignKey: base64.RawURLEncoding.EncodeToString(pk.Sign),
		KexKey:  base64.RawURLEncoding.EncodeToString(pk.Kex),
	}
}

// Register registers handle with c's keys.
func (c *Client) Register(handle string) {
	c.T.Helper()
	c.Must("POST", "/v1/register", c.RegisterRequest(handle), &c.User)
}

// SignChallenge returns the login request answering ch with key.
func SignChallenge(ch schema.Challenge, key ed25519.PrivateKey, device string) schema.LoginRequest {
	nonce, _ := base64.RawURLEncoding.DecodeString(ch.Nonce)
	sig := ed25519.Sign(key, schema.LoginMessage(ch.ChallengeID, nonce))
	return schema.LoginRequest{ChallengeID: ch.ChallengeID, Signature: base64.RawURLEncoding.EncodeToString(sig), DeviceName: device}
}

// Login logs c in as device, storing the session.
func (c *Client) Login(device string) {
	c.T.Helper()
	var ch schema.Challenge
	c.Must("POST", "/v1/login/challenge", schema.ChallengeRequest{Handle: c.User.Handle}, &ch)
	c.Must("POST", "/v1/login", SignChallenge(ch, c.Keys.Sign, device), &c.Session)
}

// Device returns another client of the same user (same keys), logged in as
// device name.
func (c *Client) Device(name string) *Client {
	c.T.Helper()
	d := &Client{T: c.T, BaseURL: c.BaseURL, Keys: c.Keys, User: c.User}
	d.Login(name)
	return d
}

// NewUser registers handle and logs in a first device "phone".
func NewUser(t testing.TB, addr, handle string) *Client {
	t.Helper()
	c := NewClient(t, addr)
	c.Register(handle)
	c.Login("phone")
	return c
}

// String describes the client for failure messages.
func (c *Client) String() string { return fmt.Sprintf("%s/%s", c.User.Handle, c.Session.DeviceID) }
