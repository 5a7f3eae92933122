package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/store"
	"github.com/mayfly-im/mayfly/store/storetest"
)

// TestStoreSuspend: a suspension ends every session (the refresh token of
// the old generation is refused) and is reported until lifted; a second one
// says so; unknown users are ErrNotFound.
func TestStoreSuspend(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	alice, bob := newUser(t, db, "alice"), newUser(t, db, "bob")
	d, err := login(t, db, alice, "phone", "r1")
	if err != nil {
		t.Fatal(err)
	}
	if already, err := db.SuspendUser(ctx, alice.ID); err != nil || already {
		t.Fatalf("SuspendUser = %v, %v; want false, nil", already, err)
	}
	if s, err := db.Suspended(ctx, alice.ID); err != nil || !s {
		t.Fatalf("Suspended(alice) = %v, %v", s, err)
	}
	if s, _ := db.Suspended(ctx, bob.ID); s {
		t.Fatal("bob suspended too")
	}
	after, err := db.DeviceByID(ctx, d.ID)
	if err != nil || after.Generation != d.Generation+1 {
		t.Fatalf("device after suspension: gen %d (%v), want %d", after.Generation, err, d.Generation+1)
	}
	if _, err := db.Refresh(ctx, hashOf("r1"), hashOf("r2"), time.Now().Add(time.Hour)); !errors.Is(err, store.ErrRefreshInvalid) {
		t.Errorf("refresh after suspension = %v, want ErrRefreshInvalid", err)
	}
	pending, err := db.PendingAnnouncements(ctx, 10)
	if err != nil || len(pending) != 1 || pending[0].UserID != alice.ID || len(pending[0].Devices) != 1 {
		t.Fatalf("PendingAnnouncements = %+v, %v", pending, err)
	}
	if err := db.MarkAnnounced(ctx, alice.ID); err != nil {
		t.Fatal(err)
	}
	if pending, _ := db.PendingAnnouncements(ctx, 10); len(pending) != 0 {
		t.Errorf("announced suspension still pending: %+v", pending)
	}
	if already, err := db.SuspendUser(ctx, alice.ID); err != nil || !already {
		t.Errorf("second SuspendUser = %v, %v; want true, nil", already, err)
	}
	if was, err := db.UnsuspendUser(ctx, alice.ID); err != nil || !was {
		t.Errorf("UnsuspendUser = %v, %v", was, err)
	}
	if was, err := db.UnsuspendUser(ctx, alice.ID); err != nil || was {
		t.Errorf("second UnsuspendUser = %v, %v", was, err)
	}
	if s, _ := db.Suspended(ctx, alice.ID); s {
		t.Error("still suspended after UnsuspendUser")
	}
	if _, err := db.SuspendUser(ctx, "unobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SuspendUser(unknown) = %v", err)
	}
	if _, err := db.UnsuspendUser(ctx, "unobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UnsuspendUser(unknown) = %v", err)
	}
}

// TestStoreDeleteUser: a recorded deletion is pending until DeleteUser, which
// removes every row of the user (and only of that user) and returns its
// devices.
func TestStoreDeleteUser(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	alice, bob := newUser(t, db, "alice"), newUser(t, db, "bob")
	if _, err := login(t, db, alice, "phone", "a1"); err != nil {
		t.Fatal(err)
	}
	if _, err := login(t, db, bob, "phone", "b1"); err != nil {
		t.Fatal(err)
	}
	if err := db.RequestDeletion(ctx, alice.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.RequestDeletion(ctx, alice.ID); err != nil {
		t.Fatalf("second RequestDeletion: %v", err)
	}
	if ids, err := db.PendingDeletions(ctx, 10); err != nil || len(ids) != 1 || ids[0] != alice.ID {
		t.Fatalf("PendingDeletions = %v, %v", ids, err)
	}
	if s, _ := db.Suspended(ctx, alice.ID); !s {
		t.Error("a user to be deleted is not suspended")
	}
	ds, err := db.DeleteUser(ctx, alice.ID)
	if err != nil || len(ds) != 1 {
		t.Fatalf("DeleteUser = %+v, %v", ds, err)
	}
	for _, q := range []string{
		`SELECT count(*) FROM users WHERE id = $1`, `SELECT count(*) FROM devices WHERE user_id = $1`,
		`SELECT count(*) FROM login_challenges WHERE user_id = $1`, `SELECT count(*) FROM user_deletions WHERE user_id = $1`,
		`SELECT count(*) FROM user_suspensions WHERE user_id = $1`,
	} {
		if n := count(t, db, q, alice.ID); n != 0 {
			t.Errorf("%s: %d rows left", q, n)
		}
	}
	if n := count(t, db, `SELECT count(*) FROM refresh_tokens`); n != 1 {
		t.Errorf("%d refresh tokens left, want bob's 1", n)
	}
	if _, err := db.UserByID(ctx, bob.ID); err != nil {
		t.Errorf("bob: %v", err)
	}
	if _, err := db.DeleteUser(ctx, alice.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteUser = %v, want ErrNotFound", err)
	}
	if err := db.RequestDeletion(ctx, alice.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RequestDeletion of a deleted user = %v, want ErrNotFound", err)
	}
}
