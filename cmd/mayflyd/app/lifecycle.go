package app

import (
	"github.com/mayfly-im/mayfly/fabric/lifecycle"
)

// startLifecycle runs the account lifecycle service: it carries out the
// suspensions and deletions recorded in Postgres (by users, and by
// `mayflyd admin` in another process).
func (a *App) startLifecycle() error {
	var err error
	a.lifecycle, err = lifecycle.New(lifecycle.Config{
		DB: a.db, NATS: a.nc, Friends: a.friends, Mailbox: a.mailbox,
		Logger: a.log.With("src", "lifecycle"), Interval: a.cfg.LifecycleInterval,
	})
	if err != nil {
		return err
	}
	a.lifecycle.Start()
	return nil
}
