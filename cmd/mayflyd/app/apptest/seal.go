package apptest

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
		b, err := envelope.SignPrekey(c.User.UserID, c.DeviceID(), kind, priv, time.Now(), c.Device)
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

// Seal claims to's prekey bundle and seals payload for every device in it
// (without the sender's other devices), as c's device, with message id mid.
func (c *Client) Seal(to *Client, mid string, payload []byte) []byte {
	c.T.Helper()
	var raw json.RawMessage
	c.Must("POST", "/v1/users/"+to.User.UserID+"/bundle", nil, &raw)
	bu, err := envelope.ParseBundle(raw)
	if err != nil {
		c.T.Fatal(err)
	}
	targets, err := bu.Verify(to.User.UserID, to.Acct.IK.Public().(ed25519.PublicKey), "")
	if err != nil {
		c.T.Fatal(err)
	}
	h := envelope.HeaderV2{From: c.User.UserID, FromDevice: c.DeviceID(), To: to.User.UserID, MsgID: mid, SentAt: time.Now()}
	env, err := envelope.SealV2(h, c.Device, targets, payload)
	if err != nil {
		c.T.Fatal(err)
	}
	return env
}

// Open opens an envelope sealed by from's device for c's device.
func (c *Client) Open(env []byte, from *Client) ([]byte, error) {
	e, err := envelope.ParseV2(env)
	if err != nil {
		return nil, err
	}
	w, _ := e.WrapFor(c.DeviceID())
	return e.Open(c.DeviceID(), from.Device.Public().(ed25519.PublicKey), c.SPK, c.OPKs[w.OPK])
}
