// Package lifecycle carries out the end of accounts: a user deleting its own
// account, and an operator suspending, unsuspending or deleting one
// (`mayflyd admin`, docs/operations.md "Account lifecycle").
//
// Suspensions and deletions are recorded in Postgres first (store.SuspendUser,
// store.RequestDeletion), which ends every session of the user at once: its
// tokens are refused from then on, and login and refresh answer
// account_suspended. A running [Service] then ends the live connections
// (WebSockets close with 4001, NATS-native connections are disconnected by
// the auth callout) and carries out deletions: the user's friendships and
// friend requests end (friends are told), every message of its mailbox and
// every message it exchanged in its friends' mailboxes is removed, and its
// rows are deleted (keys, devices, tokens, friendships, requests, blocks).
// Because the records are in Postgres, `mayflyd admin` needs no running
// server: what it records is carried out within one poll interval by a
// running mayflyd, or at the next start.
//
// A [Service] is safe for concurrent use. Start runs its poll loop on a
// goroutine it owns; Stop ends it and waits.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/fabric"
	"github.com/mayfly-im/mayfly/fabric/friends"
	"github.com/mayfly-im/mayfly/fabric/mailbox"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/store"
)

// DefaultInterval is how often a Service looks for recorded suspensions and
// deletions.
const DefaultInterval = 2 * time.Second

// batch bounds the suspensions or deletions one poll carries out.
const batch = 32

// Config configures a Service.
type Config struct {
	DB      *store.DB        // required
	NATS    *nats.Conn       // required: revocations and events
	Friends *friends.Service // required
	// Mailbox erases messages; without it deletions leave them to expire.
	Mailbox *mailbox.Service
	Logger  *slog.Logger // default discards
	// Interval is the poll interval; default DefaultInterval.
	Interval time.Duration
}

// Service carries out suspensions and deletions.
type Service struct {
	cfg  Config
	log  *slog.Logger
	stop context.CancelFunc
	wg   sync.WaitGroup // the poll loop
}

// New validates cfg.
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.NATS == nil || cfg.Friends == nil {
		return nil, errors.New("lifecycle: config needs DB, NATS and Friends")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	return &Service{cfg: cfg, log: cfg.Logger}, nil
}

// Start runs the poll loop until Stop: it carries out what is recorded at
// once, then every Interval.
func (s *Service) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.cfg.Interval)
		defer t.Stop()
		for {
			s.Poll(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Stop ends the poll loop and waits for it.
func (s *Service) Stop() {
	if s.stop != nil {
		s.stop()
	}
	s.wg.Wait()
}

// Poll carries out the suspensions and deletions recorded so far (at most
// 32 of each); failures are logged and retried at the next poll.
func (s *Service) Poll(ctx context.Context) {
	pending, err := s.cfg.DB.PendingAnnouncements(ctx, batch)
	if err != nil && ctx.Err() == nil {
		s.log.Error("lifecycle: pending suspensions", "err", err)
	}
	for _, a := range pending {
		s.endSessions(a.UserID, a.Devices, true)
		if err := s.cfg.DB.MarkAnnounced(ctx, a.UserID); err != nil {
			s.log.Error("lifecycle: mark suspension announced", "user_id", a.UserID, "err", err)
		}
	}
	ids, err := s.cfg.DB.PendingDeletions(ctx, batch)
	if err != nil && ctx.Err() == nil {
		s.log.Error("lifecycle: pending deletions", "err", err)
	}
	for _, id := range ids {
		if err := s.erase(ctx, id); err != nil && ctx.Err() == nil {
			s.log.Error("lifecycle: delete account", "user_id", id, "err", err)
		}
	}
}

// DeleteAccount deletes userID's account now, as its user asked: it records
// the deletion (which ends every session) and carries it out before it
// returns. If that fails midway the deletion stays recorded and the poll
// loop finishes it. Errors: not_found (no such user), internal,
// unavailable.
func (s *Service) DeleteAccount(ctx context.Context, userID string) error {
	err := s.cfg.DB.RequestDeletion(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return schema.Errorf(schema.CodeNotFound, "no such account")
	}
	if err != nil {
		return fmt.Errorf("lifecycle: record deletion: %w", err)
	}
	s.log.Info("account deletion requested by its user", "user_id", userID)
	return s.erase(ctx, userID)
}

// erase carries out the deletion of userID: live connections end, the
// friend graph forgets it, its messages go, then its rows.
func (s *Service) erase(ctx context.Context, userID string) error {
	ds, err := s.cfg.DB.Devices(ctx, userID)
	if err != nil {
		return err
	}
	s.endSessions(userID, ds, true)
	peers, err := s.cfg.Friends.Forget(ctx, userID)
	if err != nil {
		return err
	}
	removed := 0
	if s.cfg.Mailbox != nil {
		if removed, err = s.cfg.Mailbox.Erase(ctx, userID, peers); err != nil {
			return err
		}
	}
	gone, err := s.cfg.DB.DeleteUser(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted meanwhile by another poll
	}
	if err != nil {
		return err
	}
	s.endSessions(userID, gone, false)
	s.log.Info("account deleted", "user_id", userID, "friends", len(peers), "messages_removed", removed)
	return nil
}

// endSessions tells the fabric (the auth callout, which disconnects NATS
// clients) and the user's WebSockets that the sessions of devices ended:
// those below each device's current generation when keep is true (the
// device still exists: a suspension), all of them otherwise.
func (s *Service) endSessions(userID string, devices []store.Device, keep bool) {
	for _, d := range devices {
		gen := 0
		if keep {
			gen = d.Generation
		}
		if err := fabric.PublishRevoked(s.cfg.NATS, userID, fabric.Revocation{DeviceID: d.ID, Generation: gen}); err != nil {
			s.log.Error("lifecycle: publish revocation", "user_id", userID, "device_id", d.ID, "err", err)
		}
		ev := schema.Event{Type: schema.EventDeviceRevoked, DeviceID: d.ID, Generation: gen}
		if err := fabric.PublishEvent(s.cfg.NATS, userID, ev); err != nil {
			s.log.Error("lifecycle: publish event", "user_id", userID, "device_id", d.ID, "err", err)
		}
	}
}
