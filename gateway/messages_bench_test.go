package gateway_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
	"github.com/mayfly-im/mayfly/schema"
)

// BenchmarkGatewayDeliver measures live delivery over real WebSockets to a
// real in-process mayflyd: one device of alice sends b.N sealed messages,
// one at a time, to bob's connected, synced device. Reported: the median
// and p99 time from writing the send frame to reading the msg frame on
// bob's device (deliver-*), and to reading the sent answer on alice's
// device (ack-*). Sealing happens before the clock starts. Run:
//
//	go test -run '^$' -bench BenchmarkGatewayDeliver -benchtime 2000x ./gateway/
func BenchmarkGatewayDeliver(b *testing.B) {
	e := startMsgEnv(b, app.Config{SendRate: -1})
	alice, bob := e.friends("alice", "bob")
	a := dialWS(b, e, alice)
	rx := dialRaw(b, e, bob, nil)
	if err := rx.WriteMessage(websocket.TextMessage, []byte(`{"type":"sync","id":"s","cursor":0}`)); err != nil {
		b.Fatal(err)
	}
	delivered := make(chan string, 1)
	go readMsgIDs(rx, delivered)
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
		if got := <-delivered; got != fmt.Sprintf("bench-%d", i) {
			b.Fatalf("delivered %s, want bench-%d", got, i)
		}
		deliver = append(deliver, time.Since(start))
		mustAnswer[*schema.SentFrame](a, id)
		ack = append(ack, time.Since(start))
	}
	b.StopTimer()
	report(b, "deliver", deliver)
	report(b, "ack", ack)
}

// readMsgIDs reads frames from conn and sends the msg_id of every msg frame
// (and "synced" for a synced frame) on out until the connection ends.
func readMsgIDs(conn *websocket.Conn, out chan<- string) {
	for {
		_, b, err := conn.ReadMessage()
		if err != nil {
			close(out)
			return
		}
		var f struct {
			Type  string `json:"type"`
			MsgID string `json:"msg_id"`
		}
		if json.Unmarshal(b, &f) != nil {
			continue
		}
		switch f.Type {
		case schema.FrameMsg:
			out <- f.MsgID
		case schema.FrameSynced:
			out <- "synced"
		}
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
