package store_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/store"
	"github.com/mayfly-im/mayfly/store/storetest"
)

func newLink(t *testing.T, db *store.DB, ttl time.Duration) (code string, secretHash []byte) {
	t.Helper()
	pub := randBytes(32)
	code, secretHash = schema.LinkCode(schema.NewLinkCodeSecret(), pub, pub), randBytes(32)
	if _, err := db.CreateLink(context.Background(), code, pub, pub, secretHash, time.Now().Add(ttl)); err != nil {
		t.Fatalf("CreateLink: %v", err)
	}
	return code, secretHash
}

func sealed() store.SealedBundle {
	return store.SealedBundle{EPK: randBytes(32), Nonce: randBytes(12), CT: randBytes(100)}
}

// TestLinksLifecycle: pending, approved once, delivered once to the
// holder of the secret, then gone.
func TestLinksLifecycle(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	alice := newUser(t, db, "alice")
	code, secret := newLink(t, db, time.Minute)

	l, err := db.PendingLink(ctx, code)
	if err != nil || l.Code != code || len(l.PublicKey) != 32 {
		t.Fatalf("PendingLink = %+v, %v", l, err)
	}
	if _, err := db.TakeLinkBundle(ctx, code, randBytes(32)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("take with a wrong secret: %v", err)
	}
	if l, err := db.TakeLinkBundle(ctx, code, secret); err != nil || l.ApprovedBy != "" || l.Bundle.CT != nil {
		t.Fatalf("take while pending = %+v, %v", l, err)
	}
	b := sealed()
	if err := db.ApproveLink(ctx, code, alice.ID, "dphone", b); err != nil {
		t.Fatal(err)
	}
	if err := db.ApproveLink(ctx, code, alice.ID, "dphone", sealed()); !errors.Is(err, store.ErrLinkApproved) {
		t.Fatalf("second approval: %v", err)
	}
	if _, err := db.PendingLink(ctx, code); !errors.Is(err, store.ErrLinkApproved) {
		t.Fatalf("pending after approval: %v", err)
	}
	l, err = db.TakeLinkBundle(ctx, code, secret)
	if err != nil || l.ApprovedBy != alice.ID || l.ApprovedHandle != "alice" ||
		!bytes.Equal(l.Bundle.EPK, b.EPK) || !bytes.Equal(l.Bundle.Nonce, b.Nonce) || !bytes.Equal(l.Bundle.CT, b.CT) {
		t.Fatalf("take approved = %+v, %v", l, err)
	}
	if _, err := db.TakeLinkBundle(ctx, code, secret); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second take: %v", err)
	}
	if err := db.ApproveLink(ctx, "ABCDEFGHIJ", alice.ID, "dphone", sealed()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("approve unknown: %v", err)
	}
}

// TestLinksExpiry: an expired request can be neither approved nor fetched;
// one expired over an hour ago is pruned by the next CreateLink.
func TestLinksExpiry(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	alice := newUser(t, db, "alice")
	code, secret := newLink(t, db, -time.Second)
	if _, err := db.PendingLink(ctx, code); !errors.Is(err, store.ErrLinkExpired) {
		t.Fatalf("pending: %v", err)
	}
	if err := db.ApproveLink(ctx, code, alice.ID, "dphone", sealed()); !errors.Is(err, store.ErrLinkExpired) {
		t.Fatalf("approve: %v", err)
	}
	if _, err := db.TakeLinkBundle(ctx, code, secret); !errors.Is(err, store.ErrLinkExpired) {
		t.Fatalf("take: %v", err)
	}
	old, _ := newLink(t, db, -2*time.Hour)
	newLink(t, db, time.Minute)
	if _, err := db.PendingLink(ctx, old); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("long-expired request not pruned: %v", err)
	}
	if _, err := db.PendingLink(ctx, code); !errors.Is(err, store.ErrLinkExpired) {
		t.Fatalf("recently expired request pruned too early: %v", err)
	}
}

// TestLinksConcurrentApprove: of concurrent approvals exactly one wins;
// a second request with the same code is refused.
func TestLinksConcurrentApprove(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	alice := newUser(t, db, "alice")
	pub := randBytes(32)
	code := schema.LinkCode(schema.NewLinkCodeSecret(), pub, pub)
	if _, err := db.CreateLink(ctx, code, pub, pub, randBytes(32), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateLink(ctx, code, pub, pub, randBytes(32), time.Now().Add(time.Minute)); !errors.Is(err, store.ErrLinkExists) {
		t.Fatalf("duplicate code: %v", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = db.ApproveLink(ctx, code, alice.ID, "dphone", sealed()) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrLinkApproved):
			t.Errorf("approve: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d approvals succeeded, want 1", ok)
	}
}

// TestLinksTakeDuringApprove: a poll that races an approval sees either
// the pending request or the whole approval, the approver's handle
// included, never a half.
func TestLinksTakeDuringApprove(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	alice := newUser(t, db, "alice")
	for range 30 {
		code, secret := newLink(t, db, time.Minute)
		approved := make(chan error, 1)
		go func() { approved <- db.ApproveLink(ctx, code, alice.ID, "dphone", sealed()) }()
		for {
			l, err := db.TakeLinkBundle(ctx, code, secret)
			if err != nil {
				t.Fatal(err)
			}
			if l.ApprovedBy == "" {
				continue
			}
			if l.ApprovedBy != alice.ID || l.ApprovedHandle != "alice" || len(l.Bundle.CT) == 0 {
				t.Fatalf("took %+v", l)
			}
			break
		}
		if err := <-approved; err != nil {
			t.Fatal(err)
		}
	}
}
