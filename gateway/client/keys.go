package client

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"

	"github.com/mayfly-im/mayfly/schema/envelope"
)

// Keys are one device's private signing keys (docs/envelope.md, "Keys").
// Device is the device's own signing key (DK), made on the device; it
// never leaves it. Identity is the account's identity key (IK), held only
// by the primary device, the one that registered; nil on a linked device.
// PendingIdentity is, on a linked device, the identity key of an identity
// reset it asked for and that waits for its delay (ResetIdentity); nil
// otherwise. Keys are safe for concurrent use; do not modify them.
type Keys struct {
	Identity        ed25519.PrivateKey
	Device          ed25519.PrivateKey
	PendingIdentity ed25519.PrivateKey
}

// NewKeys makes a fresh device key and, for the primary device (the one
// about to register), a fresh identity key.
func NewKeys(primary bool) (Keys, error) {
	var k Keys
	var err error
	if _, k.Device, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return Keys{}, fmt.Errorf("generate device key: %w", err)
	}
	if primary {
		if _, k.Identity, err = ed25519.GenerateKey(rand.Reader); err != nil {
			return Keys{}, fmt.Errorf("generate identity key: %w", err)
		}
	}
	return k, nil
}

// Primary reports whether k holds the identity key.
func (k Keys) Primary() bool { return len(k.Identity) == ed25519.PrivateKeySize }

// DevicePublic returns the device key's public half.
func (k Keys) DevicePublic() ed25519.PublicKey { return k.Device.Public().(ed25519.PublicKey) }

// DeviceID returns the device's id, derived from its key.
func (k Keys) DeviceID() string { return envelope.DeviceID(k.DevicePublic()) }

// IdentityPublic returns the identity key's public half, nil if k has none.
func (k Keys) IdentityPublic() ed25519.PublicKey {
	if !k.Primary() {
		return nil
	}
	return k.Identity.Public().(ed25519.PublicKey)
}

func (k Keys) validate() error {
	if len(k.Device) != ed25519.PrivateKeySize {
		return fmt.Errorf("device key missing: %w", envelope.ErrKey)
	}
	if k.Identity != nil && !k.Primary() {
		return fmt.Errorf("identity key malformed: %w", envelope.ErrKey)
	}
	if k.PendingIdentity != nil && len(k.PendingIdentity) != ed25519.PrivateKeySize {
		return fmt.Errorf("pending identity key malformed: %w", envelope.ErrKey)
	}
	return nil
}

// LogValue implements slog.LogValuer: only the device id is logged.
func (k Keys) LogValue() slog.Value {
	if len(k.Device) != ed25519.PrivateKeySize {
		return slog.StringValue("client.Keys{}")
	}
	return slog.GroupValue(slog.String("device_id", k.DeviceID()), slog.Bool("primary", k.Primary()))
}

// String implements fmt.Stringer with the private keys redacted.
func (k Keys) String() string {
	if len(k.Device) != ed25519.PrivateKeySize {
		return "client.Keys{}"
	}
	return fmt.Sprintf("client.Keys{device:%s primary:%v}", k.DeviceID(), k.Primary())
}

// GoString implements fmt.GoStringer with the private keys redacted.
func (k Keys) GoString() string { return k.String() }
