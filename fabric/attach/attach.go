// Package attach stores end-to-end encrypted attachments (files, pictures,
// voice notes) in one JetStream stream, ATTACH, for at most 60 minutes:
// uploads split into chunks, downloads only by the two users of the message
// that carries the attachment, and deletion when that message is burned or
// recalled (Forget), or by MaxAge.
//
// The client encrypts every file with its own key (docs/payload.md) before
// it uploads; the server stores ciphertext and never sees the key, which
// travels inside the message's envelope. An attachment is bound at upload
// to one message: its sender (the uploader), the recipient and the message
// id the sender will give the envelope. Its id, which the client puts into
// the payload, is "<from>.<to>.<mid>.<random>", so every subject the
// service builds comes from validated tokens:
//
//	att.<from>.<to>.<mid>.<rand>.c   the chunks, in order (ChunkSize bytes, the last shorter)
//	att.<from>.<to>.<mid>.<rand>.m   written last: size, chunk count, first chunk's sequence
//	att.~rotate, att.~rotated        block rotation's fillers and marker (rotate.go)
//
// Burning message (from, to, mid) purges att.<from>.<to>.<mid>.> in one
// request. docs/fabric.md ("Attachments") gives the stream settings and
// what stays on disk.
//
// A Service is safe for concurrent use. It owns no goroutines except while
// RunRotation runs, which its caller owns.
package attach

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/schema"
)

// Permit decides whether from may send to to: the friend graph
// (fabric/friends.Service implements it). nil means allowed; a
// *schema.Error (not_friend, refused) means not; another error means it
// cannot tell.
type Permit interface {
	CanMessage(ctx context.Context, from, to string) error
}

// Defaults and limits of [Config].
const (
	// StreamName is the stream that holds every attachment.
	StreamName = "ATTACH"
	// MaxAgeLimit bounds MaxAge plus RotateInterval: what stays in the
	// stream's files is gone within it.
	MaxAgeLimit = 60 * time.Minute
	// DefaultRotateInterval is how long a chunk may stay in the block file
	// the server writes to.
	DefaultRotateInterval = 5 * time.Minute
	// DefaultMaxFiles is how many attachments one user may have stored at
	// once (uploaded and not yet burned, recalled or expired).
	DefaultMaxFiles = 10
	// DefaultMaxBytes caps the whole stream; an upload that would pass it
	// fails with unavailable.
	DefaultMaxBytes = 8 << 30
	// ChunkSize is the payload of one stored chunk.
	ChunkSize = 128 << 10
)

// Config configures a [Service]. Zero values take the documented defaults.
type Config struct {
	// NATS is the service connection; required.
	NATS *nats.Conn
	// Permit checks that the uploader may message the recipient; required.
	Permit Permit
	// Replicas of the stream; default 1 (embedded node), 3 in a cluster.
	Replicas int
	// Placement of the replicas; nil lets the server choose.
	Placement *jetstream.Placement
	// MaxAge is how long an attachment lives; default 60m minus
	// RotateInterval. MaxAge plus RotateInterval must be at most 60m.
	MaxAge time.Duration
	// RotateInterval: see [Service.Rotate]; default 5m; negative disables
	// the rotation and the bound on the files it gives.
	RotateInterval time.Duration
	// MaxFiles is the per-user quota of stored attachments; default 10.
	MaxFiles int
	// MaxBytes caps the stream's bytes; default 8 GiB.
	MaxBytes int64
	// Logger gets operational logs (never keys or contents); default discards.
	Logger *slog.Logger
}

// Service stores and serves attachments.
type Service struct {
	cfg    Config
	js     jetstream.JetStream
	stream jetstream.Stream
	log    *slog.Logger
}

// New checks cfg, creates or updates the stream and returns the Service.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.NATS == nil || cfg.Permit == nil {
		return nil, errors.New("attach: config needs NATS and Permit")
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.RotateInterval == 0 {
		cfg.RotateInterval = DefaultRotateInterval
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = MaxAgeLimit - max(cfg.RotateInterval, 0)
	}
	if cfg.MaxAge+max(cfg.RotateInterval, 0) > MaxAgeLimit {
		return nil, fmt.Errorf("attach: MaxAge %v plus RotateInterval %v is over %v", cfg.MaxAge, cfg.RotateInterval, MaxAgeLimit)
	}
	if cfg.MaxFiles <= 0 {
		cfg.MaxFiles = DefaultMaxFiles
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(cfg.NATS)
	if err != nil {
		return nil, fmt.Errorf("attach: jetstream: %w", err)
	}
	s := &Service{cfg: cfg, js: js, log: cfg.Logger}
	if s.stream, err = js.CreateOrUpdateStream(ctx, s.streamConfig()); err != nil {
		return nil, fmt.Errorf("attach: create or update stream %s: %w", StreamName, err)
	}
	return s, nil
}

// MaxAge is how long an attachment lives at most.
func (s *Service) MaxAge() time.Duration { return s.cfg.MaxAge }

func (s *Service) streamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:         StreamName,
		Description:  "Mayfly attachments (client-encrypted chunks)",
		Subjects:     []string{subjectRoot + ">"},
		Storage:      jetstream.FileStorage,
		Replicas:     s.cfg.Replicas,
		Placement:    s.cfg.Placement,
		Retention:    jetstream.LimitsPolicy,
		MaxAge:       s.cfg.MaxAge,
		MaxMsgs:      -1,
		MaxBytes:     s.cfg.MaxBytes,
		Discard:      jetstream.DiscardNew,
		MaxMsgSize:   ChunkSize + 4096,
		AllowDirect:  true,
		MaxConsumers: 8,
		Duplicates:   min(time.Minute, s.cfg.MaxAge),
	}
}

// Errors clients see.
var (
	errUnknown  = schema.Errorf(schema.CodeUnknownAttachment, "no such attachment for you (burned, recalled, expired or never uploaded)")
	errTooLarge = schema.Errorf(schema.CodeAttachmentTooLarge, fmt.Sprintf("an attachment is at most %d bytes", schema.MaxAttachmentSize))
	errQuota    = schema.Errorf(schema.CodeAttachmentQuota, "you have the maximum of unread attachments stored; retry once some are read")
	errBadID    = schema.Errorf(schema.CodeBadRequest, "recipient or message id is malformed")
	errShort    = schema.Errorf(schema.CodeBadRequest, "the upload has fewer or more bytes than its declared size")
)

const (
	subjectRoot  = "att."
	headerSize   = "Mayfly-Size"
	headerChunks = "Mayfly-Chunks"
	headerFirst  = "Mayfly-First-Seq"
)

// ID names one attachment: the message it belongs to and a random part.
type ID struct {
	From, To, MsgID, Rand string
}

// ParseID parses an attachment id as Put returns it; every part is checked
// before it becomes a subject token. It fails with unknown_attachment.
func ParseID(s string) (ID, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return ID{}, errUnknown
	}
	id := ID{From: parts[0], To: parts[1], MsgID: parts[2], Rand: parts[3]}
	if !schema.ValidUserID(id.From) || !schema.ValidUserID(id.To) || !schema.ValidMsgID(id.MsgID) || !schema.ValidID('a', id.Rand) {
		return ID{}, errUnknown
	}
	return id, nil
}

// String is the id's wire form.
func (id ID) String() string { return id.From + "." + id.To + "." + id.MsgID + "." + id.Rand }

func (id ID) prefix() string { return subjectRoot + id.String() }
func (id ID) chunks() string { return id.prefix() + ".c" }
func (id ID) meta() string   { return id.prefix() + ".m" }

// messageFilter is the subject filter of every attachment of a message.
func messageFilter(from, to, mid string) string {
	return subjectRoot + from + "." + to + "." + mid + ".>"
}

// Put stores an attachment of size bytes read from r, uploaded by from for
// its message mid to to, and returns its id. It checks the ids, the size
// (at most schema.MaxAttachmentSize, else attachment_too_large), that from
// may message to (not_friend, refused) and from's quota (attachment_quota).
// r must yield exactly size bytes (else bad_request); nothing of a failed
// upload stays stored. It blocks until every chunk is stored or ctx ends.
func (s *Service) Put(ctx context.Context, from, to, mid string, size int64, r io.Reader) (ID, error) {
	if !schema.ValidUserID(from) || !schema.ValidUserID(to) || !schema.ValidMsgID(mid) || from == to {
		return ID{}, errBadID
	}
	if size > schema.MaxAttachmentSize {
		return ID{}, errTooLarge
	}
	if size <= 0 {
		return ID{}, errShort
	}
	if err := s.cfg.Permit.CanMessage(ctx, from, to); err != nil {
		return ID{}, err
	}
	if err := s.checkQuota(ctx, from); err != nil {
		return ID{}, err
	}
	id := ID{From: from, To: to, MsgID: mid, Rand: schema.NewID('a')}
	first, chunks, err := s.writeChunks(ctx, id, size, r)
	if err == nil {
		err = s.writeMeta(ctx, id, size, chunks, first)
	}
	if err != nil {
		s.purge(context.WithoutCancel(ctx), id.prefix()+".>")
		return ID{}, err
	}
	return id, nil
}

// checkQuota counts from's stored attachments (subjects per id) against MaxFiles.
func (s *Service) checkQuota(ctx context.Context, from string) error {
	info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(subjectRoot+from+".>"))
	if err != nil {
		return s.unavailable("stream info", err)
	}
	ids := map[string]bool{}
	for subj := range info.State.Subjects {
		ids[strings.TrimSuffix(strings.TrimSuffix(subj, ".c"), ".m")] = true
	}
	if len(ids) >= s.cfg.MaxFiles {
		return errQuota
	}
	return nil
}

// ackWindow is how many chunks an upload has in flight at most.
const ackWindow = 16

// writeChunks publishes r's size bytes as chunks, asynchronously with at
// most ackWindow unacknowledged, and returns the first chunk's sequence and
// the count.
func (s *Service) writeChunks(ctx context.Context, id ID, size int64, r io.Reader) (first uint64, n int, err error) {
	buf := make([]byte, ChunkSize)
	var acks []jetstream.PubAckFuture
	waited := 0 // acks[:waited] are acknowledged
	for left := size; left > 0; {
		k := min(int64(ChunkSize), left)
		if _, err := io.ReadFull(r, buf[:k]); err != nil {
			return 0, 0, fmt.Errorf("%w (read: %w)", errShort, err)
		}
		left -= k
		m := nats.NewMsg(id.chunks())
		m.Data = append([]byte(nil), buf[:k]...)
		m.Header.Set(jetstream.ExpectedStreamHeader, StreamName)
		f, err := s.js.PublishMsgAsync(m)
		if err != nil {
			return 0, 0, s.unavailable("publish chunk", err)
		}
		acks = append(acks, f)
		if len(acks)-waited >= ackWindow {
			if err := s.waitAcks(ctx, acks[waited:], &first); err != nil {
				return 0, 0, err
			}
			waited = len(acks)
		}
	}
	if n, _ := r.Read(buf[:1]); n > 0 {
		return 0, 0, errShort
	}
	if err := s.waitAcks(ctx, acks[waited:], &first); err != nil {
		return 0, 0, err
	}
	return first, len(acks), nil
}

// waitAcks waits for every ack of acks, in order, and sets *first to the
// first sequence if it is still 0.
func (s *Service) waitAcks(ctx context.Context, acks []jetstream.PubAckFuture, first *uint64) error {
	for _, f := range acks {
		select {
		case a := <-f.Ok():
			if *first == 0 {
				*first = a.Sequence
			}
		case err := <-f.Err():
			if isFull(err) {
				return fmt.Errorf("attach: store full: %w", schema.Errorf(schema.CodeUnavailable, "attachment storage is full; retry later"))
			}
			return s.unavailable("store chunk", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func isFull(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && strings.Contains(apiErr.Description, "maximum")
}

// writeMeta publishes the meta message that completes an upload.
func (s *Service) writeMeta(ctx context.Context, id ID, size int64, chunks int, first uint64) error {
	m := nats.NewMsg(id.meta())
	m.Header.Set(jetstream.ExpectedStreamHeader, StreamName)
	m.Header.Set(headerSize, strconv.FormatInt(size, 10))
	m.Header.Set(headerChunks, strconv.Itoa(chunks))
	m.Header.Set(headerFirst, strconv.FormatUint(first, 10))
	if _, err := s.js.PublishMsg(ctx, m); err != nil {
		return s.unavailable("publish meta", err)
	}
	return nil
}

// File is a stored attachment opened for download.
type File struct {
	// Size is the attachment's length in bytes.
	Size   int64
	id     ID
	chunks int
	first  uint64
	s      *Service
}

// Open returns attachment id for user, who must be its sender or its
// recipient; anything else, and an attachment burned, recalled, expired or
// still being uploaded, fails with unknown_attachment (the same answer, so
// a stranger learns nothing).
func (s *Service) Open(ctx context.Context, user, rawID string) (*File, error) {
	id, err := ParseID(rawID)
	if err != nil {
		return nil, err
	}
	if user != id.From && user != id.To {
		return nil, errUnknown
	}
	m, err := s.stream.GetLastMsgForSubject(ctx, id.meta())
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, errUnknown
	}
	if err != nil {
		return nil, s.unavailable("read meta", err)
	}
	f := &File{id: id, s: s}
	f.Size, _ = strconv.ParseInt(m.Header.Get(headerSize), 10, 64)
	f.chunks, _ = strconv.Atoi(m.Header.Get(headerChunks))
	f.first, _ = strconv.ParseUint(m.Header.Get(headerFirst), 10, 64)
	if f.Size <= 0 || f.chunks <= 0 || f.first == 0 {
		return nil, errUnknown
	}
	return f, nil
}

// WriteTo writes the attachment's bytes to w, chunk by chunk. If the
// attachment is burned while it is read, it fails with unknown_attachment
// after writing part of it.
func (f *File) WriteTo(ctx context.Context, w io.Writer) (int64, error) {
	var n int64
	seq := f.first
	for range f.chunks {
		m, err := f.s.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(f.id.chunks()))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return n, errUnknown
		}
		if err != nil {
			return n, f.s.unavailable("read chunk", err)
		}
		k, err := w.Write(m.Data)
		n += int64(k)
		if err != nil {
			return n, fmt.Errorf("attach: write: %w", err)
		}
		seq = m.Sequence + 1
	}
	if n != f.Size {
		return n, errUnknown
	}
	return n, nil
}

// Forget deletes every attachment of message mid from from to to: the
// message was burned or recalled. Errors are logged; what is left expires
// with MaxAge.
func (s *Service) Forget(ctx context.Context, from, to, mid string) {
	if !schema.ValidUserID(from) || !schema.ValidUserID(to) || !schema.ValidMsgID(mid) {
		return
	}
	s.purge(ctx, messageFilter(from, to, mid))
}

// purge removes every message on filter; a failure is logged.
func (s *Service) purge(ctx context.Context, filter string) {
	if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(filter)); err != nil {
		s.log.Warn("attach: purge", "err", err)
	}
}

// unavailable logs err and returns it as unavailable.
func (s *Service) unavailable(op string, err error) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("attach: %s: %w", op, err)
	}
	s.log.Warn("attach: "+op, "err", err)
	return fmt.Errorf("attach: %s: %w (%w)", op, err, schema.Errorf(schema.CodeUnavailable, "attachment storage is unavailable; retry later"))
}
