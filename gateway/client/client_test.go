package client_test

import (
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mayfly-im/mayfly/fabric/token"
	"github.com/mayfly-im/mayfly/gateway/client"
	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

func TestClientRegisterLogin(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := testCtx(t)
	c := newClient(t, s.url, "laptop")
	u, err := c.Register(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if want := envelope.IdentityFingerprint(c.Keys().IdentityPublic()); u.Fingerprint != want {
		t.Fatalf("fingerprint %q, want %q", u.Fingerprint, want)
	}
	if _, err := c.Devices(ctx); !errors.Is(err, client.ErrNotLoggedIn) {
		t.Fatalf("devices before login: %v, want ErrNotLoggedIn", err)
	}
	sess, err := c.Login(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := c.Identity()
	if id.UserID != u.UserID || id.Handle != "alice" || id.DeviceID != sess.DeviceID || id.Fingerprint != u.Fingerprint {
		t.Fatalf("identity %+v after login %+v", id, sess)
	}
	ds, err := c.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || !ds[0].Current || ds[0].Name != "laptop" {
		t.Fatalf("devices %+v", ds)
	}
	if err := c.CheckKeys(ctx); err != nil {
		t.Fatal(err)
	}

	// Server errors pass through as *schema.Error with their code.
	other := newClient(t, s.url, "x")
	_, err = other.Register(ctx, "ALICE")
	isCode(t, err, schema.CodeHandleTaken)
	_, err = other.Register(ctx, "no spaces")
	isCode(t, err, schema.CodeInvalidHandle)
	impostor := newClient(t, s.url, "x", func(c *client.Config) { c.Handle = "alice" })
	_, err = impostor.Login(ctx)
	isCode(t, err, schema.CodeBadSignature)
	isCode(t, c.RevokeDevice(ctx, "dnosuchdevice"), schema.CodeNotFound)

	// Unreachable servers read as unavailable.
	dead := newClient(t, "http://127.0.0.1:1", "x")
	_, err = dead.Register(ctx, "bob")
	isCode(t, err, schema.CodeUnavailable)
}

// TestClientTokenRefresh: an access token near its expiry is replaced
// before use; one the server calls expired is refreshed and the request
// retried; and two clients sharing a Dir never use one refresh token twice.
func TestClientTokenRefresh(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	keyFile := filepath.Join(dataDir, "keys", "token.pem")
	key, err := token.LoadOrCreateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	a := gatewaytest.Start(t, gatewaytest.Config{DataDir: dataDir, TokenKeyFile: keyFile})
	url := "http://" + a.HTTPAddr()
	ctx := testCtx(t)
	dir, err := client.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, url, "phone", func(cfg *client.Config) { cfg.Storage = dir })
	register(t, c, "alice")
	if err := dir.SaveIdentity(c.Identity().UserID, "alice", c.Keys(), nil); err != nil {
		t.Fatal(err)
	}

	t.Run("near expiry", func(t *testing.T) {
		sess := c.Session()
		sess.ExpiresAt = time.Now().Add(10 * time.Second)
		c2 := newClient(t, url, "phone", func(cfg *client.Config) { cfg.Keys, cfg.Session, cfg.Storage = c.Keys(), sess, dir })
		tok, err := c2.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if tok == sess.AccessToken || c2.Session().RefreshToken == sess.RefreshToken {
			t.Fatal("token near expiry was not refreshed")
		}
		c = c2
	})

	t.Run("server says expired", func(t *testing.T) {
		sess := c.Session()
		expired := expiredToken(t, key, sess)
		sess.AccessToken = expired
		sess.ExpiresAt = time.Now().Add(time.Hour) // the client believes it valid
		c3 := newClient(t, url, "phone", func(cfg *client.Config) { cfg.Keys, cfg.Session, cfg.Storage = c.Keys(), sess, dir })
		if _, err := c3.Devices(ctx); err != nil {
			t.Fatalf("devices with an expired token: %v", err)
		}
		if c3.Session().AccessToken == expired {
			t.Fatal("not refreshed")
		}
		c = c3
	})

	t.Run("shared dir", func(t *testing.T) {
		cfg, err := dir.Config(url)
		if err != nil {
			t.Fatal(err)
		}
		p1, err := client.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := client.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// p1 rotates the session; p2 still holds the old refresh token in
		// memory and must adopt p1's session instead of reusing it.
		if err := p1.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := p2.Token(ctx); err != nil {
			t.Fatal(err)
		}
		if err := p2.Refresh(ctx); err != nil {
			t.Fatalf("refresh after another process refreshed: %v", err)
		}
		if _, err := p1.Devices(ctx); err != nil {
			t.Fatalf("first process after the second refreshed: %v", err)
		}
	})
}

// expiredToken signs, with the server's key, an access token for sess's
// device that expired a minute ago.
func expiredToken(t *testing.T, key ed25519.PrivateKey, sess schema.Session) string {
	t.Helper()
	past := time.Now().Add(-time.Minute)
	claims := jwt.MapClaims{
		"iss": token.DefaultIssuer, "aud": []string{token.DefaultAudience}, "sub": sess.UserID,
		"did": sess.DeviceID, "gen": 1, "iat": past.Add(-time.Minute).Unix(), "exp": past.Unix(), "jti": "texpired",
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestClientFriendsAndKeys: friend operations pin friends' keys; a key
// that differs from the pinned one is flagged until confirmed.
func TestClientFriendsAndKeys(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := testCtx(t)
	alice, bob, carol := s.user("alice"), s.user("bob"), s.user("carol")

	r, err := alice.FriendRequest(ctx, "bob")
	if err != nil || r.Request == nil {
		t.Fatalf("request: %+v, %v", r, err)
	}
	_, err = alice.FriendRequest(ctx, "bob")
	isCode(t, err, schema.CodeRequestExists)
	reqs, err := bob.FriendRequests(ctx)
	if err != nil || len(reqs.Incoming) != 1 || reqs.Incoming[0].Handle != "alice" {
		t.Fatalf("bob's requests %+v, %v", reqs, err)
	}
	f, err := bob.AcceptFriend(ctx, "alice")
	if err != nil || f.Handle != "alice" || f.KeyChanged {
		t.Fatalf("accept: %+v, %v", f, err)
	}
	if p, ok := bob.Peer("alice"); !ok || p.Fingerprint != alice.Identity().Fingerprint {
		t.Fatalf("bob pinned %+v, %v", p, ok)
	}
	fs, err := alice.Friends(ctx)
	if err != nil || len(fs) != 1 || fs[0].Handle != "bob" {
		t.Fatalf("alice's friends %+v, %v", fs, err)
	}
	if sn := alice.SafetyNumber(mustPeer(t, alice, "bob")); sn != bob.SafetyNumber(mustPeer(t, bob, "alice")) {
		t.Fatalf("safety numbers differ")
	}

	// A pin from an earlier run with another identity key: the pin stays,
	// the server's key is flagged, and only AcceptKey adopts it.
	oldKeys, _ := client.NewKeys(true)
	oldIK := oldKeys.IdentityPublic()
	oldPeer := client.Peer{UserID: bob.Identity().UserID, Handle: "bob",
		IK: envelope.EncodeKey(oldIK), Fingerprint: envelope.IdentityFingerprint(oldIK)}
	alice2 := s.link(alice, "tablet", func(c *client.Config) { c.Peers = []client.Peer{oldPeer} })
	fs, err = alice2.Friends(ctx)
	if err != nil || len(fs) != 1 || !fs[0].KeyChanged {
		t.Fatalf("changed key not flagged: %+v, %v", fs, err)
	}
	p, err := alice2.Lookup(ctx, "bob")
	if err != nil || !p.KeyChanged || p.Fingerprint != oldPeer.Fingerprint || p.NewFingerprint != bob.Identity().Fingerprint {
		t.Fatalf("lookup %+v, %v", p, err)
	}
	if sn := alice2.SafetyNumber(p); sn != bob.SafetyNumber(mustPeer(t, bob, "alice")) {
		t.Fatalf("safety number to verify %q, bob shows %q", sn, bob.SafetyNumber(mustPeer(t, bob, "alice")))
	}
	if _, err := alice2.AcceptKey("bob"); err != nil {
		t.Fatal(err)
	}
	if fs, _ = alice2.Friends(ctx); fs[0].KeyChanged {
		t.Fatal("flag stayed after AcceptKey")
	}

	// Lookup of a non-friend verifies but does not pin.
	if p, err := alice.Lookup(ctx, "carol"); err != nil || p.Fingerprint != carol.Identity().Fingerprint {
		t.Fatalf("lookup carol %+v, %v", p, err)
	}
	if _, ok := alice.Peer("carol"); ok {
		t.Fatal("a looked-up non-friend was pinned")
	}

	// Decline, cancel, block, unblock, remove.
	if _, err := carol.FriendRequest(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := alice.DeclineFriend(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	isCode(t, alice.DeclineFriend(ctx, "carol"), schema.CodeNoRequest)
	if _, err := alice.FriendRequest(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if err := alice.CancelFriendRequest(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Block(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if bl, err := alice.Blocks(ctx); err != nil || len(bl) != 1 || bl[0].Handle != "carol" {
		t.Fatalf("blocks %+v, %v", bl, err)
	}
	if err := alice.Unblock(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if err := alice.RemoveFriend(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	isCode(t, alice.RemoveFriend(ctx, "bob"), schema.CodeNotFriend)
	if _, ok := alice.Peer("bob"); !ok {
		t.Fatal("an ex-friend's pinned keys were forgotten")
	}
}

func mustPeer(t *testing.T, c *client.Client, handle string) client.Peer {
	t.Helper()
	p, ok := c.Peer(handle)
	if !ok {
		t.Fatalf("%s has no pin for %s", c.Identity().Handle, handle)
	}
	return p
}
