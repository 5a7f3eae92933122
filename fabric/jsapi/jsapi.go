// Package jsapi is the one client for the JetStream API requests that
// nats.go does not offer, or offers only with a consumer or a stream
// handle: Direct Get of one message, of the last message on a subject, and
// in batches (next_by_subj and multi_last), the leader's message get, and
// message delete and purge. The mailbox and presence services use it.
//
// Batch Direct Get is spoken here because nats.go has none: one request on
// $JS.API.DIRECT.GET.<stream>, then one reply per message and a final
// "204 EOB" status carrying Nats-Num-Pending; "404" when nothing matched.
//
// Every call is bounded by [RequestTimeout] (or ctx's earlier deadline): a
// request sent while a stream has no leader is never answered. A message
// that is not stored is [ErrNotFound]; any other failure is an error that
// wraps what the server or the connection said. Functions are safe for
// concurrent use; the connection belongs to the caller.
package jsapi

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
)

// Prefix starts every JetStream API subject.
const Prefix = "$JS.API."

// RequestTimeout bounds each request when ctx has no earlier deadline.
const RequestTimeout = 5 * time.Second

// JetStream error codes callers branch on.
const (
	// ErrCodeStoreFailed comes with "maximum messages per subject exceeded"
	// when a publish meets DiscardNewPerSubject.
	ErrCodeStoreFailed  = 10077
	errCodeSeqNotFound  = 10043
	errCodeDeleteFailed = 10057 // with "no message found" when already gone
)

// ErrNotFound reports a message that is not (or no longer) stored.
var ErrNotFound = errors.New("jsapi: message not found")

// DirectGetSubject returns the Direct Get request subject of stream.
func DirectGetSubject(stream string) string { return Prefix + "DIRECT.GET." + stream }

// GetRequest is the body of a Direct Get or message get request
// (nats-server's JSApiMsgGetRequest), as far as Mayfly uses it.
type GetRequest struct {
	Seq       uint64     `json:"seq,omitempty"`
	NextFor   string     `json:"next_by_subj,omitempty"`
	Batch     int        `json:"batch,omitempty"`
	MaxBytes  int        `json:"max_bytes,omitempty"`
	StartTime *time.Time `json:"start_time,omitempty"`
	MultiLast []string   `json:"multi_last,omitempty"`
}

// Bound returns ctx bounded by RequestTimeout.
func Bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, RequestTimeout)
}

// Get returns message seq of stream by Direct Get (any replica may
// answer); ErrNotFound if it is not stored.
func Get(ctx context.Context, nc *nats.Conn, stream string, seq uint64) (*nats.Msg, error) {
	body, _ := json.Marshal(GetRequest{Seq: seq})
	ctx, cancel := Bound(ctx)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, DirectGetSubject(stream), body)
	if err == nil {
		err = status(m)
	}
	if err != nil {
		return nil, fmt.Errorf("direct get %s seq %d: %w", stream, seq, err)
	}
	return m, nil
}

// GetLast returns the last message on subject of stream by Direct Get;
// ErrNotFound if there is none.
func GetLast(ctx context.Context, nc *nats.Conn, stream, subject string) (*nats.Msg, error) {
	ctx, cancel := Bound(ctx)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, DirectGetSubject(stream)+"."+subject, nil)
	if err == nil {
		err = status(m)
	}
	if err != nil {
		return nil, fmt.Errorf("direct get last %s: %w", stream, err)
	}
	return m, nil
}

// GetLeader returns message seq of stream from the stream leader
// (STREAM.MSG.GET), in the shape of a Direct Get reply (Nats-Stream,
// Nats-Subject, Nats-Sequence, Nats-Time-Stamp headers); ErrNotFound if it
// is not stored. A Direct Get may be answered by a follower that has not
// applied the newest writes yet; this is the authoritative read.
func GetLeader(ctx context.Context, nc *nats.Conn, stream string, seq uint64) (*nats.Msg, error) {
	body, _ := json.Marshal(GetRequest{Seq: seq})
	ctx, cancel := Bound(ctx)
	defer cancel()
	r, err := nc.RequestWithContext(ctx, Prefix+"STREAM.MSG.GET."+stream, body)
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
		return nil, ErrNotFound
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
	m.Header.Set(jetstream.StreamHeader, stream)
	m.Header.Set(jetstream.SubjectHeader, resp.Message.Subject)
	m.Header.Set(jetstream.SequenceHeader, strconv.FormatUint(resp.Message.Seq, 10))
	m.Header.Set(jetstream.TimeStampHeaer, resp.Message.Time.UTC().Format(time.RFC3339Nano))
	m.Data = resp.Message.Data
	return m, nil
}

// Batch runs one Direct Get batch request (req.Batch with NextFor, or
// req.MultiLast) on stream and calls fn for each message in order until fn
// returns false; the rest of the batch is read and dropped. It returns how
// many messages matched after the last one sent (Nats-Num-Pending of the
// end-of-batch status; 0 when nothing matched).
func Batch(ctx context.Context, nc *nats.Conn, stream string, req GetRequest, fn func(*nats.Msg) bool) (pending uint64, err error) {
	ctx, cancel := Bound(ctx)
	defer cancel()
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return 0, fmt.Errorf("direct get batch %s: subscribe: %w", stream, err)
	}
	defer sub.Unsubscribe()
	body, err := json.Marshal(req)
	if err != nil {
		return 0, fmt.Errorf("direct get batch %s: %w", stream, err)
	}
	if err := nc.PublishRequest(DirectGetSubject(stream), inbox, body); err != nil {
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

// status maps a single Direct Get reply to an error: nil for a message,
// ErrNotFound for 404.
func status(m *nats.Msg) error {
	if len(m.Data) > 0 || m.Header == nil {
		return nil
	}
	switch st := m.Header.Get("Status"); st {
	case "":
		return nil
	case "404":
		return ErrNotFound
	default:
		return fmt.Errorf("status %s %s", st, m.Header.Get("Description"))
	}
}

// Seq returns the Nats-Sequence of a Direct Get reply, or def.
func Seq(m *nats.Msg, def uint64) uint64 {
	seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return def
	}
	return seq
}

// Delete removes seq from stream (on the leader) without overwriting its
// bytes (docs/fabric.md says what deletion erases); ErrNotFound if it was
// already gone.
func Delete(ctx context.Context, nc *nats.Conn, stream string, seq uint64) error {
	body, _ := json.Marshal(struct {
		Seq     uint64 `json:"seq"`
		NoErase bool   `json:"no_erase"`
	}{seq, true})
	var resp struct {
		Success bool                `json:"success"`
		Error   *jetstream.APIError `json:"error"`
	}
	if err := request(ctx, nc, Prefix+"STREAM.MSG.DELETE."+stream, body, &resp); err != nil {
		return fmt.Errorf("delete %s seq %d: %w", stream, seq, err)
	}
	switch {
	case resp.Success:
		return nil
	case resp.Error == nil:
		return fmt.Errorf("delete %s seq %d: not deleted", stream, seq)
	case isGone(resp.Error):
		return ErrNotFound
	default:
		return fmt.Errorf("delete %s seq %d: %w", stream, seq, resp.Error)
	}
}

// Purge removes from stream every message on subject filter (a literal
// subject or a wildcard) and returns how many there were. With below > 0
// only messages with a sequence below it go (nats-server's purge "seq").
func Purge(ctx context.Context, nc *nats.Conn, stream, filter string, below uint64) (uint64, error) {
	body, _ := json.Marshal(struct {
		Filter string `json:"filter"`
		Below  uint64 `json:"seq,omitempty"`
	}{filter, below})
	var resp struct {
		Success bool                `json:"success"`
		Purged  uint64              `json:"purged"`
		Error   *jetstream.APIError `json:"error"`
	}
	if err := request(ctx, nc, Prefix+"STREAM.PURGE."+stream, body, &resp); err != nil {
		return 0, fmt.Errorf("purge %s: %w", filter, err)
	}
	if resp.Error != nil {
		return 0, fmt.Errorf("purge %s: %w", filter, resp.Error)
	}
	if !resp.Success {
		return 0, fmt.Errorf("purge %s: not purged", filter)
	}
	return resp.Purged, nil
}

// request sends body to subj and decodes the JSON answer into resp.
func request(ctx context.Context, nc *nats.Conn, subj string, body []byte, resp any) error {
	ctx, cancel := Bound(ctx)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, subj, body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(m.Data, resp); err != nil {
		return fmt.Errorf("bad response: %w", err)
	}
	return nil
}

// isGone reports whether a delete failed because the message is not stored.
func isGone(e *jetstream.APIError) bool {
	if e.ErrorCode == errCodeSeqNotFound {
		return true
	}
	d := strings.ToLower(e.Description)
	return e.ErrorCode == errCodeDeleteFailed && (strings.Contains(d, "no message found") || strings.Contains(d, "eof"))
}
