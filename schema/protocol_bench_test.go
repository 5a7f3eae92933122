package schema

import (
	"strings"
	"testing"
	"time"
)

// benchEnvelope has the shape and size (718 bytes) of a sealed envelope of
// a 100-byte payload, the size mayfly-bench sends.
var benchEnvelope = `{"v":1,"from":"` + testUser + `","to":"` + testUser + `","mid":"bench-000001","ts":1700000000123,"wraps":[` +
	`{"kid":"` + b64(11) + `","epk":"` + b64(43) + `","n":"` + b64(16) + `","k":"` + b64(64) + `"},` +
	`{"kid":"` + b64(11) + `","epk":"` + b64(43) + `","n":"` + b64(16) + `","k":"` + b64(64) + `"}],` +
	`"n":"` + b64(16) + `","ct":"` + b64(155) + `","sig":"` + b64(86) + `"}`

func b64(n int) string { return strings.Repeat("Ab-_", n/4+1)[:n] }

// BenchmarkSchemaDecodeSend decodes a send frame, the first thing the
// server does with every message.
func BenchmarkSchemaDecodeSend(b *testing.B) {
	frame := []byte(`{"type":"send","id":"s-12345","to":"` + testUser + `","envelope":` + benchEnvelope + `}`)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, e := DecodeRequest(frame); e != nil {
			b.Fatal(e)
		}
	}
}

// BenchmarkSchemaDecodeRead decodes a read frame (a burn).
func BenchmarkSchemaDecodeRead(b *testing.B) {
	frame := []byte(`{"type":"read","id":"r-12345","seq":123456}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, e := DecodeRequest(frame); e != nil {
			b.Fatal(e)
		}
	}
}

// BenchmarkSchemaEncodeMsg encodes a msg frame, once per delivered copy.
func BenchmarkSchemaEncodeMsg(b *testing.B) {
	f := MsgFrame{
		Type: FrameMsg, Seq: 123456, PrevSeq: 123455, From: testUser, To: testUser, MsgID: "bench-000001",
		SentAt: time.Date(2025, 1, 2, 3, 4, 5, 678901234, time.UTC), Envelope: []byte(benchEnvelope),
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeFrame(f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSchemaEncodeSent encodes the sent answer of a send.
func BenchmarkSchemaEncodeSent(b *testing.B) {
	f := SentFrame{Type: FrameSent, ID: "s-12345", Seq: 123456, PeerSeq: 654321}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeFrame(f); err != nil {
			b.Fatal(err)
		}
	}
}
