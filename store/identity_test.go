package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/mayfly-im/mayfly/store"
	"github.com/mayfly-im/mayfly/store/storetest"
)

// TestStorePrekeyClaimsHandOutEachOPKOnce races claims of one user's
// bundle: every one-time prekey goes to exactly one claim, and claims past
// the pool get the signed prekey alone.
func TestStorePrekeyClaimsHandOutEachOPKOnce(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	u := newUser(t, db, "alice")
	dev := listDevice(t, db, u, "phone")
	if _, err := db.Pool().Exec(ctx, `UPDATE users SET device_list = '{}' WHERE id = $1`, u.ID); err != nil {
		t.Fatal(err)
	}
	spk := &store.Prekey{KID: []byte("spk00001"), Body: []byte("spk")}
	var opks []store.Prekey
	for i := range 10 {
		opks = append(opks, store.Prekey{KID: []byte(fmt.Sprintf("opk%05d", i)), Body: []byte(fmt.Sprintf("opk%d", i))})
	}
	if n, err := db.PutPrekeys(ctx, dev, spk, opks); err != nil || n != 10 {
		t.Fatalf("PutPrekeys = %d, %v", n, err)
	}
	var mu sync.Mutex
	got := map[string]int{}
	spkOnly := 0
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			_, devs, err := db.ClaimBundle(ctx, u.ID, u.ID, store.ClaimLimits{})
			if err != nil || len(devs) != 1 || string(devs[0].SPK) != "spk" {
				t.Errorf("ClaimBundle = %v, %v", devs, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if devs[0].OPK == nil {
				spkOnly++
			} else {
				got[string(devs[0].OPK)]++
			}
		})
	}
	wg.Wait()
	if len(got) != 10 || spkOnly != 6 {
		t.Fatalf("claims got %d distinct OPKs and %d SPK-only bundles, want 10 and 6", len(got), spkOnly)
	}
	for k, n := range got {
		if n != 1 {
			t.Errorf("%s handed out %d times", k, n)
		}
	}
	kids, hasSPK, err := db.UnclaimedOPKs(ctx, dev)
	if err != nil || len(kids) != 0 || !hasSPK {
		t.Errorf("after the claims: %d unclaimed, spk %v, %v", len(kids), hasSPK, err)
	}
	many := make([]store.Prekey, store.MaxOPKs+1)
	for i := range many {
		many[i] = store.Prekey{KID: []byte(fmt.Sprintf("m%07d", i)), Body: []byte("x")}
	}
	if _, err := db.PutPrekeys(ctx, dev, nil, many); !errors.Is(err, store.ErrPrekeyLimit) {
		t.Errorf("over the pool limit: %v, want ErrPrekeyLimit", err)
	}
}
