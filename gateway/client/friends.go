package client

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// Peer is another user whose public keys this device has pinned: learned
// from the friend list, a friend request result, a key lookup or a
// friend_keys_changed event, checked against the server's fingerprint, and
// kept after the friendship ends so older messages still verify.
type Peer struct {
	UserID      string `json:"user_id"`
	Handle      string `json:"handle"`
	SignKey     string `json:"sign_key"`
	KexKey      string `json:"kex_key"`
	Fingerprint string `json:"fingerprint"`
	// KeyChanged is set when the server presented keys other than the
	// pinned ones; the new keys replace them (messages are sealed to and
	// verified with them) and PreviousFingerprint keeps the old fingerprint.
	// The user should compare safety numbers, then call ConfirmKey.
	KeyChanged          bool   `json:"key_changed,omitempty"`
	PreviousFingerprint string `json:"previous_fingerprint,omitempty"`
}

// Friend is a friend as the server lists it, with the device's verdict on
// the friend's keys.
type Friend struct {
	schema.Friend
	// KeyChanged and PreviousFingerprint are the pinned Peer's.
	KeyChanged          bool
	PreviousFingerprint string
}

// publicKeys returns p's keys; they were validated when pinned.
func (p Peer) publicKeys() envelope.PublicKeys {
	s, _ := envelope.DecodeKey(p.SignKey, envelope.SignKeySize)
	k, _ := envelope.DecodeKey(p.KexKey, envelope.KexKeySize)
	return envelope.PublicKeys{Sign: s, Kex: k}
}

// SafetyNumber returns the number to compare with p in person: both users'
// fingerprints, sorted and joined (docs/envelope.md).
func (c *Client) SafetyNumber(p Peer) string {
	return envelope.SafetyNumber(c.pub, p.publicKeys())
}

// pin checks the keys the server presented for a user and remembers them,
// flagging a change from the pinned ones. It returns the pinned Peer.
func (c *Client) pin(userID, handle, sign, kex, fingerprint string) (Peer, error) {
	if _, err := publicKeys(sign, kex, fingerprint); err != nil {
		return Peer{}, fmt.Errorf("keys of %s: %w", handle, err)
	}
	c.mu.Lock()
	old, known := c.peers[userID]
	p := Peer{UserID: userID, Handle: handle, SignKey: sign, KexKey: kex, Fingerprint: fingerprint}
	if known {
		p.KeyChanged, p.PreviousFingerprint = old.KeyChanged, old.PreviousFingerprint
		if old.SignKey != sign || old.KexKey != kex {
			p.KeyChanged, p.PreviousFingerprint = true, old.Fingerprint
		}
	}
	changed := !known || p != old
	if changed {
		c.peers[userID] = p
	}
	all := c.peerList()
	c.mu.Unlock()
	if changed {
		if p.KeyChanged && (!known || !old.KeyChanged || old.Fingerprint != fingerprint) {
			c.log.Warn("a friend's keys changed", "user_id", userID)
		}
		if err := c.store.SavePeers(all); err != nil {
			return p, fmt.Errorf("save peers: %w", err)
		}
	}
	return p, nil
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

// ConfirmKey clears the KeyChanged flag of a pinned peer, after the user
// has compared safety numbers. Errors: ErrUnknownPeer.
func (c *Client) ConfirmKey(idOrHandle string) error {
	p, ok := c.Peer(idOrHandle)
	if !ok {
		return fmt.Errorf("confirm key of %s: %w", idOrHandle, ErrUnknownPeer)
	}
	c.mu.Lock()
	p.KeyChanged, p.PreviousFingerprint = false, ""
	c.peers[p.UserID] = p
	all := c.peerList()
	c.mu.Unlock()
	return c.store.SavePeers(all)
}

// Lookup returns handle's public keys, verified against the server's
// fingerprint. For a pinned peer the pin is updated and a change flagged.
// Errors: invalid_handle, not_found, ErrFingerprint.
func (c *Client) Lookup(ctx context.Context, handle string) (Peer, error) {
	var u schema.User
	if err := c.do(ctx, "look up user", call{method: "GET", path: "/v1/users/" + pathEscape(handle), out: &u, auth: withToken}); err != nil {
		return Peer{}, err
	}
	if _, pinned := c.Peer(u.UserID); pinned {
		return c.pin(u.UserID, u.Handle, u.SignKey, u.KexKey, u.Fingerprint)
	}
	if _, err := publicKeys(u.SignKey, u.KexKey, u.Fingerprint); err != nil {
		return Peer{}, fmt.Errorf("look up user: keys of %s: %w", u.Handle, err)
	}
	return Peer{UserID: u.UserID, Handle: u.Handle, SignKey: u.SignKey, KexKey: u.KexKey, Fingerprint: u.Fingerprint}, nil
}

func (c *Client) pinFriend(f schema.Friend) (Friend, error) {
	p, err := c.pin(f.UserID, f.Handle, f.SignKey, f.KexKey, f.Fingerprint)
	if err != nil {
		return Friend{}, err
	}
	return Friend{Friend: f, KeyChanged: p.KeyChanged, PreviousFingerprint: p.PreviousFingerprint}, nil
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
