package client_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/gateway/client"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// Forward secrecy under attack (issue 12): the operator keeps a message's
// stored envelope; once the recipient read it, no key left in any home of
// either user may open it.

// atkRunner runs a client and records what its Handler sees.
type atkRunner struct {
	t      *testing.T
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	msgs   []client.Message
	events []schema.Event
	change chan struct{} // closed and replaced on every record
}

func atkRun(t *testing.T, c *client.Client) *atkRunner {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &atkRunner{t: t, cancel: cancel, done: make(chan struct{}), change: make(chan struct{})}
	record := func(f func()) {
		r.mu.Lock()
		defer r.mu.Unlock()
		f()
		close(r.change)
		r.change = make(chan struct{})
	}
	go func() {
		defer close(r.done)
		c.Run(ctx, client.Handler{
			Message: func(_ context.Context, m client.Message) error {
				record(func() { r.msgs = append(r.msgs, m) })
				return nil
			},
			Event: func(_ context.Context, e schema.Event) {
				record(func() { r.events = append(r.events, e) })
			},
		})
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *atkRunner) stop() {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		r.t.Error("Run did not return after cancel")
	}
}

// wait polls cond under the lock until it holds or 20 seconds pass.
func (r *atkRunner) wait(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		r.mu.Lock()
		ok, ch := cond(), r.change
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			r.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (r *atkRunner) waitMsg(id string) client.Message {
	r.t.Helper()
	var m client.Message
	r.wait("message "+id, func() bool {
		for _, x := range r.msgs {
			if x.ID == id {
				m = x
				return true
			}
		}
		return false
	})
	return m
}

func (r *atkRunner) waitBurned(msgID string) {
	r.t.Helper()
	r.wait("burned "+msgID, func() bool {
		for _, e := range r.events {
			if e.Type == schema.EventBurned && e.MsgID == msgID {
				return true
			}
		}
		return false
	})
}

// storedEnvelope fetches message msgID's envelope from c's mailbox over
// NATS, as an operator recording what the server stores would have it.
func (s *atkServer) storedEnvelope(ctx context.Context, c *client.Client, msgID string) []byte {
	s.t.Helper()
	tok, err := c.Token(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	id := c.Identity()
	nc, err := nats.Connect(s.srv.NATSURL(), nats.Token(tok), nats.CustomInboxPrefix("_INBOX_"+id.UserID))
	if err != nil {
		s.t.Fatal(err)
	}
	defer nc.Close()
	m, err := nc.RequestWithContext(ctx, "svc."+id.UserID+"."+id.DeviceID+".sync", []byte(`{"cursor":0,"max":100}`))
	if err != nil {
		s.t.Fatal(err)
	}
	var out struct {
		Messages []schema.MsgFrame `json:"messages"`
	}
	if err := json.Unmarshal(m.Data, &out); err != nil {
		s.t.Fatalf("sync answer %q: %v", m.Data, err)
	}
	for _, f := range out.Messages {
		if f.MsgID == msgID {
			return f.Envelope
		}
	}
	s.t.Fatalf("message %s not in %s's mailbox", msgID, id.Handle)
	return nil
}

// openWithAnyKey tries every prekey private key left in every home on
// every wrap of env and returns what opened it, "" if nothing did.
func openWithAnyKey(t *testing.T, env []byte, sender ed25519.PublicKey, homes map[string]*client.Dir) string {
	t.Helper()
	e, err := envelope.ParseV2(env)
	if err != nil {
		t.Fatal(err)
	}
	var wraps struct {
		Wraps []struct {
			D string `json:"d"`
		} `json:"wraps"`
	}
	if err := json.Unmarshal(env, &wraps); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, w := range wraps.Wraps {
		ids = append(ids, w.D)
	}
	for name, d := range homes {
		var st client.PrekeyState
		b, err := os.ReadFile(filepath.Join(d.Path(), "prekeys.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		keys := func(ks []client.StoredPrekey) []*ecdh.PrivateKey {
			var out []*ecdh.PrivateKey
			for _, k := range ks {
				raw, _ := base64.RawURLEncoding.DecodeString(k.Private)
				if p, err := ecdh.X25519().NewPrivateKey(raw); err == nil {
					out = append(out, p)
				}
			}
			return out
		}
		spks, opks := keys(st.SPKs), append(keys(st.OPKs), nil)
		for _, id := range ids {
			for _, spk := range spks {
				for _, opk := range opks {
					if pt, err := e.Open(id, sender, spk, opk); err == nil {
						return name + " opened it: " + string(pt)
					}
				}
			}
		}
	}
	return ""
}

// TestClientAttackForwardSecrecy: alice (phone and laptop) writes to bob
// (phone and tablet), every device online; the operator keeps the stored
// envelope. Bob's phone reads it. Then no key in any of the four homes
// opens the kept envelope. With bob's tablet offline at the time, its home
// still opens it: an offline device cannot delete what it never heard was
// burned (reported as a limitation, not asserted as a property).
func TestClientAttackForwardSecrecy(t *testing.T) {
	t.Parallel()
	for _, tabletOnline := range []bool{true, false} {
		name := map[bool]string{true: "all online", false: "tablet offline"}[tabletOnline]
		t.Run(name, func(t *testing.T) {
			if !tabletOnline && os.Getenv("MAYFLY_KNOWN_HOLES") == "" {
				t.Skip("known limitation, kept by decision: an offline device keeps the prekeys of messages burned meanwhile " +
					"until 65 minutes after it is back; server-held key shares erased on burn were judged wrong here " +
					"(they would outlive the burn in Postgres, its WAL and backups): docs/envelope.md, " +
					"\"Offline devices: why no server-held key shares\"; MAYFLY_KNOWN_HOLES=1 runs it")
			}
			forwardSecrecy(t, tabletOnline)
		})
	}
}

func forwardSecrecy(t *testing.T, tabletOnline bool) {
	s := atkStart(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	homes := map[string]*client.Dir{}
	for _, n := range []string{"alice phone", "alice laptop", "bob phone", "bob tablet"} {
		d, err := client.OpenDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		homes[n] = d
	}
	alice := s.atkUser(ctx, "alice", homes["alice phone"])
	bob := s.atkUser(ctx, "bob", homes["bob phone"])
	atkBefriend(ctx, t, alice, bob)
	laptop := s.atkLink(ctx, alice, homes["alice laptop"])
	tablet := s.atkLink(ctx, bob, homes["bob tablet"])

	ra, rl, rb := atkRun(t, alice), atkRun(t, laptop), atkRun(t, bob)
	var rt *atkRunner
	if tabletOnline {
		rt = atkRun(t, tablet)
	}
	sent, err := alice.Send(ctx, "bob", "burn after reading")
	if err != nil {
		t.Fatal(err)
	}
	m := rb.waitMsg(sent.ID)
	if m.Err != nil || m.Text != "burn after reading" {
		t.Fatalf("bob's phone got %+v", m)
	}
	rl.waitMsg(sent.ID)
	if rt != nil {
		rt.waitMsg(sent.ID)
	}
	env := s.storedEnvelope(ctx, bob, sent.ID)
	if got := openWithAnyKey(t, env, alice.Keys().DevicePublic(), homes); got == "" {
		t.Fatal("before the read no home opens the envelope: the test tries the wrong keys")
	}
	if err := bob.Read(ctx, m.Seq); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*atkRunner{ra, rl, rb, rt} {
		if r != nil {
			r.waitBurned(sent.ID)
		}
	}
	if got := openWithAnyKey(t, env, alice.Keys().DevicePublic(), homes); got != "" {
		t.Errorf("after the read, %s", got)
	}
}
