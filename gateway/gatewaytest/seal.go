package gatewaytest

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/json"
	"time"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// UploadPrekeys makes a signed prekey and n one-time prekeys for c's
// device, keeps their private keys in c and uploads them.
func (c *Client) UploadPrekeys(n int) {
	c.T.Helper()
	if c.OPKs == nil {
		c.OPKs = map[[envelope.KeyIDSize]byte]*ecdh.PrivateKey{}
	}
	var up schema.PrekeysUpload
	sign := func(kind string) (*ecdh.PrivateKey, json.RawMessage) {
		priv, err := ecdh.X25519().GenerateKey(nil)
		if err != nil {
			c.T.Fatal(err)
		}
		b, err := envelope.SignPrekey(c.User.UserID, c.DeviceID(), kind, priv, time.Now(), c.DK)
		if err != nil {
			c.T.Fatal(err)
		}
		return priv, b
	}
	c.SPK, up.SPK = sign(envelope.KindSPK)
	for range n {
		priv, b := sign(envelope.KindOPK)
		p, _ := envelope.ParsePrekey(b)
		c.OPKs[p.KeyID()] = priv
		up.OPKs = append(up.OPKs, b)
	}
	c.Must("PUT", "/v1/prekeys", up, nil)
}

// Seal seals payload for every device of to's prekey bundle and of the
// sender's own other devices, as c's device, with message id mid. Each
// bundle is claimed once per device list version and reused (a real client
// claims per message; these tests exercise the server, not forward
// secrecy).
func (c *Client) Seal(to *Client, mid string, payload []byte) []byte {
	c.T.Helper()
	if c.bundles == nil {
		c.bundles = map[string]claimed{}
	}
	for _, u := range []*Client{to, c} {
		if b, ok := c.bundles[u.User.UserID]; !ok || b.version != u.Acct.Version {
			c.bundles[u.User.UserID] = claimed{u.Acct.Version, c.Claim(u)}
		}
	}
	return c.SealTo(to, mid, payload, append(append([]envelope.Target(nil), c.bundles[to.User.UserID].targets...), c.bundles[c.User.UserID].targets...))
}

// claimed is a claimed bundle's targets and the list version it had.
type claimed struct {
	version int64
	targets []envelope.Target
}

// SealDirect seals payload for to's device alone with the signed prekey
// the test knows, claiming nothing (for sends the server must refuse).
func (c *Client) SealDirect(to *Client, mid string, payload []byte) []byte {
	c.T.Helper()
	if to.SPK == nil {
		to.UploadPrekeys(0)
	}
	return c.SealTo(to, mid, payload, []envelope.Target{{DeviceID: to.DeviceID(), SPK: to.SPK.PublicKey().Bytes()}})
}

// SealTo seals payload for targets as c's device, to user to.
func (c *Client) SealTo(to *Client, mid string, payload []byte, targets []envelope.Target) []byte {
	c.T.Helper()
	h := envelope.HeaderV2{From: c.User.UserID, FromDevice: c.DeviceID(), To: to.User.UserID, MsgID: mid, SentAt: time.Now()}
	env, err := envelope.SealV2(h, c.DK, targets, payload)
	if err != nil {
		c.T.Fatal(err)
	}
	return env
}

// Claim claims to's prekey bundle and returns its targets, verified
// against to's identity key, without c's own device.
func (c *Client) Claim(to *Client) []envelope.Target {
	c.T.Helper()
	var raw json.RawMessage
	c.Must("POST", "/v1/users/"+to.User.UserID+"/bundle", nil, &raw)
	bu, err := envelope.ParseBundle(raw)
	if err != nil {
		c.T.Fatal(err)
	}
	targets, err := bu.Verify(to.User.UserID, to.Acct.IK.Public().(ed25519.PublicKey), c.DeviceID())
	if err != nil {
		c.T.Fatal(err)
	}
	return targets
}

// Open opens an envelope sealed by from's device for c's device.
func (c *Client) Open(env []byte, from *Client) ([]byte, error) {
	e, err := envelope.ParseV2(env)
	if err != nil {
		return nil, err
	}
	w, _ := e.WrapFor(c.DeviceID())
	var opk *ecdh.PrivateKey
	if w.HasOPK {
		opk = c.OPKs[w.OPK]
	}
	return e.Open(c.DeviceID(), from.DK.Public().(ed25519.PublicKey), c.SPK, opk)
}
