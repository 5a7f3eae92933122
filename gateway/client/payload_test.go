package client

import "testing"

// TestClientDecodePayload: the text and the sender's list version of a
// payload (docs/payload.md); a bad "lv" is ignored, never the text.
func TestClientDecodePayload(t *testing.T) {
	for _, tc := range []struct {
		in   string
		text string
		lv   int64
	}{
		{`{"text":"hi"}`, "hi", 0},
		{`{"text":"hi","lv":3}`, "hi", 3},
		{`{"lv":9007199254740991,"text":""}`, "", 1<<53 - 1},
		{`{"text":"hi","lv":9007199254740992}`, "hi", 0},
		{`{"text":"hi","lv":-1}`, "hi", 0},
		{`{"text":"hi","lv":1.5}`, "hi", 0},
		{`{"text":"hi","lv":"7"}`, "hi", 0},
		{`{"text":"hi","lv":null}`, "hi", 0},
		{`plain words`, "plain words", 0},
		{`{"lv":3}`, `{"lv":3}`, 0},
	} {
		text, lv := decodePayload([]byte(tc.in))
		if text != tc.text || lv != tc.lv {
			t.Errorf("decodePayload(%s) = %q, %d; want %q, %d", tc.in, text, lv, tc.text, tc.lv)
		}
	}
	if text, lv := decodePayload(encodeText("x", 42)); text != "x" || lv != 42 {
		t.Errorf("round trip: %q %d", text, lv)
	}
}
