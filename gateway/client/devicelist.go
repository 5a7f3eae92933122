package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// fetchList returns userID's current device list from the server, parsed
// but not verified; nil if the user has none yet.
func (c *Client) fetchList(ctx context.Context, userID string) (*envelope.DeviceList, error) {
	var r schema.DeviceListRequest
	err := c.do(ctx, "fetch device list", call{method: "GET", path: "/v1/devicelist/" + pathEscape(userID), out: &r})
	if schema.HasCode(err, schema.CodeNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	l, err := envelope.ParseDeviceList(r.List)
	if err != nil {
		return nil, fmt.Errorf("fetch device list: %w", err)
	}
	return l, nil
}

// addKey returns a list edit that adds key (if missing).
func addKey(key ed25519.PublicKey) func([]ed25519.PublicKey) ([]ed25519.PublicKey, error) {
	return func(l []ed25519.PublicKey) ([]ed25519.PublicKey, error) {
		if slices.ContainsFunc(l, func(k ed25519.PublicKey) bool { return k.Equal(key) }) {
			return l, nil
		}
		if len(l) >= envelope.MaxDevices {
			return nil, schema.Errorf(schema.CodeDeviceLimit, fmt.Sprintf("at most %d devices; revoke one first", envelope.MaxDevices))
		}
		return append(l, key), nil
	}
}

// updateOwnList signs and publishes the user's next device list: edit
// applied to the current one's keys. It needs the identity key; the
// current list must verify under it.
func (c *Client) updateOwnList(ctx context.Context, edit func([]ed25519.PublicKey) ([]ed25519.PublicKey, error)) error {
	if !c.keys.Primary() {
		return ErrNotPrimary
	}
	me := c.Identity()
	cur, err := c.fetchList(ctx, me.UserID)
	if err != nil {
		return err
	}
	var version int64
	var keys []ed25519.PublicKey
	if cur != nil {
		if err := cur.VerifyFor(me.UserID, c.keys.IdentityPublic()); err != nil {
			return fmt.Errorf("current device list: %w", err)
		}
		if err := c.checkOwnVersion(cur); err != nil {
			return fmt.Errorf("current device list: %w", err)
		}
		version = cur.Version
		for _, d := range cur.Devices {
			keys = append(keys, d.Key)
		}
	}
	next, err := edit(keys)
	if err != nil {
		return err
	}
	if cur != nil && slices.EqualFunc(keys, next, func(a, b ed25519.PublicKey) bool { return a.Equal(b) }) {
		return nil
	}
	b, err := envelope.SignDeviceList(me.UserID, version+1, time.Now(), next, c.keys.Identity)
	if err != nil {
		return fmt.Errorf("sign device list: %w", err)
	}
	var stored schema.DeviceListStored
	if err := c.do(ctx, "publish device list", call{method: "POST", path: "/v1/devicelist",
		body: schema.DeviceListRequest{List: b}, out: &stored}); err != nil {
		return err
	}
	l, err := envelope.ParseDeviceList(b)
	if err != nil {
		return fmt.Errorf("publish device list: %w", err)
	}
	if err := c.checkOwnVersion(l); err != nil {
		return fmt.Errorf("publish device list: %w", err)
	}
	c.mu.Lock()
	c.lists[me.UserID] = l
	c.mu.Unlock()
	return nil
}

// checkOwnVersion refuses the user's own device list l if its version is
// below the highest this device has seen (a rollback by the server: an
// older list, validly signed, perhaps naming a device revoked since), and
// otherwise raises and stores that version.
func (c *Client) checkOwnVersion(l *envelope.DeviceList) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.Version < c.ownVer {
		return fmt.Errorf("%w: own device list version %d below %d seen before", errUntrusted, l.Version, c.ownVer)
	}
	if l.Version == c.ownVer {
		return nil
	}
	c.ownVer = l.Version
	if err := c.store.SaveOwnListVersion(l.Version); err != nil {
		return fmt.Errorf("save own list version: %w", err)
	}
	return nil
}

// ownList returns the user's own device list, verified against the
// identity key this device trusts; fresh from the server when refresh is
// set or none is cached.
func (c *Client) ownList(ctx context.Context, refresh bool) (*envelope.DeviceList, error) {
	me := c.Identity()
	c.mu.Lock()
	l, ik := c.lists[me.UserID], c.ik
	c.mu.Unlock()
	if l != nil && !refresh {
		return l, nil
	}
	if ik == nil {
		return nil, fmt.Errorf("own identity key unknown: %w", ErrNotLoggedIn)
	}
	l, err := c.fetchList(ctx, me.UserID)
	if err != nil {
		return nil, err
	}
	if l == nil {
		return nil, schema.Errorf(schema.CodeNotFound, "the account has no device list")
	}
	if err := l.VerifyFor(me.UserID, ik); err != nil {
		return nil, fmt.Errorf("%w: own device list: %w", errUntrusted, err)
	}
	if err := c.checkOwnVersion(l); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.lists[me.UserID] = l
	c.mu.Unlock()
	return l, nil
}

// ResetIdentity replaces the account's identity key with a new one held by
// this device, which becomes the primary; the new list names this device
// only (link the others again). On the primary it is done at once. On any
// other device the server first records a pending reset (Status pending)
// that takes effect only when this is called again from NotBefore on
// (docs/envelope.md, "Identity reset"); the returned Keys then carry the
// new key as PendingIdentity, and the caller must store them so that the
// later call asks for the same key. Once done, every friend's client sees
// a changed identity key and stops sending until its user accepts the new
// safety number. It returns the new Keys, which the caller must store.
// Unlike the other methods it must not run concurrently with calls that use
// the identity key (ApproveLink, RevokeDevice). Errors: device_revoked,
// stale_device_list, forbidden.
func (c *Client) ResetIdentity(ctx context.Context) (Keys, schema.IdentityReset, error) {
	me := c.Identity()
	c.mu.Lock()
	nk := Keys{Device: c.keys.Device, PendingIdentity: c.keys.PendingIdentity}
	primary, version := c.keys.Primary(), c.ownVer
	c.mu.Unlock()
	if primary || nk.PendingIdentity == nil {
		fresh, err := NewKeys(true)
		if err != nil {
			return Keys{}, schema.IdentityReset{}, err
		}
		nk.PendingIdentity = fresh.Identity
	}
	cur, err := c.fetchList(ctx, me.UserID)
	if err != nil {
		return Keys{}, schema.IdentityReset{}, err
	}
	if cur != nil {
		version = max(version, cur.Version)
	}
	b, err := envelope.SignDeviceList(me.UserID, version+1, time.Now(), []ed25519.PublicKey{nk.DevicePublic()}, nk.PendingIdentity)
	if err != nil {
		return Keys{}, schema.IdentityReset{}, fmt.Errorf("reset identity: %w", err)
	}
	req := schema.IdentityResetRequest{IK: envelope.EncodeKey(nk.PendingIdentity.Public().(ed25519.PublicKey)), List: b}
	var st schema.IdentityReset
	if err := c.do(ctx, "reset identity", call{method: "POST", path: "/v1/identity/reset", body: req, out: &st, auth: withToken}); err != nil {
		return Keys{}, schema.IdentityReset{}, err
	}
	if st.Status == schema.ResetPending {
		c.mu.Lock()
		c.keys = nk
		c.mu.Unlock()
		return nk, st, nil
	}
	nk.Identity, nk.PendingIdentity = nk.PendingIdentity, nil
	c.mu.Lock()
	c.keys, c.ik = nk, nk.IdentityPublic()
	delete(c.lists, me.UserID)
	c.mu.Unlock()
	if l, err := envelope.ParseDeviceList(b); err == nil {
		if err := c.checkOwnVersion(l); err != nil {
			return nk, st, err
		}
	}
	return nk, st, nil
}

// PendingIdentityReset returns the user's pending identity reset, asked
// for by a device other than the primary. Errors: not_found (none).
func (c *Client) PendingIdentityReset(ctx context.Context) (schema.IdentityReset, error) {
	var st schema.IdentityReset
	err := c.do(ctx, "identity reset status", call{method: "GET", path: "/v1/identity/reset", out: &st, auth: withToken})
	return st, err
}

// CancelIdentityReset ends the user's pending identity reset. Only the
// primary device may. Errors: forbidden, not_found (none pending).
func (c *Client) CancelIdentityReset(ctx context.Context) error {
	return c.do(ctx, "cancel identity reset", call{method: "DELETE", path: "/v1/identity/reset", auth: withToken})
}

// errUntrusted wraps every refusal to trust keys; callers see it as the
// untrusted_keys code.
var errUntrusted = schema.Errorf(schema.CodeUntrustedKeys, "keys are not signed by the pinned identity key")

// untrusted reports err as untrusted_keys with a message naming handle.
func untrusted(handle string, err error) error {
	e := schema.Errorf(schema.CodeUntrustedKeys, fmt.Sprintf(
		"%s's identity key changed or their devices are not signed by it; nothing was sent. Compare safety numbers: mayfly friend verify %s", handle, handle))
	return fmt.Errorf("%w (%w)", e, errors.Unwrap(err))
}
