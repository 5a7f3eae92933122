package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/mayfly-im/mayfly/fabric/account"
	"github.com/mayfly-im/mayfly/gateway/keyrate"
	"github.com/mayfly-im/mayfly/schema"
)

// maxBody bounds every JSON request body.
const maxBody = 16 << 10

var errNotFound = schema.Errorf(schema.CodeNotFound, "no such endpoint")

// handlerFunc is an HTTP handler that returns its error instead of writing
// it; handle maps the error to the client error vocabulary in one place.
type handlerFunc func(http.ResponseWriter, *http.Request) error

// handle registers h on pattern, with error mapping and metrics.
func (s *Server) handle(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		err := h(w, r)
		code := "ok"
		if err != nil {
			e, fault := schema.ClientError(err)
			if fault {
				s.log.Error("request failed", "route", pattern, "err", err)
			}
			code = string(e.Code)
			writeError(w, pattern, e)
		}
		s.metrics.requests.WithLabelValues(pattern, code).Inc()
		s.metrics.latency.WithLabelValues(pattern).Observe(time.Since(start).Seconds())
	})
}

// decode reads a JSON body of at most maxBody bytes into v. The body must be
// exactly one JSON object: no unknown fields, nothing after it.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return schema.Errorf(schema.CodeBodyTooLarge, fmt.Sprintf("request body is over %d bytes", maxBody))
	case err != nil:
		return schema.Errorf(schema.CodeBadRequest, "request body could not be read")
	}
	return decodeJSON(body, v)
}

// decodeJSON decodes body, which must hold exactly one JSON object with no
// unknown fields and no member given twice, into v. Errors are bad_request with a message that never
// echoes the input.
func decodeJSON(body []byte, v any) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return schema.Errorf(schema.CodeBadRequest, "request body is empty; a JSON object is required")
	}
	if trimmed[0] != '{' {
		return schema.Errorf(schema.CodeBadRequest, "request body must be a JSON object")
	}
	if err := schema.CheckMembers(trimmed); err != nil {
		return schema.Errorf(schema.CodeBadRequest, "request body is not the expected JSON object: a member is given twice")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return schema.Errorf(schema.CodeBadRequest, "request body is not the expected JSON object: "+jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return schema.Errorf(schema.CodeBadRequest, "request body is not the expected JSON object: trailing data after the object")
	}
	return nil
}

// jsonProblem describes a JSON decoding error without echoing input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		if name := strings.TrimPrefix(err.Error(), "json: unknown field "); len(name) <= 66 {
			return "unknown field " + name // the client's own field name, quoted, at most 64 bytes
		}
		return "unknown field"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	}
	return "malformed"
}

// Retry-After values of rate_limited answers: the friend request limit is
// counted per hour, every other limit per second.
const (
	retryAfterFriendRequest = "60"
	retryAfterDefault       = "1"
)

// writeError answers e with its status and error body; a rate_limited
// answer (429) carries Retry-After, in seconds, for the limit of route.
func writeError(w http.ResponseWriter, route string, e *schema.Error) {
	if e.Code == schema.CodeRateLimited {
		after := retryAfterDefault
		if route == "POST /v1/friends/requests" {
			after = retryAfterFriendRequest
		}
		w.Header().Set("Retry-After", after)
	}
	writeJSON(w, e.Code.Status(), schema.ErrorBody{Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

type principalKey struct{}

// authed wraps h so it runs only with a valid access token; the principal is
// in the request context.
func (s *Server) authed(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := s.cfg.Accounts.Authenticate(r.Context(), bearer(r))
		if err != nil {
			return err
		}
		return h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	}
}

func principal(r *http.Request) account.Principal {
	p, _ := r.Context().Value(principalKey{}).(account.Principal)
	return p
}

// anonLimited wraps h with the per-IP limit for unauthenticated requests.
func (s *Server) anonLimited(h handlerFunc) handlerFunc { return s.limited(s.anon, h) }

// limited wraps h with the per-address limit l.
func (s *Server) limited(l *keyrate.Limiter, h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if !l.Allow(clientIP(r)) {
			return schema.Errorf(schema.CodeRateLimited, "too many requests from this address; slow down")
		}
		return h(w, r)
	}
}

// clientIP is the rate-limiting key of r's peer: its IPv4 address, or the
// /64 prefix of its IPv6 address (one host usually holds a whole /64).
// Proxies' forwarding headers are not trusted: put limits at the proxy in
// that set-up.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	return netip.PrefixFrom(ip.WithZone(""), 64).Masked().String()
}
