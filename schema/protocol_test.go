package schema

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const testUser = "uaaaaaaaaaaaaaaaaaaaaaaaaaa"

// validRequests are one accepted frame of every client type.
var validRequests = []string{
	`{"type":"send","id":"1","to":"` + testUser + `","envelope":{"v":1,"from":"x"}}`,
	`{"type":"sync","id":"2","cursor":0}`,
	`{"type":"sync","id":"2b","cursor":9007199254740991}`,
	`{"type":"read","id":"3","seq":17}`,
	`{"type":"recall","id":"4","seq":18}`,
	`{"type":"unread","id":"5"}`,
	`{"type":"ping","id":"req-6.a:b_c"}`,
	` { "id" : "7" , "type" : "ping" } `,
}

func TestProtocolDecodeRequestValid(t *testing.T) {
	want := []Request{
		&SendFrame{Type: "send", ID: "1", To: testUser, Envelope: []byte(`{"v":1,"from":"x"}`)},
		&SyncFrame{Type: "sync", ID: "2"},
		&SyncFrame{Type: "sync", ID: "2b", Cursor: MaxSeq},
		&ReadFrame{Type: "read", ID: "3", Seq: 17},
		&RecallFrame{Type: "recall", ID: "4", Seq: 18},
		&UnreadFrame{Type: "unread", ID: "5"},
		&PingFrame{Type: "ping", ID: "req-6.a:b_c"},
		&PingFrame{Type: "ping", ID: "7"},
	}
	for i, in := range validRequests {
		got, id, e := DecodeRequest([]byte(in))
		if e != nil {
			t.Errorf("DecodeRequest(%s) = %v", in, e)
			continue
		}
		if !reflect.DeepEqual(got, want[i]) || id != want[i].RequestID() {
			t.Errorf("DecodeRequest(%s) = %#v, %q, want %#v", in, got, id, want[i])
		}
	}
}

func TestProtocolDecodeRequestCompactsEnvelope(t *testing.T) {
	got, _, e := DecodeRequest([]byte(`{"type":"send","id":"1","to":"` + testUser + `","envelope":{ "v" : 1 ,"a":[1, 2]}}`))
	if e != nil {
		t.Fatal(e)
	}
	if env := string(got.(*SendFrame).Envelope); env != `{"v":1,"a":[1,2]}` {
		t.Fatalf("envelope = %s", env)
	}
}

func TestProtocolDecodeRequestInvalid(t *testing.T) {
	long := strings.Repeat("a", MaxRequestIDLen+1)
	tests := []struct {
		in     string
		code   Code
		id     string
		detail string
	}{
		{``, CodeBadRequest, "", "not a JSON object"},
		{`[]`, CodeBadRequest, "", "not a JSON object"},
		{`"ping"`, CodeBadRequest, "", "not a JSON object"},
		{`{"type":"ping","id":"1"`, CodeBadRequest, "", "malformed"},
		{`{"type":"ping","id":"1"}{}`, CodeBadRequest, "", "after the JSON object"},
		{`{"type":"ping","id":"1"} x`, CodeBadRequest, "", "after the JSON object"},
		{`{"type":"ping","id":"1","id":"2"}`, CodeBadRequest, "", "duplicate"},
		{`{"type":"ping","id":null}`, CodeBadRequest, "", "null"},
		{`{"id":"9"}`, CodeBadRequest, "9", `"type"`},
		{`{"type":7,"id":"9"}`, CodeBadRequest, "9", `"type"`},
		{`{"type":"fly","id":"9"}`, CodeBadRequest, "9", "unknown frame type"},
		{`{"type":"hello","id":"9"}`, CodeBadRequest, "9", "unknown frame type"},
		{`{"type":"ping"}`, CodeBadRequest, "", `missing member "id"`},
		{`{"type":"ping","id":"9","x":1}`, CodeBadRequest, "9", `unknown member "x"`},
		{`{"type":"ping","ID":"9"}`, CodeBadRequest, "", `missing member "id"`},
		{`{"type":"ping","id":""}`, CodeBadRequest, "", `"id"`},
		{`{"type":"ping","id":"a b"}`, CodeBadRequest, "", `"id"`},
		{`{"type":"ping","id":"` + long + `"}`, CodeBadRequest, "", `"id"`},
		{`{"type":"ping","id":5}`, CodeBadRequest, "", "wrong type"},
		{`{"type":"sync","id":"9"}`, CodeBadRequest, "9", `missing member "cursor"`},
		{`{"type":"sync","id":"9","cursor":-1}`, CodeBadRequest, "9", "wrong type"},
		{`{"type":"sync","id":"9","cursor":1.5}`, CodeBadRequest, "9", "wrong type"},
		{`{"type":"sync","id":"9","cursor":"1"}`, CodeBadRequest, "9", "wrong type"},
		{`{"type":"sync","id":"9","cursor":18446744073709551616}`, CodeBadRequest, "9", "wrong type"},
		{`{"type":"sync","id":"9","cursor":9007199254740992}`, CodeInvalidCursor, "9", "cursor"},
		{`{"type":"read","id":"9","seq":0}`, CodeInvalidCursor, "9", "seq"},
		{`{"type":"recall","id":"9","seq":0}`, CodeInvalidCursor, "9", "seq"},
		{`{"type":"send","id":"9","to":"bob","envelope":{}}`, CodeBadRequest, "9", `"to"`},
		{`{"type":"send","id":"9","to":"` + testUser + `","envelope":"{}"}`, CodeBadRequest, "9", `"envelope"`},
		{`{"type":"send","id":"9","to":"` + testUser + `","envelope":[1]}`, CodeBadRequest, "9", `"envelope"`},
		{`{"type":"send","id":"9","to":"` + testUser + `"}`, CodeBadRequest, "9", `missing member "envelope"`},
	}
	for _, tt := range tests {
		req, id, e := DecodeRequest([]byte(tt.in))
		if e == nil || req != nil {
			t.Errorf("DecodeRequest(%s) = %#v, nil; want %s", tt.in, req, tt.code)
			continue
		}
		if e.Code != tt.code || id != tt.id || !strings.Contains(e.Message, tt.detail) {
			t.Errorf("DecodeRequest(%s) = id %q, %v; want id %q, %s containing %q", tt.in, id, e, tt.id, tt.code, tt.detail)
		}
	}
}

func TestProtocolServerFramesRoundTrip(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6e6, time.UTC)
	frames := []any{
		&HelloFrame{Type: FrameHello, V: ProtocolVersion, UserID: testUser, DeviceID: "d1"},
		&SentFrame{Type: FrameSent, ID: "1", Seq: 3, PeerSeq: 4},
		&MsgFrame{Type: FrameMsg, Seq: 5, PrevSeq: 3, From: testUser, To: testUser, MsgID: "m", SentAt: at, Self: true, Envelope: []byte(`{"v":1}`)},
		&SyncedFrame{Type: FrameSynced, ID: "2", LastSeq: 9},
		&OKFrame{Type: FrameOK, ID: "3"},
		&UnreadCountsFrame{Type: FrameUnread, ID: "4", Counts: map[string]int{testUser: 2}},
		&EventFrame{Type: FrameEvent, Event: &Event{Type: EventDeviceRevoked, DeviceID: "d1"}},
		&ErrorFrame{Type: FrameError, ID: "5", Error: Errorf(CodeNotFriend, "no")},
		&PongFrame{Type: FramePong, ID: "6"},
	}
	for _, f := range frames {
		b, err := EncodeFrame(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeServerFrame(b)
		if err != nil {
			t.Fatalf("DecodeServerFrame(%s) = %v", b, err)
		}
		if !reflect.DeepEqual(got, f) {
			t.Errorf("round trip of %s = %#v, want %#v", b, got, f)
		}
	}
}

func TestProtocolSentFrameKeepsZeroFields(t *testing.T) {
	b, _ := EncodeFrame(SentFrame{Type: FrameSent, ID: "1"})
	if want := `{"type":"sent","id":"1","seq":0,"peer_seq":0,"duplicate":false}`; string(b) != want {
		t.Fatalf("EncodeFrame = %s, want %s", b, want)
	}
}

func TestProtocolDecodeServerFrameUnknown(t *testing.T) {
	if _, err := DecodeServerFrame([]byte(`{"type":"later"}`)); err == nil {
		t.Fatal("unknown server frame type accepted")
	}
	f, err := DecodeServerFrame([]byte(`{"type":"pong","id":"1","added":true}`))
	if err != nil || f.(*PongFrame).ID != "1" {
		t.Fatalf("DecodeServerFrame with an added member = %v, %v", f, err)
	}
}

// TestProtocolDocs: docs/protocol.md has a table row for every frame type
// in both directions and every close code.
func TestProtocolDocs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "protocol.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for typ := range requestTypes {
		if !strings.Contains(doc, "| `"+typ+"` |") {
			t.Errorf("docs/protocol.md: no row for client frame %q", typ)
		}
	}
	for typ := range serverTypes {
		if !strings.Contains(doc, "| `"+typ+"` |") {
			t.Errorf("docs/protocol.md: no row for server frame %q", typ)
		}
	}
	for _, code := range []int{CloseTokenRevoked, CloseSlowConsumer, CloseBadFrames, CloseRateLimited} {
		if !strings.Contains(doc, fmt.Sprintf("| %d |", code)) {
			t.Errorf("docs/protocol.md: no row for close code %d", code)
		}
	}
}
