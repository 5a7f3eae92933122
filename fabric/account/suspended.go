package account

import (
	"context"
	"errors"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/store"
)

var errSuspended = schema.Errorf(schema.CodeAccountSuspended, "this account is suspended")

// refuseSuspended returns account_suspended when userID is suspended (by the
// operator, or while its deletion runs). Login and refresh call it after
// the store step, so a suspension committed before it is always seen; the
// suspension itself ends every session (store.SuspendUser).
func (s *Service) refuseSuspended(ctx context.Context, userID string) error {
	suspended, err := s.cfg.DB.Suspended(ctx, userID)
	if err != nil {
		return s.internal("check suspension", err)
	}
	if suspended {
		return errSuspended
	}
	return nil
}

// refuseSuspendedRefresh is refuseSuspended for a refresh whose store step
// returned d and err: a refresh token a suspension ended (refresh_invalid
// otherwise) is answered account_suspended, so the client knows why.
func (s *Service) refuseSuspendedRefresh(ctx context.Context, d store.Device, err error) error {
	if d.UserID == "" || (err != nil && !errors.Is(err, store.ErrRefreshInvalid)) {
		return nil
	}
	return s.refuseSuspended(ctx, d.UserID)
}
