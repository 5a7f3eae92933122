package client

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// ownListMaxAge is how long the user's own cached device list is trusted to
// tell whether the user has other devices to seal for.
const ownListMaxAge = time.Minute

// claimBundle claims userID's prekey bundle: the server hands out each
// one-time prekey in it to this caller only.
func (c *Client) claimBundle(ctx context.Context, userID string) (*envelope.Bundle, error) {
	var raw json.RawMessage
	if err := c.do(ctx, "claim prekeys", call{method: "POST", path: "/v1/users/" + pathEscape(userID) + "/bundle",
		out: &raw, auth: withToken}); err != nil {
		return nil, err
	}
	bu, err := envelope.ParseBundle(raw)
	if err != nil {
		return nil, fmt.Errorf("claim prekeys: %w", err)
	}
	return bu, nil
}

// claim claims p's bundle and returns the verified targets. A bundle not
// signed by p's pinned identity key, or a list version below one seen
// before, seals nothing: untrusted_keys, and a new identity key is flagged
// on the peer.
func (c *Client) claim(ctx context.Context, p Peer) ([]envelope.Target, error) {
	bu, err := c.claimBundle(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	targets, err := bu.Verify(p.UserID, p.identityKey(), "")
	if errors.Is(err, envelope.ErrIdentity) && !bu.List.IK.Equal(p.identityKey()) {
		if _, perr := c.pin(p.UserID, p.Handle, envelope.EncodeKey(bu.List.IK), envelope.IdentityFingerprint(bu.List.IK)); perr != nil {
			c.log.Warn("flag changed identity key", "user_id", p.UserID, "err", perr)
		}
	}
	if err == nil && bu.List.Version < p.ListVersion {
		err = fmt.Errorf("device list version %d below %d seen before", bu.List.Version, p.ListVersion)
	}
	if err != nil {
		return nil, untrusted(p.Handle, fmt.Errorf("claim: %w", err))
	}
	c.rememberList(p, bu.List)
	return targets, nil
}

// rememberList caches a verified list of peer p and raises p's pinned list
// version.
func (c *Client) rememberList(p Peer, l *envelope.DeviceList) {
	c.mu.Lock()
	c.lists[p.UserID] = l
	cur, ok := c.peers[p.UserID]
	raise := ok && l.Version > cur.ListVersion
	if raise {
		cur.ListVersion = l.Version
		c.peers[p.UserID] = cur
	}
	all := c.peerList()
	c.mu.Unlock()
	if raise {
		if err := c.store.SavePeers(all); err != nil {
			c.log.Error("save peers", "err", err)
		}
	}
}

// ownListVersion returns the highest version of the user's own device list
// this device has seen, which every message it sends carries (the payload's
// "lv", docs/payload.md).
func (c *Client) ownListVersion() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ownVer
}

// raiseListVersion records that a message from userID, signed by one of its
// listed devices, says userID's device list reached version lv: a list of a
// lower version is refused from now on (a server rolling a friend back to
// a list that still names a revoked device), and a cached list below it is
// dropped. The user's own version is raised the same way by its sync copies.
func (c *Client) raiseListVersion(userID string, lv int64) {
	if lv <= 0 {
		return
	}
	c.mu.Lock()
	if l := c.lists[userID]; l != nil && l.Version < lv {
		delete(c.lists, userID)
	}
	if userID == c.userID {
		raise := lv > c.ownVer
		if raise {
			c.ownVer = lv
		}
		c.mu.Unlock()
		if raise {
			if err := c.store.SaveOwnListVersion(lv); err != nil {
				c.log.Error("save own list version", "err", err)
			}
		}
		return
	}
	cur, ok := c.peers[userID]
	raise := ok && lv > cur.ListVersion
	if raise {
		cur.ListVersion = lv
		c.peers[userID] = cur
	}
	all := c.peerList()
	c.mu.Unlock()
	if raise {
		if err := c.store.SavePeers(all); err != nil {
			c.log.Error("save peers", "err", err)
		}
	}
}

// ownTargets returns the user's other devices to seal for: none when the
// (recently fetched) own list names only this device, else the verified
// targets of the user's own bundle, without this device.
func (c *Client) ownTargets(ctx context.Context) ([]envelope.Target, error) {
	me := c.Identity()
	c.mu.Lock()
	l, at := c.lists[me.UserID], c.ownListAt
	c.mu.Unlock()
	if l != nil && len(l.Devices) == 1 && time.Since(at) < ownListMaxAge {
		return nil, nil
	}
	bu, err := c.claimBundle(ctx, me.UserID)
	if err != nil {
		return nil, err
	}
	targets, err := bu.Verify(me.UserID, c.IdentityKey(), me.DeviceID)
	if err == nil {
		err = c.checkOwnVersion(bu.List)
	}
	if err != nil {
		return nil, untrusted(me.Handle, fmt.Errorf("own devices: %w", err))
	}
	c.mu.Lock()
	c.lists[me.UserID], c.ownListAt = bu.List, time.Now()
	c.mu.Unlock()
	return targets, nil
}

// deviceKey returns the signing key of userID's device deviceID from
// userID's device list verified against the pinned identity key (the
// user's own for this user), fetching the list again when the cached one
// does not name the device.
func (c *Client) deviceKey(ctx context.Context, userID, deviceID string) (ed25519.PublicKey, error) {
	c.mu.Lock()
	l := c.lists[userID]
	c.mu.Unlock()
	if l != nil {
		if k, ok := l.Key(deviceID); ok {
			return k, nil
		}
	}
	l, err := c.verifiedList(ctx, userID)
	if err != nil {
		return nil, err
	}
	if k, ok := l.Key(deviceID); ok {
		return k, nil
	}
	return nil, errors.New("the device is not in its user's signed device list (revoked or unknown)")
}

// verifiedList fetches userID's device list and verifies it against the
// pinned identity key.
func (c *Client) verifiedList(ctx context.Context, userID string) (*envelope.DeviceList, error) {
	me := c.Identity()
	if userID == me.UserID {
		return c.ownList(ctx, true)
	}
	p, err := c.peerByID(ctx, userID)
	if err != nil {
		return nil, err
	}
	l, err := c.fetchList(ctx, userID)
	if err != nil {
		return nil, err
	}
	if l == nil {
		return nil, schema.Errorf(schema.CodeNotFound, "no device list")
	}
	if err := l.VerifyFor(userID, p.identityKey()); err != nil {
		return nil, untrusted(p.Handle, err)
	}
	if l.Version < p.ListVersion {
		return nil, untrusted(p.Handle, fmt.Errorf("device list version %d below %d seen before", l.Version, p.ListVersion))
	}
	c.rememberList(p, l)
	return l, nil
}
