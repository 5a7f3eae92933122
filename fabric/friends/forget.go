package friends

import (
	"context"
	"errors"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/store"
)

// Forget ends every friendship and pending friend request of userID, for the
// deletion of its account, and returns the ids of the friends it had. Each
// friend is told friend_removed, each user with a pending request either
// way request_cancelled or request_declined, as if userID had removed,
// cancelled or declined them; every process drops its hot copy of the
// graphs involved. Blocks are left to the deletion of the account's rows.
// Forget is idempotent.
func (s *Service) Forget(ctx context.Context, userID string) (friendIDs []string, err error) {
	me, err := s.cfg.DB.UserByID(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, s.internal("forget", err)
	}
	fs, err := s.cfg.DB.Friends(ctx, userID)
	if err != nil {
		return nil, s.internal("forget", err)
	}
	for _, f := range fs {
		if err := s.cfg.DB.RemoveFriend(ctx, userID, f.ID); err != nil && !errors.Is(err, store.ErrNotFriend) {
			return friendIDs, s.internal("forget", err)
		}
		friendIDs = append(friendIDs, f.ID)
		s.changed(userID, f.ID)
		s.notify(f.ID, schema.EventFriendRemoved, me, false)
	}
	in, out, err := s.cfg.DB.FriendRequests(ctx, userID)
	if err != nil {
		return friendIDs, s.internal("forget", err)
	}
	for _, r := range out {
		if err := s.cfg.DB.CancelFriendRequest(ctx, userID, r.Peer.ID); err == nil {
			s.notify(r.Peer.ID, schema.EventRequestCancelled, me, false)
		}
	}
	for _, r := range in {
		if err := s.cfg.DB.DeclineFriend(ctx, userID, r.Peer.ID); err == nil {
			s.notify(r.Peer.ID, schema.EventRequestDeclined, me, false)
		}
	}
	return friendIDs, nil
}
