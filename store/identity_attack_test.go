package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mayfly-im/mayfly/store"
	"github.com/mayfly-im/mayfly/store/storetest"
)

// TestStoreAttackListVersionExhaustion: whoever holds the identity key (a
// stolen primary, or any old copy of a v1 home, which the migration makes
// a primary) publishes a list at the largest version, 2^53-1. No list could
// follow it: the real user could never link, revoke by list or reset the
// identity again. The server refuses such a jump.
func TestStoreAttackListVersionExhaustion(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	alice := newUser(t, db, "alice")
	phone := listDevice(t, db, alice, "phone")
	pd := store.ListedDevice{ID: phone, Key: deviceKey(alice, "phone")}
	publish := func(ver int64) error {
		_, err := db.PublishDeviceList(ctx, store.ListParams{UserID: alice.ID, Version: ver, List: []byte("{}"), Devices: []store.ListedDevice{pd}})
		return err
	}
	if err := publish(1<<53 - 1); !errors.Is(err, store.ErrListVersionJump) {
		t.Errorf("version 2^53-1 after 1: %v, want ErrListVersionJump", err)
	}
	if err := publish(1 + store.MaxListVersionStep + 1); !errors.Is(err, store.ErrListVersionJump) {
		t.Errorf("a step over the bound: %v, want ErrListVersionJump", err)
	}
	if err := publish(1 + store.MaxListVersionStep); err != nil {
		t.Errorf("a step at the bound: %v", err)
	}
	if err := publish(2 + store.MaxListVersionStep); err != nil {
		t.Errorf("the next version: %v", err)
	}
}
