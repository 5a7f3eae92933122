package client_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mayfly-im/mayfly/gateway/client"
	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
	"github.com/mayfly-im/mayfly/store/storetest"
)

// Attacks on identity v2 from a hostile server operator who also holds a
// full copy of a revoked device's home (issue 12). The operator edits
// Postgres directly, as such an operator would.

// atkServer is a gateway whose database the test can edit behind it.
type atkServer struct {
	t   *testing.T
	srv *gatewaytest.Server
	url string
	db  *pgx.Conn
}

func atkStart(t *testing.T) *atkServer {
	t.Helper()
	dbURL := storetest.NewURL(t)
	a := gatewaytest.Start(t, gatewaytest.Config{DatabaseURL: dbURL, SendRate: 1000, SendBurst: 1000, Native: true})
	db, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	return &atkServer{t: t, srv: a, url: "http://" + a.HTTPAddr(), db: db}
}

// exec runs an operator's SQL statement.
func (s *atkServer) exec(sql string, args ...any) {
	s.t.Helper()
	if _, err := s.db.Exec(context.Background(), sql, args...); err != nil {
		s.t.Fatalf("operator: %s: %v", sql, err)
	}
}

// atkClient returns a client for keys, not yet registered or logged in.
func (s *atkServer) atkClient(keys client.Keys, mod func(*client.Config)) *client.Client {
	s.t.Helper()
	cfg := client.Config{Server: s.url, Keys: keys, DeviceName: "dev", MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// atkUser registers handle on a fresh primary device and logs it in. With
// dir, the device keeps its state there as the CLI does.
func (s *atkServer) atkUser(ctx context.Context, handle string, dir *client.Dir) *client.Client {
	s.t.Helper()
	k, err := client.NewKeys(true)
	if err != nil {
		s.t.Fatal(err)
	}
	c := s.atkClient(k, func(cfg *client.Config) {
		if dir != nil {
			cfg.Storage = dir
		}
	})
	if _, err := c.Register(ctx, handle); err != nil {
		s.t.Fatalf("register %s: %v", handle, err)
	}
	if dir != nil {
		if err := dir.SaveIdentity(c.Identity().UserID, handle, k, nil); err != nil {
			s.t.Fatal(err)
		}
	}
	if _, err := c.Login(ctx); err != nil {
		s.t.Fatalf("login %s: %v", handle, err)
	}
	return c
}

// atkLink links a second device to primary's user and logs it in. With
// dir, the device keeps its state there.
func (s *atkServer) atkLink(ctx context.Context, primary *client.Client, dir *client.Dir) *client.Client {
	s.t.Helper()
	k, err := client.NewKeys(false)
	if err != nil {
		s.t.Fatal(err)
	}
	pl, err := client.StartLink(ctx, client.LinkConfig{Server: s.url, Keys: k, PollInterval: 20 * time.Millisecond})
	if err != nil {
		s.t.Fatal(err)
	}
	type result struct {
		l   client.Linked
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := pl.Wait(ctx)
		done <- result{l, err}
	}()
	if err := primary.ApproveLink(ctx, pl.Code()); err != nil {
		s.t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		s.t.Fatal(r.err)
	}
	c := s.atkClient(k, func(cfg *client.Config) {
		cfg.UserID, cfg.Handle, cfg.IdentityKey = r.l.UserID, r.l.Handle, r.l.IdentityKey
		if dir != nil {
			cfg.Storage = dir
		}
	})
	if _, err := c.Login(ctx); err != nil {
		s.t.Fatalf("login linked device: %v", err)
	}
	return c
}

func atkBefriend(ctx context.Context, t *testing.T, a, b *client.Client) client.Peer {
	t.Helper()
	if _, err := a.FriendRequest(ctx, b.Identity().Handle); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AcceptFriend(ctx, a.Identity().Handle); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Friends(ctx); err != nil {
		t.Fatal(err)
	}
	p, ok := a.Peer(b.Identity().Handle)
	if !ok {
		t.Fatalf("%s has no pin for %s", a.Identity().Handle, b.Identity().Handle)
	}
	return p
}

// rollbackScene: alice and bob are friends, one of them keeping its state
// in home (homeUser); alice has a linked laptop, whose keys the thief
// copied; oldList and oldVersion are alice's list naming the laptop.
type rollbackScene struct {
	home               *client.Dir
	alice, bob, laptop *client.Client
	thief              client.Keys
	aliceID, laptopID  string
	oldList            []byte
	oldVersion         int64
}

func (s *atkServer) rollbackScene(ctx context.Context, homeUser string) rollbackScene {
	t := s.t
	t.Helper()
	var r rollbackScene
	var err error
	if r.home, err = client.OpenDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	homeOf := func(h string) *client.Dir {
		if h == homeUser {
			return r.home
		}
		return nil
	}
	r.alice, r.bob = s.atkUser(ctx, "alice", homeOf("alice")), s.atkUser(ctx, "bob", homeOf("bob"))
	atkBefriend(ctx, t, r.bob, r.alice)
	if _, err := r.alice.Friends(ctx); err != nil {
		t.Fatal(err)
	}
	r.laptop = s.atkLink(ctx, r.alice, nil)
	r.thief, r.aliceID = r.laptop.Keys(), r.alice.Identity().UserID
	r.laptopID = r.thief.DeviceID()
	if err := s.db.QueryRow(ctx, `SELECT device_list, list_version FROM users WHERE id = $1`, r.aliceID).Scan(&r.oldList, &r.oldVersion); err != nil {
		t.Fatal(err)
	}
	return r
}

// restart returns a client from the scene's home, as a new CLI process.
func (r rollbackScene) restart(t *testing.T, url string) *client.Client {
	t.Helper()
	cfg, err := r.home.Config(url)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestClientAttackOwnListRollback: alice revokes her linked laptop; its
// thief runs the server. The operator puts back the older device list
// (still validly signed by alice's identity key), un-revokes the laptop's
// row and gives it a signed prekey made with the stolen laptop key. Alice's
// primary must not seal her next message's sync copy for the laptop: it
// signed the newer list itself, so the older one is a rollback.
func TestClientAttackOwnListRollback(t *testing.T) {
	t.Parallel()
	s := atkStart(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := s.rollbackScene(ctx, "alice")
	if err := r.alice.RevokeDevice(ctx, r.laptopID); err != nil {
		t.Fatal(err)
	}
	spk := s.rollBack(r.aliceID, r.laptopID, r.thief, r.oldList, r.oldVersion)
	// The same primary, and the same home in a new process (the CLI).
	noWrapFor(ctx, t, map[string]*client.Client{"primary": r.alice, "primary restarted": r.restart(t, s.url)}, "bob", r.laptopID, spk)
}

// noWrapFor fails t if any of cs seals a message to handle with a wrap for
// device, which the thief holding spk then opens. Refusing to seal with
// untrusted_keys passes.
func noWrapFor(ctx context.Context, t *testing.T, cs map[string]*client.Client, handle, device string, spk *ecdh.PrivateKey) {
	t.Helper()
	for name, c := range cs {
		p, ok := c.Peer(handle)
		if !ok {
			t.Fatalf("%s has no peer %s", name, handle)
		}
		env, _, err := c.Seal(ctx, p, []byte("after the revocation"))
		if err != nil {
			if !schema.HasCode(err, schema.CodeUntrustedKeys) {
				t.Errorf("%s: seal: %v, want untrusted_keys or no wrap for the revoked device", name, err)
			}
			continue
		}
		e, err := envelope.ParseV2(env)
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := e.WrapFor(device); ok {
			pt, err := e.Open(device, c.Keys().DevicePublic(), spk, nil)
			t.Errorf("%s sealed for the revoked device after a rollback of the list (wrap %+v); the thief opens it: %q, %v", name, w, pt, err)
		}
	}
}

// rollBack is the operator putting back user's older device list (version
// ver, which still names the revoked device) with a signed prekey of the
// thief's for it; it returns that prekey's private key.
func (s *atkServer) rollBack(userID, deviceID string, thief client.Keys, list []byte, ver int64) *ecdh.PrivateKey {
	t := s.t
	t.Helper()
	spk, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := envelope.SignPrekey(userID, deviceID, envelope.KindSPK, spk, time.Now(), thief.Device)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := envelope.ParsePrekey(body)
	if err != nil {
		t.Fatal(err)
	}
	kid := pk.KeyID()
	s.exec(`UPDATE users SET device_list = $2, list_version = $3 WHERE id = $1`, userID, list, ver)
	s.exec(`UPDATE devices SET revoked_at = NULL WHERE id = $1`, deviceID)
	s.exec(`INSERT INTO prekeys (device_id, kind, kid, body) VALUES ($1, 'spk', $2, $3)`, deviceID, kid[:], body)
	return spk
}

// TestClientAttackFriendListRollback: alice revokes her linked laptop; its
// thief runs the server. Bob's client last saw alice's list from before the
// revocation. Alice then writes to bob; her message carries her list's
// version (docs/payload.md, "lv"). The operator puts back the older list
// with a prekey of the thief's for the laptop: bob's next message to alice,
// from the same client or from his home in a new process, must not be
// sealed for the laptop.
func TestClientAttackFriendListRollback(t *testing.T) {
	s := atkStart(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := s.rollbackScene(ctx, "bob")
	alicePeer, _ := r.bob.Peer("alice")
	if _, _, err := r.bob.Seal(ctx, alicePeer, []byte("x")); err != nil { // bob sees the list naming the laptop
		t.Fatal(err)
	}
	if err := r.alice.RevokeDevice(ctx, r.laptopID); err != nil {
		t.Fatal(err)
	}
	in := run(t, r.bob)
	in.waitSyncs(1)
	run(t, r.alice).waitSyncs(1)
	if _, err := r.alice.Send(ctx, "bob", "I revoked my laptop"); err != nil {
		t.Fatal(err)
	}
	if m := in.waitReceived(1); m[0].Err != nil {
		t.Fatalf("bob reads %+v", m[0])
	}
	spk := s.rollBack(r.aliceID, r.laptopID, r.thief, r.oldList, r.oldVersion)
	noWrapFor(ctx, t, map[string]*client.Client{"bob": r.bob, "bob restarted": r.restart(t, s.url)}, "alice", r.laptopID, spk)
}

// TestClientAttackRevokedCopy: a full copy of a revoked linked device's
// home (keys and session) can neither log in, refresh, claim bundles,
// upload prekeys nor put itself back in the list.
func TestClientAttackRevokedCopy(t *testing.T) {
	t.Parallel()
	s := atkStart(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alice := s.atkUser(ctx, "alice", nil)
	bob := s.atkUser(ctx, "bob", nil)
	atkBefriend(ctx, t, alice, bob)
	laptop := s.atkLink(ctx, alice, nil)
	id := laptop.Identity()
	copyOf := func() *client.Client {
		return s.atkClient(laptop.Keys(), func(cfg *client.Config) {
			cfg.UserID, cfg.Handle, cfg.IdentityKey, cfg.Session = id.UserID, id.Handle, laptop.IdentityKey(), laptop.Session()
		})
	}
	if err := alice.RevokeDevice(ctx, id.DeviceID); err != nil {
		t.Fatal(err)
	}
	thief := copyOf()
	if _, err := thief.Login(ctx); !schema.HasCode(err, schema.CodeDeviceRevoked) {
		t.Errorf("login: %v, want device_revoked", err)
	}
	if err := thief.Refresh(ctx); !schema.HasCode(err, schema.CodeRefreshInvalid) && !schema.HasCode(err, schema.CodeTokenRevoked) {
		t.Errorf("refresh: %v, want refresh_invalid", err)
	}
	thief = copyOf()
	if err := thief.MaintainPrekeys(ctx); !schema.HasCode(err, schema.CodeTokenRevoked) {
		t.Errorf("prekeys: %v, want token_revoked", err)
	}
	if _, err := thief.Lookup(ctx, "bob"); !schema.HasCode(err, schema.CodeTokenRevoked) {
		t.Errorf("lookup: %v, want token_revoked", err)
	}
	if _, _, err := thief.ResetIdentity(ctx); !schema.HasCode(err, schema.CodeTokenRevoked) && !schema.HasCode(err, schema.CodeDeviceRevoked) {
		t.Errorf("identity reset: %v, want token_revoked", err)
	}
	// Signing itself back in needs the identity key; the thief has none, and
	// a list signed by any other key is refused.
	_, fake, _ := ed25519.GenerateKey(nil)
	b, err := envelope.SignDeviceList(id.UserID, 1<<40, time.Now(), []ed25519.PublicKey{laptop.Keys().DevicePublic()}, fake)
	if err != nil {
		t.Fatal(err)
	}
	raw := gatewaytest.NewClient(t, strings.TrimPrefix(s.url, "http://"))
	if st, e := raw.Do("POST", "/v1/devicelist", schema.DeviceListRequest{List: b}, nil); e == nil || e.Code != schema.CodeBadSignature {
		t.Errorf("list signed by another key: %d %v, want bad_signature", st, e)
	}
}

// rawFriends makes raw clients a and b friends.
func rawFriends(a, b *gatewaytest.Client) {
	a.Must("POST", "/v1/friends/requests", map[string]string{"handle": b.User.Handle}, nil)
	b.Must("POST", "/v1/friends/requests/"+a.User.Handle+"/accept", nil, nil)
}

// TestClientAttackFriendDrainsOPKs: one malicious friend claims bob's
// bundle as fast as the claim limits allow, without sending anything, until
// it gets no one-time prekey. Another friend's next claim must still get
// one: a pool's last keys are held in reserve for claimers that took few
// (account.DefaultClaimLimits). Before, mallory took all 100 in 6 s and
// every other sender's messages went without a one-time prekey.
func TestClientAttackFriendDrainsOPKs(t *testing.T) {
	t.Parallel()
	s := atkStart(t)
	addr := strings.TrimPrefix(s.url, "http://")
	alice, bob, mallory := gatewaytest.NewUser(t, addr, "alice"), gatewaytest.NewUser(t, addr, "bob"), gatewaytest.NewUser(t, addr, "mallory")
	bob.UploadPrekeys(49) // with NewUser's 2: a full pool of 100
	bob.UploadPrekeys(49)
	rawFriends(alice, bob)
	rawFriends(mallory, bob)
	claim := func(c *gatewaytest.Client) (ok, opk bool) {
		var raw json.RawMessage
		if _, e := c.Do("POST", "/v1/users/"+bob.User.UserID+"/bundle", nil, &raw); e != nil {
			return false, false
		}
		bu, err := envelope.ParseBundle(raw)
		if err != nil || len(bu.Devices) != 1 {
			t.Fatalf("bundle %s: %v", raw, err)
		}
		return true, bu.Devices[0].OPK != nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for taken := 0; taken < 100 && time.Now().Before(deadline); {
		ok, opk := claim(mallory)
		switch {
		case !ok:
			time.Sleep(50 * time.Millisecond) // rate limited
		case !opk:
			taken = 100
		default:
			taken++
		}
	}
	if _, opk := claim(alice); !opk {
		t.Error("after one friend's claims, another friend's claim gets no one-time prekey")
	}
}

// TestClientAttackLinkedDeviceTakesOver: a thief holding a linked (not
// primary) device, before the user revokes it, tries to lock the primary
// out at the server (DELETE /v1/devices/{primary}) and to reset the
// identity. Neither may happen at once: a linked device revokes only
// itself, and its reset waits (IdentityResetDelay) while every device is
// told and the primary cancels it, by a list or by DELETE.
func TestClientAttackLinkedDeviceTakesOver(t *testing.T) {
	t.Parallel()
	s := atkStart(t)
	addr := strings.TrimPrefix(s.url, "http://")
	bob := gatewaytest.NewUser(t, addr, "bob")
	laptop := bob.Device("laptop")
	tablet := bob.Device("tablet")
	if _, e := laptop.Do("DELETE", "/v1/devices/"+bob.DeviceID(), nil, nil); e == nil || e.Code != schema.CodeForbidden {
		t.Errorf("a linked device revoked the primary: %v, want forbidden", e)
	}
	if _, e := laptop.Do("DELETE", "/v1/devices/"+tablet.DeviceID(), nil, nil); e == nil || e.Code != schema.CodeForbidden {
		t.Errorf("a linked device revoked another linked device: %v, want forbidden", e)
	}
	reset := func() (int, schema.IdentityReset, *schema.Error) {
		_, ik, _ := ed25519.GenerateKey(nil)
		l, err := envelope.SignDeviceList(bob.User.UserID, bob.Acct.Version+1, time.Now(), []ed25519.PublicKey{laptop.DK.Public().(ed25519.PublicKey)}, ik)
		if err != nil {
			t.Fatal(err)
		}
		var out schema.IdentityReset
		st, e := laptop.Do("POST", "/v1/identity/reset", schema.IdentityResetRequest{IK: envelope.EncodeKey(ik.Public().(ed25519.PublicKey)), List: l}, &out)
		return st, out, e
	}
	st, out, e := reset()
	if e != nil || st != 202 || out.Status != schema.ResetPending || out.NotBefore == nil || time.Until(*out.NotBefore) < time.Hour {
		t.Fatalf("a linked device's reset: %d %+v %v, want 202 pending for hours", st, out, e)
	}
	// The identity key did not change: the primary still publishes lists.
	var pending schema.IdentityReset
	tablet.Must("GET", "/v1/identity/reset", nil, &pending)
	if pending.DeviceID != laptop.DeviceID() {
		t.Errorf("pending reset seen by another device: %+v", pending)
	}
	if _, e := tablet.Do("DELETE", "/v1/identity/reset", nil, nil); e == nil || e.Code != schema.CodeForbidden {
		t.Errorf("a linked device cancelled the reset: %v, want forbidden", e)
	}
	bob.Must("DELETE", "/v1/identity/reset", nil, nil)
	if _, e := tablet.Do("GET", "/v1/identity/reset", nil, nil); e == nil || e.Code != schema.CodeNotFound {
		t.Errorf("after the primary cancelled: %v, want not_found", e)
	}
	// Asked again, then ended by the primary's next list, which drops the laptop.
	if st, _, e := reset(); st != 202 || e != nil {
		t.Fatalf("second reset: %d %v", st, e)
	}
	bob.PublishList([]ed25519.PublicKey{bob.DK.Public().(ed25519.PublicKey), tablet.DK.Public().(ed25519.PublicKey)})
	if _, e := tablet.Do("GET", "/v1/identity/reset", nil, nil); e == nil || e.Code != schema.CodeNotFound {
		t.Errorf("after a list from the identity key: %v, want not_found", e)
	}
	var u schema.User
	bob.Must("GET", "/v1/users/bob", nil, &u)
	if u.IK != envelope.EncodeKey(bob.Acct.IK.Public().(ed25519.PublicKey)) {
		t.Errorf("the identity key changed: %s", u.IK)
	}
}

// TestClientIdentityResetAfterDelay: with the primary lost, a linked device
// becomes the primary once the delay has passed, the other devices having
// been told; the primary's own reset is immediate.
func TestClientIdentityResetAfterDelay(t *testing.T) {
	const delay = 500 * time.Millisecond
	t.Parallel()
	a := gatewaytest.Start(t, gatewaytest.Config{IdentityResetDelay: delay})
	addr := a.HTTPAddr()
	bob := gatewaytest.NewUser(t, addr, "bob")
	laptop := bob.Device("laptop")
	_, ik, _ := ed25519.GenerateKey(nil)
	l, err := envelope.SignDeviceList(bob.User.UserID, bob.Acct.Version+1, time.Now(), []ed25519.PublicKey{laptop.DK.Public().(ed25519.PublicKey)}, ik)
	if err != nil {
		t.Fatal(err)
	}
	req := schema.IdentityResetRequest{IK: envelope.EncodeKey(ik.Public().(ed25519.PublicKey)), List: l}
	var out schema.IdentityReset
	if st, e := laptop.Do("POST", "/v1/identity/reset", req, &out); st != 202 || e != nil {
		t.Fatalf("reset: %d %v", st, e)
	}
	if st, e := laptop.Do("POST", "/v1/identity/reset", req, &out); st != 202 || e != nil {
		t.Fatalf("reset again before the delay: %d %v, want 202", st, e)
	}
	notBefore := *out.NotBefore
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, e := laptop.Do("POST", "/v1/identity/reset", req, &out)
		if e != nil || st != 202 && st != 200 || time.Now().After(deadline) {
			t.Fatalf("reset: %d %v", st, e)
		}
		if st == 200 {
			break
		}
	}
	if out.Status != schema.ResetDone || time.Now().Before(notBefore) {
		t.Fatalf("reset done %+v before its time %v", out, notBefore)
	}
	if _, e := bob.Do("POST", "/v1/devicelist", schema.DeviceListRequest{List: bob.SignList(bob.Acct.Keys)}, nil); e == nil {
		t.Error("the old identity key still publishes lists")
	}
	// The laptop is the primary now: it revokes at once.
	if _, e := laptop.Do("DELETE", "/v1/devices/"+bob.DeviceID(), nil, nil); e != nil && e.Code != schema.CodeNotFound {
		t.Errorf("the new primary revokes: %v", e)
	}
}

// TestClientAttackHandleRebound: handles never change and accounts are
// never deleted, so a pinned friend's handle moving to another account is
// the server lying. The operator renames bob's account and gives his handle
// to an account of its own, made alice's friend behind her back. After
// alice lists her friends, "send bob" must not seal to the operator's key
// without a warning (untrusted_keys), as for a changed identity key.
func TestClientAttackHandleRebound(t *testing.T) {
	t.Parallel()
	s := atkStart(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alice := s.atkUser(ctx, "alice", nil)
	bob := s.atkUser(ctx, "bob", nil)
	atkBefriend(ctx, t, alice, bob)
	fake := s.atkUser(ctx, "operator", nil)
	fakeID := fake.Identity().UserID
	s.exec(`UPDATE users SET handle = 'bob_old' WHERE id = $1`, bob.Identity().UserID)
	s.exec(`UPDATE users SET handle = 'bob' WHERE id = $1`, fakeID)
	s.exec(`INSERT INTO friendships (user_id, friend_id) VALUES ($1, $2), ($2, $1)`, alice.Identity().UserID, fakeID)

	if _, err := alice.Friends(ctx); err != nil {
		t.Fatal(err)
	}
	for range 5 { // Peer looks through a map: try more than one order
		p, ok := alice.Peer("bob")
		if !ok {
			t.Fatal("alice has no peer bob")
		}
		if p.UserID != fakeID {
			continue
		}
		if _, _, err := alice.Seal(ctx, p, []byte("for bob")); !schema.HasCode(err, schema.CodeUntrustedKeys) {
			t.Fatalf("\"bob\" is now the operator's account, and sealing to it gives %v, want untrusted_keys", err)
		}
	}
}
