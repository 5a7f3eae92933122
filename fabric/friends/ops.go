package friends

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mayfly-im/mayfly/fabric/account"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/store"
)

var errInvalidHandle = schema.Errorf(schema.CodeInvalidHandle, "handle must be 3-32 letters, digits or underscores")

// resolve loads the caller and the user named by handle. When handle names
// the caller it returns self. Errors: invalid_handle, not_found, internal.
func (s *Service) resolve(ctx context.Context, op, userID, handle string, self error) (me, peer store.User, err error) {
	if !schema.ValidHandle(handle) {
		return me, peer, errInvalidHandle
	}
	peer, err = s.cfg.DB.UserByHandle(ctx, handle)
	if errors.Is(err, store.ErrNotFound) {
		return me, peer, schema.Errorf(schema.CodeNotFound, "no such user")
	}
	if err != nil {
		return me, peer, s.internal(op, err)
	}
	if peer.ID == userID {
		return me, peer, self
	}
	me, err = s.cfg.DB.UserByID(ctx, userID)
	if err != nil {
		return me, peer, s.internal(op, fmt.Errorf("load caller: %w", err))
	}
	return me, peer, nil
}

// storeErrors maps the store's conditions to client errors; the first match wins.
var storeErrors = []struct {
	err error
	out *schema.Error
}{
	{store.ErrNotFound, schema.Errorf(schema.CodeNotFound, "no such user")},
	{store.ErrRateLimited, schema.Errorf(schema.CodeRateLimited, "too many friend requests; try again later")},
	{store.ErrBlocked, schema.Errorf(schema.CodeRefused, "the request was refused")},
	{store.ErrBlocking, schema.Errorf(schema.CodeForbidden, "you have blocked this user; unblock them first")},
	{store.ErrAlreadyFriends, schema.Errorf(schema.CodeAlreadyFriends, "you are friends already")},
	{store.ErrRequestExists, schema.Errorf(schema.CodeRequestExists, "you have a pending request to this user already")},
	{store.ErrRequestLimit, schema.Errorf(schema.CodeRequestLimit,
		fmt.Sprintf("at most %d pending outgoing requests; cancel one or wait for answers", schema.MaxOutgoingRequests))},
	{store.ErrFriendLimit, schema.Errorf(schema.CodeFriendLimit,
		fmt.Sprintf("you have the maximum of %d friends; remove one first", schema.MaxFriends))},
	{store.ErrPeerFriendLimit, schema.Errorf(schema.CodeFriendLimit, "the other user has the maximum number of friends")},
	{store.ErrNoRequest, schema.Errorf(schema.CodeNoRequest, "no pending friend request between you and this user")},
	{store.ErrNotFriend, schema.Errorf(schema.CodeNotFriend, "this user is not your friend")},
	{store.ErrNotBlocked, schema.Errorf(schema.CodeNotFound, "you have not blocked this user")},
}

// fail maps a store error to its client error, logging unexpected ones.
func (s *Service) fail(op string, err error) error {
	for _, m := range storeErrors {
		if errors.Is(err, m.err) {
			return m.out
		}
	}
	return s.internal(op, err)
}

func friendWire(u store.User, since time.Time) schema.Friend {
	pu := account.PublicUser(u)
	return schema.Friend{
		UserID: pu.UserID, Handle: pu.Handle, IK: pu.IK,
		Fingerprint: pu.Fingerprint, Since: since,
	}
}

// Request sends a friend request from userID to the user with handle. If
// that user had already requested userID, the two become friends at once
// and the result carries Friend instead of Request. Every attempt that
// names an existing other user counts against the rate limit. Errors:
// invalid_handle, not_found, self_request, rate_limited, refused (the other
// user blocks you; no reason is given), forbidden (you block them),
// already_friends, request_exists, request_limit, friend_limit (mutual case).
func (s *Service) Request(ctx context.Context, userID, handle string) (schema.FriendRequestResult, error) {
	me, peer, err := s.resolve(ctx, "request", userID, handle,
		schema.Errorf(schema.CodeSelfRequest, "you cannot send a friend request to yourself"))
	if err != nil {
		return schema.FriendRequestResult{}, err
	}
	out, err := s.cfg.DB.RequestFriend(ctx, store.RequestParams{
		FromID: me.ID, ToID: peer.ID, TTL: s.cfg.RequestTTL,
		RateLimit: s.cfg.RequestRate, RateWindow: s.cfg.RequestWindow,
	})
	if err != nil {
		return schema.FriendRequestResult{}, s.fail("request", err)
	}
	if out.Mutual {
		f := s.befriended(me, peer, out.Since)
		return schema.FriendRequestResult{Friend: &f}, nil
	}
	s.log.Info("friend request", "user_id", me.ID, "peer_id", peer.ID)
	s.notify(peer.ID, schema.EventFriendRequest, me, false)
	s.notify(me.ID, schema.EventFriendRequest, peer, true)
	return schema.FriendRequestResult{Request: &schema.FriendRequest{
		UserID: peer.ID, Handle: peer.Handle, CreatedAt: out.Request.CreatedAt, ExpiresAt: out.Request.ExpiresAt,
	}}, nil
}

// befriended announces that me and peer just became friends (me acted) and
// returns peer as me's friend.
func (s *Service) befriended(me, peer store.User, since time.Time) schema.Friend {
	s.log.Info("friendship began", "user_id", me.ID, "peer_id", peer.ID)
	s.changed(me.ID, peer.ID)
	s.notify(peer.ID, schema.EventFriendAccepted, me, false)
	s.notify(me.ID, schema.EventFriendAccepted, peer, true)
	return friendWire(peer, since)
}

// Accept accepts the pending friend request from the user with handle.
// Errors: invalid_handle, not_found, no_request (none pending, expired, or
// handle is your own), friend_limit (you or they have the maximum of
// friends; the request stays pending).
func (s *Service) Accept(ctx context.Context, userID, handle string) (schema.Friend, error) {
	me, peer, err := s.resolve(ctx, "accept", userID, handle, s.fail("accept", store.ErrNoRequest))
	if err != nil {
		return schema.Friend{}, err
	}
	since, err := s.cfg.DB.AcceptFriend(ctx, me.ID, peer.ID)
	if err != nil {
		return schema.Friend{}, s.fail("accept", err)
	}
	return s.befriended(me, peer, since), nil
}

// Decline declines the pending friend request from the user with handle;
// the sender is told (request_declined). Errors: invalid_handle, not_found,
// no_request.
func (s *Service) Decline(ctx context.Context, userID, handle string) error {
	me, peer, err := s.resolve(ctx, "decline", userID, handle, s.fail("decline", store.ErrNoRequest))
	if err != nil {
		return err
	}
	if err := s.cfg.DB.DeclineFriend(ctx, me.ID, peer.ID); err != nil {
		return s.fail("decline", err)
	}
	s.log.Info("friend request declined", "user_id", me.ID, "peer_id", peer.ID)
	s.notify(peer.ID, schema.EventRequestDeclined, me, false)
	s.notify(me.ID, schema.EventRequestDeclined, peer, true)
	return nil
}

// Cancel withdraws userID's own pending request to the user with handle.
// Errors: invalid_handle, not_found, no_request.
func (s *Service) Cancel(ctx context.Context, userID, handle string) error {
	me, peer, err := s.resolve(ctx, "cancel", userID, handle, s.fail("cancel", store.ErrNoRequest))
	if err != nil {
		return err
	}
	if err := s.cfg.DB.CancelFriendRequest(ctx, me.ID, peer.ID); err != nil {
		return s.fail("cancel", err)
	}
	s.log.Info("friend request cancelled", "user_id", me.ID, "peer_id", peer.ID)
	s.notify(peer.ID, schema.EventRequestCancelled, me, false)
	s.notify(me.ID, schema.EventRequestCancelled, peer, true)
	return nil
}

// Remove ends userID's friendship with the user with handle; both are told
// (friend_removed) and messages between them are refused from then on.
// Errors: invalid_handle, not_found, not_friend.
func (s *Service) Remove(ctx context.Context, userID, handle string) error {
	me, peer, err := s.resolve(ctx, "remove", userID, handle, s.fail("remove", store.ErrNotFriend))
	if err != nil {
		return err
	}
	if err := s.cfg.DB.RemoveFriend(ctx, me.ID, peer.ID); err != nil {
		return s.fail("remove", err)
	}
	s.log.Info("friendship ended", "user_id", me.ID, "peer_id", peer.ID)
	s.changed(me.ID, peer.ID)
	s.notify(peer.ID, schema.EventFriendRemoved, me, false)
	s.notify(me.ID, schema.EventFriendRemoved, peer, true)
	return nil
}

// Block blocks the user with handle: their friend requests are refused from
// then on, an existing friendship ends and pending requests either way are
// deleted. Blocking twice is not an error. The blocked user is never told of
// the block: they see at most what a removal (friend_removed), a decline
// (request_declined) or a cancel (request_cancelled) would show them.
// Errors: invalid_handle, not_found, bad_request (yourself).
func (s *Service) Block(ctx context.Context, userID, handle string) error {
	me, peer, err := s.resolve(ctx, "block", userID, handle,
		schema.Errorf(schema.CodeBadRequest, "you cannot block yourself"))
	if err != nil {
		return err
	}
	out, err := s.cfg.DB.BlockUser(ctx, me.ID, peer.ID)
	if err != nil {
		return s.fail("block", err)
	}
	s.log.Info("user blocked", "user_id", me.ID, "peer_id", peer.ID, "was_friend", out.WasFriend)
	s.changed(me.ID, peer.ID)
	s.notify(me.ID, schema.EventUserBlocked, peer, true)
	if out.WasFriend {
		s.notify(peer.ID, schema.EventFriendRemoved, me, false)
	}
	if out.DroppedRequest {
		s.notify(peer.ID, schema.EventRequestDeclined, me, false)
	}
	if out.CancelledOwn {
		s.notify(peer.ID, schema.EventRequestCancelled, me, false)
	}
	return nil
}

// Unblock lifts userID's block of the user with handle; nothing else is
// restored. Errors: invalid_handle, not_found (no such user, or not blocked).
func (s *Service) Unblock(ctx context.Context, userID, handle string) error {
	me, peer, err := s.resolve(ctx, "unblock", userID, handle, s.fail("unblock", store.ErrNotBlocked))
	if err != nil {
		return err
	}
	if err := s.cfg.DB.UnblockUser(ctx, me.ID, peer.ID); err != nil {
		return s.fail("unblock", err)
	}
	s.log.Info("user unblocked", "user_id", me.ID, "peer_id", peer.ID)
	s.changed(me.ID, peer.ID)
	s.notify(me.ID, schema.EventUserUnblocked, peer, true)
	return nil
}

// List returns userID's friends with their public keys and fingerprints,
// oldest friendship first.
func (s *Service) List(ctx context.Context, userID string) (schema.FriendList, error) {
	fs, err := s.cfg.DB.Friends(ctx, userID)
	if err != nil {
		return schema.FriendList{}, s.internal("list", err)
	}
	out := schema.FriendList{Friends: make([]schema.Friend, 0, len(fs))}
	for _, f := range fs {
		out.Friends = append(out.Friends, friendWire(f.User, f.Since))
	}
	return out, nil
}

// Requests returns userID's pending, unexpired incoming and outgoing
// requests, oldest first.
func (s *Service) Requests(ctx context.Context, userID string) (schema.FriendRequests, error) {
	in, outg, err := s.cfg.DB.FriendRequests(ctx, userID)
	if err != nil {
		return schema.FriendRequests{}, s.internal("requests", err)
	}
	return schema.FriendRequests{Incoming: requestsWire(in), Outgoing: requestsWire(outg)}, nil
}

func requestsWire(rs []store.FriendRequest) []schema.FriendRequest {
	out := make([]schema.FriendRequest, 0, len(rs))
	for _, r := range rs {
		out = append(out, schema.FriendRequest{
			UserID: r.Peer.ID, Handle: r.Peer.Handle, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt,
		})
	}
	return out
}

// Blocks returns the users userID has blocked, oldest block first.
func (s *Service) Blocks(ctx context.Context, userID string) (schema.BlockList, error) {
	bs, err := s.cfg.DB.Blocks(ctx, userID)
	if err != nil {
		return schema.BlockList{}, s.internal("blocks", err)
	}
	out := schema.BlockList{Blocks: make([]schema.Block, 0, len(bs))}
	for _, b := range bs {
		out.Blocks = append(out.Blocks, schema.Block{UserID: b.ID, Handle: b.Handle, Since: b.Since})
	}
	return out, nil
}

// AnnounceKeyChange tells every friend of userID (friend_keys_changed, with
// the new keys and fingerprint in Peer) that userID's public keys changed.
// The identity service calls it after a key change is stored.
func (s *Service) AnnounceKeyChange(ctx context.Context, userID string) error {
	me, err := s.cfg.DB.UserByID(ctx, userID)
	if err != nil {
		return s.fail("announce key change", err)
	}
	ids, err := s.cfg.DB.FriendIDs(ctx, userID)
	if err != nil {
		return s.internal("announce key change", err)
	}
	for _, id := range ids {
		s.notify(id, schema.EventFriendKeysChanged, me, false)
	}
	return nil
}
