package mailbox

import (
	"context"
	"errors"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/fabric/jsapi"
	"github.com/mayfly-im/mayfly/fabric/subject"
)

// The JetStream API calls besides publishing go through fabric/jsapi:
// Direct Gets (single and batch, served by any replica) on the reader
// connection of their stream (Config.Readers), the leader's get, deletes
// and purges on the service connection.

const (
	// batchSize and batchBytes bound one Direct Get batch.
	batchSize  = 256
	batchBytes = 1 << 20
)

// errNotFound reports a sequence that is not (or no longer) stored.
var errNotFound = jsapi.ErrNotFound

// getRequest is the body of a Direct Get request.
type getRequest = jsapi.GetRequest

// reader returns the connection for Direct Gets of stream (Config.Readers).
func (s *Service) reader(stream string) *nats.Conn {
	if len(s.cfg.Readers) == 0 {
		return s.nc
	}
	p, ok := subject.ParseMailboxStream(stream)
	if !ok {
		return s.nc
	}
	return s.cfg.Readers[p%len(s.cfg.Readers)]
}

// getSeq returns message seq of stream by Direct Get; errNotFound if it is
// not stored.
func (s *Service) getSeq(ctx context.Context, stream string, seq uint64) (*nats.Msg, error) {
	return jsapi.Get(ctx, s.reader(stream), stream, seq)
}

// getSeqLeader returns message seq of stream from the stream leader; for
// rare paths that need the authoritative answer.
func (s *Service) getSeqLeader(ctx context.Context, stream string, seq uint64) (*nats.Msg, error) {
	return jsapi.GetLeader(ctx, s.nc, stream, seq)
}

// getLast returns the last message on subject; errNotFound if none.
func (s *Service) getLast(ctx context.Context, stream, subj string) (*nats.Msg, error) {
	return jsapi.GetLast(ctx, s.reader(stream), stream, subj)
}

// getBatch runs one Direct Get batch on stream (see jsapi.Batch).
func (s *Service) getBatch(ctx context.Context, stream string, req getRequest, fn func(*nats.Msg) bool) (uint64, error) {
	return jsapi.Batch(ctx, s.reader(stream), stream, req, fn)
}

// deleteMsg removes seq from stream; errNotFound if it was already gone.
func (s *Service) deleteMsg(ctx context.Context, stream string, seq uint64) error {
	return jsapi.Delete(ctx, s.nc, stream, seq)
}

// isMailboxFull reports whether a publish was refused because the subject
// holds MaxMsgsPerSubject messages (DiscardNew per subject).
func isMailboxFull(err error) bool {
	var e *jetstream.APIError
	return errors.As(err, &e) && e.ErrorCode == jsapi.ErrCodeStoreFailed &&
		strings.Contains(e.Description, "maximum messages per subject")
}

// isDefinite reports whether a failed publish certainly stored nothing: the
// server answered with an error, or nothing listens on the subject.
func isDefinite(err error) bool {
	var e *jetstream.APIError
	return errors.As(err, &e) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}
