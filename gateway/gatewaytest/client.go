package gatewaytest

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// Client talks to a gateway's HTTP API as one device of one user. Acct is
// shared by every device of the user: the identity key and the device list
// the test keeps signing.
type Client struct {
	T       testing.TB
	BaseURL string // http://host:port
	Acct    *Account
	DK      ed25519.PrivateKey // this device's signing key
	User    schema.User
	Session schema.Session
	// SPK and OPKs are the device's prekey private keys once UploadPrekeys
	// ran; OPKs by key id.
	SPK  *ecdh.PrivateKey
	OPKs map[[envelope.KeyIDSize]byte]*ecdh.PrivateKey

	bundles map[string]claimed // claimed targets by recipient user id, for Seal
}

// Account is a user's identity key and current device list, and the test's
// device keys by device name.
type Account struct {
	IK      ed25519.PrivateKey
	Version int64
	Keys    []ed25519.PublicKey
	Named   map[string]ed25519.PrivateKey
}

// NewClient returns a client with a fresh identity key and device key for
// the server at addr (host:port).
func NewClient(t testing.TB, addr string) *Client {
	t.Helper()
	_, ik, _ := ed25519.GenerateKey(nil)
	_, dk, _ := ed25519.GenerateKey(nil)
	return &Client{T: t, BaseURL: "http://" + addr, Acct: &Account{IK: ik, Named: map[string]ed25519.PrivateKey{}}, DK: dk}
}

// DeviceID returns the client's device id.
func (c *Client) DeviceID() string { return envelope.DeviceID(c.DK.Public().(ed25519.PublicKey)) }

// Do sends a JSON request (body may be nil, a []byte sent as-is, or a value
// to encode) with the client's access token if it has one, and decodes a 2xx
// answer into out. It returns the HTTP status and, for errors, the decoded
// *schema.Error.
func (c *Client) Do(method, path string, body, out any) (int, *schema.Error) {
	c.T.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.T.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.BaseURL+path, rd)
	if err != nil {
		c.T.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Session.AccessToken != "" {
		req.Header.Set("Authorization", "Bearer "+c.Session.AccessToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.T.Fatalf("gatewaytest: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		var eb schema.ErrorBody
		if err := json.Unmarshal(raw, &eb); err != nil || eb.Error == nil {
			c.T.Fatalf("gatewaytest: %s %s: status %d with non-error body %q", method, path, resp.StatusCode, raw)
		}
		return resp.StatusCode, eb.Error
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.T.Fatalf("gatewaytest: %s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, nil
}

// Must is Do that fails the test on any error answer.
func (c *Client) Must(method, path string, body, out any) {
	c.T.Helper()
	if st, e := c.Do(method, path, body, out); e != nil {
		c.T.Fatalf("gatewaytest: %s %s: %d %v", method, path, st, e)
	}
}

// RegisterRequest returns the registration body for handle with c's
// identity key.
func (c *Client) RegisterRequest(handle string) schema.RegisterRequest {
	return schema.RegisterRequest{Handle: handle, IK: base64.RawURLEncoding.EncodeToString(c.Acct.IK.Public().(ed25519.PublicKey))}
}

// Register registers handle with c's identity key and publishes a device
// list naming c's device.
func (c *Client) Register(handle string) {
	c.T.Helper()
	c.Must("POST", "/v1/register", c.RegisterRequest(handle), &c.User)
	c.PublishList(append(c.Acct.Keys, c.DK.Public().(ed25519.PublicKey)))
}

// SignList returns the user's next device list (version+1) with keys,
// signed by the identity key.
func (c *Client) SignList(keys []ed25519.PublicKey) []byte {
	c.T.Helper()
	b, err := envelope.SignDeviceList(c.User.UserID, c.Acct.Version+1, time.Now(), keys, c.Acct.IK)
	if err != nil {
		c.T.Fatal(err)
	}
	return b
}

// PublishList signs and publishes the next device list with keys.
func (c *Client) PublishList(keys []ed25519.PublicKey) {
	c.T.Helper()
	c.Must("POST", "/v1/devicelist", schema.DeviceListRequest{List: c.SignList(keys)}, nil)
	c.Acct.Version++
	c.Acct.Keys = keys
}

// SignChallenge returns the login request answering ch with device key key.
func SignChallenge(ch schema.Challenge, key ed25519.PrivateKey, device string) schema.LoginRequest {
	nonce, _ := base64.RawURLEncoding.DecodeString(ch.Nonce)
	id := envelope.DeviceID(key.Public().(ed25519.PublicKey))
	sig := ed25519.Sign(key, schema.LoginMessage(ch.ChallengeID, id, nonce))
	return schema.LoginRequest{ChallengeID: ch.ChallengeID, DeviceID: id, Signature: base64.RawURLEncoding.EncodeToString(sig), DeviceName: device}
}

// Login logs c's device in under name, storing the session.
func (c *Client) Login(name string) {
	c.T.Helper()
	c.Acct.Named[name] = c.DK
	var ch schema.Challenge
	c.Must("POST", "/v1/login/challenge", schema.ChallengeRequest{Handle: c.User.Handle}, &ch)
	c.Must("POST", "/v1/login", SignChallenge(ch, c.DK, name), &c.Session)
}

// Device returns a client of another device of the same user, logged in
// as name: the device the test named so before (a re-login, which ends its
// earlier session), or a new device with its own key, added to the signed
// device list, with a signed prekey and two one-time prekeys.
func (c *Client) Device(name string) *Client {
	c.T.Helper()
	dk, known := c.Acct.Named[name]
	if !known {
		_, dk, _ = ed25519.GenerateKey(nil)
		c.PublishList(append(append([]ed25519.PublicKey(nil), c.Acct.Keys...), dk.Public().(ed25519.PublicKey)))
	}
	d := &Client{T: c.T, BaseURL: c.BaseURL, Acct: c.Acct, DK: dk, User: c.User}
	d.Login(name)
	if !known {
		d.UploadPrekeys(2)
	}
	return d
}

// NewUser registers handle, logs in a first device "phone" and uploads its
// signed prekey and two one-time prekeys.
func NewUser(t testing.TB, addr, handle string) *Client {
	t.Helper()
	c := NewClient(t, addr)
	c.Register(handle)
	c.Login("phone")
	c.UploadPrekeys(2)
	return c
}

// String describes the client for failure messages.
func (c *Client) String() string { return fmt.Sprintf("%s/%s", c.User.Handle, c.Session.DeviceID) }
