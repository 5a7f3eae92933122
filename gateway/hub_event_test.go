package gateway

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/schema"
)

// checkDecodeEvent fails t unless decodeEvent(b) is what encoding/json
// gives.
func checkDecodeEvent(t *testing.T, b []byte) {
	t.Helper()
	got, err := decodeEvent(b)
	var want schema.Event
	werr := json.Unmarshal(b, &want)
	if (err == nil) != (werr == nil) || err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeEvent(%s) = %+v, %v; encoding/json %+v, %v", b, got, err, want, werr)
	}
}

func hubEventSeeds(t testing.TB) [][]byte {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	events := []schema.Event{
		{Type: schema.EventBurned, Seq: 17, MsgID: "m-1", PeerID: "uaaaaaaaaaaaaaaaaaaaaaaaaaa"},
		{Type: schema.EventRecalled, Seq: schema.MaxSeq, MsgID: "x", PeerID: "y"},
		{Type: schema.EventWithdrawn, Seq: 1},
		{Type: schema.EventDelivered, Seq: 3, MsgID: "m-3", PeerID: "ub7c3ifq2mt4wy6xosldnpaezku"},
		{Type: schema.EventDeviceRevoked, DeviceID: "d1", Generation: 3},
		{Type: schema.EventDeviceRevoked, DeviceID: "d1", Generation: -2},
		{Type: schema.EventUserBlocked, ByMe: true, PeerID: "p"},
		{Type: schema.EventBurned, MsgID: `<a&b>"\`, PeerID: "\u00e9\u2028"},
		{Type: schema.EventFriendRequest, Peer: &schema.User{UserID: "u", Handle: "h", CreatedAt: at}, ByMe: true},
		{Type: schema.EventPresence, Presence: &schema.PresenceState{UserID: "u", Online: true}},
		{},
	}
	var out [][]byte
	for _, ev := range events {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return append(out, [][]byte{
		[]byte(`{"type":"burned","seq":0}`), []byte(`{"type":"burned","seq":01}`), []byte(`{"type":"burned","seq":-1}`),
		[]byte(`{"type":"burned","seq":18446744073709551616}`), []byte(`{"type":"burned","generation":9223372036854775808}`),
		[]byte(`{"type":"burned","seq":1.5}`), []byte(`{"type":"burned","seq":"1"}`), []byte(`{"type":"burned","by_me":false}`),
		[]byte(`{"type":"burned","msg_id":"a\u0062"}`), []byte(`{"type":"burned","msg_id":"a` + "\x01" + `"}`),
		[]byte(`{"type":"burned","msg_id":"a` + "\xff" + `"}`), []byte(`{"type":"burned"} `), []byte(`{"type":"burned"}}`),
		[]byte(`{"type":"burned","peer_id":"p","msg_id":"m"}`), []byte(`{"TYPE":"burned"}`), []byte(`{"type":"burned","x":1}`),
		[]byte(`{"type":burned}`), []byte(`{"type":"burned"`), []byte(`{"type":"burned","seq":}`), []byte(`{"type":null}`),
		[]byte(``), []byte(`null`), []byte(`[]`),
	}...)
}

func TestGatewayDecodeEventMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, b := range hubEventSeeds(t) {
		checkDecodeEvent(t, b)
	}
	// What the mailbox publishes for every message takes the fast path.
	for _, ev := range []schema.Event{
		{Type: schema.EventBurned, Seq: 17, MsgID: "m-1", PeerID: "uaaaaaaaaaaaaaaaaaaaaaaaaaa"},
		{Type: schema.EventDeviceRevoked, DeviceID: "d1", Generation: 3},
	} {
		b, _ := json.Marshal(ev)
		if got, ok := decodePlainEvent(b); !ok || !reflect.DeepEqual(got, ev) {
			t.Errorf("decodePlainEvent(%s) = %+v, %v", b, got, ok)
		}
	}
}

func FuzzGatewayDecodeEvent(f *testing.F) {
	for _, b := range hubEventSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(checkDecodeEvent)
}
