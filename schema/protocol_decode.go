package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// Request is a decoded client frame: *SendFrame, *SyncFrame, *ReadFrame,
// *RecallFrame, *UnreadFrame or *PingFrame.
type Request interface {
	// RequestType is the frame type, one of the client Frame* constants.
	RequestType() string
	// RequestID is the client's request id, to echo in the answer.
	RequestID() string
	validate() *Error
}

// RequestType returns "send".
func (f *SendFrame) RequestType() string { return f.Type }

// RequestType returns "sync".
func (f *SyncFrame) RequestType() string { return f.Type }

// RequestType returns "read".
func (f *ReadFrame) RequestType() string { return f.Type }

// RequestType returns "recall".
func (f *RecallFrame) RequestType() string { return f.Type }

// RequestType returns "unread".
func (f *UnreadFrame) RequestType() string { return f.Type }

// RequestType returns "ping".
func (f *PingFrame) RequestType() string { return f.Type }

// RequestID returns the request id.
func (f *SendFrame) RequestID() string { return f.ID }

// RequestID returns the request id.
func (f *SyncFrame) RequestID() string { return f.ID }

// RequestID returns the request id.
func (f *ReadFrame) RequestID() string { return f.ID }

// RequestID returns the request id.
func (f *RecallFrame) RequestID() string { return f.ID }

// RequestID returns the request id.
func (f *UnreadFrame) RequestID() string { return f.ID }

// RequestID returns the request id.
func (f *PingFrame) RequestID() string { return f.ID }

// requestTypes maps each client frame type to a constructor.
var requestTypes = map[string]func() Request{
	FrameSend:   func() Request { return new(SendFrame) },
	FrameSync:   func() Request { return new(SyncFrame) },
	FrameRead:   func() Request { return new(ReadFrame) },
	FrameRecall: func() Request { return new(RecallFrame) },
	FrameUnread: func() Request { return new(UnreadFrame) },
	FramePing:   func() Request { return new(PingFrame) },
}

// serverTypes maps each server frame type to a constructor.
var serverTypes = map[string]func() any{
	FrameHello:  func() any { return new(HelloFrame) },
	FrameSent:   func() any { return new(SentFrame) },
	FrameMsg:    func() any { return new(MsgFrame) },
	FrameSynced: func() any { return new(SyncedFrame) },
	FrameOK:     func() any { return new(OKFrame) },
	FrameUnread: func() any { return new(UnreadCountsFrame) },
	FrameEvent:  func() any { return new(EventFrame) },
	FrameError:  func() any { return new(ErrorFrame) },
	FramePong:   func() any { return new(PongFrame) },
}

// maxFields bounds the members of a frame object the decoder looks at.
const maxFields = 16

// DecodeRequest decodes one client frame strictly, in two steps: it reads the
// object's members (rejecting anything but one JSON object, duplicate
// members and trailing data), picks the frame type from "type", then checks
// the member set is exactly that type's (every member required, none
// unknown, none null) and decodes into the typed frame, checking types and
// value ranges.
//
// On failure req is nil and e is a CodeBadRequest error (CodeInvalidCursor
// for a sequence or cursor out of range) whose message names the problem
// without echoing input; id is the frame's request id when it could be read,
// for the error answer. DecodeRequest never panics.
func DecodeRequest(b []byte) (req Request, id string, e *Error) {
	fields, err := readObject(b)
	if err != nil {
		return nil, "", badFrame(err.Error())
	}
	id = readID(fields)
	var typ string
	if raw, ok := fields["type"]; !ok || json.Unmarshal(raw, &typ) != nil {
		return nil, id, badFrame(`member "type" must be a string`)
	}
	mk, ok := requestTypes[typ]
	if !ok {
		return nil, id, badFrame("unknown frame type")
	}
	req = mk()
	if err := checkMembers(fields, reflect.TypeOf(req).Elem()); err != nil {
		return nil, id, badFrame(err.Error())
	}
	if err := json.Unmarshal(b, req); err != nil {
		return nil, id, badFrame(jsonTypeProblem(err))
	}
	if e := req.validate(); e != nil {
		return nil, id, e
	}
	return req, req.RequestID(), nil
}

// DecodeServerFrame decodes a frame sent by the server, for clients. It
// returns a pointer to the typed frame (*HelloFrame, *MsgFrame, ...). Unlike
// DecodeRequest it ignores unknown members, so clients keep working when the
// server adds optional fields; an unknown frame type is an error the client
// should skip.
func DecodeServerFrame(b []byte) (any, error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("decode server frame: %w", err)
	}
	mk, ok := serverTypes[head.Type]
	if !ok {
		return nil, fmt.Errorf("decode server frame: unknown type %.32q", head.Type)
	}
	f := mk()
	if err := json.Unmarshal(b, f); err != nil {
		return nil, fmt.Errorf("decode %s frame: %w", head.Type, err)
	}
	return f, nil
}

// EncodeFrame returns the JSON encoding of a frame (any *XxxFrame or XxxFrame
// value), without HTML escaping and without a trailing newline.
func EncodeFrame(f any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("encode frame: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func badFrame(msg string) *Error { return Errorf(CodeBadRequest, "bad frame: "+msg) }

// readObject returns the members of the single JSON object b. Values are
// raw; null values, duplicate names, more than maxFields members and
// anything after the object are errors.
func readObject(b []byte) (map[string]json.RawMessage, error) {
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

// readID returns the frame's "id" if it is a valid request id, else "".
func readID(fields map[string]json.RawMessage) string {
	var id string
	if json.Unmarshal(fields["id"], &id) != nil || !validRequestID(id) {
		return ""
	}
	return id
}

// checkMembers reports an error unless fields has exactly the JSON members
// of struct type t.
func checkMembers(fields map[string]json.RawMessage, t reflect.Type) error {
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

// jsonTypeProblem describes a decoding error without echoing input.
func jsonTypeProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("member %q has the wrong type or range", te.Field)
	}
	return "malformed JSON"
}

// validRequestID reports whether id is 1 to MaxRequestIDLen characters of
// [A-Za-z0-9_.:-].
func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

func checkID(id string) *Error {
	if !validRequestID(id) {
		return badFrame(fmt.Sprintf(`member "id" must be 1 to %d characters of [A-Za-z0-9_.:-]`, MaxRequestIDLen))
	}
	return nil
}

func checkSeq(name string, seq uint64, min uint64) *Error {
	if seq < min || seq > MaxSeq {
		return Errorf(CodeInvalidCursor, fmt.Sprintf("%s must be between %d and 2^53-1", name, min))
	}
	return nil
}

func (f *SendFrame) validate() *Error {
	if e := checkID(f.ID); e != nil {
		return e
	}
	if !ValidUserID(f.To) {
		return badFrame(`member "to" is not a user id`)
	}
	var buf bytes.Buffer
	if len(f.Envelope) == 0 || f.Envelope[0] != '{' || json.Compact(&buf, f.Envelope) != nil {
		return badFrame(`member "envelope" must be a JSON object`)
	}
	f.Envelope = buf.Bytes()
	return nil
}

func (f *SyncFrame) validate() *Error {
	if e := checkID(f.ID); e != nil {
		return e
	}
	return checkSeq("cursor", f.Cursor, 0)
}

func (f *ReadFrame) validate() *Error {
	if e := checkID(f.ID); e != nil {
		return e
	}
	return checkSeq("seq", f.Seq, 1)
}

func (f *RecallFrame) validate() *Error {
	if e := checkID(f.ID); e != nil {
		return e
	}
	return checkSeq("seq", f.Seq, 1)
}

func (f *UnreadFrame) validate() *Error { return checkID(f.ID) }
func (f *PingFrame) validate() *Error   { return checkID(f.ID) }
