package schema

import (
	"reflect"
	"testing"
)

// FuzzFrameDecode checks that DecodeRequest never panics, returns either a
// request or an error from the closed set, and that every accepted frame
// encodes to a frame that decodes to the same request.
func FuzzFrameDecode(f *testing.F) {
	for _, s := range validRequests {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		``, `{}`, `[]`, `null`, `{"type":null}`, `{"type":"ping","id":"1"}{}`,
		`{"type":"ping","id":"1","id":"1"}`, `{"type":"send","id":"1","to":"` + testUser + `","envelope":"x"}`,
		`{"type":"sync","id":"1","cursor":1e3}`, `{"type":"sync","id":"1","cursor":-0}`,
		`{"type":"read","id":"1","seq":0}`, `{"type":"recall","id":"\u0031","seq":2}`,
		`{"type":"hello","id":"1"}`, `{"type":"unread","id":"1","counts":{}}`,
		"{\"type\":\"ping\",\"id\":\"1\xff\"}", `{"type":"ping","id":"1"`,
		`{"type":"send","id":"1","to":"` + testUser + `","envelope":{"a":"<\u00e9>","b":[{},[]]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, id, e := DecodeRequest(data)
		if e != nil {
			if req != nil || !e.Code.Known() {
				t.Fatalf("error %v with request %#v", e, req)
			}
			if id != "" && !validRequestID(id) {
				t.Fatalf("invalid id %q returned", id)
			}
			return
		}
		if id != req.RequestID() || !validRequestID(id) {
			t.Fatalf("id %q, request id %q", id, req.RequestID())
		}
		b, err := EncodeFrame(req)
		if err != nil {
			t.Fatalf("EncodeFrame(%#v) = %v", req, err)
		}
		again, _, e := DecodeRequest(b)
		if e != nil {
			t.Fatalf("re-encoded frame %s rejected: %v", b, e)
		}
		if !reflect.DeepEqual(req, again) {
			t.Fatalf("round trip changed the frame:\n%#v\n%#v", req, again)
		}
	})
}
