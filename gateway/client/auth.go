package client

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

var b64 = base64.RawURLEncoding

// Register creates an account for handle with the Client's keys. It does not
// log in. Errors: invalid_handle, handle_taken, invalid_key, rate_limited.
func (c *Client) Register(ctx context.Context, handle string) (schema.User, error) {
	req := schema.RegisterRequest{
		Handle:  handle,
		SignKey: envelope.EncodeKey(c.pub.Sign),
		KexKey:  envelope.EncodeKey(c.pub.Kex),
	}
	var u schema.User
	if err := c.do(ctx, "register", call{method: "POST", path: "/v1/register", body: req, out: &u}); err != nil {
		return schema.User{}, err
	}
	if err := checkUser(u, c.pub); err != nil {
		return schema.User{}, fmt.Errorf("register: %w", err)
	}
	c.mu.Lock()
	c.userID, c.handle = u.UserID, u.Handle
	c.mu.Unlock()
	return u, nil
}

// checkUser verifies that the server's user record carries want's keys and
// the fingerprint that goes with them.
func checkUser(u schema.User, want envelope.PublicKeys) error {
	got, err := publicKeys(u.SignKey, u.KexKey, u.Fingerprint)
	if err != nil {
		return err
	}
	if !got.Sign.Equal(want.Sign) || string(got.Kex) != string(want.Kex) {
		return fmt.Errorf("server holds other keys for %s: %w", u.Handle, ErrFingerprint)
	}
	return nil
}

// publicKeys decodes keys from the API and checks the fingerprint the server
// computed for them.
func publicKeys(sign, kex, fingerprint string) (envelope.PublicKeys, error) {
	s, err := envelope.DecodeKey(sign, envelope.SignKeySize)
	if err != nil {
		return envelope.PublicKeys{}, fmt.Errorf("server sent a bad signing key: %w", err)
	}
	k, err := envelope.DecodeKey(kex, envelope.KexKeySize)
	if err != nil {
		return envelope.PublicKeys{}, fmt.Errorf("server sent a bad key-exchange key: %w", err)
	}
	pk, err := envelope.NewPublicKeys(s, k)
	if err != nil {
		return envelope.PublicKeys{}, fmt.Errorf("server sent unusable keys: %w", err)
	}
	if envelope.Fingerprint(pk) != fingerprint {
		return envelope.PublicKeys{}, ErrFingerprint
	}
	return pk, nil
}

// Login signs a fresh challenge with the Client's signing key and starts a
// session on this device (Config.DeviceName), which it stores. Errors:
// not_found (no such handle), bad_signature (the keys are not the
// account's), device_limit, rate_limited.
func (c *Client) Login(ctx context.Context) (schema.Session, error) {
	c.mu.Lock()
	handle := c.handle
	c.mu.Unlock()
	if handle == "" {
		return schema.Session{}, fmt.Errorf("login: %w: no handle configured", ErrNotLoggedIn)
	}
	var ch schema.Challenge
	if err := c.do(ctx, "login challenge", call{method: "POST", path: "/v1/login/challenge",
		body: schema.ChallengeRequest{Handle: handle}, out: &ch}); err != nil {
		return schema.Session{}, err
	}
	nonce, err := b64.DecodeString(ch.Nonce)
	if err != nil {
		return schema.Session{}, fmt.Errorf("login: server sent a malformed nonce")
	}
	req := schema.LoginRequest{
		ChallengeID: ch.ChallengeID,
		Signature:   b64.EncodeToString(ed25519.Sign(c.keys.Sign, schema.LoginMessage(ch.ChallengeID, nonce))),
		DeviceName:  c.cfg.DeviceName,
	}
	var s schema.Session
	if err := c.do(ctx, "login", call{method: "POST", path: "/v1/login", body: req, out: &s}); err != nil {
		return schema.Session{}, err
	}
	err = c.store.UpdateSession(func(schema.Session) (schema.Session, error) { return s, nil })
	c.mu.Lock()
	c.session, c.userID, c.handle = s, s.UserID, s.Handle
	c.mu.Unlock()
	if err != nil {
		return s, fmt.Errorf("login: store session: %w", err)
	}
	return s, nil
}

// Session returns the current session (tokens included; do not log it).
func (c *Client) Session() schema.Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

// Token returns an access token valid for at least another minute,
// refreshing the session first if needed. Errors: ErrNotLoggedIn,
// refresh_invalid, refresh_reused (the session has ended: log in again),
// unavailable.
func (c *Client) Token(ctx context.Context) (string, error) {
	c.mu.Lock()
	s := c.session
	c.mu.Unlock()
	if s.AccessToken == "" && s.RefreshToken == "" {
		return "", ErrNotLoggedIn
	}
	if s.AccessToken != "" && time.Until(s.ExpiresAt) > refreshMargin {
		return s.AccessToken, nil
	}
	if err := c.refresh(ctx, s.AccessToken); err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session.AccessToken, nil
}

// Refresh replaces the session's tokens now, whatever their expiry.
func (c *Client) Refresh(ctx context.Context) error {
	c.mu.Lock()
	tok := c.session.AccessToken
	c.mu.Unlock()
	return c.refresh(ctx, tok)
}

// refresh rotates the session unless it was replaced since the caller saw
// stale (its access token): by another goroutine, or by another process
// sharing the Storage, whose newer session is adopted instead. Refreshes
// are serialised so that a refresh token is never used twice.
func (c *Client) refresh(ctx context.Context, stale string) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	err := c.store.UpdateSession(func(stored schema.Session) (schema.Session, error) {
		c.mu.Lock()
		cur := c.session
		c.mu.Unlock()
		// The stored session is the newest: every refresh stores its result
		// before it is used. Another process may have rotated it.
		if stored.RefreshToken != "" && (stored.DeviceID == cur.DeviceID || cur.RefreshToken == "") {
			cur = stored
		}
		if cur.AccessToken != stale && time.Until(cur.ExpiresAt) > refreshMargin {
			c.setSession(cur)
			return cur, nil
		}
		if cur.RefreshToken == "" {
			return schema.Session{}, ErrNotLoggedIn
		}
		var s schema.Session
		if err := c.do(ctx, "refresh", call{method: "POST", path: "/v1/refresh",
			body: schema.RefreshRequest{RefreshToken: cur.RefreshToken}, out: &s}); err != nil {
			return schema.Session{}, err
		}
		c.setSession(s)
		return s, nil
	})
	if err != nil {
		return fmt.Errorf("refresh session: %w", err)
	}
	return nil
}

func (c *Client) setSession(s schema.Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.session = s
	if s.UserID != "" {
		c.userID, c.handle = s.UserID, s.Handle
	}
}

// Devices lists the user's active devices; the current one is marked.
func (c *Client) Devices(ctx context.Context) ([]schema.Device, error) {
	var l schema.DeviceList
	if err := c.do(ctx, "list devices", call{method: "GET", path: "/v1/devices", out: &l, auth: withToken}); err != nil {
		return nil, err
	}
	return l.Devices, nil
}

// RevokeDevice revokes one of the user's devices (possibly this one): its
// sessions end and its connections close. Errors: not_found.
func (c *Client) RevokeDevice(ctx context.Context, deviceID string) error {
	return c.do(ctx, "revoke device", call{method: "DELETE", path: "/v1/devices/" + pathEscape(deviceID), auth: withToken})
}
