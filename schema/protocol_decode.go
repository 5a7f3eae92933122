package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Request is a decoded client frame: *SendFrame, *SyncFrame, *ReadFrame,
// *RecallFrame, *UnreadFrame or *PingFrame.
type Request interface {
	// RequestType is the frame type, one of the client Frame* constants.
	RequestType() string
	// RequestID is the client's request id, to echo in the answer.
	RequestID() string
	// setMember decodes member m into the frame; false means its value
	// has the wrong type or range.
	setMember(m member) bool
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

// RequestTypes returns every client frame type, sorted. A server answers
// each (gateway's frame table has a test that checks so).
func RequestTypes() []string {
	return slices.Sorted(maps.Keys(requestTypes))
}

// NewRequest returns a zero request of client frame type typ (a
// *SendFrame for "send", ...); ok is false for an unknown type.
func NewRequest(typ string) (req Request, ok bool) {
	mk, ok := requestTypes[typ]
	if !ok {
		return nil, false
	}
	return mk(), true
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
// for the error answer. DecodeRequest never panics. The request may alias b
// (a SendFrame's Envelope does when b holds it compact): b must not change
// while the request is in use.
func DecodeRequest(b []byte) (req Request, id string, e *Error) {
	var o object
	if err := readObject(b, &o); err != nil {
		return nil, "", badFrame(err.Error())
	}
	id = readID(&o)
	raw, _ := o.get("type")
	typ, ok := decodeString(raw)
	if !ok {
		return nil, id, badFrame(`member "type" must be a string`)
	}
	mk, ok := requestTypes[typ]
	if !ok {
		return nil, id, badFrame("unknown frame type")
	}
	req = mk()
	if err := checkMembers(&o, requestMembers[typ]); err != nil {
		return nil, id, badFrame(err.Error())
	}
	if o.deepest >= maxNestingDepth {
		// Inside the frame's object this value is one level too deep for
		// encoding/json, which the decoder used to report so.
		return nil, id, badFrame(errMalformed.Error())
	}
	for _, m := range o.members[:o.n] {
		if !req.setMember(m) {
			return nil, id, badFrame(fmt.Sprintf("member %q has the wrong type or range", m.name))
		}
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
// value), without HTML escaping and without a trailing newline. An
// [EncodedFrame] is returned as it is; msg, sent, ok and most event frames
// are encoded by hand (protocol_encode.go), a msg frame's envelope as it is.
func EncodeFrame(f any) ([]byte, error) {
	if b, ok, err := encodeHot(f); ok {
		if err != nil {
			return nil, fmt.Errorf("encode frame: %w", err)
		}
		return b, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("encode frame: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func badFrame(msg string) *Error { return Errorf(CodeBadRequest, "bad frame: "+msg) }

// readID returns the frame's "id" if it is a valid request id, else "".
func readID(o *object) string {
	raw, _ := o.get("id")
	if id, ok := decodeString(raw); ok && validRequestID(id) {
		return id
	}
	return ""
}

// requestMembers lists the JSON members of each client frame type, in
// struct order.
var requestMembers = func() map[string][]string {
	out := map[string][]string{}
	for typ, mk := range requestTypes {
		t := reflect.TypeOf(mk()).Elem()
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			out[typ] = append(out[typ], name)
		}
	}
	return out
}()

// checkMembers reports an error unless o has exactly the members names.
func checkMembers(o *object, names []string) error {
	for _, name := range names {
		if _, ok := o.get(name); !ok {
			return fmt.Errorf("missing member %q", name)
		}
	}
	for _, m := range o.members[:o.n] {
		if !slices.Contains(names, m.name) {
			return fmt.Errorf("unknown member %.32q", m.name)
		}
	}
	return nil
}

// compactJSON returns m's value without whitespace outside strings, as
// json.Compact does: the value itself when it has none.
func compactJSON(m member) []byte {
	if m.compact {
		return m.raw
	}
	var buf bytes.Buffer
	if json.Compact(&buf, m.raw) != nil {
		return m.raw // not reached: the frame was read as JSON
	}
	return buf.Bytes()
}

// decodeStringTo sets *dst to the string raw holds; it reports false if raw
// is not a JSON string.
func decodeStringTo(raw []byte, dst *string) bool {
	s, ok := decodeString(raw)
	*dst = s
	return ok
}

// decodeUintTo sets *dst to the unsigned integer raw holds, as
// encoding/json does: false for anything but a JSON number that is an
// integer in uint64's range.
func decodeUintTo(raw []byte, dst *uint64) bool {
	n, err := strconv.ParseUint(string(raw), 10, 64)
	*dst = n
	return err == nil
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

// CheckSeq returns nil when seq, the value of the member called name, is
// between min and MaxSeq, and an invalid_cursor error naming it otherwise.
// The WebSocket decoder and the services every transport calls
// (fabric/mailbox) check sequence numbers with it, so a WebSocket client and
// a NATS-native one get the same code for the same value.
func CheckSeq(name string, seq uint64, min uint64) *Error { return checkSeq(name, seq, min) }

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
	if len(f.Envelope) == 0 || f.Envelope[0] != '{' {
		return badFrame(`member "envelope" must be a JSON object`)
	}
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

func (f *SendFrame) setMember(m member) bool {
	switch m.name {
	case "type":
		return decodeStringTo(m.raw, &f.Type)
	case "id":
		return decodeStringTo(m.raw, &f.ID)
	case "to":
		return decodeStringTo(m.raw, &f.To)
	case "envelope":
		f.Envelope = compactJSON(m)
		return true
	}
	return false
}

func (f *SyncFrame) setMember(m member) bool {
	switch m.name {
	case "type":
		return decodeStringTo(m.raw, &f.Type)
	case "id":
		return decodeStringTo(m.raw, &f.ID)
	case "cursor":
		return decodeUintTo(m.raw, &f.Cursor)
	}
	return false
}

func (f *ReadFrame) setMember(m member) bool {
	switch m.name {
	case "type":
		return decodeStringTo(m.raw, &f.Type)
	case "id":
		return decodeStringTo(m.raw, &f.ID)
	case "seq":
		return decodeUintTo(m.raw, &f.Seq)
	}
	return false
}

func (f *RecallFrame) setMember(m member) bool {
	switch m.name {
	case "type":
		return decodeStringTo(m.raw, &f.Type)
	case "id":
		return decodeStringTo(m.raw, &f.ID)
	case "seq":
		return decodeUintTo(m.raw, &f.Seq)
	}
	return false
}

func (f *UnreadFrame) setMember(m member) bool {
	switch m.name {
	case "type":
		return decodeStringTo(m.raw, &f.Type)
	case "id":
		return decodeStringTo(m.raw, &f.ID)
	}
	return false
}

func (f *PingFrame) setMember(m member) bool {
	switch m.name {
	case "type":
		return decodeStringTo(m.raw, &f.Type)
	case "id":
		return decodeStringTo(m.raw, &f.ID)
	}
	return false
}
