package app_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
	"github.com/mayfly-im/mayfly/cmd/mayflyd/app/apptest"
	"github.com/mayfly-im/mayfly/schema"
)

// scrape reads /metrics and returns each sample ("name{labels}") with its
// value, and the raw text.
func scrape(t *testing.T, addr string) (map[string]float64, string) {
	t.Helper()
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d, %v", resp.StatusCode, err)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return samples, string(body)
}

// TestAppMetricsMove sends, delivers, replays, burns and recalls messages
// over the NATS-native API and a WebSocket, then checks that every family
// docs/operations.md lists moved, and that no label carries a user id.
func TestAppMetricsMove(t *testing.T) {
	t.Parallel()
	a := apptest.Start(t, app.Config{})
	ac := apptest.NewUser(t, a.HTTPAddr(), "alice")
	bc := apptest.NewUser(t, a.HTTPAddr(), "bob")
	cc := apptest.NewUser(t, a.HTTPAddr(), "carol")
	alice, bob := newNative(t, a, ac), newNative(t, a, bc)
	alice.must("friends.request", map[string]string{"handle": "bob"}, nil)
	bob.must("friends.accept", map[string]string{"handle": "alice"}, nil)
	dialWS(t, bc) // bob's live deliveries go to this WebSocket
	before, _ := scrape(t, a.HTTPAddr())

	var sent schema.SentFrame
	alice.must("send", map[string]any{"to": bc.Session.UserID, "envelope": alice.seal(bc, "m1", "hello")}, &sent)
	if code := alice.call("send", map[string]any{"to": cc.Session.UserID, "envelope": json.RawMessage(ac.SealDirect(cc, "m2", []byte(`{"text":"hi"}`)))}, nil); code != "not_friend" {
		t.Fatalf("send to a stranger: %q, want not_friend", code)
	}
	bob.must("sync", map[string]any{"cursor": 0}, nil)
	bob.must("read", map[string]any{"seq": sent.PeerSeq}, nil)
	alice.must("send", map[string]any{"to": bc.Session.UserID, "envelope": alice.seal(bc, "m3", "oops")}, &sent)
	alice.must("recall", map[string]any{"seq": sent.Seq}, nil)
	if code := bob.call("read", map[string]any{"seq": sent.PeerSeq}, nil); code != "unknown_message" {
		t.Fatalf("read of a recalled message: %q, want unknown_message", code)
	}
	bob.must("presence.online", nil, nil)

	moved := []string{
		`mayfly_messages_sent_total`,
		`mayfly_messages_refused_total{code="not_friend"}`,
		`mayfly_message_send_seconds_count`,
		`mayfly_messages_delivered_total`,
		`mayfly_message_deliver_seconds_count`,
		`mayfly_messages_burned_total{op="read"}`,
		`mayfly_messages_burned_total{op="recall"}`,
		`mayfly_message_burn_failures_total{code="unknown_message",op="read"}`,
		`mayfly_message_burn_seconds_count{op="read"}`,
		`mayfly_message_burn_seconds_count{op="recall"}`,
		`mayfly_messages_replayed_total`,
		`mayfly_replay_messages_count`,
		`mayfly_native_requests_total{code="ok",op="send"}`,
		`mayfly_native_requests_total{code="not_friend",op="send"}`,
		`mayfly_native_requests_total{code="ok",op="presence.online"}`,
		`mayfly_native_request_seconds_count{op="read"}`,
		`mayfly_presence_writes_total`,
		`mayfly_jetstream_api_requests_total`,
		`mayfly_postgres_pool_acquires_total`,
	}
	var after map[string]float64
	var text string
	deadline := time.Now().Add(10 * time.Second) // live delivery is asynchronous
	for {
		after, text = scrape(t, a.HTTPAddr())
		if after[`mayfly_message_deliver_seconds_count`] > before[`mayfly_message_deliver_seconds_count`] || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, name := range moved {
		if after[name] <= before[name] {
			t.Errorf("%s: %v before the traffic, %v after; want it to grow", name, before[name], after[name])
		}
	}
	for name, want := range map[string]float64{
		`mayfly_postgres_up`:                                    1,
		`mayfly_jetstream_up`:                                   1,
		`mayfly_nats_client_connections{transport="nats"}`:      2,
		`mayfly_nats_client_connections{transport="websocket"}`: 0,
		`mayfly_ws_connections`:                                 1,
	} {
		if got, ok := after[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	for _, name := range []string{`mayfly_postgres_pool_max_connections`, `mayfly_mailbox_messages`, `mayfly_jetstream_api_errors_total`} {
		if _, ok := after[name]; !ok {
			t.Errorf("%s missing from /metrics", name)
		}
	}
	for _, c := range []*apptest.Client{ac, bc, cc} {
		if strings.Contains(text, c.Session.UserID) || strings.Contains(text, c.Session.DeviceID) {
			t.Errorf("/metrics names %s's user or device id", c.User.Handle)
		}
	}
}
