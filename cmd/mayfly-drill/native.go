package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/fabric/callout"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// native is a NATS-native sender: it logs in to city a's NATS server (b's
// and c's to reconnect to) with its access token through the auth callout and,
// for each message, claims the recipient's prekey bundle (keys.claim),
// verifies it against the recipient's identity key and seals an envelope
// v2 for its devices as the sender's device (docs/nats-clients.md,
// Sending). It sends with the send operation, repeating a failed claim, and
// a failed send with the same envelope (same message id), for up to 25
// seconds each, like the Go client.
type native struct {
	mu    sync.Mutex
	acked []string // message ids
	fails int
	err   error  // why it could not run at all
	last  string // the last failed attempt's error
}

// nativeURL is city a's NATS URL, then b's and c's, without credentials.
func (d *deployment) nativeURL() string {
	var out []string
	for _, s := range siteNames {
		u := strings.Split(d.value(s, "MAYFLY_NATS_URL"), ",")[0]
		out = append(out, "nats://"+u[strings.LastIndex(u, "@")+1:])
	}
	return strings.Join(out, ",")
}

func (n *native) run(ctx context.Context, d *deployment, p pair) {
	tok, err := p.sender.Token(ctx)
	if err != nil {
		n.setErr(err)
		return
	}
	me := p.sender.Session()
	nc, err := nats.Connect(d.nativeURL(), nats.Token(tok), nats.DontRandomize(), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond), nats.CustomInboxPrefix(callout.InboxPrefix(me.UserID)))
	if err != nil {
		n.setErr(fmt.Errorf("native login: %w", err))
		return
	}
	defer nc.Close()
	svc := "svc." + me.UserID + "." + me.DeviceID + "."
	to := p.recipient.Identity().UserID
	claim, _ := json.Marshal(map[string]string{"user_id": to})
	for i := 0; ctx.Err() == nil; i++ {
		mid := schema.NewID('m')
		env, ok, err := n.seal(ctx, nc, svc+"keys.claim", claim, p, mid, []byte(fmt.Sprintf(`{"text":"native %d"}`, i)))
		if err != nil {
			n.setErr(err)
			return
		}
		if ok {
			body, _ := json.Marshal(map[string]any{"to": to, "envelope": json.RawMessage(env)})
			_, ok = n.requestRetrying(ctx, nc, svc+"send", body)
		}
		n.mu.Lock()
		if ok {
			n.acked = append(n.acked, mid)
		} else if ctx.Err() == nil {
			n.fails++
		}
		n.mu.Unlock()
		sleep(ctx, 200*time.Millisecond)
	}
}

// seal claims p's recipient's bundle on subj and seals text for its
// devices as p's sender's device, with message id mid. ok is false when the
// claim failed for 25 seconds; err reports a bundle that does not verify
// against the recipient's identity key, or a seal that failed.
func (n *native) seal(ctx context.Context, nc *nats.Conn, subj string, claim []byte, p pair, mid string, text []byte) (env []byte, ok bool, err error) {
	raw, ok := n.requestRetrying(ctx, nc, subj, claim)
	if !ok {
		return nil, false, nil
	}
	bu, err := envelope.ParseBundle(raw)
	if err != nil {
		return nil, false, fmt.Errorf("native claim: %w", err)
	}
	to := p.recipient.Identity().UserID
	targets, err := bu.Verify(to, p.recipient.IdentityKey(), "")
	if err != nil {
		return nil, false, fmt.Errorf("native claim: %w", err)
	}
	me := p.sender.Identity()
	h := envelope.HeaderV2{From: me.UserID, FromDevice: me.DeviceID, To: to, MsgID: mid, SentAt: time.Now()}
	env, err = envelope.SealV2(h, p.sender.Keys().Device, targets, text)
	if err != nil {
		return nil, false, fmt.Errorf("native seal: %w", err)
	}
	return env, true, nil
}

// requestRetrying sends the request body on subj until it is answered
// without a service error or 25 seconds passed, and returns the answer.
func (n *native) requestRetrying(ctx context.Context, nc *nats.Conn, subj string, body []byte) ([]byte, bool) {
	until := time.Now().Add(25 * time.Second)
	for time.Now().Before(until) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		m, err := nc.RequestWithContext(rctx, subj, body)
		cancel()
		if err == nil && m.Header.Get("Nats-Service-Error") == "" {
			return m.Data, true
		}
		n.mu.Lock()
		if err != nil {
			n.last = err.Error()
		} else {
			n.last = string(m.Data)
		}
		n.mu.Unlock()
		time.Sleep(250 * time.Millisecond)
	}
	return nil, false
}

func (n *native) setErr(err error) { n.mu.Lock(); n.err = err; n.mu.Unlock() }
