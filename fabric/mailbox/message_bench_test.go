package mailbox

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// BenchmarkMailboxParseDelivery parses a republished message as the
// gateway's dispatcher does for every live delivery.
func BenchmarkMailboxParseDelivery(b *testing.B) {
	const owner, peer = "uaaaaaaaaaaaaaaaaaaaaaaaaaa", "ubbbbbbbbbbbbbbbbbbbbbbbbbb"
	m := &nats.Msg{Subject: "dlv.mbx.3." + owner, Header: nats.Header{}, Data: []byte(`{"v":1,` + strings.Repeat("x", 700) + `}`)}
	m.Header.Set("Nats-Stream", "MBX_3")
	m.Header.Set("Nats-Subject", "mbx.3."+owner)
	m.Header.Set("Nats-Sequence", "123456")
	m.Header.Set("Nats-Time-Stamp", time.Now().UTC().Format(time.RFC3339Nano))
	m.Header.Set("Nats-Last-Sequence", "123455")
	m.Header.Set(HeaderFrom, peer)
	m.Header.Set(HeaderTo, owner)
	m.Header.Set(HeaderMsgID, "bench-000001")
	m.Header.Set(HeaderSentAt, time.Now().UTC().Format(time.RFC3339Nano))
	m.Header.Set(HeaderPeerSeq, "654321")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseDelivery(m); err != nil {
			b.Fatal(err)
		}
	}
}
