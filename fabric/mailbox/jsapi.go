package mailbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/fabric/subject"
)

// The raw JetStream API calls this package makes besides publishing: Direct
// Get (single and batch, served by any replica) and message delete (leader).
// nats.go has no batch Direct Get, so the batch protocol is spoken here: one
// request, then a reply per message and a final "204 EOB" status carrying
// Nats-Num-Pending; "404" when nothing matched.

const (
	apiPrefix = "$JS.API."
	// requestTimeout bounds each JetStream request when ctx has no earlier
	// deadline: a request sent while a stream has no leader is never answered.
	requestTimeout = 5 * time.Second
	// batchSize and batchBytes bound one Direct Get batch.
	batchSize  = 256
	batchBytes = 1 << 20
	// JetStream error codes this package branches on.
	errCodeStoreFailed  = 10077 // with "maximum messages per subject exceeded"
	errCodeSeqNotFound  = 10043
	errCodeDeleteFailed = 10057 // with "no message found" when already gone
)

// errNotFound reports a sequence that is not (or no longer) stored.
var errNotFound = errors.New("mailbox: message not found")

// getRequest is the body of a Direct Get request (nats-server's
// JSApiMsgGetRequest).
type getRequest struct {
	Seq       uint64     `json:"seq,omitempty"`
	NextFor   string     `json:"next_by_subj,omitempty"`
	Batch     int        `json:"batch,omitempty"`
	MaxBytes  int        `json:"max_bytes,omitempty"`
	StartTime *time.Time `json:"start_time,omitempty"`
}

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

// withTimeout bounds ctx by requestTimeout.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, requestTimeout)
}

// getSeq returns message seq of stream by Direct Get; errNotFound if it is
// not stored.
func (s *Service) getSeq(ctx context.Context, stream string, seq uint64) (*nats.Msg, error) {
	body, _ := json.Marshal(getRequest{Seq: seq})
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	m, err := s.reader(stream).RequestWithContext(ctx, apiPrefix+"DIRECT.GET."+stream, body)
	if err != nil {
		return nil, fmt.Errorf("direct get %s seq %d: %w", stream, seq, err)
	}
	if err := directStatus(m); err != nil {
		return nil, fmt.Errorf("direct get %s seq %d: %w", stream, seq, err)
	}
	return m, nil
}

// getSeqLeader returns message seq of stream from the stream leader
// (STREAM.MSG.GET), in the shape of a Direct Get reply; errNotFound if it is
// not stored. Direct Get may be answered by a follower that has not applied
// the newest writes yet; this is the authoritative read for rare paths.
func (s *Service) getSeqLeader(ctx context.Context, stream string, seq uint64) (*nats.Msg, error) {
	body, _ := json.Marshal(getRequest{Seq: seq})
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	r, err := s.nc.RequestWithContext(ctx, apiPrefix+"STREAM.MSG.GET."+stream, body)
	if err != nil {
		return nil, fmt.Errorf("get %s seq %d: %w", stream, seq, err)
	}
	var resp struct {
		Error   *jetstream.APIError `json:"error"`
		Message *struct {
			Subject string    `json:"subject"`
			Seq     uint64    `json:"seq"`
			Header  []byte    `json:"hdrs"`
			Data    []byte    `json:"data"`
			Time    time.Time `json:"time"`
		} `json:"message"`
	}
	if err := json.Unmarshal(r.Data, &resp); err != nil {
		return nil, fmt.Errorf("get %s seq %d: bad response: %w", stream, seq, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return nil, errNotFound
	case resp.Error != nil:
		return nil, fmt.Errorf("get %s seq %d: %w", stream, seq, resp.Error)
	case resp.Message == nil:
		return nil, fmt.Errorf("get %s seq %d: empty response", stream, seq)
	}
	m := nats.NewMsg(resp.Message.Subject)
	if len(resp.Message.Header) > 0 {
		if m.Header, err = nats.DecodeHeadersMsg(resp.Message.Header); err != nil {
			return nil, fmt.Errorf("get %s seq %d: headers: %w", stream, seq, err)
		}
	}
	m.Header.Set("Nats-Stream", stream)
	m.Header.Set("Nats-Subject", resp.Message.Subject)
	m.Header.Set("Nats-Sequence", strconv.FormatUint(resp.Message.Seq, 10))
	m.Header.Set("Nats-Time-Stamp", resp.Message.Time.UTC().Format(time.RFC3339Nano))
	m.Data = resp.Message.Data
	return m, nil
}

// getLast returns the last message on subject; errNotFound if none.
func (s *Service) getLast(ctx context.Context, stream, subject string) (*nats.Msg, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	m, err := s.reader(stream).RequestWithContext(ctx, apiPrefix+"DIRECT.GET."+stream+"."+subject, nil)
	if err != nil {
		return nil, fmt.Errorf("direct get last %s: %w", stream, err)
	}
	if err := directStatus(m); err != nil {
		return nil, fmt.Errorf("direct get last %s: %w", stream, err)
	}
	return m, nil
}

// directStatus maps a Direct Get status reply to an error: nil for a
// message, errNotFound for 404.
func directStatus(m *nats.Msg) error {
	if len(m.Data) > 0 || m.Header == nil {
		return nil
	}
	switch st := m.Header.Get("Status"); st {
	case "":
		return nil
	case "404":
		return errNotFound
	default:
		return fmt.Errorf("status %s %s", st, m.Header.Get("Description"))
	}
}

// getBatch runs one Direct Get batch request on stream and calls fn for each
// message in order until fn returns false. It returns how many messages
// matched after the last one received (Nats-Num-Pending of the end-of-batch
// status; 0 when nothing matched).
func (s *Service) getBatch(ctx context.Context, stream string, req getRequest, fn func(*nats.Msg) bool) (pending uint64, err error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	nc := s.reader(stream)
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return 0, fmt.Errorf("direct get batch %s: subscribe: %w", stream, err)
	}
	defer sub.Unsubscribe()
	body, _ := json.Marshal(req)
	if err := nc.PublishRequest(apiPrefix+"DIRECT.GET."+stream, inbox, body); err != nil {
		return 0, fmt.Errorf("direct get batch %s: %w", stream, err)
	}
	more := true
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return 0, fmt.Errorf("direct get batch %s: %w", stream, err)
		}
		if len(m.Data) == 0 && m.Header.Get("Status") != "" {
			return batchEnd(m)
		}
		if more {
			more = fn(m)
		}
	}
}

// batchEnd interprets the status reply that ends a batch.
func batchEnd(m *nats.Msg) (uint64, error) {
	switch st := m.Header.Get("Status"); st {
	case "204":
		np, err := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("direct get batch: bad Nats-Num-Pending %q", m.Header.Get("Nats-Num-Pending"))
		}
		return np, nil
	case "404":
		return 0, nil
	default:
		return 0, fmt.Errorf("direct get batch: status %s %s", st, m.Header.Get("Description"))
	}
}

// deleteMsg removes seq from stream without overwriting it (see
// docs/fabric.md on what deletion erases); errNotFound if it was already gone.
func (s *Service) deleteMsg(ctx context.Context, stream string, seq uint64) error {
	body, _ := json.Marshal(struct {
		Seq     uint64 `json:"seq"`
		NoErase bool   `json:"no_erase"`
	}{seq, true})
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	m, err := s.nc.RequestWithContext(ctx, apiPrefix+"STREAM.MSG.DELETE."+stream, body)
	if err != nil {
		return fmt.Errorf("delete %s seq %d: %w", stream, seq, err)
	}
	var resp struct {
		Success bool                `json:"success"`
		Error   *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return fmt.Errorf("delete %s seq %d: bad response: %w", stream, seq, err)
	}
	switch {
	case resp.Success:
		return nil
	case resp.Error == nil:
		return fmt.Errorf("delete %s seq %d: not deleted", stream, seq)
	case isGone(resp.Error):
		return errNotFound
	default:
		return fmt.Errorf("delete %s seq %d: %w", stream, seq, resp.Error)
	}
}

// isGone reports whether a delete failed because the message is not stored.
func isGone(e *jetstream.APIError) bool {
	if e.ErrorCode == errCodeSeqNotFound {
		return true
	}
	d := strings.ToLower(e.Description)
	return e.ErrorCode == errCodeDeleteFailed && (strings.Contains(d, "no message found") || strings.Contains(d, "eof"))
}

// isMailboxFull reports whether a publish was refused because the subject
// holds MaxMsgsPerSubject messages (DiscardNew per subject).
func isMailboxFull(err error) bool {
	var e *jetstream.APIError
	return errors.As(err, &e) && e.ErrorCode == errCodeStoreFailed &&
		strings.Contains(e.Description, "maximum messages per subject")
}

// isDefinite reports whether a failed publish certainly stored nothing: the
// server answered with an error, or nothing listens on the subject.
func isDefinite(err error) bool {
	var e *jetstream.APIError
	return errors.As(err, &e) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}
