package payload

import "testing"

// TestPayloadListVersion: the sender's list version "lv" of a payload
// (docs/payload.md); a bad "lv" is ignored, never the text.
func TestPayloadListVersion(t *testing.T) {
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
		p := Decode([]byte(tc.in))
		if p.Text != tc.text || p.LV != tc.lv {
			t.Errorf("Decode(%s) = %q, %d; want %q, %d", tc.in, p.Text, p.LV, tc.text, tc.lv)
		}
	}
	if p := Decode(Encode(Payload{Text: "x", LV: 42})); p.Text != "x" || p.LV != 42 {
		t.Errorf("round trip: %q %d", p.Text, p.LV)
	}
	if got := string(Encode(Payload{Text: "x"})); got != `{"text":"x"}` {
		t.Errorf("Encode without lv = %s", got)
	}
}
