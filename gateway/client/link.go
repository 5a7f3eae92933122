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
	"io"
	"net/http"
	"time"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// Device linking, v3 (docs/api.md, "Device linking"; docs/envelope.md,
// "Link a device"): a new device starts a link with an ephemeral X25519 key
// and its own device key and shows a code whose secret part the server
// never sees and whose lookup part commits to that secret and both keys;
// the primary device approves the code, which adds the device key to the
// signed device list and seals who the user is and the identity key to
// the ephemeral key, keyed with the secret too; the new device opens that,
// checks the list is signed by that identity key and names it, and logs
// in. No private key moves, and a server that substitutes keys on either
// side is caught.

// LinkConfig configures StartLink on a new device.
type LinkConfig struct {
	// Server is the server's base URL; required.
	Server string
	// HTTPClient makes the requests; default a client with a 30s timeout.
	HTTPClient *http.Client
	// PollInterval is the delay between polls for the approval; default 1s.
	PollInterval time.Duration
	// Keys are the new device's keys (NewKeys(false)); required.
	Keys Keys
}

// PendingLink is a link request started on a new device and not yet
// approved. Its ephemeral private key lives only in memory.
type PendingLink struct {
	api    api
	poll   time.Duration
	priv   *ecdh.PrivateKey
	keys   Keys
	code   string // canonical lookup part
	pass   string // the code's secret part, never sent
	secret string // the server's poll secret
	// ExpiresAt is when the request lapses (ten minutes after StartLink).
	ExpiresAt time.Time
}

// Code returns the link code to show the user, 25 characters as
// "ABCDE-FGHIJ-KLMNO-PQRST-UVWXY": the lookup part the server knows, then
// the secret part it never sees.
func (l *PendingLink) Code() string { return schema.FormatLinkCode(l.code + l.pass) }

// Linked is what a new device learns from an approved link: the user, and
// the account's identity key from the device list that now names this
// device: the one the primary sealed into its answer with the code's secret
// part, which signed the list (compare its fingerprint with the primary's).
// Build a Client with them and the device's Keys, and Login.
type Linked struct {
	UserID      string
	Handle      string
	Keys        Keys
	IdentityKey ed25519.PublicKey
}

// StartLink makes an ephemeral key pair and asks the server for a link
// request. Show the returned link's Code to the user, then call Wait.
// Errors: rate_limited, unavailable.
func StartLink(ctx context.Context, cfg LinkConfig) (*PendingLink, error) {
	srv, err := newServers(cfg.Server, nil)
	if err != nil {
		return nil, err
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if err := cfg.Keys.validate(); err != nil {
		return nil, fmt.Errorf("start link: %w", err)
	}
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("start link: %w", err)
	}
	l := &PendingLink{api: api{servers: srv, http: cfg.HTTPClient}, poll: cfg.PollInterval, priv: priv, keys: cfg.Keys,
		pass: schema.NewLinkCodeSecret()}
	var created schema.LinkCreated
	dk := cfg.Keys.DevicePublic()
	code := schema.LinkCode(l.pass, priv.PublicKey().Bytes(), dk)
	err = l.api.roundTrip(ctx, call{method: "POST", path: "/v1/link", body: schema.LinkRequest{
		PublicKey: envelope.EncodeKey(priv.PublicKey().Bytes()), DeviceKey: envelope.EncodeKey(dk), Code: code}, out: &created}, "")
	if err != nil {
		return nil, fmt.Errorf("start link: %w", err)
	}
	if created.Code != code {
		return nil, fmt.Errorf("start link: the server stored another code: %w", ErrLinkMismatch)
	}
	l.code, l.secret, l.ExpiresAt = created.Code, created.Secret, created.ExpiresAt
	return l, nil
}

// Wait polls until the user's primary device approves the link, opens the
// sealed answer, and checks that the account's device list names this
// device. It stops when ctx ends. Errors: link_expired (not approved in
// time), not_found, ErrBadMessage (the bundle does not open: it was not
// sealed to this device's key), untrusted_keys (the list does not name
// this device or does not verify).
func (l *PendingLink) Wait(ctx context.Context) (Linked, error) {
	for {
		var st schema.LinkStatus
		err := l.api.roundTrip(ctx, call{method: "GET", path: "/v1/link/" + l.code + "/bundle", out: &st}, l.secret)
		switch {
		case err != nil && !schema.HasCode(err, schema.CodeRateLimited) && !schema.HasCode(err, schema.CodeUnavailable):
			return Linked{}, fmt.Errorf("wait for link approval: %w", err)
		case err == nil && st.Status == schema.LinkApproved && st.Bundle != nil:
			linked, err := openBundle(l.priv, l.pass, *st.Bundle)
			if err != nil {
				return Linked{}, fmt.Errorf("open link bundle: %w", err)
			}
			if linked.UserID != st.UserID || linked.Handle != st.Handle {
				return Linked{}, fmt.Errorf("open link bundle: %w: keys are for another user than the approver", ErrBadMessage)
			}
			linked.Keys = l.keys
			if err = l.checkListed(ctx, linked); err != nil {
				return Linked{}, fmt.Errorf("wait for link approval: %w", err)
			}
			return linked, nil
		}
		if !sleepCtx(ctx, l.poll) {
			return Linked{}, fmt.Errorf("wait for link approval: %w", ctx.Err())
		}
	}
}

// checkListed fetches the linked user's device list and checks that the
// identity key the primary sealed into the answer signed it and that it
// names this device.
func (l *PendingLink) checkListed(ctx context.Context, linked Linked) error {
	var r schema.DeviceListRequest
	if err := l.api.roundTrip(ctx, call{method: "GET", path: "/v1/devicelist/" + pathEscape(linked.UserID), out: &r}, ""); err != nil {
		return err
	}
	dl, err := envelope.ParseDeviceList(r.List)
	if err == nil {
		err = dl.VerifyFor(linked.UserID, linked.IdentityKey)
	}
	if err != nil || !dl.Has(l.keys.DevicePublic()) {
		return schema.Errorf(schema.CodeUntrustedKeys, "the account's device list is not signed by the primary's identity key or does not name this device")
	}
	return nil
}

// ApproveLink adds the new device showing code to the account: it checks
// that the keys the server hands out hash to code (so a server cannot slip
// in a key of its own), publishes a device list with the new device's key
// signed by the identity key, and seals who the user is to the device's
// ephemeral key. Only the primary device can. Errors: ErrNotPrimary,
// ErrLinkMismatch, not_found (no such pending link), link_expired,
// device_limit, device_revoked (the key was revoked before).
func (c *Client) ApproveLink(ctx context.Context, code string) error {
	if !c.keys.Primary() {
		return fmt.Errorf("approve link: %w", ErrNotPrimary)
	}
	canon, pass, ok := schema.SplitLinkCode(code)
	if !ok {
		return fmt.Errorf("approve link: %w", schema.Errorf(schema.CodeNotFound,
			"a link code is 25 letters and digits, like ABCDE-FGHIJ-KLMNO-PQRST-UVWXY"))
	}
	var info schema.LinkInfo
	if err := c.do(ctx, "approve link", call{method: "GET", path: "/v1/link/" + canon, out: &info, auth: withToken}); err != nil {
		return err
	}
	pub, err1 := envelope.DecodeKey(info.PublicKey, envelope.KexKeySize)
	dk, err2 := envelope.DecodeKey(info.DeviceKey, envelope.SignKeySize)
	if err1 != nil || err2 != nil || info.Code != canon || schema.LinkCode(pass, pub, dk) != canon {
		return fmt.Errorf("approve link %s: %w", schema.FormatLinkCode(canon), ErrLinkMismatch)
	}
	if err := c.updateOwnList(ctx, addKey(dk)); err != nil {
		return fmt.Errorf("approve link: %w", err)
	}
	me := c.Identity()
	plain, _ := json.Marshal(schema.LinkKeys{V: 3, UserID: me.UserID, Handle: me.Handle, IK: envelope.EncodeKey(c.keys.IdentityPublic())})
	bundle, err := sealBundle(rand.Reader, pub, pass, plain)
	if err != nil {
		return fmt.Errorf("approve link: %w", err)
	}
	return c.do(ctx, "approve link", call{method: "POST", path: "/v1/link/" + canon + "/approve",
		body: schema.LinkApproveRequest{Bundle: bundle}, auth: withToken})
}

// sealBundle encrypts plain to the X25519 public key to, keyed with the
// link code's secret part pass too: an ephemeral key pair (e, E) read from
// rnd, shared = X25519(e, to), key = HKDF-SHA256(ikm = shared || pass, salt
// = E || to, info = schema.LinkBundleInfo), AES-256-GCM with a nonce read
// from rnd next and no associated data. Without pass nobody (the server)
// makes an answer the new device opens.
func sealBundle(rnd io.Reader, to []byte, pass string, plain []byte) (schema.SealedBundle, error) {
	toKey, err := ecdh.X25519().NewPublicKey(to)
	if err != nil {
		return schema.SealedBundle{}, fmt.Errorf("link key: %w", err)
	}
	seed := make([]byte, 32)
	if _, err := io.ReadFull(rnd, seed); err != nil {
		return schema.SealedBundle{}, err
	}
	eph, err := ecdh.X25519().NewPrivateKey(seed)
	if err != nil {
		return schema.SealedBundle{}, err
	}
	aead, err := bundleAEAD(eph, toKey, eph.PublicKey().Bytes(), to, pass)
	if err != nil {
		return schema.SealedBundle{}, err
	}
	nonce := make([]byte, envelope.NonceSize)
	if _, err := io.ReadFull(rnd, nonce); err != nil {
		return schema.SealedBundle{}, err
	}
	return schema.SealedBundle{
		EPK: b64.EncodeToString(eph.PublicKey().Bytes()),
		N:   b64.EncodeToString(nonce),
		CT:  b64.EncodeToString(aead.Seal(nil, nonce, plain, nil)),
	}, nil
}

// bundleAEAD derives the bundle's AES-256-GCM from priv's agreement with
// peer and the code's secret part pass; epk and to are the sealer's
// ephemeral and the recipient's public key.
func bundleAEAD(priv *ecdh.PrivateKey, peer *ecdh.PublicKey, epk, to []byte, pass string) (cipher.AEAD, error) {
	shared, err := priv.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("link key agreement: %w", err)
	}
	salt := append(append([]byte{}, epk...), to...)
	key, err := hkdf.Key(sha256.New, append(shared, pass...), salt, schema.LinkBundleInfo, 32)
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
// and the code's secret part, and decodes the link answer in it.
func openBundle(priv *ecdh.PrivateKey, pass string, b schema.SealedBundle) (Linked, error) {
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
	aead, err := bundleAEAD(priv, peer, epk, priv.PublicKey().Bytes(), pass)
	if err != nil {
		return Linked{}, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	plain, err := aead.Open(nil, nonce, ct, nil)
	if err != nil {
		return Linked{}, fmt.Errorf("%w: the bundle was not sealed to this device with its code", ErrBadMessage)
	}
	var k schema.LinkKeys
	if err := json.Unmarshal(plain, &k); err != nil || k.V != 3 {
		return Linked{}, fmt.Errorf("%w: unknown bundle format", ErrBadMessage)
	}
	ik, err := envelope.DecodeKey(k.IK, envelope.SignKeySize)
	if err != nil {
		return Linked{}, fmt.Errorf("%w: the answer's identity key: %w", ErrBadMessage, err)
	}
	return Linked{UserID: k.UserID, Handle: k.Handle, IdentityKey: ik}, nil
}

// CheckKeys verifies that the server's device list for this user is signed
// by the identity key this device trusts and names this device. Errors:
// untrusted_keys, ErrFingerprint.
func (c *Client) CheckKeys(ctx context.Context) error {
	l, err := c.ownList(ctx, true)
	if err != nil {
		return fmt.Errorf("check keys: %w", err)
	}
	if !l.Has(c.keys.DevicePublic()) {
		return fmt.Errorf("check keys: %w", schema.Errorf(schema.CodeUntrustedKeys, "the account's device list does not name this device"))
	}
	return nil
}
