package client_test

import (
	"errors"
	"testing"

	"github.com/mayfly-im/mayfly/gateway/client"
	"github.com/mayfly-im/mayfly/schema"
)

// TestClientIdentityReset: alice's primary is lost; her linked laptop
// resets the identity and becomes the primary. The old primary is dropped
// and cannot sign lists any more; bob's client refuses to send to the new
// key (untrusted_keys) until bob accepts it, then the laptop reads.
func TestClientIdentityReset(t *testing.T) {
	t.Parallel()
	as := atkStart(t)
	s := &server{t: t, srv: as.srv, url: as.url}
	ctx := testCtx(t)
	alice, bob := s.user("alice"), s.user("bob")
	befriend(t, alice, bob)
	laptop := s.link(alice, "laptop")
	oldFP := laptop.Identity().Fingerprint
	if laptop.Identity().Primary {
		t.Fatal("a linked device holds the identity key")
	}
	bin := run(t, bob)
	bin.waitSyncs(1)
	if _, err := bob.Send(ctx, "alice", "before"); err != nil {
		t.Fatal(err)
	}

	keys, st, err := laptop.ResetIdentity(ctx)
	if err != nil || st.Status != schema.ResetPending || keys.Primary() || keys.PendingIdentity == nil {
		t.Fatalf("a linked device's reset: %+v, %v; want pending", st, err)
	}
	if st2, err := alice.PendingIdentityReset(ctx); err != nil || st2.DeviceID != laptop.Identity().DeviceID {
		t.Fatalf("the primary sees %+v, %v", st2, err)
	}
	as.exec(`UPDATE identity_resets SET not_before = now()`) // the delay passes
	keys, st, err = laptop.ResetIdentity(ctx)
	if err != nil || st.Status != schema.ResetDone {
		t.Fatalf("reset after the delay: %+v, %v", st, err)
	}
	if !keys.Primary() || !laptop.Identity().Primary || laptop.Identity().Fingerprint == oldFP {
		t.Fatalf("after the reset: %+v", laptop.Identity())
	}
	// The old primary was dropped from the list: its session ended, and its
	// identity key no longer signs anything the server takes.
	if _, err := alice.Devices(ctx); !schema.HasCode(err, schema.CodeTokenRevoked) {
		t.Fatalf("old primary after the reset: %v, want token_revoked", err)
	}
	if err := alice.RevokeDevice(ctx, laptop.Identity().DeviceID); err == nil {
		t.Fatal("the old identity key still edits the device list")
	}

	_, err = bob.Send(ctx, "alice", "to the new key?")
	isCode(t, err, schema.CodeUntrustedKeys)
	p, ok := bob.Peer("alice")
	if !ok || !p.KeyChanged || p.NewFingerprint != laptop.Identity().Fingerprint {
		t.Fatalf("bob's pin of alice: %+v", p)
	}
	if _, err := laptop.Friends(ctx); err != nil {
		t.Fatal(err)
	}
	if sn := bob.SafetyNumber(p); sn == "" || sn != laptop.SafetyNumber(mustPeer(t, laptop, "bob")) {
		t.Fatalf("safety numbers to compare differ: %q", sn)
	}
	if _, err := bob.AcceptKey("alice"); err != nil {
		t.Fatal(err)
	}
	lin := run(t, laptop)
	lin.waitSyncs(1)
	if _, err := bob.Send(ctx, "alice", "after accepting"); err != nil {
		t.Fatal(err)
	}
	got := lin.waitReceived(2)
	last := got[len(got)-1]
	if last.Text != "after accepting" || last.Err != nil {
		t.Fatalf("laptop got %+v", last)
	}
	if errors.Is(got[0].Err, client.ErrBadMessage) {
		t.Logf("the message sent before the reset: %v", got[0].Err)
	}
}
