package app_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
	"github.com/mayfly-im/mayfly/cmd/mayflyd/app/apptest"
	"github.com/mayfly-im/mayfly/fabric/callout"
	"github.com/mayfly-im/mayfly/schema"
)

// TestNativeCodesMatchWebSocket: a NATS-native request gets the code a
// WebSocket frame with the same values gets (docs/protocol.md): sequence
// numbers out of range are invalid_cursor, a member given twice is
// bad_request.
func TestNativeCodesMatchWebSocket(t *testing.T) {
	t.Parallel()
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

// TestNativeRequestRateLimit floods one device's service subject as the
// probe did (2,807 keys.lookup answers a second): past the device's burst,
// requests are answered rate_limited, as frames over a WebSocket's rate
// are; another device of the same user keeps its own budget.
func TestNativeRequestRateLimit(t *testing.T) {
	t.Parallel()
	a := apptest.Start(t, app.Config{WSFrameRate: 1, WSFrameBurst: 10})
	ac := apptest.NewUser(t, a.HTTPAddr(), "alice")
	apptest.NewUser(t, a.HTTPAddr(), "bob")
	alice := newNative(t, a, ac)
	start := time.Now()
	ok, limited := 0, 0
	for range 40 {
		switch code := alice.call("keys.lookup", map[string]string{"handle": "bob"}, nil); code {
		case "":
			ok++
		case string(schema.CodeRateLimited):
			limited++
		default:
			t.Fatalf("keys.lookup = %q", code)
		}
	}
	if max := 10 + int(time.Since(start).Seconds()) + 1; ok > max || limited == 0 {
		t.Fatalf("40 lookups: %d answered, %d rate_limited; want at most %d answered", ok, limited, max)
	}
	laptop := newNative(t, a, ac.Device("laptop"))
	laptop.must("keys.lookup", map[string]string{"handle": "bob"}, nil)
}

// TestNativeConnectionCaps opens NATS connections with one device's token
// as the probe did (40 were accepted): the fifth is refused, as the
// WebSocket's fifth is, and closing one makes room again; a user's devices
// together hold at most 16.
func TestNativeConnectionCaps(t *testing.T) {
	t.Parallel()
	a := apptest.Start(t, app.Config{})
	ac := apptest.NewUser(t, a.HTTPAddr(), "alice")
	var open []*nats.Conn
	for i := range callout.DefaultMaxConnsPerDevice {
		nc, _, err := nativeConn(t, a.NATSURL(), ac)
		if err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		open = append(open, nc)
	}
	if _, _, err := nativeConn(t, a.NATSURL(), ac); err == nil {
		t.Fatalf("connection %d of one device accepted", callout.DefaultMaxConnsPerDevice+1)
	}
	open[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		nc, _, err := nativeConn(t, a.NATSURL(), ac)
		if err == nil {
			open[0] = nc
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no room 5s after closing a connection: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Per user: three more devices fill the user's 16.
	for d := 1; d < callout.DefaultMaxConnsPerUser/callout.DefaultMaxConnsPerDevice; d++ {
		dev := ac.Device(fmt.Sprintf("dev%d", d))
		for i := range callout.DefaultMaxConnsPerDevice {
			if _, _, err := nativeConn(t, a.NATSURL(), dev); err != nil {
				t.Fatalf("device %d connection %d: %v", d, i+1, err)
			}
		}
	}
	if _, _, err := nativeConn(t, a.NATSURL(), ac.Device("one-more")); err == nil {
		t.Fatalf("connection %d of one user accepted", callout.DefaultMaxConnsPerUser+1)
	}
}
