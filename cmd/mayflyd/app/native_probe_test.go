package app_test

import (
	"testing"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
	"github.com/mayfly-im/mayfly/cmd/mayflyd/app/apptest"
	"github.com/mayfly-im/mayfly/schema"
)

// TestNativeCodesMatchWebSocket: a NATS-native request gets the code a
// WebSocket frame with the same values gets (docs/protocol.md): sequence
// numbers out of range are invalid_cursor, a member given twice is
// bad_request.
func TestNativeCodesMatchWebSocket(t *testing.T) {
	a := apptest.Start(t, app.Config{})
	ac := apptest.NewUser(t, a.HTTPAddr(), "alice")
	alice := newNative(t, a, ac)
	tests := []struct {
		op   string
		body any
		want schema.Code
	}{
		{"read", map[string]any{"seq": 0}, schema.CodeInvalidCursor},
		{"recall", map[string]any{"seq": 0}, schema.CodeInvalidCursor},
		{"read", map[string]any{"seq": uint64(schema.MaxSeq) + 1}, schema.CodeInvalidCursor},
		{"recall", map[string]any{"seq": uint64(schema.MaxSeq) + 1}, schema.CodeInvalidCursor},
		{"sync", map[string]any{"cursor": uint64(schema.MaxSeq) + 1}, schema.CodeInvalidCursor},
		{"read", map[string]any{"seq": 1}, schema.CodeUnknownMessage},
		{"read", rawJSON(`{"seq":1,"seq":0}`), schema.CodeBadRequest},
		{"keys.lookup", rawJSON(`{"handle":"alice","HANDLE":"bob"}`), schema.CodeBadRequest},
		{"send", rawJSON(`{"to":"x","to":"y","envelope":{}}`), schema.CodeBadRequest},
	}
	for _, tt := range tests {
		if got := alice.call(tt.op, tt.body, nil); got != string(tt.want) {
			t.Errorf("%s %v = %q, want %s", tt.op, tt.body, got, tt.want)
		}
	}
}

// rawJSON is a request body sent as it is.
type rawJSON string

// MarshalJSON returns r unchanged.
func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }
