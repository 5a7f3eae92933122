package gateway

import (
	"encoding/json"
	"strconv"

	"github.com/mayfly-im/mayfly/schema"
)

// decodeEvent decodes an event published on a user's event subject. The
// events of every message (burned, recalled, withdrawn) come as
// fabric.PublishEvent writes them, plain and in field order; those are
// read by hand, anything else by encoding/json, with the same result
// (hub_event_test.go compares them).
func decodeEvent(b []byte) (schema.Event, error) {
	if ev, ok := decodePlainEvent(b); ok {
		return ev, nil
	}
	var ev schema.Event
	err := json.Unmarshal(b, &ev)
	return ev, err
}

// decodePlainEvent reads {"type":"…"[,"device_id":"…"][,"generation":N]
// [,"by_me":true][,"seq":N][,"msg_id":"…"][,"peer_id":"…"]}, strings of
// printable ASCII without escapes, numbers as encoding/json writes them.
func decodePlainEvent(b []byte) (ev schema.Event, ok bool) {
	r := eventReader{b: b, ok: true}
	r.lit(`{"type":`)
	ev.Type = schema.EventType(r.str())
	if r.opt(`,"device_id":`) {
		ev.DeviceID = r.str()
	}
	if r.opt(`,"generation":`) {
		n, err := strconv.Atoi(r.num())
		ev.Generation, r.ok = n, r.ok && err == nil
	}
	if r.opt(`,"by_me":true`) {
		ev.ByMe = true
	}
	if r.opt(`,"seq":`) {
		n, err := strconv.ParseUint(r.num(), 10, 64)
		ev.Seq, r.ok = n, r.ok && err == nil
	}
	if r.opt(`,"msg_id":`) {
		ev.MsgID = r.str()
	}
	if r.opt(`,"peer_id":`) {
		ev.PeerID = r.str()
	}
	r.lit(`}`)
	return ev, r.ok && r.i == len(b)
}

// eventReader reads b from i; ok turns false at the first mismatch.
type eventReader struct {
	b  []byte
	i  int
	ok bool
}

func (r *eventReader) has(l string) bool {
	return r.ok && len(r.b)-r.i >= len(l) && string(r.b[r.i:r.i+len(l)]) == l
}

func (r *eventReader) lit(l string) {
	if !r.has(l) {
		r.ok = false
		return
	}
	r.i += len(l)
}

// opt reads l if it comes next.
func (r *eventReader) opt(l string) bool {
	if !r.has(l) {
		return false
	}
	r.i += len(l)
	return true
}

// str reads a string of printable ASCII without escapes.
func (r *eventReader) str() string {
	r.lit(`"`)
	start := r.i
	for r.ok && r.i < len(r.b) && r.b[r.i] != '"' {
		if c := r.b[r.i]; c < 0x20 || c > 0x7e || c == '\\' {
			r.ok = false
		}
		r.i++
	}
	s := string(r.b[start:r.i])
	r.lit(`"`)
	return s
}

// num reads -?[1-9][0-9]*, a nonzero integer as encoding/json writes it.
func (r *eventReader) num() string {
	if !r.ok {
		return ""
	}
	start := r.i
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	if r.i >= len(r.b) || r.b[r.i] < '1' || r.b[r.i] > '9' {
		r.ok = false
		return ""
	}
	for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
		r.i++
	}
	return string(r.b[start:r.i])
}
