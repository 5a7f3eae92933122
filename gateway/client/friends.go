package client

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// Peer is another user whose identity key this device has pinned: learned
// the first time from the friend list, a friend request result, a key
// lookup or a friend event (trust on first use), checked against the
// fingerprint the server sent with it, and kept after the friendship ends
// so older messages still verify. Device lists and prekeys are believed
// only when the pinned key signed them.
type Peer struct {
	UserID      string `json:"user_id"`
	Handle      string `json:"handle"`
	IK          string `json:"ik"`
	Fingerprint string `json:"fingerprint"`
	// ListVersion is the highest device list version seen for the peer; a
	// lower one later is a rollback and is refused.
	ListVersion int64 `json:"list_version,omitempty"`
	// KeyChanged is set when the server presented another identity key
	// (NewIK, NewFingerprint) than the pinned one. The pin stays; nothing is
	// sealed to the peer (untrusted_keys) until the user compares the
	// safety number and calls AcceptKey.
	KeyChanged     bool   `json:"key_changed,omitempty"`
	NewIK          string `json:"new_ik,omitempty"`
	NewFingerprint string `json:"new_fingerprint,omitempty"`
}

// Friend is a friend as the server lists it, with the device's verdict on
// the friend's keys.
type Friend struct {
	schema.Friend
	// KeyChanged is the pinned Peer's: the served key is not the pinned one.
	KeyChanged bool
}

// identityKey returns p's pinned identity key; validated when pinned.
func (p Peer) identityKey() ed25519.PublicKey {
	k, _ := envelope.DecodeKey(p.IK, envelope.SignKeySize)
	return k
}

// SafetyNumber returns the number to compare with p in person: both
// identity keys' fingerprints, sorted and joined (docs/envelope.md). For a
// peer whose key changed it is the number with the new key, the one to
// check before AcceptKey. "" while this device's own identity key is
// unknown.
func (c *Client) SafetyNumber(p Peer) string {
	own := c.IdentityKey()
	if own == nil {
		return ""
	}
	k := p.identityKey()
	if p.KeyChanged {
		k, _ = envelope.DecodeKey(p.NewIK, envelope.SignKeySize)
	}
	return envelope.IdentitySafetyNumber(own, k)
}

// checkIK decodes an identity key from the API and checks the fingerprint
// the server sent with it.
func checkIK(ik, fingerprint string) error {
	k, err := envelope.DecodeKey(ik, envelope.SignKeySize)
	if err != nil {
		return fmt.Errorf("server sent a bad identity key: %w", err)
	}
	if envelope.IdentityFingerprint(k) != fingerprint {
		return ErrFingerprint
	}
	return nil
}

// pin checks the identity key the server presented for a user and pins it
// if the user is new; for a pinned user a different key is flagged, never
// adopted. Handles never change and accounts are never deleted, so the
// server's word that a pinned user has another handle is not adopted, and a
// new user under a pinned user's handle is pinned flagged, as that user's
// key changing. It returns the pinned Peer.
func (c *Client) pin(userID, handle, ik, fingerprint string) (Peer, error) {
	if err := checkIK(ik, fingerprint); err != nil {
		return Peer{}, fmt.Errorf("keys of %s: %w", handle, err)
	}
	c.mu.Lock()
	old, known := c.peers[userID]
	p := Peer{UserID: userID, Handle: handle, IK: ik, Fingerprint: fingerprint}
	switch holder, taken := c.handleHolderLocked(handle, userID); {
	case known:
		p = old
		if ik != old.IK {
			p.KeyChanged, p.NewIK, p.NewFingerprint = true, ik, fingerprint
		} else {
			p.KeyChanged, p.NewIK, p.NewFingerprint = false, "", ""
		}
	case taken:
		p.IK, p.Fingerprint = holder.IK, holder.Fingerprint
		p.KeyChanged, p.NewIK, p.NewFingerprint = true, ik, fingerprint
	}
	changed := !known || p != old
	if changed {
		c.peers[userID] = p
	}
	all := c.peerList()
	c.mu.Unlock()
	if changed {
		if p.KeyChanged && !old.KeyChanged {
			c.log.Warn("a friend's identity key changed", "user_id", userID)
		}
		if err := c.store.SavePeers(all); err != nil {
			return p, fmt.Errorf("save peers: %w", err)
		}
	}
	return p, nil
}

// handleHolderLocked returns the pinned peer other than userID that has
// handle. c.mu must be held.
func (c *Client) handleHolderLocked(handle, userID string) (Peer, bool) {
	for _, p := range c.peers {
		if p.UserID != userID && strings.EqualFold(p.Handle, handle) {
			return p, true
		}
	}
	return Peer{}, false
}

// updatePeer stores p as pinned.
func (c *Client) updatePeer(p Peer) error {
	c.mu.Lock()
	c.peers[p.UserID] = p
	all := c.peerList()
	c.mu.Unlock()
	return c.store.SavePeers(all)
}

// peerList returns the peers sorted by handle. c.mu must be held.
func (c *Client) peerList() []Peer {
	out := make([]Peer, 0, len(c.peers))
	for _, p := range c.peers {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.Handle, b.Handle) })
	return out
}

// Peers returns every pinned peer, sorted by handle.
func (c *Client) Peers() []Peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peerList()
}

// Peer returns the pinned peer with the given user id or handle
// (case-insensitively).
func (c *Client) Peer(idOrHandle string) (Peer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.peers[idOrHandle]; ok {
		return p, true
	}
	for _, p := range c.peers {
		if strings.EqualFold(p.Handle, idOrHandle) {
			return p, true
		}
	}
	return Peer{}, false
}

// AcceptKey trusts the identity key the server now presents for a pinned
// peer whose key changed, after the user has compared the safety number:
// it becomes the pin, and sending works again. Errors: ErrUnknownPeer.
func (c *Client) AcceptKey(idOrHandle string) (Peer, error) {
	p, ok := c.Peer(idOrHandle)
	if !ok {
		return Peer{}, fmt.Errorf("accept key of %s: %w", idOrHandle, ErrUnknownPeer)
	}
	if !p.KeyChanged {
		return p, nil
	}
	p = Peer{UserID: p.UserID, Handle: p.Handle, IK: p.NewIK, Fingerprint: p.NewFingerprint}
	c.mu.Lock()
	delete(c.lists, p.UserID)
	c.mu.Unlock()
	return p, c.updatePeer(p)
}

// Lookup returns handle's identity key, verified against the server's
// fingerprint. For a pinned peer the pinned Peer is returned, with a
// changed key flagged. Errors: invalid_handle, not_found, ErrFingerprint.
func (c *Client) Lookup(ctx context.Context, handle string) (Peer, error) {
	var u schema.User
	if err := c.do(ctx, "look up user", call{method: "GET", path: "/v1/users/" + pathEscape(handle), out: &u, auth: withToken}); err != nil {
		return Peer{}, err
	}
	if _, pinned := c.Peer(u.UserID); pinned {
		return c.pin(u.UserID, u.Handle, u.IK, u.Fingerprint)
	}
	if err := checkIK(u.IK, u.Fingerprint); err != nil {
		return Peer{}, fmt.Errorf("look up user: keys of %s: %w", u.Handle, err)
	}
	return Peer{UserID: u.UserID, Handle: u.Handle, IK: u.IK, Fingerprint: u.Fingerprint}, nil
}

func (c *Client) pinFriend(f schema.Friend) (Friend, error) {
	p, err := c.pin(f.UserID, f.Handle, f.IK, f.Fingerprint)
	if err != nil {
		return Friend{}, err
	}
	return Friend{Friend: f, KeyChanged: p.KeyChanged}, nil
}

// Friends lists the user's friends, oldest friendship first, pinning their
// keys and flagging changed ones.
func (c *Client) Friends(ctx context.Context) ([]Friend, error) {
	var l schema.FriendList
	if err := c.do(ctx, "list friends", call{method: "GET", path: "/v1/friends", out: &l, auth: withToken}); err != nil {
		return nil, err
	}
	out := make([]Friend, 0, len(l.Friends))
	for _, f := range l.Friends {
		pf, err := c.pinFriend(f)
		if err != nil {
			return nil, fmt.Errorf("list friends: %w", err)
		}
		out = append(out, pf)
	}
	return out, nil
}

// FriendRequest asks handle to be friends. If handle had asked already, the
// friendship begins at once and the result's Friend is set (and pinned).
// Errors: not_found, self_request, already_friends, request_exists,
// friend_limit, request_limit, refused, rate_limited.
func (c *Client) FriendRequest(ctx context.Context, handle string) (schema.FriendRequestResult, error) {
	var r schema.FriendRequestResult
	if err := c.do(ctx, "friend request", call{method: "POST", path: "/v1/friends/requests",
		body: schema.HandleRequest{Handle: handle}, out: &r, auth: withToken}); err != nil {
		return r, err
	}
	if r.Friend != nil {
		if _, err := c.pinFriend(*r.Friend); err != nil {
			return r, fmt.Errorf("friend request: %w", err)
		}
	}
	return r, nil
}

// FriendRequests lists pending requests, incoming and outgoing.
func (c *Client) FriendRequests(ctx context.Context) (schema.FriendRequests, error) {
	var r schema.FriendRequests
	err := c.do(ctx, "list friend requests", call{method: "GET", path: "/v1/friends/requests", out: &r, auth: withToken})
	return r, err
}

// AcceptFriend accepts handle's request; the new friend's keys are pinned.
// Errors: no_request, friend_limit.
func (c *Client) AcceptFriend(ctx context.Context, handle string) (Friend, error) {
	var r schema.FriendRequestResult
	if err := c.do(ctx, "accept friend", call{method: "POST", path: "/v1/friends/requests/" + pathEscape(handle) + "/accept",
		out: &r, auth: withToken}); err != nil {
		return Friend{}, err
	}
	if r.Friend == nil {
		return Friend{}, fmt.Errorf("accept friend: server answered without the friend")
	}
	f, err := c.pinFriend(*r.Friend)
	if err != nil {
		return Friend{}, fmt.Errorf("accept friend: %w", err)
	}
	return f, nil
}

// DeclineFriend declines handle's request. Errors: no_request.
func (c *Client) DeclineFriend(ctx context.Context, handle string) error {
	return c.do(ctx, "decline friend", call{method: "POST", path: "/v1/friends/requests/" + pathEscape(handle) + "/decline", auth: withToken})
}

// CancelFriendRequest withdraws the user's request to handle. Errors: no_request.
func (c *Client) CancelFriendRequest(ctx context.Context, handle string) error {
	return c.do(ctx, "cancel friend request", call{method: "DELETE", path: "/v1/friends/requests/" + pathEscape(handle), auth: withToken})
}

// RemoveFriend ends the friendship with handle. Errors: not_friend.
func (c *Client) RemoveFriend(ctx context.Context, handle string) error {
	return c.do(ctx, "remove friend", call{method: "DELETE", path: "/v1/friends/" + pathEscape(handle), auth: withToken})
}

// Block blocks handle (ending any friendship and pending requests).
func (c *Client) Block(ctx context.Context, handle string) error {
	return c.do(ctx, "block", call{method: "POST", path: "/v1/blocks", body: schema.HandleRequest{Handle: handle}, auth: withToken})
}

// Unblock lifts a block of handle.
func (c *Client) Unblock(ctx context.Context, handle string) error {
	return c.do(ctx, "unblock", call{method: "DELETE", path: "/v1/blocks/" + pathEscape(handle), auth: withToken})
}

// Blocks lists the users the user has blocked.
func (c *Client) Blocks(ctx context.Context) ([]schema.Block, error) {
	var l schema.BlockList
	if err := c.do(ctx, "list blocks", call{method: "GET", path: "/v1/blocks", out: &l, auth: withToken}); err != nil {
		return nil, err
	}
	return l.Blocks, nil
}

// friendByHandle returns the pinned peer for handle, refreshing the friend
// list once if it is not pinned yet.
func (c *Client) friendByHandle(ctx context.Context, handle string) (Peer, error) {
	if p, ok := c.Peer(handle); ok {
		return p, nil
	}
	if _, err := c.Friends(ctx); err != nil {
		return Peer{}, err
	}
	if p, ok := c.Peer(handle); ok {
		return p, nil
	}
	return Peer{}, fmt.Errorf("%s: %w", handle, ErrUnknownPeer)
}

// peerByID is friendByHandle for a user id.
func (c *Client) peerByID(ctx context.Context, userID string) (Peer, error) {
	if p, ok := c.Peer(userID); ok {
		return p, nil
	}
	if _, err := c.Friends(ctx); err != nil {
		return Peer{}, err
	}
	if p, ok := c.Peer(userID); ok {
		return p, nil
	}
	return Peer{}, fmt.Errorf("user %s: %w", userID, ErrUnknownPeer)
}
