package natsapi_test

import (
	"crypto/ed25519"
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
		deviceKey   ed25519.PrivateKey // this device's signing key (its id is envelope.DeviceID of its public half)
		bobIK       ed25519.PublicKey  // bob's identity key, pinned when you became friends (keys.lookup)
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
			// Open with envelope.ParseV2 and EnvelopeV2.Open (the sending device's key from the
			// sender's verified device list, keys.list; this device's prekeys), show it, then burn it:
			call("read", map[string]any{"seq": m.Seq}, &struct{}{})
		}
	}

	// Claim bob's prekeys (one one-time prekey per device of his), verify
	// them against his pinned identity key, seal for each of his devices.
	var bundle json.RawMessage
	if err := call("keys.claim", map[string]string{"user_id": bobID}, &bundle); err != nil {
		log.Fatal(err)
	}
	bu, err := envelope.ParseBundle(bundle)
	if err != nil {
		log.Fatal(err)
	}
	targets, err := bu.Verify(bobID, bobIK, "")
	if err != nil {
		log.Fatal("untrusted_keys: ", err) // bob's identity key changed: compare safety numbers first
	}
	env, err := envelope.SealV2(envelope.HeaderV2{From: userID, FromDevice: deviceID, To: bobID, MsgID: "m1", SentAt: time.Now()},
		deviceKey, targets, []byte(`{"text":"hello bob"}`))
	if err != nil {
		log.Fatal(err)
	}
	var sent struct{ Seq, PeerSeq uint64 }
	if err := call("send", map[string]any{"to": bobID, "envelope": json.RawMessage(env)}, &sent); err != nil {
		log.Fatal(err) // e.g. "send: not_friend"
	}
	fmt.Println("stored as", sent.Seq)
}
