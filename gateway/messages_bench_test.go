package gateway_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
)

// BenchmarkGatewayDeliver measures live delivery over real WebSockets to a
// real in-process gateway: one device of alice sends b.N sealed messages,
// one at a time, to bob's connected, synced device, which reads (burns)
// each one off the clock, so mailboxes never fill. Reported: the median and
// p99 time from writing the send frame to reading the msg frame on bob's
// device (deliver-*), and to reading the sent answer on alice's device
// (ack-*). Sealing happens before the clock starts. Run:
//
//	go test -run '^$' -bench BenchmarkGatewayDeliver -benchtime 2000x ./gateway/
func BenchmarkGatewayDeliver(b *testing.B) {
	// No rate limits: this measures latency, not the limits.
	e := startMsgEnv(b, gatewaytest.Config{SendRate: -1, WSFrameRate: 1e6, WSFrameBurst: 1e6})
	alice, bob := e.friends("alice", "bob")
	a := dialWS(b, e, alice)
	rx := dialRaw(b, e, bob, nil)
	if err := rx.WriteMessage(websocket.TextMessage, []byte(`{"type":"sync","id":"s","cursor":0}`)); err != nil {
		b.Fatal(err)
	}
	delivered := make(chan benchFrame, 1)
	go readBenchFrames(rx, delivered)
	<-delivered // the synced frame

	envs := make([][]byte, b.N)
	for i := range envs {
		envs[i] = a.seal(bob, fmt.Sprintf("bench-%d", i), "a short message of the usual size")
	}
	deliver := make([]time.Duration, 0, b.N)
	ack := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i, env := range envs {
		start := time.Now()
		id := a.sendEnv(bob, env)
		var got benchFrame
		select {
		case got = <-delivered:
		case <-time.After(5 * time.Second):
			b.Fatalf("message %d not delivered within 5s; sender saw %s", i, frameJSON(a.answer(id)))
		}
		deliver = append(deliver, time.Since(start))
		if got.MsgID != fmt.Sprintf("bench-%d", i) {
			b.Fatalf("delivered %+v, want bench-%d", got, i)
		}
		mustAnswer[*schema.SentFrame](a, id)
		ack = append(ack, time.Since(start))
		b.StopTimer()
		burn(b, rx, got.Seq, delivered)
		b.StartTimer()
	}
	b.StopTimer()
	report(b, "deliver", deliver)
	report(b, "ack", ack)
}

// benchFrame is what the benchmark needs of a server frame.
type benchFrame struct {
	Type  string `json:"type"`
	MsgID string `json:"msg_id"`
	Seq   uint64 `json:"seq"`
}

// readBenchFrames reads frames from conn and passes on msg, synced and ok
// frames until the connection ends.
func readBenchFrames(conn *websocket.Conn, out chan<- benchFrame) {
	defer close(out)
	for {
		_, b, err := conn.ReadMessage()
		if err != nil {
			return
		}
		var f benchFrame
		if json.Unmarshal(b, &f) != nil {
			continue
		}
		switch f.Type {
		case schema.FrameMsg, schema.FrameSynced, schema.FrameOK:
			out <- f
		}
	}
}

// burn reads message seq on conn and waits for the ok.
func burn(b *testing.B, conn *websocket.Conn, seq uint64, in <-chan benchFrame) {
	if err := conn.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"type":"read","id":"r","seq":%d}`, seq)); err != nil {
		b.Fatal(err)
	}
	select {
	case f := <-in:
		if f.Type != schema.FrameOK {
			b.Fatalf("read %d answered %+v", seq, f)
		}
	case <-time.After(5 * time.Second):
		b.Fatalf("read %d not answered within 5s", seq)
	}
}

// report adds the median and p99 of ds, in milliseconds, to b's results.
func report(b *testing.B, name string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.5), name+"-p50-ms")
	b.ReportMetric(at(0.99), name+"-p99-ms")
	b.ReportMetric(float64(ds[len(ds)-1].Microseconds())/1000, name+"-max-ms")
}
