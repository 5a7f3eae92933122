package client_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/json"
	"os"
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
	home, err := client.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	alice := s.atkUser(ctx, "alice", home)
	bob := s.atkUser(ctx, "bob", nil)
	bobPeer := atkBefriend(ctx, t, alice, bob)
	laptop := s.atkLink(ctx, alice, nil)
	thief := laptop.Keys() // the full copy of the laptop's home
	laptopID := thief.DeviceID()

	var oldList []byte
	var oldVersion int64
	aliceID := alice.Identity().UserID
	if err := s.db.QueryRow(ctx, `SELECT device_list, list_version FROM users WHERE id = $1`, aliceID).Scan(&oldList, &oldVersion); err != nil {
		t.Fatal(err)
	}
	if err := alice.RevokeDevice(ctx, laptopID); err != nil {
		t.Fatal(err)
	}

	// The operator rolls the list back and serves a prekey of the thief's.
	spk, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := envelope.SignPrekey(aliceID, laptopID, envelope.KindSPK, spk, time.Now(), thief.Device)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := envelope.ParsePrekey(body)
	if err != nil {
		t.Fatal(err)
	}
	kid := pk.KeyID()
	s.exec(`UPDATE users SET device_list = $2, list_version = $3 WHERE id = $1`, aliceID, oldList, oldVersion)
	s.exec(`UPDATE devices SET revoked_at = NULL WHERE id = $1`, laptopID)
	s.exec(`INSERT INTO prekeys (device_id, kind, kid, body) VALUES ($1, 'spk', $2, $3)`, laptopID, kid[:], body)

	// The same primary, and the same home in a new process (the CLI).
	cfg, err := home.Config(s.url)
	if err != nil {
		t.Fatal(err)
	}
	restarted, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*client.Client{"primary": alice, "primary restarted": restarted} {
		env, _, err := c.Seal(ctx, bobPeer, []byte("after the revocation"))
		if err != nil {
			if !schema.HasCode(err, schema.CodeUntrustedKeys) {
				t.Errorf("%s: seal: %v, want untrusted_keys or no wrap for the laptop", name, err)
			}
			continue
		}
		e, err := envelope.ParseV2(env)
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := e.WrapFor(laptopID); ok {
			pt, err := e.Open(laptopID, alice.Keys().DevicePublic(), spk, nil)
			t.Errorf("%s sealed for the revoked laptop after a rollback of its own list (wrap %+v); the thief opens it: %q, %v",
				name, w, pt, err)
		}
	}
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
	if _, err := thief.ResetIdentity(ctx); !schema.HasCode(err, schema.CodeTokenRevoked) && !schema.HasCode(err, schema.CodeDeviceRevoked) {
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

// knownHole skips a test of a hole reported to the lead and not fixed yet,
// unless MAYFLY_KNOWN_HOLES is set.
func knownHole(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("MAYFLY_KNOWN_HOLES") == "" {
		t.Skip("known hole (attack report): " + why + "; MAYFLY_KNOWN_HOLES=1 runs it")
	}
}

// rawFriends makes raw clients a and b friends.
func rawFriends(a, b *gatewaytest.Client) {
	a.Must("POST", "/v1/friends/requests", map[string]string{"handle": b.User.Handle}, nil)
	b.Must("POST", "/v1/friends/requests/"+a.User.Handle+"/accept", nil, nil)
}

// TestClientAttackFriendDrainsOPKs: one malicious friend claims bob's
// bundle as fast as the claim limit allows (10/s, burst 40) and takes all
// 100 one-time prekeys in about 6 seconds without sending anything; every
// other friend's next message is then sealed to the signed prekey alone,
// so its forward secrecy waits for the SPK's deletion (up to ~2 h) instead
// of the burn. docs/envelope.md says a friend "only weakens forward secrecy
// of their own messages".
func TestClientAttackFriendDrainsOPKs(t *testing.T) {
	t.Parallel()
	knownHole(t, "a friend drains another user's one-time prekey pool for everyone")
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
// primary) device, before the user revokes it, locks the primary out at the
// server (DELETE /v1/devices/{primary}) and resets the identity: the
// primary can then neither log in nor publish a list; the account is the
// thief's. Only the primary may approve devices (docs/envelope.md), yet any
// linked device may remove it and take its place.
func TestClientAttackLinkedDeviceTakesOver(t *testing.T) {
	t.Parallel()
	knownHole(t, "a linked device can lock out the primary and reset the identity")
	s := atkStart(t)
	addr := strings.TrimPrefix(s.url, "http://")
	bob := gatewaytest.NewUser(t, addr, "bob")
	laptop := bob.Device("laptop")
	if _, e := laptop.Do("DELETE", "/v1/devices/"+bob.DeviceID(), nil, nil); e == nil {
		t.Error("a linked device revoked the primary")
	}
	_, ik, _ := ed25519.GenerateKey(nil)
	l, err := envelope.SignDeviceList(bob.User.UserID, bob.Acct.Version+1, time.Now(), []ed25519.PublicKey{laptop.DK.Public().(ed25519.PublicKey)}, ik)
	if err != nil {
		t.Fatal(err)
	}
	req := schema.IdentityResetRequest{IK: envelope.EncodeKey(ik.Public().(ed25519.PublicKey)), List: l}
	if _, e := laptop.Do("POST", "/v1/identity/reset", req, nil); e == nil {
		t.Error("a linked device replaced the identity key while the primary is active")
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
