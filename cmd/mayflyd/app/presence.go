package app

import (
	"context"
	"time"

	"github.com/mayfly-im/mayfly/fabric/presence"
)

// startPresence creates or updates the presence bucket and starts the
// fan-out worker, with the friend graph as its friends source and the
// database for "last seen" privacy. It needs NATS and friends up.
func (a *App) startPresence() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := presence.New(ctx, presence.Config{
		NATS:      a.nc,
		Friends:   a.friends,
		Settings:  a.db,
		TTL:       a.cfg.PresenceTTL,
		Replicas:  a.cfg.Replicas,
		Placement: a.cfg.DR.placement(),
		Logger:    a.log.With("src", "presence"),
	})
	if err != nil {
		return err
	}
	if err := p.Start(); err != nil {
		return err
	}
	a.presence = p
	return nil
}
