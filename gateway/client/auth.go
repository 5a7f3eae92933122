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

// Register creates an account for handle with the Client's identity key,
// publishes the first device list (naming this device) and remembers the
// user id. It does not log in. Errors: ErrNotPrimary (no identity key),
// invalid_handle, handle_taken, invalid_key, rate_limited.
func (c *Client) Register(ctx context.Context, handle string) (schema.User, error) {
	if !c.keys.Primary() {
		return schema.User{}, fmt.Errorf("register: %w", ErrNotPrimary)
	}
	req := schema.RegisterRequest{Handle: handle, IK: envelope.EncodeKey(c.keys.IdentityPublic())}
	var u schema.User
	if err := c.do(ctx, "register", call{method: "POST", path: "/v1/register", body: req, out: &u}); err != nil {
		return schema.User{}, err
	}
	if u.IK != req.IK || u.Fingerprint != envelope.IdentityFingerprint(c.keys.IdentityPublic()) {
		return schema.User{}, fmt.Errorf("register: server holds another identity key for %s: %w", u.Handle, ErrFingerprint)
	}
	c.mu.Lock()
	c.userID, c.handle = u.UserID, u.Handle
	c.mu.Unlock()
	if err := c.updateOwnList(ctx, addKey(c.keys.DevicePublic())); err != nil {
		return u, fmt.Errorf("register: %w", err)
	}
	return u, nil
}

// Login signs a fresh challenge with the device key and starts a session
// on this device, which it stores, then brings the device's prekeys up to
// date (MaintainPrekeys). On the primary device, a device key missing from
// the account's list (a home from before identity v2) is added to it first.
// Errors: not_found (no such handle), device_revoked (this device was
// revoked: it can never log in again), bad_signature (the device is not in
// the account's device list), rate_limited.
func (c *Client) Login(ctx context.Context) (schema.Session, error) {
	s, err := c.login(ctx)
	if schema.HasCode(err, schema.CodeBadSignature) && c.keys.Primary() && c.Identity().UserID != "" {
		if lerr := c.updateOwnList(ctx, addKey(c.keys.DevicePublic())); lerr != nil {
			return schema.Session{}, fmt.Errorf("%w (listing this device failed: %v)", err, lerr)
		}
		s, err = c.login(ctx)
	}
	if err != nil {
		return schema.Session{}, err
	}
	if err := c.MaintainPrekeys(ctx); err != nil {
		return s, fmt.Errorf("login: %w", err)
	}
	return s, nil
}

func (c *Client) login(ctx context.Context) (schema.Session, error) {
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
	id := c.keys.DeviceID()
	req := schema.LoginRequest{
		ChallengeID: ch.ChallengeID,
		DeviceID:    id,
		Signature:   b64.EncodeToString(ed25519.Sign(c.keys.Device, schema.LoginMessage(ch.ChallengeID, id, nonce))),
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

// RevokeDevice revokes one of the user's devices (possibly this one). On
// the primary device it publishes a device list without it, signed by the
// identity key: the device can then never log in, be sealed to or be
// listed again. Another device may revoke only itself (DELETE
// /v1/devices/{id}: the server locks it out at once; its key stays in the
// signed list until the primary drops it, but the server hands out no
// prekeys for it). Errors: not_found, device_revoked, forbidden (another
// device's id, on a device that is not the primary).
func (c *Client) RevokeDevice(ctx context.Context, deviceID string) error {
	if c.keys.Primary() {
		return c.updateOwnList(ctx, func(l []ed25519.PublicKey) ([]ed25519.PublicKey, error) {
			out := l[:0:0]
			for _, k := range l {
				if envelope.DeviceID(k) != deviceID {
					out = append(out, k)
				}
			}
			if len(out) == len(l) {
				return nil, schema.Errorf(schema.CodeNotFound, "no such device in the list")
			}
			if len(out) == 0 {
				return nil, schema.Errorf(schema.CodeBadRequest, "the list cannot be empty; reset the identity instead")
			}
			return out, nil
		})
	}
	return c.do(ctx, "revoke device", call{method: "DELETE", path: "/v1/devices/" + pathEscape(deviceID), auth: withToken})
}
