package client

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// Device linking (docs/api.md, "Device linking"): a new device starts a
// link with an ephemeral X25519 key and shows its code; a logged-in device
// of the user approves the code, sealing the identity keys to that key; the
// new device fetches and opens them, then logs in as a device of the user.

// LinkConfig configures StartLink on a new device.
type LinkConfig struct {
	// Server is the server's base URL; required.
	Server string
	// HTTPClient makes the requests; default a client with a 30s timeout.
	HTTPClient *http.Client
	// PollInterval is the delay between polls for the approval; default 1s.
	PollInterval time.Duration
}

// PendingLink is a link request started on a new device and not yet
// approved. Its ephemeral private key lives only in memory.
type PendingLink struct {
	api    api
	poll   time.Duration
	priv   *ecdh.PrivateKey
	code   string // canonical
	secret string
	// ExpiresAt is when the request lapses (ten minutes after StartLink).
	ExpiresAt time.Time
}

// Code returns the link code to show the user, as "ABCDE-FGHIJ". It commits
// to the device's ephemeral public key.
func (l *PendingLink) Code() string { return schema.FormatLinkCode(l.code) }

// Linked is what a new device receives from an approved link: the user and
// the identity keys. Build a Client with them and Login.
type Linked struct {
	UserID string
	Handle string
	Keys   envelope.Keys
}

// StartLink makes an ephemeral key pair and asks the server for a link
// request. Show the returned link's Code to the user, then call Wait.
// Errors: rate_limited, unavailable.
func StartLink(ctx context.Context, cfg LinkConfig) (*PendingLink, error) {
	u, err := parseServer(cfg.Server)
	if err != nil {
		return nil, err
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("start link: %w", err)
	}
	l := &PendingLink{api: api{base: u, http: cfg.HTTPClient}, poll: cfg.PollInterval, priv: priv}
	var created schema.LinkCreated
	err = l.api.roundTrip(ctx, call{method: "POST", path: "/v1/link",
		body: schema.LinkRequest{PublicKey: envelope.EncodeKey(priv.PublicKey().Bytes())}, out: &created}, "")
	if err != nil {
		return nil, fmt.Errorf("start link: %w", err)
	}
	if created.Code != schema.LinkCode(priv.PublicKey().Bytes()) {
		return nil, fmt.Errorf("start link: server's code is not the key's: %w", ErrLinkMismatch)
	}
	l.code, l.secret, l.ExpiresAt = created.Code, created.Secret, created.ExpiresAt
	return l, nil
}

// Wait polls until a device of the user approves the link, then opens the
// sealed keys and returns them. It stops when ctx ends. Errors:
// link_expired (not approved in time), not_found, ErrBadMessage (the bundle
// does not open: it was not sealed to this device's key).
func (l *PendingLink) Wait(ctx context.Context) (Linked, error) {
	for {
		var st schema.LinkStatus
		err := l.api.roundTrip(ctx, call{method: "GET", path: "/v1/link/" + l.code + "/bundle", out: &st}, l.secret)
		switch {
		case err != nil && !schema.HasCode(err, schema.CodeRateLimited) && !schema.HasCode(err, schema.CodeUnavailable):
			return Linked{}, fmt.Errorf("wait for link approval: %w", err)
		case err == nil && st.Status == schema.LinkApproved && st.Bundle != nil:
			linked, err := openBundle(l.priv, *st.Bundle)
			if err != nil {
				return Linked{}, fmt.Errorf("open link bundle: %w", err)
			}
			if linked.UserID != st.UserID || linked.Handle != st.Handle {
				return Linked{}, fmt.Errorf("open link bundle: %w: keys are for another user than the approver", ErrBadMessage)
			}
			return linked, nil
		}
		if !sleepCtx(ctx, l.poll) {
			return Linked{}, fmt.Errorf("wait for link approval: %w", ctx.Err())
		}
	}
}

// ApproveLink sends the user's identity keys to the new device showing
// code, sealed to that device's ephemeral key. It first checks that the key
// the server hands out hashes to code, so a server cannot slip in a key of
// its own. Errors: ErrLinkMismatch, not_found (no such pending link),
// link_expired.
func (c *Client) ApproveLink(ctx context.Context, code string) error {
	canon, ok := schema.NormalizeLinkCode(code)
	if !ok {
		return fmt.Errorf("approve link: %w", schema.Errorf(schema.CodeNotFound, "a link code is 10 letters and digits, like ABCDE-FGHIJ"))
	}
	var info schema.LinkInfo
	if err := c.do(ctx, "approve link", call{method: "GET", path: "/v1/link/" + canon, out: &info, auth: withToken}); err != nil {
		return err
	}
	pub, err := envelope.DecodeKey(info.PublicKey, envelope.KexKeySize)
	if err != nil || info.Code != canon || schema.LinkCode(pub) != canon {
		return fmt.Errorf("approve link %s: %w", schema.FormatLinkCode(canon), ErrLinkMismatch)
	}
	me := c.Identity()
	keys := schema.LinkKeys{
		V: 1, UserID: me.UserID, Handle: me.Handle,
		SignSeed: b64.EncodeToString(c.keys.Sign.Seed()), KexPrivate: b64.EncodeToString(c.keys.Kex.Bytes()),
	}
	plain, _ := json.Marshal(keys)
	bundle, err := sealBundle(pub, plain)
	if err != nil {
		return fmt.Errorf("approve link: %w", err)
	}
	return c.do(ctx, "approve link", call{method: "POST", path: "/v1/link/" + canon + "/approve",
		body: schema.LinkApproveRequest{Bundle: bundle}, auth: withToken})
}

// sealBundle encrypts plain to the X25519 public key to: an ephemeral key
// pair (e, E), shared = X25519(e, to), key = HKDF-SHA256(shared, salt = E ||
// to, info = schema.LinkBundleInfo), AES-256-GCM with a random nonce and no
// associated data. The same construction as an envelope's key wrap.
func sealBundle(to, plain []byte) (schema.SealedBundle, error) {
	toKey, err := ecdh.X25519().NewPublicKey(to)
	if err != nil {
		return schema.SealedBundle{}, fmt.Errorf("link key: %w", err)
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return schema.SealedBundle{}, err
	}
	aead, err := bundleAEAD(eph, toKey, eph.PublicKey().Bytes(), to)
	if err != nil {
		return schema.SealedBundle{}, err
	}
	nonce := make([]byte, envelope.NonceSize)
	rand.Read(nonce)
	return schema.SealedBundle{
		EPK: b64.EncodeToString(eph.PublicKey().Bytes()),
		N:   b64.EncodeToString(nonce),
		CT:  b64.EncodeToString(aead.Seal(nil, nonce, plain, nil)),
	}, nil
}

// bundleAEAD derives the bundle's AES-256-GCM from priv's agreement with
// peer; epk and to are the sealer's ephemeral and the recipient's public key.
func bundleAEAD(priv *ecdh.PrivateKey, peer *ecdh.PublicKey, epk, to []byte) (cipher.AEAD, error) {
	shared, err := priv.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("link key agreement: %w", err)
	}
	salt := append(append([]byte{}, epk...), to...)
	key, err := hkdf.Key(sha256.New, shared, salt, schema.LinkBundleInfo, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// openBundle decrypts a sealed bundle with the new device's ephemeral key
// and decodes the identity keys in it.
func openBundle(priv *ecdh.PrivateKey, b schema.SealedBundle) (Linked, error) {
	epk, err1 := envelope.DecodeKey(b.EPK, envelope.KexKeySize)
	nonce, err2 := b64.DecodeString(b.N)
	ct, err3 := b64.DecodeString(b.CT)
	if err := errors.Join(err1, err2, err3); err != nil || len(nonce) != envelope.NonceSize {
		return Linked{}, fmt.Errorf("%w: malformed bundle", ErrBadMessage)
	}
	peer, err := ecdh.X25519().NewPublicKey(epk)
	if err != nil {
		return Linked{}, fmt.Errorf("%w: malformed bundle key", ErrBadMessage)
	}
	aead, err := bundleAEAD(priv, peer, epk, priv.PublicKey().Bytes())
	if err != nil {
		return Linked{}, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	plain, err := aead.Open(nil, nonce, ct, nil)
	if err != nil {
		return Linked{}, fmt.Errorf("%w: the bundle was not sealed to this device", ErrBadMessage)
	}
	var k schema.LinkKeys
	if err := json.Unmarshal(plain, &k); err != nil || k.V != 1 {
		return Linked{}, fmt.Errorf("%w: unknown bundle format", ErrBadMessage)
	}
	keys, err := decodePrivateKeys(k.SignSeed, k.KexPrivate)
	if err != nil {
		return Linked{}, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	return Linked{UserID: k.UserID, Handle: k.Handle, Keys: keys}, nil
}

// decodePrivateKeys rebuilds identity keys from a base64url Ed25519 seed and
// X25519 private key.
func decodePrivateKeys(signSeed, kexPrivate string) (envelope.Keys, error) {
	seed, err := b64.DecodeString(signSeed)
	if err != nil || len(seed) != ed25519.SeedSize {
		return envelope.Keys{}, fmt.Errorf("signing seed must be %d bytes of base64url: %w", ed25519.SeedSize, envelope.ErrKey)
	}
	kb, err := b64.DecodeString(kexPrivate)
	if err != nil {
		return envelope.Keys{}, fmt.Errorf("key-exchange key is not base64url: %w", envelope.ErrKey)
	}
	kex, err := ecdh.X25519().NewPrivateKey(kb)
	if err != nil {
		return envelope.Keys{}, fmt.Errorf("key-exchange key: %w", envelope.ErrKey)
	}
	return envelope.Keys{Sign: ed25519.NewKeyFromSeed(seed), Kex: kex}, nil
}

// CheckKeys verifies that the server lists this Client's public keys for
// its handle (after a link, for example). Errors: ErrFingerprint.
func (c *Client) CheckKeys(ctx context.Context) error {
	me := c.Identity()
	var u schema.User
	if err := c.do(ctx, "check keys", call{method: "GET", path: "/v1/users/" + pathEscape(me.Handle), out: &u, auth: withToken}); err != nil {
		return err
	}
	if err := checkUser(u, c.pub); err != nil {
		return fmt.Errorf("check keys: %w", err)
	}
	return nil
}
