package gateway

import (
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-im/mayfly/fabric/account"
	"github.com/mayfly-im/mayfly/schema"
)

// frameSeeds are FuzzGatewayFrame's seeds: one accepted frame of every
// client frame type, keyed by type. TestGatewayFrameTable checks every
// type has one.
var frameSeeds = map[string]string{
	schema.FrameSend:   `{"type":"send","id":"1","to":"` + schema.NewUserID() + `","envelope":{"v":2}}`,
	schema.FrameSync:   `{"type":"sync","id":"2","cursor":0}`,
	schema.FrameRead:   `{"type":"read","id":"3","seq":17}`,
	schema.FrameRecall: `{"type":"recall","id":"4","seq":18}`,
	schema.FrameUnread: `{"type":"unread","id":"5"}`,
	schema.FramePing:   `{"type":"ping","id":"6"}`,
}

// TestGatewayFrameTable: every client frame type of the protocol has a
// handler for its request type in the frame table, a row in
// docs/protocol.md and a fuzz seed; the table has no other entries.
func TestGatewayFrameTable(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "protocol.md"))
	if err != nil {
		t.Fatal(err)
	}
	types := schema.RequestTypes()
	if len(types) == 0 {
		t.Fatal("schema lists no client frame types")
	}
	for _, typ := range types {
		req, _ := schema.NewRequest(typ)
		h, ok := frames[typ]
		switch {
		case !ok:
			t.Errorf("frame %q: no entry in the frame table (ws_requests.go)", typ)
		case h.frame != reflect.TypeOf(req):
			t.Errorf("frame %q: its handler takes %v, the frame decodes to %T", typ, h.frame, req)
		}
		if !strings.Contains(string(doc), "| `"+typ+"` |") {
			t.Errorf("frame %q: no row in docs/protocol.md", typ)
		}
		seed, ok := frameSeeds[typ]
		if !ok {
			t.Errorf("frame %q: no fuzz seed in frameSeeds", typ)
			continue
		}
		if got, _, e := schema.DecodeRequest([]byte(seed)); e != nil || got.RequestType() != typ {
			t.Errorf("frame %q: seed %s does not decode to it (%v)", typ, seed, e)
		}
	}
	for typ := range frames {
		if _, ok := schema.NewRequest(typ); !ok {
			t.Errorf("frame table entry %q is not a client frame type of schema", typ)
		}
	}
}

// FuzzGatewayFrame: a session never panics on a client frame and answers
// each with exactly one frame carrying the id the frame was read with: a
// pong, or an error frame with a documented code. The session has no
// mailbox, so every request is answered at once.
func FuzzGatewayFrame(f *testing.F) {
	for _, typ := range schema.RequestTypes() {
		f.Add([]byte(frameSeeds[typ]))
	}
	for _, s := range []string{``, `{}`, `{"type":"hello","id":"1"}`, `{"type":"ping","id":"1","id":"2"}`,
		`{"type":"read","id":"x","seq":0}`, `{"type":"sync","id":"y","cursor":-1}`, "{\"type\":\"ping\",\"id\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	s := &Server{cfg: Config{FrameRate: 1e9, FrameBurst: 1 << 30}, log: slog.New(slog.DiscardHandler), metrics: newMetrics(prometheus.NewRegistry())}
	f.Fuzz(func(t *testing.T, data []byte) {
		out := newMemSink(4)
		c := s.newSession(out, account.Principal{UserID: schema.NewUserID(), DeviceID: "d"})
		_, id, _ := schema.DecodeRequest(data)
		c.received(data)
		b, ok := out.take()
		if !ok {
			t.Fatalf("frame %q got no answer", data)
		}
		if extra, ok := out.take(); ok {
			t.Fatalf("frame %q got a second answer %s", data, extra)
		}
		answer, err := schema.DecodeServerFrame(b)
		if err != nil {
			t.Fatalf("answer %s: %v", b, err)
		}
		switch a := answer.(type) {
		case *schema.PongFrame:
			if a.ID != id {
				t.Fatalf("pong id %q, want %q", a.ID, id)
			}
		case *schema.ErrorFrame:
			if a.ID != id || a.Error == nil || !a.Error.Code.Known() {
				t.Fatalf("error answer %s to a frame with id %q", b, id)
			}
		default:
			t.Fatalf("answer %s is neither pong nor error", b)
		}
	})
}
