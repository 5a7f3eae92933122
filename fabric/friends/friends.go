// Package friends provides Mayfly's friend graph service: friend requests by
// handle (sent, accepted, declined, cancelled, expiring after RequestTTL),
// mutual friendships of at most schema.MaxFriends per user, removal, blocks,
// and the check the message send path makes before every message
// ([Service.CanMessage]).
//
// The graph lives in Postgres (store/friends.go), where the limits hold
// under concurrency. Every change is announced twice on NATS: a live
// schema.Event to the affected users' devices (fabric.PublishEvent), and a
// graph change notice on fab.graph.<user> (fabric.PublishGraphChange) that
// every Service, in every process, listens to in order to drop its hot copy
// of that user's friend ids ([Graph]). A change thus reaches every process's
// send path within one NATS hop; docs/fabric.md ("Friend graph") has the
// details and the failure cases.
//
// Methods take the caller's user id (account.Principal.UserID) and return
// schema wire types; they fail with *schema.Error values from the closed
// client error set. A [Service] is safe for concurrent use. It owns a NATS
// subscription and a pruning goroutine: call Close when done.
package friends

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/fabric"
	"github.com/mayfly-im/mayfly/fabric/account"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/store"
)

// Defaults for [Config].
const (
	DefaultRequestTTL    = 14 * 24 * time.Hour
	DefaultRequestRate   = 20
	DefaultRequestWindow = time.Hour
	DefaultGraphSize     = 50_000
	DefaultGraphMaxAge   = 5 * time.Minute
	DefaultPruneInterval = time.Hour
)

// Config configures a Service.
type Config struct {
	DB     *store.DB    // required
	NATS   *nats.Conn   // required: events and graph change notices
	Logger *slog.Logger // default discards
	// RequestTTL is how long a friend request stays pending unanswered;
	// default DefaultRequestTTL (14 days).
	RequestTTL time.Duration
	// RequestRate is how many friend request attempts a user may make per
	// RequestWindow; default DefaultRequestRate per DefaultRequestWindow.
	RequestRate   int
	RequestWindow time.Duration
	// GraphSize is how many users' friend ids the hot cache holds; default
	// DefaultGraphSize (about 1 KB each).
	GraphSize int
	// GraphMaxAge bounds how long a cached friend list is used without a
	// reload, a backstop should a change notice be lost; default
	// DefaultGraphMaxAge.
	GraphMaxAge time.Duration
	// PruneInterval is how often expired requests and old rate-limit rows
	// are deleted; default DefaultPruneInterval; negative disables it.
	PruneInterval time.Duration
}

// Service implements the friend graph.
type Service struct {
	cfg   Config
	log   *slog.Logger
	graph *Graph
	sub   *nats.Subscription

	// reconnects is the NATS reconnect count the cache was last valid for:
	// notices may have been missed while disconnected.
	reconnects atomic.Uint64

	stop      context.CancelFunc
	wg        sync.WaitGroup // the prune goroutine
	closeOnce sync.Once
}

// New returns a running Service for cfg: it subscribes to every graph change
// notice (the subscription is active on the server when New returns) and
// starts pruning.
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.NATS == nil {
		return nil, errors.New("friends: config needs DB and NATS")
	}
	cfg.defaults()
	s := &Service{cfg: cfg, log: cfg.Logger}
	s.graph = NewGraph(cfg.GraphSize, cfg.GraphMaxAge, cfg.DB.FriendIDs)
	s.reconnects.Store(cfg.NATS.Stats().Reconnects)
	sub, err := cfg.NATS.Subscribe(fabric.GraphChangesAll, s.onGraphChange)
	if err != nil {
		return nil, fmt.Errorf("friends: subscribe to graph changes: %w", err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		sub.Unsubscribe()
		return nil, fmt.Errorf("friends: graph change subscription: %w", err)
	}
	if err := cfg.NATS.Flush(); err != nil {
		sub.Unsubscribe()
		return nil, fmt.Errorf("friends: subscribe to graph changes: %w", err)
	}
	s.sub = sub
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	if cfg.PruneInterval > 0 {
		s.wg.Add(1)
		go s.pruneLoop(ctx)
	}
	return s, nil
}

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.RequestTTL <= 0 {
		c.RequestTTL = DefaultRequestTTL
	}
	if c.RequestRate <= 0 {
		c.RequestRate = DefaultRequestRate
	}
	if c.RequestWindow <= 0 {
		c.RequestWindow = DefaultRequestWindow
	}
	if c.GraphSize <= 0 {
		c.GraphSize = DefaultGraphSize
	}
	if c.GraphMaxAge <= 0 {
		c.GraphMaxAge = DefaultGraphMaxAge
	}
	if c.PruneInterval == 0 {
		c.PruneInterval = DefaultPruneInterval
	}
}

// Close stops the pruning goroutine (waiting for it) and the graph change
// subscription. Calls after the first do nothing. Methods still work after
// Close but the hot cache is no longer kept current: do not use it then.
func (s *Service) Close() {
	s.closeOnce.Do(func() {
		s.stop()
		s.wg.Wait()
		if err := s.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			s.log.Warn("unsubscribe graph changes", "err", err)
		}
	})
}

// pruneLoop deletes expired requests and old rate-limit rows every
// PruneInterval until ctx ends.
func (s *Service) pruneLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		n, err := s.cfg.DB.PruneFriends(pctx, s.cfg.RequestWindow)
		cancel()
		if err != nil && ctx.Err() == nil {
			s.log.Error("prune friend requests", "err", err)
		} else if n > 0 {
			s.log.Debug("pruned friend requests", "rows", n)
		}
	}
}

// onGraphChange drops the named user's cached friend ids.
func (s *Service) onGraphChange(m *nats.Msg) {
	id, err := fabric.GraphChangeUser(m.Subject)
	if err != nil {
		s.log.Warn("malformed graph change subject", "subject", m.Subject)
		return
	}
	s.graph.Invalidate(id)
}

// changed drops the users' cached friend ids here at once and tells every
// other process to do the same.
func (s *Service) changed(userIDs ...string) {
	for _, id := range userIDs {
		s.graph.Invalidate(id)
		if err := fabric.PublishGraphChange(s.cfg.NATS, id); err != nil {
			s.log.Error("publish graph change", "user_id", id, "err", err)
		}
	}
}

// notify sends userID's devices a friend event about peer.
func (s *Service) notify(userID string, typ schema.EventType, peer store.User, byMe bool) {
	pu := account.PublicUser(peer)
	if err := fabric.PublishEvent(s.cfg.NATS, userID, schema.Event{Type: typ, Peer: &pu, ByMe: byMe}); err != nil {
		s.log.Error("publish event", "user_id", userID, "type", typ, "err", err)
	}
}

// GraphStats reports the hot cache's counters.
func (s *Service) GraphStats() GraphStats { return s.graph.Stats() }

var errNotFriend = schema.Errorf(schema.CodeNotFriend, "you can only message your friends")

// CanMessage reports whether from may send a message to to: nil when they
// are friends (which implies neither blocks the other: a block ends the
// friendship), else a not_friend *schema.Error (also for malformed ids and
// from == to), or an internal one when the graph cannot be read.
//
// It answers from the hot cache, so a removal or block made by any process
// is seen once its graph change notice arrives (well within a second). A
// refusal is confirmed against Postgres before it is returned, so a
// friendship made a moment ago is never refused because its notice is still
// on the way.
func (s *Service) CanMessage(ctx context.Context, from, to string) error {
	if from == to || !schema.ValidUserID(from) || !schema.ValidUserID(to) {
		return errNotFriend
	}
	ids, err := s.friendIDs(ctx, from)
	if err != nil {
		return s.internal("can message", err)
	}
	if _, ok := slices.BinarySearch(ids, to); ok {
		return nil
	}
	ok, err := s.cfg.DB.AreFriends(ctx, from, to)
	if err != nil {
		return s.internal("can message", err)
	}
	if !ok {
		return errNotFriend
	}
	s.graph.Invalidate(from)
	return nil
}

// FriendIDs returns the ids of userID's friends, sorted, from the hot cache
// (kept current as CanMessage's is). The slice is the caller's. It returns
// fabric.ErrBadID for a malformed id.
func (s *Service) FriendIDs(ctx context.Context, userID string) ([]string, error) {
	if !schema.ValidUserID(userID) {
		return nil, fabric.ErrBadID
	}
	ids, err := s.friendIDs(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("friend ids: %w", err)
	}
	return slices.Clone(ids), nil
}

// friendIDs reads userID's friend ids from the cache while change notices
// can reach it, and straight from Postgres while NATS is disconnected. After
// a reconnect the whole cache is dropped: notices may have been missed.
func (s *Service) friendIDs(ctx context.Context, userID string) ([]string, error) {
	nc := s.cfg.NATS
	if !nc.IsConnected() {
		return s.cfg.DB.FriendIDs(ctx, userID)
	}
	if r := nc.Stats().Reconnects; r != s.reconnects.Load() {
		s.reconnects.Store(r)
		s.graph.Flush()
		s.log.Info("friend graph cache flushed after nats reconnect")
	}
	return s.graph.Get(ctx, userID)
}

// internal logs err, a failure with no client code of its own, and
// returns what the client sees of it (schema.ClientError): unavailable
// when a dependency did not answer, internal otherwise.
func (s *Service) internal(op string, err error) error {
	s.log.Error("friends service failure", "op", op, "err", err)
	return schema.AsError(err)
}
