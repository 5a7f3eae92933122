package store_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/store"
	"github.com/mayfly-im/mayfly/store/storetest"
)

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func newUser(t *testing.T, db *store.DB, handle string) store.User {
	t.Helper()
	u, err := db.CreateUser(context.Background(), store.User{
		ID: schema.NewUserID(), Handle: handle, IK: randBytes(32),
	})
	if err != nil {
		t.Fatalf("CreateUser(%q): %v", handle, err)
	}
	return u
}

func newChallenge(t *testing.T, db *store.DB, userID string, ttl time.Duration) string {
	t.Helper()
	id := schema.NewID('c')
	if err := db.CreateChallenge(context.Background(), id, userID, randBytes(32), time.Now().Add(ttl)); err != nil {
		t.Fatalf("CreateChallenge: %v", err)
	}
	return id
}

func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// deviceKey is the test's device key of u's device name.
func deviceKey(u store.User, name string) []byte {
	return hashOf(u.ID + "/" + name)
}

// listDevice puts u's device name into u's device list (publishing a new
// list of every active device and it) and returns its id. The store takes
// the list's bytes as given; the service checks the signature.
func listDevice(t *testing.T, db *store.DB, u store.User, name string) string {
	t.Helper()
	ctx := context.Background()
	key := deviceKey(u, name)
	id := "d" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(key[:16]))
	var devs []store.ListedDevice
	rows, err := db.Pool().Query(ctx, `SELECT id, sign_key FROM devices WHERE user_id = $1 AND revoked_at IS NULL`, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var d store.ListedDevice
		if err := rows.Scan(&d.ID, &d.Key); err != nil {
			t.Fatal(err)
		}
		if d.ID == id {
			rows.Close()
			return id
		}
		devs = append(devs, d)
	}
	var ver int64
	if err := db.Pool().QueryRow(ctx, `SELECT list_version FROM users WHERE id = $1`, u.ID).Scan(&ver); err != nil {
		t.Fatal(err)
	}
	devs = append(devs, store.ListedDevice{ID: id, Key: key})
	if _, err := db.PublishDeviceList(ctx, store.ListParams{UserID: u.ID, Version: ver + 1, List: []byte("{}"), Devices: devs}); err != nil {
		t.Fatalf("list device %s: %v", name, err)
	}
	return id
}

// login runs a login for device on a fresh challenge, listing the device
// first if needed; the refresh token's hash is hashOf(refresh).
func login(t *testing.T, db *store.DB, u store.User, device, refresh string) (store.Device, error) {
	t.Helper()
	return db.Login(context.Background(), store.LoginParams{
		ChallengeID:    newChallenge(t, db, u.ID, time.Minute),
		DeviceID:       listDevice(t, db, u, device),
		DeviceName:     device,
		RefreshHash:    hashOf(refresh),
		RefreshExpires: time.Now().Add(time.Hour),
	})
}

func count(t *testing.T, db *store.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Pool().QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestStoreCreateUserRace(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			handle := []string{"Race_1", "race_1", "RACE_1"}[i%3]
			_, errs[i] = db.CreateUser(context.Background(), store.User{
				ID: schema.NewUserID(), Handle: handle, IK: randBytes(32),
			})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrHandleTaken):
			t.Errorf("CreateUser: %v, want nil or ErrHandleTaken", err)
		}
	}
	if won != 1 {
		t.Errorf("%d registrations won, want exactly 1", won)
	}
	if got := count(t, db, `SELECT count(*) FROM users`); got != 1 {
		t.Errorf("%d users stored, want 1", got)
	}
}

func TestStoreUserByHandle(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	u := newUser(t, db, "Alice")
	for _, h := range []string{"Alice", "alice", "ALICE"} {
		got, err := db.UserByHandle(ctx, h)
		if err != nil || got.ID != u.ID || got.Handle != "Alice" {
			t.Errorf("UserByHandle(%q) = %+v, %v; want %s as Alice", h, got, err, u.ID)
		}
	}
	if _, err := db.UserByHandle(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByHandle(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := db.UserByID(ctx, schema.NewUserID()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByID(unknown) = %v, want ErrNotFound", err)
	}
}

// TestStoreChallengeEviction: requesting many challenges for a user keeps
// the newest open ones and never refuses, so nobody can lock a user out.
func TestStoreChallengeEviction(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	alice, bob := newUser(t, db, "alice"), newUser(t, db, "bob")
	bobs := newChallenge(t, db, bob.ID, time.Minute)
	var ids []string
	for range 40 {
		ids = append(ids, newChallenge(t, db, alice.ID, time.Minute))
	}
	if n := count(t, db, `SELECT count(*) FROM login_challenges WHERE user_id = $1`, alice.ID); n != 16 {
		t.Errorf("alice has %d challenges stored, want 16", n)
	}
	if _, err := db.ChallengeByID(ctx, ids[len(ids)-1]); err != nil {
		t.Errorf("newest challenge: %v", err)
	}
	if _, err := db.ChallengeByID(ctx, ids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("oldest challenge = %v, want evicted", err)
	}
	if _, err := db.ChallengeByID(ctx, bobs); err != nil {
		t.Errorf("another user's challenge: %v", err)
	}
}

func TestStoreLoginChallenge(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	u := newUser(t, db, "alice")
	phone := listDevice(t, db, u, "phone")
	params := func(ch string) store.LoginParams {
		return store.LoginParams{ChallengeID: ch, DeviceName: "phone", DeviceID: phone,
			RefreshHash: randBytes(32), RefreshExpires: time.Now().Add(time.Hour)}
	}
	ch := newChallenge(t, db, u.ID, time.Minute)
	d, err := db.Login(ctx, params(ch))
	if err != nil || d.UserID != u.ID || d.Generation != 1 || d.Name != "phone" {
		t.Fatalf("Login = %+v, %v", d, err)
	}
	if _, err := db.Login(ctx, params(ch)); !errors.Is(err, store.ErrChallengeUsed) {
		t.Errorf("Login(used challenge) = %v, want ErrChallengeUsed", err)
	}
	expired := newChallenge(t, db, u.ID, -time.Second)
	if _, err := db.Login(ctx, params(expired)); !errors.Is(err, store.ErrChallengeExpired) {
		t.Errorf("Login(expired challenge) = %v, want ErrChallengeExpired", err)
	}
	if _, err := db.Login(ctx, params(schema.NewID('c'))); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Login(unknown challenge) = %v, want ErrNotFound", err)
	}
	if n := count(t, db, `SELECT count(*) FROM devices`); n != 1 {
		t.Errorf("%d devices after failed logins, want 1", n)
	}
}

func TestStoreLoginListedDevicesOnly(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	u := newUser(t, db, "alice")
	first, err := login(t, db, u, "dev0", "r0")
	if err != nil {
		t.Fatal(err)
	}
	ch := newChallenge(t, db, u.ID, time.Minute)
	_, err = db.Login(ctx, store.LoginParams{ChallengeID: ch, DeviceName: "x", DeviceID: schema.NewDeviceID(),
		RefreshHash: randBytes(32), RefreshExpires: time.Now().Add(time.Hour)})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unlisted device: %v, want ErrNotFound", err)
	}
	if c, err := db.ChallengeByID(ctx, ch); err != nil || c.Used {
		t.Errorf("challenge after a refused login = %+v, %v; want unused", c, err)
	}
	again, err := login(t, db, u, "dev0", "again")
	if err != nil || again.ID != first.ID || again.Generation != first.Generation+1 {
		t.Errorf("re-login = %+v, %v; want device %s generation %d", again, err, first.ID, first.Generation+1)
	}
	if _, err := db.Refresh(ctx, hashOf("r0"), randBytes(32), time.Now().Add(time.Hour)); !errors.Is(err, store.ErrRefreshInvalid) {
		t.Errorf("refresh of the ended session = %v, want ErrRefreshInvalid", err)
	}
	if err := db.RevokeDevice(ctx, u.ID, first.ID); err != nil {
		t.Fatal(err)
	}
	_, err = db.Login(ctx, store.LoginParams{ChallengeID: ch, DeviceName: "dev0", DeviceID: first.ID,
		RefreshHash: randBytes(32), RefreshExpires: time.Now().Add(time.Hour)})
	if !errors.Is(err, store.ErrDeviceRevoked) {
		t.Errorf("login of a revoked device: %v, want ErrDeviceRevoked", err)
	}
}

func TestStoreDeviceListRules(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	alice, bob := newUser(t, db, "alice"), newUser(t, db, "bob")
	phone, laptop := listDevice(t, db, alice, "phone"), listDevice(t, db, alice, "laptop")
	pd := store.ListedDevice{ID: phone, Key: deviceKey(alice, "phone")}
	ld := store.ListedDevice{ID: laptop, Key: deviceKey(alice, "laptop")}
	publish := func(u store.User, ver int64, devs ...store.ListedDevice) ([]string, error) {
		return db.PublishDeviceList(ctx, store.ListParams{UserID: u.ID, Version: ver, List: []byte("{}"), Devices: devs})
	}
	if _, err := publish(alice, 2, pd); !errors.Is(err, store.ErrStaleList) {
		t.Errorf("same version again: %v, want ErrStaleList", err)
	}
	if _, err := publish(bob, 1, ld); !errors.Is(err, store.ErrKeyTaken) {
		t.Errorf("another user's key: %v, want ErrKeyTaken", err)
	}
	revoked, err := publish(alice, 3, pd)
	if err != nil || len(revoked) != 1 || revoked[0] != laptop {
		t.Fatalf("dropping the laptop: %v, %v", revoked, err)
	}
	if _, gone, err := db.DeviceKey(ctx, alice.ID, laptop); err != nil || !gone {
		t.Errorf("dropped device: revoked %v, %v", gone, err)
	}
	if _, err := publish(alice, 4, pd, ld); !errors.Is(err, store.ErrDeviceRevoked) {
		t.Errorf("relisting the revoked key: %v, want ErrDeviceRevoked", err)
	}
	var n int
	if err := db.Pool().QueryRow(ctx, `SELECT list_version FROM users WHERE id = $1`, alice.ID).Scan(&n); err != nil || n != 3 {
		t.Errorf("stored version %d, %v; want 3 (refused lists change nothing)", n, err)
	}
}

func TestStoreRefresh(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	u := newUser(t, db, "alice")
	d, err := login(t, db, u, "phone", "r1")
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	got, err := db.Refresh(ctx, hashOf("r1"), hashOf("r2"), exp)
	if err != nil || got.ID != d.ID || got.Generation != d.Generation {
		t.Fatalf("Refresh(r1) = %+v, %v", got, err)
	}
	if _, err := db.Refresh(ctx, hashOf("r2"), hashOf("r3"), exp); err != nil {
		t.Fatalf("Refresh(r2) = %v", err)
	}
	got, err = db.Refresh(ctx, hashOf("r1"), hashOf("x"), exp)
	if !errors.Is(err, store.ErrRefreshReused) || got.ID != d.ID || got.Generation != d.Generation+1 {
		t.Fatalf("Refresh(r1 again) = %+v, %v; want ErrRefreshReused with the bumped device", got, err)
	}
	if n := count(t, db, `SELECT count(*) FROM refresh_tokens`); n != 0 {
		t.Errorf("%d refresh tokens left after reuse, want 0", n)
	}
	for _, r := range []string{"r3", "x", "never"} {
		if _, err := db.Refresh(ctx, hashOf(r), randBytes(32), exp); !errors.Is(err, store.ErrRefreshInvalid) {
			t.Errorf("Refresh(%s) after reuse = %v, want ErrRefreshInvalid", r, err)
		}
	}
	cur, err := db.DeviceByID(ctx, d.ID)
	if err != nil || cur.Generation != d.Generation+1 || cur.RevokedAt != nil {
		t.Errorf("device after reuse = %+v, %v", cur, err)
	}
}

func TestStoreRefreshExpiredAndRevoked(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	u := newUser(t, db, "alice")
	_, err := db.Login(ctx, store.LoginParams{ChallengeID: newChallenge(t, db, u.ID, time.Minute), DeviceName: "phone",
		DeviceID: listDevice(t, db, u, "phone"), RefreshHash: hashOf("old"), RefreshExpires: time.Now().Add(-time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Refresh(ctx, hashOf("old"), randBytes(32), time.Now().Add(time.Hour)); !errors.Is(err, store.ErrRefreshInvalid) {
		t.Errorf("Refresh(expired) = %v, want ErrRefreshInvalid", err)
	}
	if _, err := login(t, db, u, "laptop", "lap"); err != nil {
		t.Fatal(err)
	}
	lap, _ := db.Devices(ctx, u.ID)
	if err := db.RevokeDevice(ctx, u.ID, lap[1].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Refresh(ctx, hashOf("lap"), randBytes(32), time.Now().Add(time.Hour)); !errors.Is(err, store.ErrRefreshInvalid) {
		t.Errorf("Refresh(revoked device) = %v, want ErrRefreshInvalid", err)
	}
}

func TestStoreRevokeDevice(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	alice, bob := newUser(t, db, "alice"), newUser(t, db, "bob")
	d, err := login(t, db, alice, "phone", "r")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeDevice(ctx, bob.ID, d.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeDevice(another user's device) = %v, want ErrNotFound", err)
	}
	if err := db.RevokeDevice(ctx, alice.ID, d.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeDevice(ctx, alice.ID, d.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeDevice twice = %v, want ErrNotFound", err)
	}
	got, err := db.DeviceByID(ctx, d.ID)
	if err != nil || got.RevokedAt == nil || got.Generation != d.Generation+1 {
		t.Errorf("revoked device = %+v, %v", got, err)
	}
	if ds, _ := db.Devices(ctx, alice.ID); len(ds) != 0 {
		t.Errorf("Devices lists %d revoked devices", len(ds))
	}
	if n := count(t, db, `SELECT count(*) FROM refresh_tokens WHERE device_id = $1`, d.ID); n != 0 {
		t.Errorf("%d refresh tokens left for the revoked device", n)
	}
}

// TestStoreConcurrentSessions races re-logins of one device against refreshes
// of its tokens and new challenges: every outcome must be a documented
// condition, never a deadlock or another internal error.
func TestStoreConcurrentSessions(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	u := newUser(t, db, "alice")
	if _, err := login(t, db, u, "phone", "r0"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for w := range 4 {
		wg.Go(func() {
			for i := range 10 {
				var err error
				switch w {
				case 0:
					_, err = login(t, db, u, "phone", fmt.Sprintf("l%d", i))
				case 1:
					_, err = db.Refresh(ctx, hashOf(fmt.Sprintf("l%d", i)), randBytes(32), time.Now().Add(time.Hour))
				case 2:
					_, err = db.Refresh(ctx, hashOf("r0"), randBytes(32), time.Now().Add(time.Hour))
				default:
					err = db.CreateChallenge(ctx, schema.NewID('c'), u.ID, randBytes(32), time.Now().Add(time.Minute))
				}
				if err != nil && !errors.Is(err, store.ErrRefreshInvalid) && !errors.Is(err, store.ErrRefreshReused) &&
					!errors.Is(err, store.ErrNotFound) {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected error: %v", err)
	}
}

func TestStoreMigrate(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("Migrate on a migrated database: %v", err)
	}
	have, known, err := db.SchemaVersion(ctx)
	if err != nil || have != known || known < 1 {
		t.Fatalf("SchemaVersion = %d, %d, %v", have, known, err)
	}
	if _, err := db.Pool().Exec(ctx, `UPDATE mayfly_schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	err = db.Migrate(ctx)
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("Migrate on a newer database = %v, want ErrSchemaTooNew", err)
	}
	t.Logf("refusal reads: %v", err)
	if have, _, _ := db.SchemaVersion(ctx); have != 99 {
		t.Errorf("version after refused Migrate = %d, want 99 untouched", have)
	}
}

// TestStoreRefreshKeepsBoundedHistory: a long-lived device keeps only the
// newest used refresh tokens (for reuse detection), not one row per refresh.
func TestStoreRefreshKeepsBoundedHistory(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	u := newUser(t, db, "alice")
	tok := hashOf("r0")
	if _, err := db.Login(ctx, store.LoginParams{ChallengeID: newChallenge(t, db, u.ID, time.Minute), DeviceName: "phone",
		DeviceID: listDevice(t, db, u, "phone"), RefreshHash: tok, RefreshExpires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 40; i++ {
		next := hashOf("r" + strconv.Itoa(i))
		if _, err := db.Refresh(ctx, tok, next, time.Now().Add(time.Hour)); err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
		tok = next
	}
	var rows int
	if err := db.Pool().QueryRow(ctx, `SELECT count(*) FROM refresh_tokens`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows > 17 {
		t.Fatalf("%d refresh token rows after 40 refreshes, want at most 17", rows)
	}
	// The previous token is still recognised as reused.
	if _, err := db.Refresh(ctx, hashOf("r39"), hashOf("x"), time.Now().Add(time.Hour)); !errors.Is(err, store.ErrRefreshReused) {
		t.Fatalf("reuse of the previous token: %v, want ErrRefreshReused", err)
	}
}
