package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseAcceptsSealed(t *testing.T) {
	b := sealTest(t, []byte("hello"))
	e, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if h := e.Header(); h != testHeader {
		t.Errorf("Header = %+v, want %+v", h, testHeader)
	}
	again, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, b) {
		t.Errorf("MarshalJSON is not the sealed encoding:\n%s\n%s", again, b)
	}
	// Insignificant whitespace and escapes are accepted.
	var indented bytes.Buffer
	if err := json.Indent(&indented, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	spaced := bytes.Replace(indented.Bytes(), []byte(`"from"`), []byte(`"\u0066rom"`), 1)
	if _, err := Parse(spaced); err != nil {
		t.Errorf("Parse(indented) = %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	base := sealTest(t, []byte("hello"))
	set := func(key string, v any) func(map[string]any) {
		return func(m map[string]any) { m[key] = v }
	}
	del := func(key string) func(map[string]any) {
		return func(m map[string]any) { delete(m, key) }
	}
	setWrap := func(i int, key string, v any) func(map[string]any) {
		return func(m map[string]any) { wrapAt(m, i)[key] = v }
	}
	b64 := func(n int) string { return EncodeKey(make([]byte, n)) }

	tests := []struct {
		name   string
		mutate func(map[string]any) // applied to base, if set
		raw    string               // used when mutate is nil
		want   error
	}{
		{name: "empty", raw: "", want: ErrMalformed},
		{name: "null", raw: "null", want: ErrMalformed},
		{name: "array", raw: "[]", want: ErrMalformed},
		{name: "number", raw: "1", want: ErrMalformed},
		{name: "bad JSON", raw: `{"v":1,`, want: ErrMalformed},
		{name: "trailing data", raw: string(base) + "{}", want: ErrMalformed},
		{name: "trailing garbage", raw: string(base) + "x", want: ErrMalformed},
		{name: "duplicate field", raw: `{"v":1,"v":1}`, want: ErrMalformed},
		{name: "duplicate escaped field", raw: strings.Replace(string(base), `"v":1,`, `"v":1,"\u0076":1,`, 1), want: ErrMalformed},
		{name: "missing v", mutate: del("v"), want: ErrMalformed},
		{name: "v string", mutate: set("v", "1"), want: ErrMalformed},
		{name: "v float", mutate: set("v", json.Number("1.0")), want: ErrMalformed},
		{name: "v null", mutate: set("v", nil), want: ErrMalformed},
		{name: "v 0", mutate: set("v", 0), want: ErrVersion},
		{name: "v 2", mutate: set("v", 2), want: ErrVersion},
		{name: "v 2 with new fields", mutate: func(m map[string]any) { m["v"] = 2; m["new"] = true }, want: ErrVersion},
		{name: "unknown field", mutate: set("extra", "x"), want: ErrMalformed},
		{name: "field case", mutate: func(m map[string]any) { m["From"] = m["from"]; delete(m, "from") }, want: ErrMalformed},
		{name: "missing from", mutate: del("from"), want: ErrMalformed},
		{name: "missing to", mutate: del("to"), want: ErrMalformed},
		{name: "missing mid", mutate: del("mid"), want: ErrMalformed},
		{name: "missing ts", mutate: del("ts"), want: ErrMalformed},
		{name: "missing wraps", mutate: del("wraps"), want: ErrMalformed},
		{name: "missing n", mutate: del("n"), want: ErrMalformed},
		{name: "missing ct", mutate: del("ct"), want: ErrMalformed},
		{name: "missing sig", mutate: del("sig"), want: ErrMalformed},
		{name: "from empty", mutate: set("from", ""), want: ErrMalformed},
		{name: "from null", mutate: set("from", nil), want: ErrMalformed},
		{name: "from number", mutate: set("from", 7), want: ErrMalformed},
		{name: "from too long", mutate: set("from", strings.Repeat("a", MaxIDLen+1)), want: ErrMalformed},
		{name: "from space", mutate: set("from", "a b"), want: ErrMalformed},
		{name: "from non-ASCII", mutate: set("from", "alicé"), want: ErrMalformed},
		{name: "to dot", mutate: set("to", "bob.x"), want: ErrMalformed},
		{name: "mid slash", mutate: set("mid", "m/1"), want: ErrMalformed},
		{name: "ts zero", mutate: set("ts", 0), want: ErrMalformed},
		{name: "ts negative", mutate: set("ts", -1), want: ErrMalformed},
		{name: "ts over 2^53-1", mutate: set("ts", int64(MaxSentAtMillis)+1), want: ErrMalformed},
		{name: "ts float", mutate: set("ts", json.Number("1.5")), want: ErrMalformed},
		{name: "ts exponent", mutate: set("ts", json.Number("1e12")), want: ErrMalformed},
		{name: "ts string", mutate: set("ts", "1700000000000"), want: ErrMalformed},
		{name: "ts null", mutate: set("ts", nil), want: ErrMalformed},
		{name: "wraps null", mutate: set("wraps", nil), want: ErrMalformed},
		{name: "wraps object", mutate: set("wraps", map[string]any{}), want: ErrMalformed},
		{name: "one wrap", mutate: func(m map[string]any) { m["wraps"] = m["wraps"].([]any)[:1] }, want: ErrMalformed},
		{name: "three wraps", mutate: func(m map[string]any) {
			w := m["wraps"].([]any)
			m["wraps"] = append(w, w[0])
		}, want: ErrMalformed},
		{name: "wrap not object", mutate: func(m map[string]any) { m["wraps"].([]any)[0] = "x" }, want: ErrMalformed},
		{name: "wrap missing kid", mutate: func(m map[string]any) { delete(wrapAt(m, 1), "kid") }, want: ErrMalformed},
		{name: "wrap unknown field", mutate: setWrap(0, "alg", "x"), want: ErrMalformed},
		{name: "kid 7 bytes", mutate: setWrap(0, "kid", b64(7)), want: ErrMalformed},
		{name: "kid hex", mutate: setWrap(0, "kid", "0011223344556677"), want: ErrMalformed},
		{name: "epk 31 bytes", mutate: setWrap(1, "epk", b64(31)), want: ErrMalformed},
		{name: "epk 33 bytes", mutate: setWrap(0, "epk", b64(33)), want: ErrMalformed},
		{name: "wrap nonce 11 bytes", mutate: setWrap(0, "n", b64(11)), want: ErrMalformed},
		{name: "wrapped key 32 bytes", mutate: setWrap(0, "k", b64(32)), want: ErrMalformed},
		{name: "wrapped key null", mutate: setWrap(1, "k", nil), want: ErrMalformed},
		{name: "nonce 13 bytes", mutate: set("n", b64(13)), want: ErrMalformed},
		{name: "sig 63 bytes", mutate: set("sig", b64(63)), want: ErrMalformed},
		{name: "sig empty", mutate: set("sig", ""), want: ErrMalformed},
		{name: "ct 15 bytes", mutate: set("ct", b64(15)), want: ErrMalformed},
		{name: "ct padded", mutate: set("ct", b64(16)+"=="), want: ErrMalformed},
		{name: "ct standard alphabet", mutate: set("ct", strings.Repeat("+/", 12)), want: ErrMalformed},
		{name: "ct newline", mutate: set("ct", b64(16)[:10]+"\n"+b64(16)[10:]), want: ErrMalformed},
		{name: "ct non-canonical bits", mutate: set("ct", b64(16)[:21]+"B"), want: ErrMalformed},
		{name: "ct over limit", mutate: set("ct", b64(MaxPlaintext+tagSize+1)), want: ErrTooLarge},
		{name: "encoded over limit", mutate: set("ct", b64(MaxEncoded)), want: ErrTooLarge},
		{name: "whitespace over limit", raw: string(base) + strings.Repeat(" ", MaxEncoded), want: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.raw)
			if tt.mutate != nil {
				in = mutateJSON(t, base, tt.mutate)
			}
			e, err := Parse(in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse error = %v, want %v", err, tt.want)
			}
			if e != nil {
				t.Error("Parse returned an envelope with an error")
			}
		})
	}
}

func TestParseUnmarshalJSON(t *testing.T) {
	b := sealTest(t, []byte("embedded"))
	var frame struct {
		Type string    `json:"type"`
		Env  *Envelope `json:"env"`
	}
	in := []byte(`{"type":"msg","env":` + string(b) + `}`)
	if err := json.Unmarshal(in, &frame); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if frame.Env.Header() != testHeader {
		t.Errorf("Header = %+v", frame.Env.Header())
	}
	out, err := json.Marshal(frame)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in) {
		t.Errorf("Marshal = %s, want %s", out, in)
	}
	var e Envelope
	if err := json.Unmarshal([]byte(`{"v":1}`), &e); !errors.Is(err, ErrMalformed) {
		t.Errorf("Unmarshal(bad) = %v, want ErrMalformed", err)
	}
	if err := e.UnmarshalJSON([]byte("null")); !errors.Is(err, ErrMalformed) {
		t.Errorf("UnmarshalJSON(null) = %v, want ErrMalformed", err)
	}
}
