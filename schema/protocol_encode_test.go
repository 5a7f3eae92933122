package schema

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// encodeRef encodes f with encoding/json, as EncodeFrame did for every frame.
func encodeRef(t testing.TB, f any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(f); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// checkSameEncoding fails t unless EncodeFrame(f) is what encoding/json
// writes for f, and both decode to the same frame.
func checkSameEncoding(t testing.TB, f any) {
	t.Helper()
	got, err := EncodeFrame(f)
	if err != nil {
		t.Fatalf("EncodeFrame(%#v) = %v", f, err)
	}
	want := encodeRef(t, f)
	if !bytes.Equal(got, want) {
		t.Fatalf("EncodeFrame =\n%s\nencoding/json:\n%s", got, want)
	}
	a, errA := DecodeServerFrame(got)
	b, errB := DecodeServerFrame(want)
	if errA != nil || errB != nil || !reflect.DeepEqual(a, b) {
		t.Fatalf("decoded %#v, %v; want %#v, %v", a, errA, b, errB)
	}
}

var encodeStrings = []string{
	"", testUser, "m-0001", `a"b\c`, "<&>", "é", "\u2028\u2029", "\x00\x1f\x7f", "\xff\xfe", "a\tb\nc",
}

var encodeTimes = []time.Time{
	time.Date(2025, 1, 2, 3, 4, 5, 678901000, time.UTC),
	time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	time.Date(2025, 1, 2, 3, 4, 5, 100, time.UTC),
	time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
	time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600+30*60)),
	time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("y", -5*3600)),
	time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("z", 0)),
	time.Now(),
	{},
}

func TestProtocolEncodeMsgFrameMatchesEncodingJSON(t *testing.T) {
	env := []byte(`{"v":1,"from":"a","wraps":[{"k":"x"},{}],"n":"<&>"}`)
	for _, s := range encodeStrings {
		for _, at := range encodeTimes {
			for _, prev := range []uint64{0, 1, MaxSeq} {
				f := MsgFrame{Type: FrameMsg, Seq: 17, PrevSeq: prev, From: s, To: testUser, MsgID: s, SentAt: at, Self: prev == 1, Envelope: env}
				checkSameEncoding(t, f)
				checkSameEncoding(t, &f)
				frames, err := NewMsgFrames(&f)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range []uint64{prev, 0, 5, MaxSeq} {
					f.PrevSeq = p
					if got, want := frames.Frame(p), encodeRef(t, f); !bytes.Equal(got, want) {
						t.Fatalf("Frame(%d) =\n%s\nencoding/json:\n%s", p, got, want)
					}
				}
			}
		}
	}
}

func TestProtocolEncodeMsgFrameErrors(t *testing.T) {
	for _, f := range []MsgFrame{
		{Type: FrameMsg, SentAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Envelope: []byte(`{}`)},
		{Type: FrameMsg, SentAt: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), Envelope: []byte(`{}`)},
		{Type: FrameMsg, SentAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.FixedZone("far", 24*3600)), Envelope: []byte(`{}`)},
		{Type: FrameMsg, Envelope: []byte{}},
	} {
		if _, err := EncodeFrame(f); err == nil {
			t.Errorf("EncodeFrame(%v) succeeded", f)
		}
		if _, err := json.Marshal(f); err == nil {
			t.Errorf("json.Marshal(%v) succeeded", f)
		}
		if _, err := NewMsgFrames(&f); err == nil {
			t.Errorf("NewMsgFrames(%v) succeeded", f)
		}
	}
}

func TestProtocolEncodeMsgFrameNilEnvelope(t *testing.T) {
	checkSameEncoding(t, MsgFrame{Type: FrameMsg, Seq: 1})
}

func TestProtocolEncodeSentOKMatchEncodingJSON(t *testing.T) {
	for _, s := range encodeStrings {
		for _, dup := range []bool{false, true} {
			sent := SentFrame{Type: FrameSent, ID: s, Seq: 3, PeerSeq: MaxSeq, Duplicate: dup}
			checkSameEncoding(t, sent)
			checkSameEncoding(t, &sent)
		}
		ok := OKFrame{Type: FrameOK, ID: s}
		checkSameEncoding(t, ok)
		checkSameEncoding(t, &ok)
	}
}

func TestProtocolEncodeEventFrameMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	events := []*Event{
		nil,
		{},
		{Type: EventBurned, Seq: 17, MsgID: "m-1", PeerID: testUser},
		{Type: EventRecalled, Seq: MaxSeq, MsgID: `<" ">`, PeerID: `\`},
		{Type: EventWithdrawn, Seq: 1},
		{Type: EventDelivered, Seq: 3, MsgID: "m-3", PeerID: testUser},
		{Type: EventDeviceRevoked, DeviceID: "d1", Generation: 3},
		{Type: EventDeviceRevoked, DeviceID: "d1", Generation: -2},
		{Type: EventUserBlocked, ByMe: true, PeerID: testUser},
		{Type: EventFriendRequest, Peer: &User{UserID: testUser, Handle: "<b>", CreatedAt: at}, ByMe: true},
		{Type: EventPresence, Presence: &PresenceState{UserID: testUser, Online: true, LastSeen: &at}},
		{Type: EventPresenceSnapshot, Presences: []PresenceState{{UserID: testUser}}},
		{Type: EventPresenceSnapshot, Presences: []PresenceState{}},
	}
	for _, s := range encodeStrings {
		events = append(events, &Event{Type: EventType(s), DeviceID: s, MsgID: s, PeerID: s, Seq: 5, Generation: 1, ByMe: true})
	}
	for _, ev := range events {
		f := EventFrame{Type: FrameEvent, Event: ev}
		checkSameEncoding(t, f)
		checkSameEncoding(t, &f)
	}
}

func TestProtocolEncodeEncodedFrameAsIs(t *testing.T) {
	in := EncodedFrame(`{"type":"pong","id":"1"}`)
	for _, f := range []any{in, &in} {
		got, err := EncodeFrame(f)
		if err != nil || !bytes.Equal(got, in) {
			t.Fatalf("EncodeFrame(%T) = %s, %v", f, got, err)
		}
	}
}

// FuzzFrameEncode compares the hand-written msg and sent encoders with
// encoding/json on arbitrary strings, times and sequences.
func FuzzFrameEncode(f *testing.F) {
	f.Add("m-1", testUser, int64(1700000000123456789), uint64(5), uint64(4), true, 0)
	f.Add("<\"\\\u2028\xff>", "", int64(-1), uint64(0), uint64(0), false, -3600)
	f.Fuzz(func(t *testing.T, msgID, from string, nanos int64, seq, prev uint64, self bool, offset int) {
		at := time.Unix(0, nanos).In(time.FixedZone("z", offset%(48*3600)))
		m := MsgFrame{Type: FrameMsg, Seq: seq, PrevSeq: prev, From: from, To: testUser, MsgID: msgID, SentAt: at, Self: self, Envelope: []byte(`{"v":1}`)}
		got, err := EncodeFrame(m)
		_, werr := json.Marshal(m) // the error cases must agree
		if (err == nil) != (werr == nil) {
			t.Fatalf("EncodeFrame error %v, encoding/json %v", err, werr)
		}
		if err == nil {
			if want := encodeRef(t, m); !bytes.Equal(got, want) {
				t.Fatalf("EncodeFrame =\n%s\nencoding/json:\n%s", got, want)
			}
		}
		checkSameEncoding(t, SentFrame{Type: FrameSent, ID: msgID, Seq: seq, PeerSeq: prev, Duplicate: self})
	})
}
