package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/mayfly-im/mayfly/schema"
)

// maxResponse bounds a response body the client reads.
const maxResponse = 1 << 20

// auth says how a request authenticates.
type auth int

const (
	anonymous auth = iota // no Authorization header
	withToken             // the session's access token, refreshed as needed
)

// call is one HTTP API request.
type call struct {
	method, path string
	body         any    // encoded as JSON when not nil
	out          any    // decoded from a 2xx answer when not nil
	auth         auth   // how to authenticate
	bearer       string // explicit bearer (link secret) when auth is anonymous
}

// do runs an API call. With withToken it uses a valid access token and, if
// the server answers token_expired anyway (clock skew), refreshes once and
// retries. Server errors are returned as *schema.Error, wrapped with the
// operation; transport failures as CodeUnavailable errors wrapping the cause.
func (c *Client) do(ctx context.Context, op string, k call) error {
	for attempt := 0; ; attempt++ {
		tok := k.bearer
		if k.auth == withToken {
			var err error
			if tok, err = c.Token(ctx); err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
		}
		err := c.roundTrip(ctx, k, tok)
		if k.auth == withToken && attempt == 0 && schema.HasCode(err, schema.CodeTokenExpired) {
			if rerr := c.refresh(ctx, tok); rerr != nil {
				return fmt.Errorf("%s: %w", op, rerr)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return nil
	}
}

// api is the HTTP side of a deployment: its gateways and the HTTP client.
type api struct {
	servers *servers
	http    *http.Client
}

// defaultHTTPClient is the HTTP client of a Config without one.
func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = newDialer().DialContext
	return &http.Client{Timeout: 30 * time.Second, Transport: t}
}

// roundTrip sends one request with token (if any) and decodes the answer.
// When the gateway in use cannot be reached the client moves on to the
// next one; when the request was not even sent (the connection was
// refused) it is repeated there, once per gateway.
func (c *api) roundTrip(ctx context.Context, k call, token string) error {
	var body []byte
	if k.body != nil {
		b, err := json.Marshal(k.body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = b
	}
	for tries := 1; ; tries++ {
		i, base := c.servers.current()
		req, err := newRequest(ctx, base, k, body, token)
		if err != nil {
			return err
		}
		resp, err := c.http.Do(req)
		if err != nil {
			more := c.servers.failover(i)
			if more && dialFailed(err) && tries < c.servers.count() && ctx.Err() == nil {
				continue
			}
			return unreachable(err)
		}
		return decodeAnswer(resp, k)
	}
}

// newRequest builds the request of k for the gateway at base.
func newRequest(ctx context.Context, base *url.URL, k call, body []byte, token string) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, k.method, endpoint(base, k.path), rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req, nil
}

// decodeAnswer reads resp and decodes it into k.out, or into its error.
func decodeAnswer(resp *http.Response, k call) error {
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return unreachable(err)
	}
	if resp.StatusCode >= 300 {
		return decodeError(resp.StatusCode, raw)
	}
	if k.out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, k.out); err != nil {
			return fmt.Errorf("decode %s answer: %w", k.path, err)
		}
	}
	return nil
}

// endpoint returns the absolute URL of an API path on the gateway at base.
func endpoint(base *url.URL, path string) string {
	u := *base
	u.Path += path
	return u.String()
}

// unreachable wraps a transport failure as an unavailable error, so callers
// branch on one code for "the server could not be reached".
func unreachable(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &transportError{err: err}
}

// transportError is a failure to reach the server. It matches
// schema.CodeUnavailable in errors.As / schema.HasCode through As.
type transportError struct{ err error }

func (e *transportError) Error() string {
	return "unavailable: cannot reach the server: " + e.err.Error()
}

func (e *transportError) Unwrap() error { return e.err }

// As lets errors.As(err, **schema.Error) see a transport failure as an
// unavailable error.
func (e *transportError) As(target any) bool {
	if t, ok := target.(**schema.Error); ok {
		*t = schema.Errorf(schema.CodeUnavailable, "cannot reach the server: "+e.err.Error())
		return true
	}
	return false
}

// decodeError turns an HTTP error answer into its *schema.Error. A body
// that is not the documented error shape (a proxy's page) becomes
// unavailable or internal by status.
func decodeError(status int, raw []byte) error {
	var eb schema.ErrorBody
	if json.Unmarshal(raw, &eb) == nil && eb.Error != nil && eb.Error.Code != "" {
		return eb.Error
	}
	code := schema.CodeInternal
	if status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout {
		code = schema.CodeUnavailable
	}
	if status == http.StatusTooManyRequests {
		code = schema.CodeRateLimited
	}
	return schema.Errorf(code, fmt.Sprintf("server answered HTTP %d without an error body", status))
}

// pathEscape escapes one path segment (a handle, id or code).
func pathEscape(s string) string { return url.PathEscape(s) }

// sleepCtx waits d or until ctx ends; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
