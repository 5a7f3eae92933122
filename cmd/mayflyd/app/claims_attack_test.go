package app_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app"
	"github.com/mayfly-im/mayfly/cmd/mayflyd/app/apptest"
	"github.com/mayfly-im/mayfly/schema/envelope"
	"github.com/mayfly-im/mayfly/store"
	"github.com/mayfly-im/mayfly/store/storetest"
)

// TestNativeAttackClaimQuotaShared: the bundle claim quota is one count in
// Postgres, whichever transport a claim comes by (and whichever process
// serves it): mallory claiming bob's bundle over HTTP and NATS at once gets
// no more than the quota in all. Then, draining bob's one-time prekeys over
// both transports, mallory cannot take the reserve another friend needs.
func TestNativeAttackClaimQuotaShared(t *testing.T) {
	const quota = 12
	a := apptest.Start(t, app.Config{DatabaseURL: storetest.NewURL(t),
		ClaimLimits: store.ClaimLimits{Window: time.Hour, PerWindow: quota, Reserve: 4, Share: 2, Held: time.Hour}})
	addr := a.HTTPAddr()
	alice, bob, mallory := apptest.NewUser(t, addr, "alice"), apptest.NewUser(t, addr, "bob"), apptest.NewUser(t, addr, "mallory")
	bob.UploadPrekeys(8) // with NewUser's 2: ten
	for _, c := range []*apptest.Client{alice, mallory} {
		c.Must("POST", "/v1/friends/requests", map[string]string{"handle": "bob"}, nil)
		bob.Must("POST", "/v1/friends/requests/"+c.User.Handle+"/accept", nil, nil)
	}
	n := newNative(t, a, mallory)
	claims, opks := 0, 0
	count := func(raw json.RawMessage) {
		claims++
		bu, err := envelope.ParseBundle(raw)
		if err != nil || len(bu.Devices) != 1 {
			t.Fatalf("bundle %s: %v", raw, err)
		}
		if bu.Devices[0].OPK != nil {
			opks++
		}
	}
	for range quota {
		var raw json.RawMessage
		if _, e := mallory.Do("POST", "/v1/users/"+bob.User.UserID+"/bundle", nil, &raw); e == nil {
			count(raw)
		} else if e.Code != "rate_limited" {
			t.Fatalf("claim over HTTP: %v", e)
		}
		raw = nil
		if code := n.call("keys.claim", map[string]string{"user_id": bob.User.UserID}, &raw); code == "" {
			count(raw)
		} else if code != "rate_limited" {
			t.Fatalf("claim over NATS: %s", code)
		}
	}
	if claims != quota {
		t.Errorf("mallory made %d claims over HTTP and NATS together, want the quota %d", claims, quota)
	}
	// Ten one-time prekeys, four in reserve: mallory got the six above it,
	// and no share of the reserve, having taken more than two already.
	if opks != 6 {
		t.Errorf("mallory took %d one-time prekeys, want the 6 above the reserve", opks)
	}
	var raw json.RawMessage
	alice.Must("POST", "/v1/users/"+bob.User.UserID+"/bundle", nil, &raw)
	if bu, err := envelope.ParseBundle(raw); err != nil || bu.Devices[0].OPK == nil {
		t.Errorf("after mallory's claims alice's bundle has no one-time prekey (%v)", err)
	}
}
