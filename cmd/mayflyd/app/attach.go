package app

import (
	"context"
	"time"

	"github.com/mayfly-im/mayfly/fabric/attach"
)

// startAttach creates or updates the attachment stream, with the friend
// graph as its Permit, and starts its block rotation (stopped by teardown
// with the mailbox's). It needs NATS and friends up, and runs before the
// mailbox, whose burns and recalls delete attachments (forgetAttachments).
func (a *App) startAttach() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := attach.New(ctx, attach.Config{
		NATS:           a.nc,
		Permit:         a.friends,
		Replicas:       a.cfg.Replicas,
		Placement:      a.cfg.DR.placement(),
		MaxAge:         a.cfg.AttachMaxAge,
		RotateInterval: a.cfg.MailboxRotateInterval,
		Logger:         a.log.With("src", "attach"),
	})
	if err != nil {
		return err
	}
	a.attach = svc
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	a.stopAttachRotation = func() { stop(); <-done }
	go func() {
		defer close(done)
		svc.RunRotation(rctx)
	}()
	return nil
}

// forgetAttachments is the mailbox's OnBurn: a burned or recalled message
// takes its attachments with it.
func (a *App) forgetAttachments(ctx context.Context, from, to, msgID string) {
	if a.attach != nil {
		a.attach.Forget(ctx, from, to, msgID)
	}
}
