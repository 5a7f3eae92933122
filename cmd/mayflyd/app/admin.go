package app

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/store"
	"github.com/mayfly-im/mayfly/store/pgserver"
)

// Admin actions on one account (`mayflyd admin ACTION HANDLE`).
const (
	AdminSuspend   = "suspend"
	AdminUnsuspend = "unsuspend"
	AdminDelete    = "delete"
)

// ErrUnknownUser is returned by Admin for a handle nobody holds.
var ErrUnknownUser = errors.New("no user has this handle")

// Admin runs an operator action on the account with handle, on cfg's
// database: the private Postgres of cfg.DataDir (started for the call, or,
// when mayflyd is running on it, reached through its socket) or
// cfg.DatabaseURL. It records the action in the database and returns a line
// saying what was done; a running mayflyd carries it out (ends live
// connections, erases a deleted account) within
// lifecycle.DefaultInterval, and a stopped one at its next start.
// Errors: ErrUnknownUser, a bad action, database failures.
func Admin(ctx context.Context, cfg Config, action, handle string) (string, error) {
	if action != AdminSuspend && action != AdminUnsuspend && action != AdminDelete {
		return "", fmt.Errorf("unknown admin action %q: want suspend, unsuspend or delete", action)
	}
	if !schema.ValidHandle(handle) {
		return "", fmt.Errorf("%q is not a handle", handle)
	}
	cfg.defaults()
	a := &App{cfg: cfg, log: cfg.Logger}
	defer a.teardown(context.Background())
	if err := a.openAdminDB(ctx); err != nil {
		return "", err
	}
	if err := a.db.Migrate(ctx); err != nil {
		return "", err
	}
	u, err := a.db.UserByHandle(ctx, handle)
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("%s %s: %w", action, handle, ErrUnknownUser)
	}
	if err != nil {
		return "", err
	}
	return adminApply(ctx, a.db, action, u)
}

// adminApply records action on u.
func adminApply(ctx context.Context, db *store.DB, action string, u store.User) (string, error) {
	who := fmt.Sprintf("%s (user id %s)", u.Handle, u.ID)
	switch action {
	case AdminSuspend:
		already, err := db.SuspendUser(ctx, u.ID)
		if err != nil {
			return "", err
		}
		if already {
			return who + " was suspended already; its sessions were ended again", nil
		}
		return who + " suspended: sessions ended; login and refresh are refused", nil
	case AdminUnsuspend:
		was, err := db.UnsuspendUser(ctx, u.ID)
		if err != nil {
			return "", err
		}
		if !was {
			return who + " was not suspended", nil
		}
		return who + " unsuspended: it may log in again", nil
	default:
		if err := db.RequestDeletion(ctx, u.ID); err != nil {
			return "", err
		}
		return who + " deletion recorded: sessions ended; a running mayflyd erases the account within seconds, a stopped one at its next start", nil
	}
}

// openAdminDB opens the database like openDB, but uses the private Postgres
// of a running mayflyd instead of failing when one runs on the data dir.
func (a *App) openAdminDB(ctx context.Context) error {
	err := a.openDB(ctx)
	if a.cfg.DatabaseURL != "" || !errors.Is(err, pgserver.ErrAlreadyRunning) {
		return err
	}
	url, uerr := pgserver.RunningURL(filepath.Join(a.cfg.DataDir, "pg"), "mayfly")
	if uerr != nil {
		return fmt.Errorf("%w (%w)", err, uerr)
	}
	db, err := store.Open(ctx, url, a.log)
	if err != nil {
		return err
	}
	a.db = db
	return nil
}
