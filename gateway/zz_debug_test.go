package gateway_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
)

func dbgMetrics(t *testing.T, e *msgEnv) {
	resp, _ := http.Get("http://" + e.addr + "/metrics")
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "mayfly_ws") {
			t.Log(l)
		}
	}
}

func TestZZDebugSlow(t *testing.T) {
	e := startMsgEnv(t, app.Config{WSSendQueue: 2})
	alice, bob := e.friends("alice", "bob")
	a := dialWS(t, e, alice)
	slow := dialRaw(t, e, bob, func(d *websocket.Dialer) {
		d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetReadBuffer(4096)
			}
			return c, err
		}
	})
	slow.WriteMessage(websocket.TextMessage, []byte(`{"type":"sync","id":"s","cursor":0}`))
	payload := strings.Repeat("p", 60<<10)
	start := time.Now()
	for i := 0; i < 200; i++ {
		a.send(bob, payload)
		if i%50 == 0 {
			t.Logf("after %d sends %v", i, time.Since(start))
			dbgMetrics(t, e)
		}
	}
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		if strings.Contains(g, "mayfly/gateway.") {
			t.Log(g)
		}
	}
}
