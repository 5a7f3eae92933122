// Package natsapi exposes Mayfly's operations to NATS-native clients as NATS
// micro services (nats.go/micro), on subjects that carry the caller's own
// user and device id:
//
//	svc.<user>.<device>.<operation>
//
// The auth callout (fabric/callout) lets a client publish only under its own
// svc.<user>.<device>.>, so the ids in the subject are the caller's: NATS
// permissions, not the payload, decide who calls. Handlers run the same
// service code the WebSocket gateway runs (fabric/mailbox, fabric/friends,
// fabric/account, fabric/presence). Requests and answers are JSON; a failed
// request is answered with {"error":{"code":...,"message":...}} and the
// micro error headers (Nats-Service-Error-Code = the HTTP status,
// Nats-Service-Error = the schema code). docs/nats-clients.md lists every
// operation.
//
// A [Service] is safe for concurrent use; Stop unregisters it.
package natsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/mayfly-im/mayfly/fabric/account"
	"github.com/mayfly-im/mayfly/fabric/friends"
	"github.com/mayfly-im/mayfly/fabric/mailbox"
	"github.com/mayfly-im/mayfly/fabric/presence"
	"github.com/mayfly-im/mayfly/fabric/subject"
	"github.com/mayfly-im/mayfly/gateway/keyrate"
	"github.com/mayfly-im/mayfly/schema"
)

// Version is the micro service version.
const Version = "1.0.0"

// maxRequest bounds a request body.
const maxRequest = schema.MaxFrameSize

// Config configures a Service. Presence may be nil (presence operations then
// answer unavailable).
type Config struct {
	NATS     *nats.Conn        // required: service connection
	Mailbox  *mailbox.Service  // required
	Friends  *friends.Service  // required
	Accounts *account.Service  // required
	Presence *presence.Service // optional
	Logger   *slog.Logger      // default discards
	// Timeout bounds one request's work; default 10s.
	Timeout time.Duration
	// Observer, if set, is told each request's outcome (metrics).
	Observer Observer
	// RequestRate and RequestBurst bound the requests of one device (token
	// bucket per device, in this process); defaults 50/s and 100, the
	// frame limit of one WebSocket (gateway.Config.FrameRate, FrameBurst).
	// Requests over it are answered rate_limited without being run.
	RequestRate  float64
	RequestBurst int
	// MaxSyncs bounds the sync requests of one device in progress at once;
	// default 8, as the pending syncs of one WebSocket. More are answered
	// rate_limited.
	MaxSyncs int
}

// Request limit defaults; see Config.
const (
	DefaultRequestRate  = 50.0
	DefaultRequestBurst = 100
	DefaultMaxSyncs     = 8
)

// Service is the registered micro service.
type Service struct {
	cfg Config
	log *slog.Logger
	svc micro.Service
	// work bounds the requests handled at once. Each endpoint's
	// subscription hands requests over in order; running them on their own
	// goroutines keeps one slow JetStream publish from stalling the rest.
	work chan struct{}
	wg   sync.WaitGroup // one per request in progress
	// perDevice limits each device's request rate (limits.go).
	perDevice *keyrate.Limiter
	// syncs counts each device's syncs in progress.
	syncs inFlight
	// claims limits keys.claim per user, as the HTTP API does.
	claims *keyrate.Limiter
}

// Prekey claims per user and second, and their burst: a send claims at
// most two bundles.
const (
	claimRate  = 10
	claimBurst = 40
)

// maxInFlight is how many requests one Service handles at once.
const maxInFlight = 256

// caller is who sent a request, from its subject.
type caller struct{ userID, deviceID string }

// principal is the caller as the identity service names a device.
func (c caller) principal() account.Principal {
	return account.Principal{UserID: c.userID, DeviceID: c.deviceID}
}

// handler does one operation: it decodes body and returns the answer.
type handler func(ctx context.Context, c caller, body []byte) (any, error)

// Start registers the service and its endpoints in queue group "mayfly-svc".
func Start(cfg Config) (*Service, error) {
	if cfg.NATS == nil || cfg.Mailbox == nil || cfg.Friends == nil || cfg.Accounts == nil {
		return nil, errors.New("natsapi: config needs NATS, Mailbox, Friends and Accounts")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	cfg.limitDefaults()
	s := &Service{cfg: cfg, log: cfg.Logger, work: make(chan struct{}, maxInFlight),
		perDevice: keyrate.New(cfg.RequestRate, cfg.RequestBurst), syncs: inFlight{n: map[string]int{}},
		claims: keyrate.New(claimRate, claimBurst)}
	svc, err := micro.AddService(cfg.NATS, micro.Config{
		Name:        "mayfly",
		Version:     Version,
		Description: "Mayfly operations for NATS-native clients",
		QueueGroup:  "mayfly-svc",
	})
	if err != nil {
		return nil, fmt.Errorf("natsapi: add service: %w", err)
	}
	s.svc = svc
	for op, h := range s.operations() {
		subj := subject.ServiceEndpoint(op)
		if err := svc.AddEndpoint(strings.ReplaceAll(op, ".", "_"), s.wrap(op, h), micro.WithEndpointSubject(subj)); err != nil {
			svc.Stop()
			return nil, fmt.Errorf("natsapi: add endpoint %s: %w", op, err)
		}
	}
	return s, nil
}

// Stop unregisters the service and waits for requests in progress.
func (s *Service) Stop() error {
	err := s.svc.Stop()
	s.wg.Wait()
	return err
}

// Operations lists the operation names (the last subject tokens).
func (s *Service) Operations() []string {
	var out []string
	for op := range s.operations() {
		out = append(out, op)
	}
	return out
}

// InboxPrefix is the inbox prefix a native client of userID must use
// (nats.CustomInboxPrefix); answers go only to subjects under it.
func InboxPrefix(userID string) string { return subject.Inbox(userID) }

// parseCaller reads svc.<user>.<device>.<op...> and validates both ids.
func parseCaller(subj string) (caller, bool) {
	userID, deviceID, _, ok := subject.ParseService(subj)
	if !ok {
		return caller{}, false
	}
	return caller{userID: userID, deviceID: deviceID}, true
}

// wrap adapts h to micro: caller from the subject, size limit, timeout,
// error mapping, metrics-free logging of failures.
func (s *Service) wrap(op string, h handler) micro.HandlerFunc {
	return func(req micro.Request) {
		c, ok := parseCaller(req.Subject())
		if !ok {
			s.respondErr(req, schema.Errorf(schema.CodeBadRequest, "subject must be svc.<user id>.<device id>."+op))
			return
		}
		// NATS checks a client's permission to publish the request, never
		// its reply subject, and the answer goes out with the service's
		// rights: a reply subject of the client's choosing would let it
		// publish anything (a mailbox, the JetStream API). Answer only on
		// the caller's own inbox; drop anything else unanswered.
		if owner, ok := subject.ParseInbox(req.Reply()); !ok || owner != c.userID {
			s.log.Warn("native request with a foreign reply subject dropped", "op", op, "user_id", c.userID)
			return
		}
		if len(req.Data()) > maxRequest {
			s.respondErr(req, schema.Errorf(schema.CodeMessageTooLarge, fmt.Sprintf("request is over %d bytes", maxRequest)))
			return
		}
		if !s.perDevice.Allow(c.userID + "." + c.deviceID) {
			s.respondErr(req, errRateLimited)
			return
		}
		s.work <- struct{}{} // blocks this endpoint's delivery while full
		s.wg.Add(1)
		go func() {
			defer func() { <-s.work; s.wg.Done() }()
			s.serve(op, h, c, req)
		}()
	}
}

// serve runs one request and answers it.
func (s *Service) serve(op string, h handler, c caller, req micro.Request) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	start := time.Now()
	out, err := h(ctx, c, req.Data())
	code := "ok"
	var e *schema.Error
	if err != nil {
		var fault bool
		e, fault = schema.ClientError(err)
		if fault {
			s.log.Error("native request failed", "op", op, "user_id", c.userID, "err", err)
		}
		code = string(e.Code)
	}
	if s.cfg.Observer != nil {
		s.cfg.Observer.Request(op, time.Since(start), code)
	}
	if e != nil {
		s.respondErr(req, e)
		return
	}
	if out == nil {
		out = struct{}{}
	}
	body, err := json.Marshal(out)
	if err == nil {
		err = s.answer(req, body, nil)
	}
	if err != nil {
		s.log.Warn("native respond", "op", op, "err", err)
	}
}

// respondErr answers req with e: the error body and micro's error headers.
func (s *Service) respondErr(req micro.Request, e *schema.Error) {
	body, _ := json.Marshal(schema.ErrorBody{Error: e})
	hdr := nats.Header{}
	hdr.Set(micro.ErrorCodeHeader, strconv.Itoa(e.Code.Status()))
	hdr.Set(micro.ErrorHeader, string(e.Code))
	if err := s.answer(req, body, hdr); err != nil {
		s.log.Warn("native respond error", "err", err)
	}
}

// answer publishes an answer on req's reply subject. It does not use
// req.Respond or req.Error: serve answers on its own goroutine, after
// micro's handler has returned, and micro reads the error those record
// then, unsynchronised (a data race the race detector reported).
func (s *Service) answer(req micro.Request, body []byte, hdr nats.Header) error {
	return s.cfg.NATS.PublishMsg(&nats.Msg{Subject: req.Reply(), Data: body, Header: hdr})
}

// decode reads a JSON request body into v, refusing unknown fields, a
// member given twice and trailing data; an empty body decodes as {}.
func decode(body []byte, v any) error {
	if len(body) == 0 {
		body = []byte("{}")
	}
	if err := schema.CheckMembers(body); err != nil {
		return schema.Errorf(schema.CodeBadRequest, "a member of the request is given twice")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return schema.Errorf(schema.CodeBadRequest, "request is not the expected JSON object")
	}
	if dec.More() {
		return schema.Errorf(schema.CodeBadRequest, "trailing data after the JSON object")
	}
	return nil
}

// Observer is told the outcome of each request a handler served, for
// metrics: op is the operation (one of Operations), took how long the
// handler ran, and code "ok" or the schema error code answered. It runs on
// the request's goroutine; implementations must be quick and safe for
// concurrent use. (nats.go/micro's own endpoint stats cannot count errors
// here: handlers answer after micro's handler has returned.)
type Observer interface {
	Request(op string, took time.Duration, code string)
}
