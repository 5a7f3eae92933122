package app

import (
	"context"
	"time"

	"github.com/mayfly-im/mayfly/fabric/mailbox"
)

// startMailbox creates or updates the mailbox streams and builds the relay,
// with the friend graph as its Permit, and starts the block rotation that
// bounds how long ciphertext stays in the store's files (stopped by
// teardown). It needs NATS and friends up.
func (a *App) startMailbox() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mb, err := mailbox.New(ctx, mailbox.Config{
		NATS:           a.nc,
		Readers:        a.readers,
		Permit:         a.friends,
		Partitions:     a.cfg.MailboxPartitions,
		Replicas:       a.cfg.Replicas,
		Placement:      a.cfg.DR.placement(),
		MaxAge:         a.cfg.MailboxMaxAge,
		RotateInterval: a.cfg.MailboxRotateInterval,
		SendRate:       a.cfg.SendRate,
		SendBurst:      a.cfg.SendBurst,
		Logger:         a.log.With("src", "mailbox"),
		Observer:       a.msgMetrics,
		OnBurn:         a.forgetAttachments,
	})
	if err != nil {
		return err
	}
	a.mailbox = mb
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	a.stopRotation = func() { stop(); <-done }
	go func() {
		defer close(done)
		mb.RunRotation(rctx)
	}()
	return nil
}
