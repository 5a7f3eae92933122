package store_test

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/store"
	"github.com/mayfly-im/mayfly/store/storetest"
)

func TestStorePresenceShareLastSeen(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	a, b := newUser(t, db, "alice"), newUser(t, db, "bob")
	unknown := schema.NewUserID()

	got, err := db.ShareLastSeen(ctx, []string{a.ID, b.ID, unknown})
	if want := map[string]bool{a.ID: true, b.ID: true}; err != nil || !maps.Equal(got, want) {
		t.Fatalf("ShareLastSeen (defaults) = %v, %v; want %v", got, err, want)
	}
	if err := db.SetShareLastSeen(ctx, a.ID, false); err != nil {
		t.Fatalf("SetShareLastSeen(alice, false): %v", err)
	}
	got, err = db.ShareLastSeen(ctx, []string{a.ID, b.ID})
	if want := map[string]bool{a.ID: false, b.ID: true}; err != nil || !maps.Equal(got, want) {
		t.Fatalf("ShareLastSeen after opting out = %v, %v; want %v", got, err, want)
	}
	if err := db.SetShareLastSeen(ctx, unknown, true); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetShareLastSeen(unknown) = %v, want ErrNotFound", err)
	}
	got, err = db.ShareLastSeen(ctx, nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("ShareLastSeen(nil) = %v, %v; want empty", got, err)
	}
}
