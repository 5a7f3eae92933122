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

// native is a NATS-native sender: it logs in to the NATS servers of cities
// c and b (never a) with its access token through the auth callout, and
// sends with the send operation, repeating a failed send with the same
// envelope (same message id) for up to 25 seconds, like the Go client.
type native struct {
	mu    sync.Mutex
	acked []string // message ids
	fails int
	err   error  // why it could not run at all
	last  string // the last failed attempt's error
}

// nativeURL is city c's NATS URL, then b's, without credentials.
func (d *deployment) nativeURL() string {
	var out []string
	for _, s := range []string{"c", "b"} {
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
	subj := "svc." + me.UserID + "." + me.DeviceID + ".send"
	for i := 0; ctx.Err() == nil; i++ {
		mid := schema.NewID('m')
		env, err := envelope.Seal(envelope.Header{From: me.UserID, To: p.recipient.Identity().UserID, MsgID: mid, SentAt: time.Now()},
			p.sender.Keys(), p.recipient.Keys().Public(), []byte(fmt.Sprintf(`{"text":"native %d"}`, i)))
		if err != nil {
			n.setErr(err)
			return
		}
		body, _ := json.Marshal(map[string]any{"to": p.recipient.Identity().UserID, "envelope": json.RawMessage(env)})
		ok := n.sendRetrying(ctx, nc, subj, body)
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

// sendRetrying sends body until it is acknowledged or 25 seconds passed.
func (n *native) sendRetrying(ctx context.Context, nc *nats.Conn, subj string, body []byte) bool {
	until := time.Now().Add(25 * time.Second)
	for time.Now().Before(until) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		m, err := nc.RequestWithContext(rctx, subj, body)
		cancel()
		if err == nil && m.Header.Get("Nats-Service-Error") == "" {
			return true
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
	return false
}

func (n *native) setErr(err error) { n.mu.Lock(); n.err = err; n.mu.Unlock() }
