package gateway_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

var b64 = base64.RawURLEncoding

func TestAccountRegisterLoginLookup(t *testing.T) {
	t.Parallel()
	e := startAcctEnv(t, gatewaytest.Config{})
	alice := e.client()
	st, err := alice.Do(http.MethodPost, "/v1/register", alice.RegisterRequest("Alice"), &alice.User)
	if st != http.StatusCreated || err != nil {
		t.Fatalf("register = %d %v, want 201", st, err)
	}
	ik := alice.Acct.IK.Public().(ed25519.PublicKey)
	u := alice.User
	if !schema.ValidUserID(u.UserID) || u.Handle != "Alice" || u.IK != b64.EncodeToString(ik) ||
		u.Fingerprint != envelope.IdentityFingerprint(ik) || u.CreatedAt.IsZero() || u.DeviceList != nil {
		t.Fatalf("registered user = %+v", u)
	}
	list := alice.SignList([]ed25519.PublicKey{alice.DK.Public().(ed25519.PublicKey)})
	alice.Must(http.MethodPost, "/v1/devicelist", schema.DeviceListRequest{List: list}, nil)
	alice.Acct.Version++

	var ch schema.Challenge
	alice.Must(http.MethodPost, "/v1/login/challenge", schema.ChallengeRequest{Handle: "aLiCe"}, &ch)
	if nonce, err := b64.DecodeString(ch.Nonce); err != nil || len(nonce) != 32 || ch.ChallengeID == "" {
		t.Fatalf("challenge = %+v", ch)
	}
	if d := time.Until(ch.ExpiresAt); d <= 0 || d > time.Minute {
		t.Errorf("challenge expires in %v, want within a minute", d)
	}
	alice.Must(http.MethodPost, "/v1/login", gatewaytest.SignChallenge(ch, alice.DK, "phone"), &alice.Session)
	s := alice.Session
	if s.UserID != u.UserID || s.Handle != "Alice" || s.DeviceID != alice.DeviceID() ||
		s.AccessToken == "" || !strings.HasPrefix(s.RefreshToken, "mfr_") {
		t.Fatalf("session = %+v", s)
	}
	if d := time.Until(s.ExpiresAt); d < 14*time.Minute || d > 15*time.Minute {
		t.Errorf("access token expires in %v, want 15 minutes", d)
	}

	var devs schema.DeviceList
	alice.Must(http.MethodGet, "/v1/devices", nil, &devs)
	if len(devs.Devices) != 1 || devs.Devices[0].DeviceID != s.DeviceID || devs.Devices[0].Name != "phone" || !devs.Devices[0].Current {
		t.Errorf("devices = %+v", devs)
	}

	bob := gatewaytest.NewUser(t, e.addr, "bob")
	for _, h := range []string{"alice", "ALICE", "Alice"} {
		var got schema.User
		bob.Must(http.MethodGet, "/v1/users/"+h, nil, &got)
		if string(got.DeviceList) != string(list) {
			t.Errorf("lookup %q: device list %s, want %s", h, got.DeviceList, list)
		}
		if got.UserID != u.UserID || got.Handle != u.Handle || got.IK != u.IK || got.Fingerprint != u.Fingerprint || !got.CreatedAt.Equal(u.CreatedAt) {
			t.Errorf("lookup %q = %+v, want %+v", h, got, u)
		}
	}
	e.refused(t, bob, http.MethodGet, "/v1/users/carol", nil, schema.CodeNotFound)
	e.refused(t, bob, http.MethodGet, "/v1/users/a", nil, schema.CodeInvalidHandle)
	e.refused(t, e.client(), http.MethodGet, "/v1/users/alice", nil, schema.CodeUnauthorized)
}

// TestAccountRegisterBadInput sends every kind of bad registration: each
// gets its documented code and stores nothing.
func TestAccountRegisterBadInput(t *testing.T) {
	t.Parallel()
	e := startAcctEnv(t, gatewaytest.Config{})
	gatewaytest.NewUser(t, e.addr, "alice")
	c := e.client()
	good := c.RegisterRequest("carol")
	with := func(f func(*schema.RegisterRequest)) schema.RegisterRequest {
		r := good
		f(&r)
		return r
	}
	key := func(n int) string { return b64.EncodeToString(make([]byte, n)) }
	tests := []struct {
		name string
		body any
		want schema.Code
	}{
		{"empty body", nil, schema.CodeBadRequest},
		{"whitespace body", "  \n", schema.CodeBadRequest},
		{"malformed JSON", `{"handle":`, schema.CodeBadRequest},
		{"not an object", `["carol"]`, schema.CodeBadRequest},
		{"null", `null`, schema.CodeBadRequest},
		{"wrong type", `{"handle":5}`, schema.CodeBadRequest},
		{"unknown field", `{"handle":"carol","ik":"` + good.IK + `","phone":"1"}`, schema.CodeBadRequest},
		{"a v1 registration", `{"handle":"carol","sign_key":"` + good.IK + `","kex_key":"` + good.IK + `"}`, schema.CodeBadRequest},
		{"trailing data", mustJSON(t, good) + `{}`, schema.CodeBadRequest},
		{"trailing garbage", mustJSON(t, good) + `x`, schema.CodeBadRequest},
		{"handle given twice", `{"handle":"alice","ik":"` + good.IK + `","handle":"carol"}`, schema.CodeBadRequest},
		{"handle given twice, other case", `{"handle":"carol","ik":"` + good.IK + `","Handle":"dave"}`, schema.CodeBadRequest},
		{"oversized body", `{"handle":"carol","ik":"` + strings.Repeat("A", 17<<10) + `"}`, schema.CodeBodyTooLarge},
		{"oversized trailing whitespace", mustJSON(t, good) + strings.Repeat(" ", 17<<10), schema.CodeBodyTooLarge},
		{"handle too short", with(func(r *schema.RegisterRequest) { r.Handle = "ab" }), schema.CodeInvalidHandle},
		{"handle too long", with(func(r *schema.RegisterRequest) { r.Handle = strings.Repeat("a", 33) }), schema.CodeInvalidHandle},
		{"handle with space", with(func(r *schema.RegisterRequest) { r.Handle = "car ol" }), schema.CodeInvalidHandle},
		{"handle with dot", with(func(r *schema.RegisterRequest) { r.Handle = "car.ol" }), schema.CodeInvalidHandle},
		{"handle with wildcard", with(func(r *schema.RegisterRequest) { r.Handle = "carol>" }), schema.CodeInvalidHandle},
		{"handle not ASCII", with(func(r *schema.RegisterRequest) { r.Handle = "cärol" }), schema.CodeInvalidHandle},
		{"handle missing", with(func(r *schema.RegisterRequest) { r.Handle = "" }), schema.CodeInvalidHandle},
		{"handle taken", with(func(r *schema.RegisterRequest) { r.Handle = "alice" }), schema.CodeHandleTaken},
		{"handle taken, other case", with(func(r *schema.RegisterRequest) { r.Handle = "ALIce" }), schema.CodeHandleTaken},
		{"identity key short", with(func(r *schema.RegisterRequest) { r.IK = key(31) }), schema.CodeInvalidKey},
		{"identity key long", with(func(r *schema.RegisterRequest) { r.IK = key(33) }), schema.CodeInvalidKey},
		{"identity key not base64", with(func(r *schema.RegisterRequest) { r.IK = "!!" + good.IK[2:] }), schema.CodeInvalidKey},
		{"identity key padded base64", with(func(r *schema.RegisterRequest) { r.IK = good.IK + "=" }), schema.CodeInvalidKey},
		{"identity key missing", with(func(r *schema.RegisterRequest) { r.IK = "" }), schema.CodeInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.refused(t, c, http.MethodPost, "/v1/register", tt.body, tt.want)
		})
	}
	if n := e.count("users"); n != 1 {
		t.Errorf("%d users stored, want 1", n)
	}
	c.Register("carol") // the good request still works
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAccountRegisterRace registers one handle from 20 goroutines at once,
// in different cases: exactly one wins.
func TestAccountRegisterRace(t *testing.T) {
	t.Parallel()
	e := startAcctEnv(t, gatewaytest.Config{})
	const n = 20
	type result struct {
		status int
		code   schema.Code
		err    error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		body := []byte(mustJSON(t, e.client().RegisterRequest([]string{"Racer", "racer", "RACER"}[i%3])))
		wg.Go(func() {
			<-start
			st, code, err := rawCall(http.MethodPost, e.url("/v1/register"), "", body)
			results[i] = result{st, code, err}
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for _, r := range results {
		switch {
		case r.err != nil:
			t.Errorf("register: %v", r.err)
		case r.status == http.StatusCreated:
			won++
		case r.status != http.StatusConflict || r.code != schema.CodeHandleTaken:
			t.Errorf("register = %d %s, want 201 or 409 handle_taken", r.status, r.code)
		}
	}
	if won != 1 {
		t.Errorf("%d registrations won, want exactly 1", won)
	}
	if got := e.count("users"); got != 1 {
		t.Errorf("%d users stored, want 1", got)
	}
}

// TestAccountLoginBadInput answers a challenge in every wrong way: each gets
// its documented code and changes nothing (the challenge stays usable).
func TestAccountLoginBadInput(t *testing.T) {
	t.Parallel()
	e := startAcctEnv(t, gatewaytest.Config{})
	alice := e.client()
	alice.Register("alice")
	bob := gatewaytest.NewUser(t, e.addr, "bob")
	var ch schema.Challenge
	alice.Must(http.MethodPost, "/v1/login/challenge", schema.ChallengeRequest{Handle: "alice"}, &ch)
	good := gatewaytest.SignChallenge(ch, alice.DK, "phone")
	with := func(f func(*schema.LoginRequest)) schema.LoginRequest {
		r := good
		f(&r)
		return r
	}
	random := make([]byte, ed25519.SignatureSize)
	rand.Read(random)
	nonce, _ := b64.DecodeString(ch.Nonce)
	otherNonce := append([]byte(nil), nonce...)
	otherNonce[0] ^= 1
	tests := []struct {
		name string
		path string
		body any
		want schema.Code
	}{
		{"challenge: empty body", "/v1/login/challenge", nil, schema.CodeBadRequest},
		{"challenge: unknown field", "/v1/login/challenge", `{"handle":"alice","x":1}`, schema.CodeBadRequest},
		{"challenge: bad handle", "/v1/login/challenge", schema.ChallengeRequest{Handle: "a-b"}, schema.CodeInvalidHandle},
		{"challenge: unknown handle", "/v1/login/challenge", schema.ChallengeRequest{Handle: "nobody"}, schema.CodeNotFound},
		{"login: malformed JSON", "/v1/login", `{"challenge_id":`, schema.CodeBadRequest},
		{"login: trailing data", "/v1/login", mustJSON(t, good) + `[]`, schema.CodeBadRequest},
		{"login: random signature", "/v1/login", with(func(r *schema.LoginRequest) { r.Signature = b64.EncodeToString(random) }), schema.CodeBadSignature},
		{"login: short signature", "/v1/login", with(func(r *schema.LoginRequest) { r.Signature = good.Signature[:40] }), schema.CodeBadSignature},
		{"login: signature not base64", "/v1/login", with(func(r *schema.LoginRequest) { r.Signature = "%%" + good.Signature[2:] }), schema.CodeBadSignature},
		{"login: another user's device", "/v1/login", gatewaytest.SignChallenge(ch, bob.DK, "phone"), schema.CodeBadSignature},
		{"login: another user's device, claiming to be alice's", "/v1/login", with(func(r *schema.LoginRequest) {
			r.Signature = gatewaytest.SignChallenge(ch, bob.DK, "phone").Signature
		}), schema.CodeBadSignature},
		{"login: signed by the identity key", "/v1/login", with(func(r *schema.LoginRequest) {
			r.Signature = b64.EncodeToString(ed25519.Sign(alice.Acct.IK, schema.LoginMessage(ch.ChallengeID, good.DeviceID, nonce)))
		}), schema.CodeBadSignature},
		{"login: unlisted device", "/v1/login", gatewaytest.SignChallenge(ch, e.client().DK, "phone"), schema.CodeBadSignature},
		{"login: malformed device id", "/v1/login", with(func(r *schema.LoginRequest) { r.DeviceID = "d'; --" }), schema.CodeBadSignature},
		{"login: no device id", "/v1/login", with(func(r *schema.LoginRequest) { r.DeviceID = "" }), schema.CodeBadRequest},
		{"login: signed without the context", "/v1/login", with(func(r *schema.LoginRequest) {
			r.Signature = b64.EncodeToString(ed25519.Sign(alice.DK, nonce))
		}), schema.CodeBadSignature},
		{"login: signed over another nonce", "/v1/login", with(func(r *schema.LoginRequest) {
			r.Signature = b64.EncodeToString(ed25519.Sign(alice.DK, schema.LoginMessage(ch.ChallengeID, good.DeviceID, otherNonce)))
		}), schema.CodeBadSignature},
		{"login: no challenge id", "/v1/login", with(func(r *schema.LoginRequest) { r.ChallengeID = "" }), schema.CodeBadRequest},
		{"login: unknown challenge", "/v1/login", with(func(r *schema.LoginRequest) { r.ChallengeID = schema.NewID('c') }), schema.CodeNotFound},
		{"login: malformed challenge id", "/v1/login", with(func(r *schema.LoginRequest) { r.ChallengeID = "c\x00'; DROP TABLE users" }), schema.CodeNotFound},
		{"login: no device name", "/v1/login", with(func(r *schema.LoginRequest) { r.DeviceName = "" }), schema.CodeInvalidDevice},
		{"login: device name too long", "/v1/login", with(func(r *schema.LoginRequest) { r.DeviceName = strings.Repeat("x", 65) }), schema.CodeInvalidDevice},
		{"login: device name with NUL", "/v1/login", with(func(r *schema.LoginRequest) { r.DeviceName = "ph\x00one" }), schema.CodeInvalidDevice},
		{"login: device name with newline", "/v1/login", with(func(r *schema.LoginRequest) { r.DeviceName = "ph\none" }), schema.CodeInvalidDevice},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.refused(t, alice, http.MethodPost, tt.path, tt.body, tt.want)
		})
	}

	// The challenge survived all of that; answered right it logs in once.
	alice.Must(http.MethodPost, "/v1/login", with(func(r *schema.LoginRequest) { r.DeviceName = "Läptop 💻" }), &alice.Session)
	var devs schema.DeviceList
	alice.Must(http.MethodGet, "/v1/devices", nil, &devs)
	if len(devs.Devices) != 1 || devs.Devices[0].Name != "Läptop 💻" {
		t.Errorf("devices = %+v", devs)
	}
	e.refused(t, alice, http.MethodPost, "/v1/login", good, schema.CodeChallengeUsed)
}

func TestAccountLoginChallengeExpired(t *testing.T) {
	t.Parallel()
	e := startAcctEnv(t, gatewaytest.Config{ChallengeTTL: 200 * time.Millisecond})
	alice := e.client()
	alice.Register("alice")
	var ch schema.Challenge
	alice.Must(http.MethodPost, "/v1/login/challenge", schema.ChallengeRequest{Handle: "alice"}, &ch)
	if d := time.Until(ch.ExpiresAt); d > 200*time.Millisecond {
		t.Fatalf("challenge expires in %v, want ChallengeTTL", d)
	}
	time.Sleep(time.Until(ch.ExpiresAt) + 10*time.Millisecond) // wait for the expiry itself, not a guess
	e.refused(t, alice, http.MethodPost, "/v1/login", gatewaytest.SignChallenge(ch, alice.DK, "phone"), schema.CodeChallengeExpired)
}

// TestAccountDeviceCap lists five devices; a sixth is refused (the list
// format holds five), a listed device logs in again as itself.
func TestAccountDeviceCap(t *testing.T) {
	t.Parallel()
	e := startAcctEnv(t, gatewaytest.Config{})
	alice := gatewaytest.NewUser(t, e.addr, "alice")
	ids := map[string]bool{alice.Session.DeviceID: true}
	for i := 1; i < schema.MaxDevices; i++ {
		ids[alice.Device(fmt.Sprintf("device%d", i)).Session.DeviceID] = true
	}
	if len(ids) != schema.MaxDevices {
		t.Fatalf("%d distinct devices, want %d", len(ids), schema.MaxDevices)
	}
	sixth := append(append([]ed25519.PublicKey(nil), alice.Acct.Keys...), e.client().DK.Public().(ed25519.PublicKey))
	if _, err := envelope.SignDeviceList(alice.User.UserID, alice.Acct.Version+1, time.Now(), sixth, alice.Acct.IK); err == nil {
		t.Fatal("a list of six devices was signed")
	}

	old := alice.Session
	again := alice.Device("phone")
	if again.Session.DeviceID != old.DeviceID {
		t.Errorf("re-login as phone made device %s, want %s reused", again.Session.DeviceID, old.DeviceID)
	}
	e.refused(t, alice, http.MethodGet, "/v1/devices", nil, schema.CodeTokenRevoked) // the earlier phone session ended
	var devs schema.DeviceList
	again.Must(http.MethodGet, "/v1/devices", nil, &devs)
	if len(devs.Devices) != schema.MaxDevices {
		t.Errorf("%d devices listed, want %d", len(devs.Devices), schema.MaxDevices)
	}
	for _, d := range devs.Devices {
		if !ids[d.DeviceID] || d.Current != (d.DeviceID == old.DeviceID) || d.RevokedAt != nil {
			t.Errorf("listed device %+v", d)
		}
	}
}

// TestAccountRefresh rotates a refresh token, then reuses an old one: the
// whole chain ends.
func TestAccountRefresh(t *testing.T) {
	t.Parallel()
	e := startAcctEnv(t, gatewaytest.Config{})
	alice := gatewaytest.NewUser(t, e.addr, "alice")
	laptop := alice.Device("laptop")
	s1 := alice.Session
	var s2 schema.Session
	alice.Must(http.MethodPost, "/v1/refresh", schema.RefreshRequest{RefreshToken: s1.RefreshToken}, &s2)
	if s2.DeviceID != s1.DeviceID || s2.UserID != s1.UserID || s2.Handle != "alice" ||
		s2.AccessToken == s1.AccessToken || s2.RefreshToken == s1.RefreshToken || s2.AccessToken == "" {
		t.Fatalf("refreshed session = %+v", s2)
	}
	alice.Session = s2
	alice.Must(http.MethodGet, "/v1/devices", nil, nil)

	for _, bad := range []struct {
		name string
		body any
		want schema.Code
	}{
		{"empty token", schema.RefreshRequest{}, schema.CodeRefreshInvalid},
		{"unknown token", schema.RefreshRequest{RefreshToken: "mfr_" + strings.Repeat("A", 43)}, schema.CodeRefreshInvalid},
		{"huge token", schema.RefreshRequest{RefreshToken: strings.Repeat("A", 1000)}, schema.CodeRefreshInvalid},
		{"access token instead", schema.RefreshRequest{RefreshToken: s2.AccessToken}, schema.CodeRefreshInvalid},
		{"malformed JSON", `{"refresh_token":`, schema.CodeBadRequest},
		{"unknown field", `{"refresh_token":"x","device":"y"}`, schema.CodeBadRequest},
	} {
		t.Run(bad.name, func(t *testing.T) {
			e.refused(t, e.client(), http.MethodPost, "/v1/refresh", bad.body, bad.want)
		})
	}

	// Reuse of s1's refresh token: refused, and the chain is revoked.
	st, err := e.client().Do(http.MethodPost, "/v1/refresh", schema.RefreshRequest{RefreshToken: s1.RefreshToken}, nil)
	if err == nil || err.Code != schema.CodeRefreshReused || st != http.StatusUnauthorized {
		t.Fatalf("reuse = %d %v, want 401 refresh_reused", st, err)
	}
	for _, tok := range []string{s1.AccessToken, s2.AccessToken} {
		alice.Session.AccessToken = tok
		e.refused(t, alice, http.MethodGet, "/v1/devices", nil, schema.CodeTokenRevoked)
	}
	e.refused(t, e.client(), http.MethodPost, "/v1/refresh", schema.RefreshRequest{RefreshToken: s2.RefreshToken}, schema.CodeRefreshInvalid)
	e.refused(t, e.client(), http.MethodPost, "/v1/refresh", schema.RefreshRequest{RefreshToken: s1.RefreshToken}, schema.CodeRefreshInvalid)

	// Other devices are untouched; the device itself logs in again.
	laptop.Must(http.MethodGet, "/v1/devices", nil, nil)
	back := alice.Device("phone")
	if back.Session.DeviceID != s1.DeviceID {
		t.Errorf("re-login made device %s, want %s", back.Session.DeviceID, s1.DeviceID)
	}
	back.Must(http.MethodGet, "/v1/devices", nil, nil)
}
