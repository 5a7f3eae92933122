package client

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// Prekey lifetimes (docs/envelope.md, "Key lifetimes").
const (
	// spkRotateAfter is the age at which the signed prekey is replaced.
	spkRotateAfter = 50 * time.Minute
	// prekeyKeep is how long a replaced SPK, or an OPK the server handed
	// out, is kept: a claim is sealed within a minute and the message then
	// lives at most 60 minutes.
	prekeyKeep = 65 * time.Minute
	// opkTarget and opkLow: the pool is refilled to opkTarget when it has
	// fewer than opkLow unclaimed one-time prekeys.
	opkTarget = 100
	opkLow    = 50
)

// StoredPrekey is one of the device's prekey private keys as Storage keeps
// it. Private is the raw X25519 private key in base64url.
type StoredPrekey struct {
	Private   string    `json:"private"`
	CreatedAt time.Time `json:"created_at"`
	// RetiredAt is when a signed prekey stopped being current; nil while
	// current. ClaimedAt is when the device first saw a one-time prekey
	// gone from the server's pool; nil while unclaimed.
	RetiredAt *time.Time `json:"retired_at,omitempty"`
	ClaimedAt *time.Time `json:"claimed_at,omitempty"`
	// Seq is the mailbox sequence of the message whose wrap used this
	// one-time prekey, once the device opened it; 0 before.
	Seq uint64 `json:"seq,omitempty"`
}

// PrekeyState is every prekey private key the device still holds.
type PrekeyState struct {
	SPKs []StoredPrekey `json:"spks"`
	OPKs []StoredPrekey `json:"opks"`
}

// prekey is a held prekey private key and its bookkeeping.
type prekey struct {
	StoredPrekey
	priv *ecdh.PrivateKey
}

// prekeys holds the device's prekey private keys.
type prekeys struct {
	mu   sync.Mutex
	spks []*prekey                            // current last; guarded by mu
	opks map[[envelope.KeyIDSize]byte]*prekey // guarded by mu
}

func keyIDOf(priv *ecdh.PrivateKey) [envelope.KeyIDSize]byte {
	var pk envelope.Prekey
	pk.Public = priv.PublicKey().Bytes()
	return pk.KeyID()
}

func loadPrekeys(st PrekeyState) (*prekeys, error) {
	p := &prekeys{opks: map[[envelope.KeyIDSize]byte]*prekey{}}
	decode := func(s StoredPrekey) (*prekey, error) {
		raw, err := b64.DecodeString(s.Private)
		if err != nil {
			return nil, fmt.Errorf("prekey: %w", envelope.ErrKey)
		}
		priv, err := ecdh.X25519().NewPrivateKey(raw)
		if err != nil {
			return nil, fmt.Errorf("prekey: %w", envelope.ErrKey)
		}
		return &prekey{StoredPrekey: s, priv: priv}, nil
	}
	for _, s := range st.SPKs {
		k, err := decode(s)
		if err != nil {
			return nil, err
		}
		p.spks = append(p.spks, k)
	}
	for _, s := range st.OPKs {
		k, err := decode(s)
		if err != nil {
			return nil, err
		}
		p.opks[keyIDOf(k.priv)] = k
	}
	return p, nil
}

// state returns what Storage keeps. p.mu must be held.
func (p *prekeys) state() PrekeyState {
	st := PrekeyState{SPKs: []StoredPrekey{}, OPKs: []StoredPrekey{}}
	for _, k := range p.spks {
		st.SPKs = append(st.SPKs, k.StoredPrekey)
	}
	for _, k := range p.opks {
		st.OPKs = append(st.OPKs, k.StoredPrekey)
	}
	return st
}

// find returns the private keys a wrap names; opk is nil when the wrap
// names none or the key is gone.
func (p *prekeys) find(w envelope.WrapInfo) (spk, opk *ecdh.PrivateKey, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range p.spks {
		if keyIDOf(k.priv) == w.SPK {
			spk = k.priv
		}
	}
	if w.HasOPK {
		k, held := p.opks[w.OPK]
		if !held {
			return nil, nil, false
		}
		opk = k.priv
	}
	return spk, opk, spk != nil
}

func newPrekey() (*prekey, error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate prekey: %w", err)
	}
	return &prekey{StoredPrekey: StoredPrekey{Private: b64.EncodeToString(priv.Bytes()), CreatedAt: time.Now().UTC()}, priv: priv}, nil
}

// savePrekeys stores the prekey state. c.pk.mu must be held.
func (c *Client) savePrekeys() error {
	if err := c.store.SavePrekeys(c.pk.state()); err != nil {
		return fmt.Errorf("save prekeys: %w", err)
	}
	return nil
}

// MaintainPrekeys keeps the device's prekeys as docs/envelope.md ("Key
// lifetimes") says: it replaces a signed prekey 50 minutes old or older,
// deletes replaced ones 65 minutes after their replacement and one-time
// prekeys 65 minutes after the server handed them out, and refills the
// server's pool of one-time prekeys to 100 when it holds fewer than 50.
// Run calls it on every connection and every few minutes; Login calls it
// too. New private keys are stored before their public halves are
// uploaded.
func (c *Client) MaintainPrekeys(ctx context.Context) error {
	var st schema.PrekeyStatus
	if err := c.do(ctx, "prekey status", call{method: "GET", path: "/v1/prekeys", out: &st, auth: withToken}); err != nil {
		return err
	}
	up, err := c.prepareUpload(st, time.Now())
	if err != nil {
		return fmt.Errorf("maintain prekeys: %w", err)
	}
	for len(up.OPKs) > 0 || up.SPK != nil {
		part := up
		part.OPKs = up.OPKs[:min(len(up.OPKs), schema.MaxOPKsPerUpload)]
		up.SPK, up.OPKs = nil, up.OPKs[len(part.OPKs):]
		if err := c.do(ctx, "upload prekeys", call{method: "PUT", path: "/v1/prekeys", body: part, auth: withToken}); err != nil {
			return err
		}
	}
	return nil
}

// prepareUpload updates the local prekeys from the server's status at now,
// saves them, and returns what to upload.
func (c *Client) prepareUpload(st schema.PrekeyStatus, now time.Time) (schema.PrekeysUpload, error) {
	var up schema.PrekeysUpload
	me := c.Identity()
	c.pk.mu.Lock()
	defer c.pk.mu.Unlock()
	unclaimed := make(map[string]bool, len(st.OPKs))
	for _, k := range st.OPKs {
		unclaimed[k] = true
	}
	for id, k := range c.pk.opks {
		switch {
		case unclaimed[b64.EncodeToString(id[:])]:
		case k.ClaimedAt == nil:
			t := now.UTC()
			k.ClaimedAt = &t
		case now.Sub(*k.ClaimedAt) > prekeyKeep:
			delete(c.pk.opks, id)
		}
	}
	kept := c.pk.spks[:0]
	for _, k := range c.pk.spks {
		if k.RetiredAt == nil || now.Sub(*k.RetiredAt) <= prekeyKeep {
			kept = append(kept, k)
		}
	}
	c.pk.spks = kept
	if n := len(c.pk.spks); n == 0 || !st.HasSPK || now.Sub(c.pk.spks[n-1].CreatedAt) >= spkRotateAfter {
		k, err := newPrekey()
		if err != nil {
			return up, err
		}
		if n > 0 {
			t := now.UTC()
			c.pk.spks[n-1].RetiredAt = &t
		}
		c.pk.spks = append(c.pk.spks, k)
		if up.SPK, err = signedPrekey(me.UserID, me.DeviceID, envelope.KindSPK, k.priv, now, c.keys.Device); err != nil {
			return up, err
		}
	}
	if len(st.OPKs) < opkLow {
		for range opkTarget - len(st.OPKs) {
			k, err := newPrekey()
			if err != nil {
				return up, err
			}
			b, err := signedPrekey(me.UserID, me.DeviceID, envelope.KindOPK, k.priv, now, c.keys.Device)
			if err != nil {
				return up, err
			}
			c.pk.opks[keyIDOf(k.priv)] = k
			up.OPKs = append(up.OPKs, json.RawMessage(b))
		}
	}
	return up, c.savePrekeys()
}

// usedOPK records that the message at seq used the one-time prekey w names.
func (c *Client) usedOPK(w envelope.WrapInfo, seq uint64) {
	if !w.HasOPK {
		return
	}
	c.pk.mu.Lock()
	defer c.pk.mu.Unlock()
	if k, ok := c.pk.opks[w.OPK]; ok && k.Seq != seq {
		k.Seq = seq
		if err := c.savePrekeys(); err != nil {
			c.log.Error("save prekeys", "err", err)
		}
	}
}

// burned deletes the one-time prekey the message at seq used, if this
// device opened it: the message is gone, and so is every way to open a
// copy of it on this device.
func (c *Client) burned(seq uint64) {
	c.pk.mu.Lock()
	defer c.pk.mu.Unlock()
	for id, k := range c.pk.opks {
		if k.Seq == seq {
			delete(c.pk.opks, id)
			if err := c.savePrekeys(); err != nil {
				c.log.Error("save prekeys", "err", err)
			}
			return
		}
	}
}

func signedPrekey(userID, deviceID, kind string, priv *ecdh.PrivateKey, at time.Time, key ed25519.PrivateKey) (json.RawMessage, error) {
	b, err := envelope.SignPrekey(userID, deviceID, kind, priv, at, key)
	return json.RawMessage(b), err
}
