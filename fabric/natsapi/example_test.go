package natsapi_test

import (
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/schema/envelope"
)

// ExampleNativeClient is a whole NATS-native client in plain nats.go: it
// connects with its Mayfly access token, listens for live messages and
// events, replays its mailbox, sends an end-to-end encrypted message to a
// friend and burns what it read. (It needs a running mayflyd, so it has no
// output to check; TestNativeEverything runs the same calls.)
func Example_nativeClient() {
	var (
		accessToken = "<access token from POST /v1/login or `mayfly token`>"
		userID      = "<your user id>"
		deviceID    = "<this device's id>"
		myKeys      envelope.Keys       // this user's identity keys
		bob         envelope.PublicKeys // a friend's keys, from keys.lookup
		bobID       = "<bob's user id>"
	)
	nc, err := nats.Connect("nats://127.0.0.1:4222",
		nats.Token(accessToken),
		nats.CustomInboxPrefix("_INBOX_"+userID))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	svc := func(op string) string { return "svc." + userID + "." + deviceID + "." + op }
	call := func(op string, req, out any) error {
		body, _ := json.Marshal(req)
		msg, err := nc.Request(svc(op), body, 5*time.Second)
		if err != nil {
			return err
		}
		if code := msg.Header.Get("Nats-Service-Error"); code != "" {
			return fmt.Errorf("%s: %s", op, code)
		}
		return json.Unmarshal(msg.Data, out)
	}

	// Live first, then replay: nothing falls in between.
	nc.Subscribe("dlv.mbx.*."+userID, func(m *nats.Msg) {
		fmt.Println("live message", m.Header.Get("Nats-Sequence"), "from", m.Header.Get("Mayfly-From"))
	})
	nc.Subscribe("evt."+userID, func(m *nats.Msg) { fmt.Println("event", string(m.Data)) })
	var synced struct {
		Messages []struct {
			Seq      uint64          `json:"seq"`
			Self     bool            `json:"self"`
			Envelope json.RawMessage `json:"envelope"`
		} `json:"messages"`
		LastSeq uint64 `json:"last_seq"`
	}
	if err := call("sync", map[string]any{"cursor": 0}, &synced); err != nil {
		log.Fatal(err)
	}
	for _, m := range synced.Messages {
		if !m.Self {
			// Open with envelope.Open(m.Envelope, myKeys, senderSignKey), show it, then burn it:
			call("read", map[string]any{"seq": m.Seq}, &struct{}{})
		}
	}

	env, err := envelope.Seal(envelope.Header{From: userID, To: bobID, MsgID: "m1", SentAt: time.Now()},
		myKeys, bob, []byte(`{"text":"hello bob"}`))
	if err != nil {
		log.Fatal(err)
	}
	var sent struct{ Seq, PeerSeq uint64 }
	if err := call("send", map[string]any{"to": bobID, "envelope": json.RawMessage(env)}, &sent); err != nil {
		log.Fatal(err) // e.g. "send: not_friend"
	}
	fmt.Println("stored as", sent.Seq)
}
