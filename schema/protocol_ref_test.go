package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

// The json.Decoder frame reader DecodeRequest used before its hand-written
// one (protocol_scan.go), kept as the reference the new reader must match:
// the same frames accepted, decoded to the same requests, and the same
// problem reported for every other frame.

func decodeRequestRef(b []byte) (req Request, id string, e *Error) {
	fields, err := readObjectRef(b)
	if err != nil {
		return nil, "", badFrame(err.Error())
	}
	id = readIDRef(fields)
	var typ string
	if raw, ok := fields["type"]; !ok || json.Unmarshal(raw, &typ) != nil {
		return nil, id, badFrame(`member "type" must be a string`)
	}
	mk, ok := requestTypes[typ]
	if !ok {
		return nil, id, badFrame("unknown frame type")
	}
	req = mk()
	if err := checkMembersRef(fields, reflect.TypeOf(req).Elem()); err != nil {
		return nil, id, badFrame(err.Error())
	}
	if err := json.Unmarshal(b, req); err != nil {
		return nil, id, badFrame(jsonTypeProblemRef(err))
	}
	if e := req.validate(); e != nil {
		return nil, id, e
	}
	if f, ok := req.(*SendFrame); ok {
		var buf bytes.Buffer
		if json.Compact(&buf, f.Envelope) != nil {
			return nil, id, badFrame(`member "envelope" must be a JSON object`)
		}
		f.Envelope = buf.Bytes()
	}
	return req, req.RequestID(), nil
}

func readObjectRef(b []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errors.New("malformed JSON")
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, errors.New("malformed JSON")
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("duplicate member %.32q", name)
		}
		if bytes.Equal(raw, []byte("null")) {
			return nil, fmt.Errorf("member %.32q is null", name)
		}
		if len(m) == maxFields {
			return nil, errors.New("too many members")
		}
		m[name] = raw
	}
	if _, err := dec.Token(); err != nil {
		return nil, errors.New("malformed JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return m, nil
}

func readIDRef(fields map[string]json.RawMessage) string {
	var id string
	if json.Unmarshal(fields["id"], &id) != nil || !validRequestID(id) {
		return ""
	}
	return id
}

func checkMembersRef(fields map[string]json.RawMessage, t reflect.Type) error {
	want := map[string]bool{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		want[name] = true
		if _, ok := fields[name]; !ok {
			return fmt.Errorf("missing member %q", name)
		}
	}
	for name := range fields {
		if !want[name] {
			return fmt.Errorf("unknown member %.32q", name)
		}
	}
	return nil
}

func jsonTypeProblemRef(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("member %q has the wrong type or range", te.Field)
	}
	return "malformed JSON"
}

// checkSameDecode fails t unless DecodeRequest and the reference agree on
// data. With several unknown members the reference names a random one, so
// only the kind of problem is compared then.
func checkSameDecode(t *testing.T, data []byte) {
	t.Helper()
	req, id, e := DecodeRequest(data)
	wantReq, wantID, wantE := decodeRequestRef(bytes.Clone(data))
	if id != wantID || !reflect.DeepEqual(req, wantReq) || (e == nil) != (wantE == nil) {
		t.Fatalf("DecodeRequest(%q) = %#v, %q, %v; reference %#v, %q, %v", data, req, id, e, wantReq, wantID, wantE)
	}
	if e == nil {
		return
	}
	const unknown = "bad frame: unknown member"
	if e.Code != wantE.Code || e.Message != wantE.Message &&
		!(strings.HasPrefix(e.Message, unknown) && strings.HasPrefix(wantE.Message, unknown)) {
		t.Fatalf("DecodeRequest(%q) = %v; reference %v", data, e, wantE)
	}
}

// refCases are frames on the edges of the JSON grammar and of the decoder's
// checks, for TestProtocolDecodeMatchesReference and as fuzz seeds.
var refCases = []string{
	``, ` `, `{`, `}`, `{}`, ` {} `, `{} {}`, `[]`, `null`, `"x"`, `1`, `tru`, "\ufeff{}",
	`{"type":"ping","id":"1"}`, "\t{\r\n\"type\" :\"ping\" ,\n\"id\": \"1\" }\n",
	`{"type":"ping","id":"1",}`, `{,"type":"ping","id":"1"}`, `{"type":"ping" "id":"1"}`,
	`{"type":"ping","id":"1"]`, `{"type":"ping","id":"1"`, `{"type":"ping","id":"1"} x`,
	`{"type" "ping"}`, `{"type"::"ping"}`, `{type:"ping"}`, `{'type':'ping'}`, `{1:2}`,
	`{"type":"ping","id":nul}`, `{"type":"ping","id":nullx}`, `{"type":"ping","id":null,`,
	`{"type":"ping","id":truex}`, `{"type":"ping","id":1x}`, `{"type":"ping","id":"1"x}`,
	`{"type":"ping","id":"1","id":"1"`, `{"type":"ping","i\u0064":"1","id":"2"}`,
	`{"\u0074ype":"ping","id":"\u0031"}`, `{"type":"\u0070ing","id":"1"}`,
	`{"type":"ping","id":"1\ud800"}`, "{\"type\":\"ping\",\"id\":\"1\xff\"}",
	"{\"type\":\"ping\",\"\xff\":1,\"id\":\"1\"}", "{\"type\":\"ping\",\"id\":\"1\x01\"}",
	`{"type":"ping","id":"1\x"}`, `{"type":"ping","id":"1\u12"}`, `{"type":"ping","id":"1\u12G4"}`,
	`{"type":"ping","id":"1\`, `{"type":"ping","id":"1\u`, `{"type":"ping","id":"\/\b\f\n\r\t\"\\"}`,
	`{"type":"ping","id":5}`, `{"type":"ping","id":true}`, `{"type":"ping","id":[]}`, `{"type":"ping","id":{}}`,
	`{"type":5,"id":"1"}`, `{"type":["ping"],"id":"1"}`, `{"type":"PING","id":"1"}`,
	`{"type":"ping","id":"1","x":null}`, `{"type":"ping","id":"1","x":1,"y":2}`, `{"id":"1"}`,
	`{"type":"sync","id":"1","cursor":0}`, `{"type":"sync","id":"1","cursor":-0}`,
	`{"type":"sync","id":"1","cursor":00}`, `{"type":"sync","id":"1","cursor":01}`,
	`{"type":"sync","id":"1","cursor":1.}`, `{"type":"sync","id":"1","cursor":1.0}`,
	`{"type":"sync","id":"1","cursor":1e3}`, `{"type":"sync","id":"1","cursor":1E+3}`,
	`{"type":"sync","id":"1","cursor":1e}`, `{"type":"sync","id":"1","cursor":-}`, `{"type":"sync","id":"1","cursor":+1}`,
	`{"type":"sync","id":"1","cursor":18446744073709551615}`, `{"type":"sync","id":"1","cursor":18446744073709551616}`,
	`{"type":"sync","id":"1","cursor":9007199254740992}`, `{"type":"sync","id":"1","cursor":"1"}`,
	`{"type":"sync","id":5,"cursor":"1"}`, `{"type":"sync","cursor":"1","id":5}`,
	`{"type":"read","id":"1","seq":0}`, `{"type":"read","id":"1","seq":1,"seq":2}`,
	`{"type":"recall","id":"1","seq":[1]}`, `{"type":"unread","id":"1"}`, `{"type":"unread","id":"1","counts":{}}`,
	`{"type":"hello","id":"1"}`, `{"type":"send","id":"1","to":"` + testUser + `"}`,
	`{"type":"send","id":"1","to":"` + testUser + `","envelope":{}}`,
	`{"type":"send","id":"1","to":"` + testUser + `","envelope":{ "v" : 1 ,"a":[1, 2, "x y"]}}`,
	`{"type":"send","id":"1","to":"` + testUser + `","envelope":{"a":"<\u00e9>","b":[{},[],[[]],{"c":{}}]}}`,
	`{"type":"send","id":"1","to":"` + testUser + `","envelope":{"a":[1,]}}`,
	`{"type":"send","id":"1","to":"` + testUser + `","envelope":{"a" 1}}`,
	`{"type":"send","id":"1","to":"` + testUser + `","envelope":{"a":1,}}`,
	`{"type":"send","id":"1","to":"` + testUser + `","envelope":[{}]}`,
	`{"type":"send","id":"1","to":"` + testUser + `","envelope":"{}"}`,
	`{"type":"send","id":"1","to":"bob","envelope":{}}`, `{"type":"send","id":"1","to":5,"envelope":{}}`,
	`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16}`,
	`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17}`,
	`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"a":17}`,
	`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":null}`,
}

// deepFrames nests a member value around encoding/json's depth limit.
func deepFrames() []string {
	var out []string
	for _, d := range []int{maxNestingDepth - 1, maxNestingDepth, maxNestingDepth + 1} {
		arr := strings.Repeat("[", d) + strings.Repeat("]", d)
		obj := strings.Repeat(`{"a":`, d-1) + "{}" + strings.Repeat("}", d-1)
		out = append(out,
			`{"type":"send","id":"1","to":"`+testUser+`","envelope":`+obj+`}`,
			`{"type":"ping","id":`+arr+`}`,
			`{"type":"ping","id":"1","x":`+arr+`}`,
		)
	}
	return out
}

func TestProtocolDecodeMatchesReference(t *testing.T) {
	cases := append(append(append([]string{}, refCases...), validRequests...), deepFrames()...)
	for _, c := range cases {
		checkSameDecode(t, []byte(c))
		// Every prefix: truncated frames end inside every construct.
		for i := range min(len(c), 300) {
			checkSameDecode(t, []byte(c[:i]))
		}
	}
}

// FuzzFrameDecodeReference checks that DecodeRequest agrees with the
// json.Decoder reader it replaced on any input.
func FuzzFrameDecodeReference(f *testing.F) {
	for _, s := range append(append([]string{}, refCases...), validRequests...) {
		f.Add([]byte(s))
	}
	f.Fuzz(checkSameDecode)
}
