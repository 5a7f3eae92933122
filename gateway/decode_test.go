package gateway

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/mayfly-im/mayfly/schema"
)

func TestGatewayDecodeJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body string
		ok   bool
	}{
		{`{"handle":"alice"}`, true},
		{" \n{\"handle\":\"alice\"}\n ", true},
		{`{}`, true},
		{``, false},
		{`   `, false},
		{`null`, false},
		{`[]`, false},
		{`"x"`, false},
		{`{"handle":"alice"`, false},
		{`{"handle":"alice"}{}`, false},
		{`{"handle":"alice"} x`, false},
		{`{"handle":1}`, false},
		{`{"handle":"a","other":1}`, false},
		{`{"HANDLE":"a"}`, true}, // encoding/json matches field names case-insensitively
		{`{"handle":"alice","handle":"mallory"}`, false},
		{`{"handle":"alice","Handle":"mallory"}`, false},
	}
	for _, tt := range tests {
		var req schema.RegisterRequest
		err := decodeJSON([]byte(tt.body), &req)
		if (err == nil) != tt.ok {
			t.Errorf("decodeJSON(%q) = %v, want ok %v", tt.body, err, tt.ok)
		}
		if err != nil && !schema.HasCode(err, schema.CodeBadRequest) {
			t.Errorf("decodeJSON(%q) = %v, want bad_request", tt.body, err)
		}
	}
}

// FuzzGatewayDecodeJSON checks that request decoding never panics, fails
// only with bad_request, never echoes more than a field name, and accepts
// only a single valid JSON object that names no member twice.
func FuzzGatewayDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"handle":"alice","sign_key":"x","kex_key":"y"}`, `{}`, `{"a":1}`, `{} {}`, `[`, "\xff", `{"handle":"\u0000"}`, `{"handle":"a","handle":"b"}`, `{"handle":"a","HANDLE":"b"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req schema.RegisterRequest
		err := decodeJSON(body, &req)
		if err != nil {
			e := schema.AsError(err)
			if e.Code != schema.CodeBadRequest {
				t.Fatalf("decodeJSON error code %s, want bad_request", e.Code)
			}
			if len(e.Message) > 200 {
				t.Fatalf("error message of %d bytes echoes input", len(e.Message))
			}
			return
		}
		trimmed := bytes.TrimSpace(body)
		if !json.Valid(body) || len(trimmed) == 0 || trimmed[0] != '{' {
			t.Fatalf("decodeJSON accepted %q", body)
		}
		if schema.CheckMembers(body) != nil {
			t.Fatalf("decodeJSON accepted %q, which names a member twice", body)
		}
	})
}

// TestGatewayRetryAfter: every rate_limited answer says when to retry; the
// hourly friend request limit asks for a longer wait than the per-second
// ones; other errors carry no Retry-After.
func TestGatewayRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		route string
		code  schema.Code
		want  string
	}{
		{"POST /v1/register", schema.CodeRateLimited, "1"},
		{"GET /v1/ws", schema.CodeRateLimited, "1"},
		{"POST /v1/friends/requests", schema.CodeRateLimited, "60"},
		{"POST /v1/friends/requests", schema.CodeNotFound, ""},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		writeError(w, tt.route, schema.Errorf(tt.code, "x"))
		if got := w.Header().Get("Retry-After"); got != tt.want || w.Code != tt.code.Status() {
			t.Errorf("writeError(%s, %s): %d, Retry-After %q; want %d, %q", tt.route, tt.code, w.Code, got, tt.code.Status(), tt.want)
		}
	}
}
