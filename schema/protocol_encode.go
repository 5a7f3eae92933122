package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Hand-written encoders for the frames sent for every message (msg, sent,
// ok, and message events): the bytes encoding/json would write with HTML escaping off, without
// reflection, and with a msg frame's envelope appended as it is stored
// instead of re-validated. protocol_encode_test.go compares them with
// encoding/json.

// EncodedFrame is a frame encoded already. [EncodeFrame] returns it as it
// is, so a frame encoded once can be queued for many connections.
type EncodedFrame []byte

// AppendMsgFrame appends the encoding of f to dst, as [EncodeFrame] does.
// f.Envelope is appended as it is, not checked: it must be compact JSON, as
// the envelopes the relay stores are (canonical form). It fails only for a
// SentAt [time.Time.MarshalJSON] refuses or an empty, non-nil Envelope (a
// nil one is null), as encoding/json does.
func AppendMsgFrame(dst []byte, f *MsgFrame) ([]byte, error) {
	dst = append(dst, `{"type":`...)
	dst = appendString(dst, f.Type)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, f.Seq, 10)
	if f.PrevSeq != 0 {
		dst = append(dst, `,"prev_seq":`...)
		dst = strconv.AppendUint(dst, f.PrevSeq, 10)
	}
	return appendMsgTail(dst, f)
}

// appendMsgTail appends the members of a msg frame after seq and prev_seq,
// and the closing brace.
func appendMsgTail(dst []byte, f *MsgFrame) ([]byte, error) {
	if f.Envelope != nil && len(f.Envelope) == 0 {
		return nil, fmt.Errorf("encode msg frame: empty envelope")
	}
	dst = append(dst, `,"from":`...)
	dst = appendString(dst, f.From)
	dst = append(dst, `,"to":`...)
	dst = appendString(dst, f.To)
	dst = append(dst, `,"msg_id":`...)
	dst = appendString(dst, f.MsgID)
	dst = append(dst, `,"sent_at":`...)
	dst, err := appendTime(dst, f.SentAt)
	if err != nil {
		return nil, fmt.Errorf("encode msg frame: %w", err)
	}
	dst = append(dst, `,"self":`...)
	dst = strconv.AppendBool(dst, f.Self)
	dst = append(dst, `,"envelope":`...)
	if f.Envelope == nil {
		dst = append(dst, "null"...)
	}
	dst = append(dst, f.Envelope...)
	return append(dst, '}'), nil
}

// MsgFrames encodes the msg frames of one message for each connection that
// gets it: a user's devices get the same frame but for prev_seq, so
// everything else is encoded once. A MsgFrames is read-only after
// [NewMsgFrames] and safe for concurrent use.
type MsgFrames struct {
	head []byte // {"type":"msg","seq":N
	tail []byte // ,"from":... "envelope":{...}}
}

// NewMsgFrames encodes f, but for PrevSeq, which [MsgFrames.Frame] sets.
// Errors are those of [AppendMsgFrame].
func NewMsgFrames(f *MsgFrame) (*MsgFrames, error) {
	g := *f
	g.PrevSeq = 0
	b, err := AppendMsgFrame(nil, &g)
	if err != nil {
		return nil, err
	}
	split := len(`{"type":`) + len(appendString(nil, g.Type)) + len(`,"seq":`) + len(strconv.AppendUint(nil, g.Seq, 10))
	return &MsgFrames{head: b[:split:split], tail: b[split:]}, nil
}

// Frame returns the encoded frame with prevSeq, in a new slice the caller
// owns.
func (m *MsgFrames) Frame(prevSeq uint64) EncodedFrame {
	b := make([]byte, 0, len(m.head)+len(`,"prev_seq":`)+20+len(m.tail))
	b = append(b, m.head...)
	if prevSeq != 0 {
		b = append(b, `,"prev_seq":`...)
		b = strconv.AppendUint(b, prevSeq, 10)
	}
	return append(b, m.tail...)
}

// appendSentFrame appends the encoding of f to dst.
func appendSentFrame(dst []byte, f *SentFrame) []byte {
	dst = append(dst, `{"type":`...)
	dst = appendString(dst, f.Type)
	dst = append(dst, `,"id":`...)
	dst = appendString(dst, f.ID)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, f.Seq, 10)
	dst = append(dst, `,"peer_seq":`...)
	dst = strconv.AppendUint(dst, f.PeerSeq, 10)
	dst = append(dst, `,"duplicate":`...)
	dst = strconv.AppendBool(dst, f.Duplicate)
	return append(dst, '}')
}

// appendOKFrame appends the encoding of f to dst.
func appendOKFrame(dst []byte, f *OKFrame) []byte {
	dst = append(dst, `{"type":`...)
	dst = appendString(dst, f.Type)
	dst = append(dst, `,"id":`...)
	dst = appendString(dst, f.ID)
	return append(dst, '}')
}

// appendEventFrame appends the encoding of f to dst if its event has no
// Peer, Presence or Presences (message, device and block events); ok is
// false for any other event frame.
func appendEventFrame(dst []byte, f *EventFrame) (_ []byte, ok bool) {
	ev := f.Event
	if ev == nil || ev.Peer != nil || ev.Presence != nil || ev.Presences != nil {
		return nil, false
	}
	dst = append(dst, `{"type":`...)
	dst = appendString(dst, f.Type)
	dst = append(dst, `,"event":{"type":`...)
	dst = appendString(dst, string(ev.Type))
	if ev.DeviceID != "" {
		dst = append(dst, `,"device_id":`...)
		dst = appendString(dst, ev.DeviceID)
	}
	if ev.Generation != 0 {
		dst = append(dst, `,"generation":`...)
		dst = strconv.AppendInt(dst, int64(ev.Generation), 10)
	}
	if ev.ByMe {
		dst = append(dst, `,"by_me":true`...)
	}
	if ev.Seq != 0 {
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, ev.Seq, 10)
	}
	if ev.MsgID != "" {
		dst = append(dst, `,"msg_id":`...)
		dst = appendString(dst, ev.MsgID)
	}
	if ev.PeerID != "" {
		dst = append(dst, `,"peer_id":`...)
		dst = appendString(dst, ev.PeerID)
	}
	return append(dst, "}}"...), true
}

// encodeHot encodes the frames sent for every message by hand; ok is false
// for any other frame.
func encodeHot(f any) (b []byte, ok bool, err error) {
	switch f := f.(type) {
	case EncodedFrame:
		return f, true, nil
	case *EncodedFrame:
		return *f, true, nil
	case MsgFrame:
		b, err = AppendMsgFrame(make([]byte, 0, 256+len(f.Envelope)), &f)
		return b, true, err
	case *MsgFrame:
		b, err = AppendMsgFrame(make([]byte, 0, 256+len(f.Envelope)), f)
		return b, true, err
	case SentFrame:
		return appendSentFrame(make([]byte, 0, 96), &f), true, nil
	case *SentFrame:
		return appendSentFrame(make([]byte, 0, 96), f), true, nil
	case EventFrame:
		b, ok = appendEventFrame(make([]byte, 0, 128), &f)
		return b, ok, nil
	case *EventFrame:
		b, ok = appendEventFrame(make([]byte, 0, 128), f)
		return b, ok, nil
	case OKFrame:
		return appendOKFrame(make([]byte, 0, 32+len(f.ID)), &f), true, nil
	case *OKFrame:
		return appendOKFrame(make([]byte, 0, 32+len(f.ID)), f), true, nil
	}
	return nil, false, nil
}

// appendString appends s as a JSON string, as encoding/json does with HTML
// escaping off. Printable ASCII, all ids and types are, is copied.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return appendStringJSON(dst, s)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendStringJSON appends s encoded by encoding/json.
func appendStringJSON(dst []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	return append(dst, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

// appendTime appends t as [time.Time.MarshalJSON] does.
func appendTime(dst []byte, t time.Time) ([]byte, error) {
	if _, offset := t.Zone(); offset != 0 || t.Year() < 0 || t.Year() > 9999 {
		b, err := t.MarshalJSON()
		return append(dst, b...), err
	}
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"'), nil
}
