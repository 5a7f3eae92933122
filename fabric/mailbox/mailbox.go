// Package mailbox stores end-to-end encrypted messages in per-user JetStream
// mailboxes: the trusted send path (relay), replay from a cursor, burn after
// reading, recall, unread counts and the parsing of live deliveries.
//
// Every user has one literal mailbox subject mbx.<p>.<uid> in stream MBX_<p>
// (p = [Partition] of the user id); every stored message is republished by
// the stream on dlv.mbx.<p>.<uid>, where gateways hold one core subscription
// per connected user. A sent message is stored twice: the recipient's copy in
// the recipient's mailbox and a sync copy in the sender's own mailbox, for the
// sender's other devices. docs/fabric.md ("Mailboxes") explains the subjects,
// stream settings and the two-copy scheme.
//
// API (part B, gateway, builds on these):
//
//	New(ctx, Config) (*Service, error)               create/update streams MBX_0..MBX_{n-1}
//	Partition(userID, n) int                          FNV-1a(uid) mod n
//	(*Service).Subject(uid) (string, error)           mbx.<p>.<uid>
//	(*Service).DeliverySubject(uid) (string, error)   dlv.mbx.<p>.<uid>: subscribe here for live messages
//	(*Service).Partitions() int                       n, fixed at stream creation
//	(*Service).Send(ctx, from, fromDevice, to, envelope) (SendResult, error)
//	(*Service).Fetch(ctx, uid, after, max) ([]Message, last uint64, error)
//	(*Service).Read(ctx, reader, seq) (BurnResult, error)    burn after reading
//	(*Service).Recall(ctx, sender, seq) (BurnResult, error)  seq = sender's sync-copy seq
//	(*Service).Unread(ctx, uid) (map[string]int, error)     unread count per sender
//	ParseDelivery(*nats.Msg) (Message, prevSeq uint64, error) parse a dlv.mbx.* message
//
// Errors a client may see are *schema.Error values (see [schema.AsError]):
// bad_request, self_send, invalid_envelope, message_too_large, not_friend,
// refused, rate_limited, mailbox_full, unknown_message, invalid_cursor,
// unavailable. Any other error is internal and must be logged, not shown.
//
// Live events: Read and Recall publish schema.EventBurned and
// schema.EventRecalled on evt.<uid> of both users (fabric.PublishEvent), each
// carrying the sequence meaningful to that user, the other user and the
// message id; Send publishes schema.EventWithdrawn to the sender when it had
// to remove a sync copy again because delivery failed.
//
// A Service is safe for concurrent use by many goroutines. It owns no
// goroutines; the NATS connection belongs to the caller.
package mailbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/fabric/subject"
	"github.com/mayfly-im/mayfly/gateway/keyrate"
	"github.com/mayfly-im/mayfly/schema"
)

// Permit decides whether from may send a message to to. It is the consumer
// side of the friend graph (fabric/friends.Service implements it). It returns
// nil when allowed, a *schema.Error with code not_friend or refused when not,
// and any other error when it cannot tell (the send then fails as internal or
// unavailable). It must be safe for concurrent use.
type Permit interface {
	CanMessage(ctx context.Context, from, to string) error
}

// Defaults and limits of [Config].
const (
	DefaultPartitions      = 16
	MaxAgeLimit            = 60 * time.Minute
	DefaultMaxPerMailbox   = 1000
	DefaultDuplicateWindow = 30 * time.Second
	DefaultSendRate        = 5.0 // messages per second per user
	DefaultSendBurst       = 20
	// MaxFetch is the largest number of messages one Fetch returns.
	MaxFetch = 1000
	// DefaultFetch is the number of messages Fetch returns when max <= 0.
	DefaultFetch = 100
)

// Config configures a [Service]. Zero values take the documented defaults.
type Config struct {
	// NATS is the service connection; required. It must be allowed to use
	// the JetStream API of the account that holds the mailbox streams.
	NATS *nats.Conn
	// Readers are extra connections for Direct Gets (replay, the read's
	// lookup); default none, NATS then serves them. The NATS server answers
	// a Direct Get inside the reading loop of the connection that sent it,
	// and waits there for the stream's lock, which a write or delete holds
	// through its fsync: every message sent after it on that connection,
	// sends and burns of other mailboxes included, waits too. Gets of stream
	// MBX_<p> always use Readers[p % len(Readers)], so a stream busy on the
	// disk holds up only reads that share its connection.
	Readers []*nats.Conn
	// Permit checks the friend graph on every send; required.
	Permit Permit
	// Partitions is the number of mailbox streams MBX_0..MBX_{n-1}; default
	// 16. It is fixed when the streams are first created: New refuses a
	// different value once streams exist (user ids hash to partitions).
	Partitions int
	// Replicas of each stream; default 1 (embedded node); 3 in a cluster.
	Replicas int
	// Placement picks the cluster and server tags of each stream's
	// replicas; nil lets the server choose (docs/dr.md).
	Placement *jetstream.Placement
	// MaxAge is how long an unread message lives. MaxAge plus
	// RotateInterval is at most 60m (MaxAgeLimit): that sum bounds how long
	// a message's bytes stay in the stream's files. Default 60m minus
	// RotateInterval (55m).
	MaxAge time.Duration
	// RotateInterval is about the longest a message stays in the block
	// file the server writes to before RunRotation closes that block (see
	// [Service.Rotate]); default DefaultRotateInterval (5m). A negative
	// value disables the rotation (and the bound it gives).
	RotateInterval time.Duration
	// MaxPerMailbox caps the messages stored on one mailbox subject
	// (unread received messages plus live sync copies); default 1000. A send
	// over the cap fails with mailbox_full and stores nothing.
	MaxPerMailbox int64
	// DuplicateWindow is how long JetStream remembers message ids, so a
	// retried send within it is recognised; default 30s, at most MaxAge.
	DuplicateWindow time.Duration
	// SendRate and SendBurst limit sends per user in this process (token
	// bucket); defaults 5/s and 20. A negative SendRate disables the limit.
	SendRate  float64
	SendBurst int
	// Logger receives operational logs (never message bodies); default discards.
	Logger *slog.Logger
	// Observer, if set, is told the outcome of every operation (metrics).
	Observer Observer
	// OnBurn, if set, is called after a Read or Recall removed message
	// msgID from from to to (fabric/attach deletes the message's
	// attachments there). It runs in the caller's goroutine before Read or
	// Recall returns; it must not block for long.
	OnBurn func(ctx context.Context, from, to, msgID string)
}

// Service is the mailbox relay and burn service.
type Service struct {
	cfg     Config
	nc      *nats.Conn
	js      jetstream.JetStream
	log     *slog.Logger
	limiter *keyrate.Limiter // per sending user; nil when unlimited

}

// Message is one stored message as seen from the mailbox owner's side.
type Message struct {
	// Seq is the message's sequence in the owner's mailbox stream: the
	// cursor a device keeps, and what Read and Recall take.
	Seq uint64 `json:"seq"`
	// From and To are the sender and recipient, set by the relay.
	From string `json:"from"`
	To   string `json:"to"`
	// MsgID is the sender's client message id (the envelope's "mid").
	MsgID string `json:"msg_id"`
	// SentAt is the relay's clock when it accepted the message.
	SentAt time.Time `json:"sent_at"`
	// Envelope is the encrypted envelope (schema/envelope, canonical JSON).
	Envelope json.RawMessage `json:"envelope"`
	// Self is true for a sync copy: a message the owner sent, stored in the
	// owner's own mailbox for their other devices. Only received messages
	// (Self false) can be read; only sync copies can be recalled.
	Self bool `json:"self,omitempty"`
	// PeerSeq is, on a received message, the sequence of the sender's sync
	// copy in the sender's mailbox; 0 on a sync copy (the recipient's seq is
	// not recorded there). It is internal: gateways need not show it.
	PeerSeq uint64 `json:"peer_seq,omitempty"`
}

// SendResult is the outcome of an acknowledged send.
type SendResult struct {
	// Seq is the sync copy's sequence in the sender's own mailbox; 0 in
	// the rare case a send repeated past its sync copy generations stored
	// none (see storeSync).
	Seq uint64
	// PeerSeq is the recipient's copy's sequence in the recipient's mailbox.
	PeerSeq uint64
	// Duplicate reports that this send repeated an earlier one with the same
	// message id: nothing new was stored and Seq/PeerSeq are the original
	// ones (Seq is 0 when the original sync copy can no longer be told).
	Duplicate bool
	// SentAt is the relay's time stamp of the stored copies (zero on a
	// duplicate).
	SentAt time.Time
}

// BurnResult describes a message removed by Read or Recall.
type BurnResult struct {
	// Seq is the caller's copy: the read message in the reader's mailbox, or
	// the recalled sync copy in the sender's mailbox.
	Seq uint64
	// Peer is the other user: the sender for Read, the recipient for Recall.
	Peer string
	// PeerSeq is the other user's copy that was removed with it; 0 when it
	// was already gone.
	PeerSeq uint64
	// MsgID is the sender's client message id.
	MsgID string
}

// Subjects and headers. Headers named Mayfly-* are set by the relay only.
const (
	HeaderFrom    = "Mayfly-From"     // sender user id
	HeaderTo      = "Mayfly-To"       // recipient user id
	HeaderMsgID   = "Mayfly-Msg-Id"   // client message id
	HeaderSentAt  = "Mayfly-Sent-At"  // relay time, RFC 3339 with nanoseconds
	HeaderPeerSeq = "Mayfly-Peer-Seq" // on a recipient copy: the sender's sync-copy seq
)

// errUnavailable is what a client sees when JetStream fails or times out.
var errUnavailable = schema.Errorf(schema.CodeUnavailable, "messaging is unavailable; retry later")

// ErrConfig reports an invalid Config, or partitions that do not match the
// existing streams. New wraps it.
var ErrConfig = errors.New("mailbox: invalid config")

// New validates cfg, then creates the mailbox streams or updates their
// settings. It refuses (ErrConfig) a Partitions value that differs from the
// existing streams'. It blocks until JetStream answered or ctx ends.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(cfg.NATS)
	if err != nil {
		return nil, fmt.Errorf("mailbox: jetstream: %w", err)
	}
	s := &Service{cfg: cfg, nc: cfg.NATS, js: js, log: cfg.Logger}
	if cfg.SendRate >= 0 {
		s.limiter = keyrate.New(cfg.SendRate, cfg.SendBurst)
	}
	if err := s.ensureStreams(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (c *Config) defaults() error {
	switch {
	case c.NATS == nil:
		return fmt.Errorf("%w: NATS is required", ErrConfig)
	case c.Permit == nil:
		return fmt.Errorf("%w: Permit is required", ErrConfig)
	case c.Partitions < 0 || c.Replicas < 0 || c.MaxAge < 0 || c.MaxPerMailbox < 0 || c.DuplicateWindow < 0 || c.SendBurst < 0:
		return fmt.Errorf("%w: negative value", ErrConfig)
	case c.MaxAge > MaxAgeLimit:
		return fmt.Errorf("%w: MaxAge %v is over the %v limit", ErrConfig, c.MaxAge, MaxAgeLimit)
	case c.Partitions > 1024:
		return fmt.Errorf("%w: %d partitions, limit 1024", ErrConfig, c.Partitions)
	}
	if c.RotateInterval == 0 {
		c.RotateInterval = DefaultRotateInterval
	}
	rotate := max(c.RotateInterval, 0)
	if c.MaxAge == 0 {
		c.MaxAge = MaxAgeLimit - rotate
	}
	if c.MaxAge+rotate > MaxAgeLimit {
		return fmt.Errorf("%w: MaxAge %v plus RotateInterval %v is over the %v limit", ErrConfig, c.MaxAge, rotate, MaxAgeLimit)
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.MaxPerMailbox == 0 {
		c.MaxPerMailbox = DefaultMaxPerMailbox
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	c.DuplicateWindow = min(c.DuplicateWindow, c.MaxAge)
	if c.SendRate == 0 {
		c.SendRate = DefaultSendRate
	}
	if c.SendBurst == 0 {
		c.SendBurst = DefaultSendBurst
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Partition returns the partition of userID among n: FNV-1a (32 bit) of the
// id's bytes, mod n. n must be positive.
func Partition(userID string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(userID))
	return int(h.Sum32() % uint32(n))
}

// Subject returns userID's mailbox subject mbx.<p>.<uid>, or a bad_request
// *schema.Error when userID is malformed.
func (s *Service) Subject(userID string) (string, error) {
	if !schema.ValidUserID(userID) {
		return "", errBadUser
	}
	return s.subject(userID), nil
}

// DeliverySubject returns the subject on which the streams republish every
// message stored in userID's mailbox: dlv.mbx.<p>.<uid>. Subscribe to it
// (core NATS) for live delivery and parse messages with [ParseDelivery].
func (s *Service) DeliverySubject(userID string) (string, error) {
	if !schema.ValidUserID(userID) {
		return "", errBadUser
	}
	return subject.Delivery(Partition(userID, s.cfg.Partitions), userID)
}

// Partitions returns the number of partitions (streams) in use.
func (s *Service) Partitions() int { return s.cfg.Partitions }

var errBadUser = schema.Errorf(schema.CodeBadRequest, "malformed user id")

// subject builds the mailbox subject of a validated user id.
func (s *Service) subject(uid string) string {
	subj, _ := subject.Mailbox(Partition(uid, s.cfg.Partitions), uid)
	return subj
}

// stream returns the stream name holding a validated user id's mailbox.
func (s *Service) stream(uid string) string {
	return streamName(Partition(uid, s.cfg.Partitions))
}

func streamName(p int) string { return subject.MailboxStream(p) }
