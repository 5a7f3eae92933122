// Package presence keeps who is online in a JetStream KV bucket and tells
// friends, and only friends, when a user comes online or goes offline.
//
// Device keys. Each connected device has a key <user>.<device> whose message
// carries a per-message TTL (Nats-TTL, set only by this package, never above
// Config.TTL). Whoever holds the device's connection refreshes it every TTL/3:
// a gateway does it for all its devices from one goroutine ([Tracker]). A
// clean close purges the key. A device that vanishes (a crashed client, a dead
// gateway) is no longer refreshed, and once the TTL passes the server replaces
// its key by a delete marker (the bucket has LimitMarkerTTL). So a device is
// online exactly while its key holds a live value.
//
// User records. Each user also has a key <user> holding the user-level state
// the fan-out worker last announced (online or not, since when). It gives
// "last seen" and makes every user-level transition announced once, however
// many processes run the worker.
//
// Changes. The bucket's stream republishes every device key write, headers
// only, to prs.chg.<user>.<device> (expiry markers included). The fan-out
// worker ([Service.Start]) is a queue subscriber, so each change is handled
// by one process. It skips plain refreshes; for a device that came online or
// went offline it recomputes the user's state from the user's device keys
// and compares-and-sets the user record. Only a change of the user-level
// state is published, as a presence event on each friend's event subject:
// a user is online while any of their devices is. docs/fabric.md
// ("Presence") has the arithmetic and the reasons.
//
// A Service and a Tracker are safe for concurrent use.
package presence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/fabric/subject"
)

// Friends lists a user's current friends. Blocking ends a friendship, so a
// blocked user is never among them. fabric/friends.Service implements it.
type Friends interface {
	FriendIDs(ctx context.Context, userID string) ([]string, error)
}

// Settings holds each user's presence privacy. store.DB implements it.
type Settings interface {
	// ShareLastSeen reports, per existing user, whether friends may see
	// when the user was last online.
	ShareLastSeen(ctx context.Context, userIDs []string) (map[string]bool, error)
	// SetShareLastSeen changes userID's setting.
	SetShareLastSeen(ctx context.Context, userID string, share bool) error
}

// Config configures a Service. Zero values take the documented defaults.
type Config struct {
	NATS    *nats.Conn // required: a service connection
	Friends Friends    // required
	// Settings holds "last seen" privacy; nil means last seen is never
	// shared and cannot be changed.
	Settings Settings
	// Bucket names the KV bucket; default "presence".
	Bucket string
	// Replicas of the bucket's stream: 1 for a single server (the default),
	// 3 in a cluster.
	Replicas int
	// Placement picks the cluster and server tags of the bucket's replicas;
	// nil lets the server choose (docs/dr.md).
	Placement *jetstream.Placement
	// TTL is how long a device stays online without a refresh, rounded up to
	// whole seconds (the server's granularity), at least 1s; refreshes come
	// every TTL/3. Default 60s: a vanished device is offline within about a
	// minute. Tests use a few seconds.
	TTL time.Duration
	// Retention is how long a user record, hence "last seen", is kept after
	// the user's last presence change; default 7 days.
	Retention time.Duration
	// Workers is how many goroutines of this process apply changes; default
	// 4. Changes of one user always go to the same worker.
	Workers int
	// Logger receives the service's logs; default discards.
	Logger *slog.Logger
}

// Conditions callers branch on.
var (
	// ErrClosed means the Tracker was closed.
	ErrClosed = errors.New("presence: tracker closed")
	// ErrNoSettings means the Service was built without Settings.
	ErrNoSettings = errors.New("presence: no settings store")
)

// Service reads and writes presence and runs the fan-out worker.
type Service struct {
	cfg       Config
	log       *slog.Logger
	nc        *nats.Conn
	js        jetstream.JetStream
	keyPrefix string // "$KV.<bucket>."
	stream    string // "KV_<bucket>"
	ttl       string // cfg.TTL as a Nats-TTL value
	retention string // cfg.Retention as a Nats-TTL value

	// The fan-out worker's state.
	mu      sync.Mutex
	running bool                 // guarded by mu
	subs    []*nats.Subscription // guarded by mu
	cancel  func()               // guarded by mu; ends the worker's goroutines
	wg      sync.WaitGroup       // the worker's goroutines
}

// Subjects and headers.
const (
	// queueGroup spreads changes over every process running the worker.
	queueGroup = "mayfly-presence"
	// hdrPresence marks the write that makes a device online; refreshes
	// carry no such header and the worker skips them.
	hdrPresence = "Mayfly-Presence"
	valOnline   = "online"
	// KV operation header values, as nats.go writes them.
	hdrKVOp  = "KV-Operation"
	kvPurge  = "PURGE"
	kvDelete = "DEL"
)

// requestTimeout bounds one NATS request made without a caller deadline.
const requestTimeout = 5 * time.Second

// New returns a Service for cfg, creating or updating the bucket. It does not
// start the fan-out worker; call Start.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.NATS == nil || cfg.Friends == nil {
		return nil, errors.New("presence: config needs NATS and Friends")
	}
	cfg.defaults()
	js, err := jetstream.New(cfg.NATS, jetstream.WithPublishAsyncTimeout(requestTimeout))
	if err != nil {
		return nil, fmt.Errorf("presence: jetstream: %w", err)
	}
	s := &Service{
		cfg:       cfg,
		log:       cfg.Logger,
		nc:        cfg.NATS,
		js:        js,
		keyPrefix: subject.PresenceBucket(cfg.Bucket),
		stream:    "KV_" + cfg.Bucket,
		ttl:       strconv.FormatInt(int64(cfg.TTL/time.Second), 10),
		retention: strconv.FormatInt(int64(cfg.Retention/time.Second), 10),
	}
	if err := s.createBucket(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (c *Config) defaults() {
	if c.Bucket == "" {
		c.Bucket = "presence"
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.TTL <= 0 {
		c.TTL = 60 * time.Second
	}
	c.TTL = max(time.Second, c.TTL.Round(time.Second))
	if c.Retention <= 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	c.Retention = max(time.Second, c.Retention.Round(time.Second))
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// createBucket creates or updates the bucket: in memory (presence is soft
// state, rebuilt by the next refreshes after a full restart; no disk write
// or fsync per heartbeat), one value per key, per-key TTLs with expiry
// markers, and a headers-only republish of device keys for the worker.
func (s *Service) createBucket(ctx context.Context) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	_, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         s.cfg.Bucket,
		Description:    "Mayfly presence: <user>.<device> while online, <user> user records",
		History:        1,
		Storage:        jetstream.MemoryStorage,
		Replicas:       s.cfg.Replicas,
		Placement:      s.cfg.Placement,
		LimitMarkerTTL: s.cfg.TTL,
		RePublish:      s.republish(),
	})
	if err != nil {
		return fmt.Errorf("presence: create bucket %q: %w", s.cfg.Bucket, err)
	}
	return nil
}

// TTL returns the configured device TTL; a Tracker refreshes every TTL/3.
func (s *Service) TTL() time.Duration { return s.cfg.TTL }

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, requestTimeout)
}

// deviceKey returns the subject of a device key, validating both ids.
func (s *Service) deviceKey(userID, deviceID string) (string, error) {
	return subject.PresenceKey(s.cfg.Bucket, userID, deviceID)
}

// republish is the bucket's RePublish: device key writes, headers only, on
// prs.chg.<user>.<device> (subject.PresenceChange), where only services may
// subscribe.
func (s *Service) republish() *jetstream.RePublish {
	src, dest := subject.PresenceRepublish(s.cfg.Bucket)
	return &jetstream.RePublish{Source: src, Destination: dest, HeadersOnly: true}
}

// onlineMsg is the write that makes a device online.
func (s *Service) onlineMsg(subj string) *nats.Msg {
	m := nats.NewMsg(subj)
	m.Header.Set(hdrPresence, valOnline)
	m.Header.Set(jetstream.MsgTTLHeader, s.ttl)
	return m
}

// refreshMsg renews a device key, only if rev is still its last revision.
func (s *Service) refreshMsg(subj string, rev uint64) *nats.Msg {
	m := nats.NewMsg(subj)
	m.Header.Set(jetstream.MsgTTLHeader, s.ttl)
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(rev, 10))
	return m
}

// offlineMsg purges a device key, only if rev is still its last revision;
// the purge marker itself expires after the TTL, so clean closes leave
// nothing behind.
func (s *Service) offlineMsg(subj string, rev uint64) *nats.Msg {
	m := nats.NewMsg(subj)
	m.Header.Set(hdrKVOp, kvPurge)
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	m.Header.Set(jetstream.MsgTTLHeader, s.ttl)
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(rev, 10))
	return m
}

// Online marks a device online and returns the key's revision, which
// Refresh and Offline take. Friends hear of it if the user was offline.
func (s *Service) Online(ctx context.Context, userID, deviceID string) (uint64, error) {
	subj, err := s.deviceKey(userID, deviceID)
	if err != nil {
		return 0, err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	ack, err := s.js.PublishMsg(ctx, s.onlineMsg(subj))
	if err != nil {
		return 0, fmt.Errorf("presence online: %w", err)
	}
	return ack.Sequence, nil
}

// Refresh keeps a device online for another TTL and returns the key's new
// revision. rev is the revision the caller last got. If the key changed
// meanwhile, Refresh does not overwrite it: when it is still live (another
// connection of the device refreshes it) Refresh returns its revision; when
// it expired or was purged, Refresh marks the device online again, so
// friends hear of it.
func (s *Service) Refresh(ctx context.Context, userID, deviceID string, rev uint64) (uint64, error) {
	subj, err := s.deviceKey(userID, deviceID)
	if err != nil {
		return 0, err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	ack, err := s.js.PublishMsg(ctx, s.refreshMsg(subj, rev))
	if err == nil {
		return ack.Sequence, nil
	}
	if !isWrongLastSeq(err) {
		return 0, fmt.Errorf("presence refresh: %w", err)
	}
	rev, _, err = s.recover(ctx, subj)
	return rev, err
}

// recover finds out why a refresh of subj was refused. If the key is live
// (someone else refreshed it), it returns that revision and wrote=false;
// otherwise it writes the device online again and returns wrote=true.
func (s *Service) recover(ctx context.Context, subj string) (rev uint64, wrote bool, err error) {
	es, err := s.lastMsgs(ctx, []string{subj})
	if err != nil {
		return 0, false, err
	}
	if len(es) == 1 && es[0].live {
		return es[0].seq, false, nil
	}
	ack, err := s.js.PublishMsg(ctx, s.onlineMsg(subj))
	if err != nil {
		return 0, false, fmt.Errorf("presence online again: %w", err)
	}
	return ack.Sequence, true, nil
}

// Offline marks a device offline (a clean close) if rev is still its key's
// last revision. Otherwise another connection of the device wrote since, so
// the key is left alone and Offline returns nil.
func (s *Service) Offline(ctx context.Context, userID, deviceID string, rev uint64) error {
	subj, err := s.deviceKey(userID, deviceID)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	_, err = s.js.PublishMsg(ctx, s.offlineMsg(subj, rev))
	if err != nil && !isWrongLastSeq(err) {
		return fmt.Errorf("presence offline: %w", err)
	}
	return nil
}

// ShareLastSeen reports whether userID lets friends see when they were last
// online. Without Settings it is always false.
func (s *Service) ShareLastSeen(ctx context.Context, userID string) (bool, error) {
	if s.cfg.Settings == nil {
		return false, nil
	}
	m, err := s.cfg.Settings.ShareLastSeen(ctx, []string{userID})
	if err != nil {
		return false, fmt.Errorf("presence settings: %w", err)
	}
	return m[userID], nil
}

// SetShareLastSeen changes whether userID lets friends see when they were
// last online. It returns ErrNoSettings without a Settings store. The change
// applies to presence events and snapshots from then on.
func (s *Service) SetShareLastSeen(ctx context.Context, userID string, share bool) error {
	if s.cfg.Settings == nil {
		return ErrNoSettings
	}
	if err := s.cfg.Settings.SetShareLastSeen(ctx, userID, share); err != nil {
		return fmt.Errorf("presence settings: %w", err)
	}
	return nil
}

// isWrongLastSeq reports whether err is the server refusing a write whose
// expected last subject sequence did not match.
func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
