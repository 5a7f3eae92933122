package app_test

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
	"github.com/mayfly-im/mayfly/cmd/mayflyd/app/apptest"
	"github.com/mayfly-im/mayfly/schema"
)

// TestNativeAttackListRevocation: the primary revokes the laptop by
// publishing a list without it (not DELETE /v1/devices). The laptop's live
// NATS connection is closed, it cannot reconnect, and its copy (keys and
// access token) can neither claim bundles nor upload prekeys over NATS or
// HTTP, nor log in again.
func TestNativeAttackListRevocation(t *testing.T) {
	t.Parallel()
	a := apptest.Start(t, app.Config{})
	alice := apptest.NewUser(t, a.HTTPAddr(), "alice")
	bob := apptest.NewUser(t, a.HTTPAddr(), "bob")
	alice.Must("POST", "/v1/friends/requests", map[string]string{"handle": "bob"}, nil)
	bob.Must("POST", "/v1/friends/requests/alice/accept", nil, nil)
	laptop := alice.Device("laptop")
	n := newNative(t, a, laptop)
	n.must("keys.claim", map[string]string{"user_id": bob.User.UserID}, nil)
	closed := make(chan struct{})
	n.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })

	alice.PublishList([]ed25519.PublicKey{alice.DK.Public().(ed25519.PublicKey)})
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatalf("the revoked laptop's NATS connection is still %v 5s after the list dropped it", n.nc.Status())
	}
	if _, _, err := nativeConn(t, a.NATSURL(), laptop); err == nil {
		t.Error("the revoked laptop reconnected over NATS")
	}
	if st, e := laptop.Do("POST", "/v1/users/"+bob.User.UserID+"/bundle", nil, nil); e == nil || e.Code != schema.CodeTokenRevoked {
		t.Errorf("bundle claim over HTTP: %d %v, want token_revoked", st, e)
	}
	if st, e := laptop.Do("PUT", "/v1/prekeys", schema.PrekeysUpload{}, nil); e == nil || e.Code != schema.CodeTokenRevoked {
		t.Errorf("prekey upload over HTTP: %d %v, want token_revoked", st, e)
	}
	var ch schema.Challenge
	alice.Must("POST", "/v1/login/challenge", schema.ChallengeRequest{Handle: "alice"}, &ch)
	laptop.Session = schema.Session{}
	if st, e := laptop.Do("POST", "/v1/login", apptest.SignChallenge(ch, laptop.DK, "laptop"), nil); e == nil || e.Code != schema.CodeDeviceRevoked {
		t.Errorf("login: %d %v, want device_revoked", st, e)
	}
}
