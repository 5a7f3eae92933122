package client_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/gateway/client"
	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// TestClientLink: a new device links to an existing user: the code commits
// to its keys, the primary lists its device key and seals who the user is
// to it, and the new device logs in as a second device of the user and
// reads messages sent afterwards. The request is single use.
func TestClientLink(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := testCtx(t)
	alice, bob := s.user("alice"), s.user("bob")
	befriend(t, alice, bob)

	newKeys, _ := client.NewKeys(false)
	pl, err := client.StartLink(ctx, client.LinkConfig{Server: s.url, PollInterval: 20 * time.Millisecond, Keys: newKeys})
	if err != nil {
		t.Fatal(err)
	}
	if code := pl.Code(); len(code) != 29 || code[5] != '-' || code[23] != '-' {
		t.Fatalf("code %q", code)
	}
	if d := time.Until(pl.ExpiresAt); d < 9*time.Minute || d > 11*time.Minute {
		t.Fatalf("expires in %v", d)
	}
	got := make(chan client.Linked, 1)
	errc := make(chan error, 1)
	go func() {
		l, err := pl.Wait(ctx)
		errc <- err
		got <- l
	}()
	// Typed with spaces and in lower case, as people do.
	if err := alice.ApproveLink(ctx, strings.ToLower(strings.ReplaceAll(pl.Code(), "-", " "))); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	linked := <-got
	if linked.UserID != alice.Identity().UserID || linked.Handle != "alice" || linked.Keys.Primary() ||
		!linked.IdentityKey.Equal(alice.Keys().IdentityPublic()) || linked.Keys.DeviceID() == alice.Identity().DeviceID {
		t.Fatalf("linked %v %v", linked.UserID, linked.Handle)
	}
	isCode(t, alice.ApproveLink(ctx, pl.Code()), schema.CodeNotFound) // single use

	laptop := newClient(t, s.url, "laptop", func(c *client.Config) {
		c.Keys, c.IdentityKey, c.UserID, c.Handle = linked.Keys, linked.IdentityKey, linked.UserID, linked.Handle
	})
	if _, err := laptop.Login(ctx); err != nil {
		t.Fatal(err)
	}
	if err := laptop.CheckKeys(ctx); err != nil {
		t.Fatal(err)
	}
	if ds, err := laptop.Devices(ctx); err != nil || len(ds) != 2 {
		t.Fatalf("devices %+v, %v", ds, err)
	}
	lin := run(t, laptop)
	lin.waitSyncs(1)
	bin := run(t, bob)
	bin.waitSyncs(1)
	if _, err := bob.Send(ctx, "alice", "to both devices"); err != nil {
		t.Fatal(err)
	}
	if m := lin.waitReceived(1)[0]; m.Text != "to both devices" || m.FromHandle != "bob" {
		t.Fatalf("linked device got %+v", m)
	}
}

// TestClientLinkErrors: bad input to the link endpoints is refused with
// documented codes, and nothing is approved by accident.
func TestClientLinkErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := testCtx(t)
	alice := s.user("alice")

	post := func(path, body, bearer string) (int, *schema.Error) {
		req, _ := http.NewRequestWithContext(ctx, "POST", s.url+path, strings.NewReader(body))
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		return do(t, req)
	}
	get := func(path, bearer string) (int, *schema.Error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", s.url+path, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		return do(t, req)
	}
	tok, err := alice.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		status int
		code   schema.Code
		call   func() (int, *schema.Error)
	}{
		{"create without body", 400, schema.CodeBadRequest, func() (int, *schema.Error) { return post("/v1/link", "", "") }},
		{"create with garbage", 400, schema.CodeBadRequest, func() (int, *schema.Error) { return post("/v1/link", "[1,2]", "") }},
		{"create with short key", 400, schema.CodeInvalidKey, func() (int, *schema.Error) {
			return post("/v1/link", `{"public_key":"AAAA"}`, "")
		}},
		{"create with low-order key", 400, schema.CodeInvalidKey, func() (int, *schema.Error) {
			return post("/v1/link", `{"public_key":"`+envelope.EncodeKey(make([]byte, 32))+`","device_key":"`+envelope.EncodeKey(make([]byte, 32))+`"}`, "")
		}},
		{"create without a device key", 400, schema.CodeInvalidKey, func() (int, *schema.Error) {
			return post("/v1/link", `{"public_key":"`+envelope.EncodeKey(bytes.Repeat([]byte{9}, 32))+`"}`, "")
		}},
		{"info without token", 401, schema.CodeUnauthorized, func() (int, *schema.Error) { return get("/v1/link/ABCDEFGHIJ", "") }},
		{"info of unknown code", 404, schema.CodeNotFound, func() (int, *schema.Error) { return get("/v1/link/ABCDEFGHIJ", tok) }},
		{"info of malformed code", 404, schema.CodeNotFound, func() (int, *schema.Error) { return get("/v1/link/..%2F..", tok) }},
		{"bundle without secret", 404, schema.CodeNotFound, func() (int, *schema.Error) { return get("/v1/link/ABCDEFGHIJ/bundle", "") }},
		{"approve unknown", 404, schema.CodeNotFound, func() (int, *schema.Error) {
			return post("/v1/link/ABCDEFGHIJ/approve", `{"bundle":{"epk":"`+envelope.EncodeKey(make([]byte, 32))+
				`","n":"AAAAAAAAAAAAAAAA","ct":"AAAAAAAAAAAAAAAAAAAAAA"}}`, tok)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, e := tc.call()
			if status != tc.status || e == nil || e.Code != tc.code {
				t.Fatalf("got %d %v, want %d %s", status, e, tc.status, tc.code)
			}
		})
	}

	// A real request: a wrong secret, a malformed bundle, then a pending poll.
	priv, _ := ecdh.X25519().GenerateKey(rand.Reader)
	dk := bytes.Repeat([]byte{7}, 32)
	lr := schema.LinkRequest{PublicKey: envelope.EncodeKey(priv.PublicKey().Bytes()), DeviceKey: envelope.EncodeKey(dk)}
	if st, e := postJSON(t, ctx, s.url+"/v1/link", lr, "", nil); st != 400 || e.Code != schema.CodeBadRequest {
		t.Fatalf("create without a code (a link v2 client): %d %v", st, e)
	}
	lr.Code = schema.LinkCode(schema.NewLinkCodeSecret(), priv.PublicKey().Bytes(), dk)
	var created schema.LinkCreated
	if st, e := postJSON(t, ctx, s.url+"/v1/link", lr, "", &created); st != 201 {
		t.Fatalf("create: %d %v", st, e)
	}
	if created.Code != lr.Code || !strings.HasPrefix(created.Secret, "mfl_") {
		t.Fatalf("created %+v", created)
	}
	if st, e := postJSON(t, ctx, s.url+"/v1/link", lr, "", nil); st != 400 {
		t.Fatalf("second request for one key: %d %v", st, e)
	}
	if st, e := get("/v1/link/"+created.Code+"/bundle", "mfl_wrong"); st != 404 {
		t.Fatalf("wrong secret: %d %v", st, e)
	}
	if st, e := post("/v1/link/"+created.Code+"/approve", `{"bundle":{"epk":"x","n":"y","ct":"z"}}`, tok); st != 400 || e.Code != schema.CodeBadRequest {
		t.Fatalf("malformed bundle: %d %v", st, e)
	}
	var status schema.LinkStatus
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/v1/link/"+created.Code+"/bundle", nil)
	req.Header.Set("Authorization", "Bearer "+created.Secret)
	if st, e := doJSON(t, req, &status); st != 200 || status.Status != schema.LinkPending || status.Bundle != nil {
		t.Fatalf("pending poll: %d %v %+v", st, e, status)
	}
}

// TestClientLinkSubstitutedKey: a server (here a tampering proxy) that
// hands the approving device a key other than the new device's is caught
// by the code check, and no keys are sent.
func TestClientLinkSubstitutedKey(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := testCtx(t)
	evil, _ := ecdh.X25519().GenerateKey(rand.Reader)
	evilKeys, _ := client.NewKeys(false)
	evilDK := evilKeys.DevicePublic()
	target, _ := url.Parse(s.url)
	rp := httputil.NewSingleHostReverseProxy(target)
	var approved atomic.Bool
	rp.ModifyResponse = func(r *http.Response) error {
		if strings.HasSuffix(r.Request.URL.Path, "/approve") {
			approved.Store(true)
		}
		if r.Request.Method != "GET" || !strings.HasPrefix(r.Request.URL.Path, "/v1/link/") || strings.HasSuffix(r.Request.URL.Path, "/bundle") {
			return nil
		}
		var info schema.LinkInfo
		b, _ := io.ReadAll(r.Body)
		if json.Unmarshal(b, &info) == nil && info.PublicKey != "" {
			info.PublicKey = envelope.EncodeKey(evil.PublicKey().Bytes())
			info.DeviceKey = envelope.EncodeKey(evilDK)
			b, _ = json.Marshal(info)
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
		r.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	mitm := httptest.NewServer(rp)
	defer mitm.Close()

	alice := newClient(t, mitm.URL, "phone")
	register(t, alice, "alice")
	nk, _ := client.NewKeys(false)
	pl, err := client.StartLink(ctx, client.LinkConfig{Server: s.url, Keys: nk})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.ApproveLink(ctx, pl.Code()); !errors.Is(err, client.ErrLinkMismatch) {
		t.Fatalf("approve through a key-substituting server: %v, want ErrLinkMismatch", err)
	}
	if approved.Load() {
		t.Fatal("the keys were sent anyway")
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := pl.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("new device after a refused approval: %v", err)
	}
}

// TestClientLinkForgedAnswer: a hostile server answers a new device's link
// request itself. It knows the device's link key and device key (they pass
// through it), so it makes an account of its own whose signed list names
// the device, and seals an answer naming that account to the link key. The
// new device must refuse it: the answer is keyed with the code's secret
// part, which the server never saw, so the device does not join the
// server's account believing it is its user's.
func TestClientLinkForgedAnswer(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	mallory := gatewaytest.NewUser(t, strings.TrimPrefix(s.url, "http://"), "mallory")
	var req schema.LinkRequest
	var mu sync.Mutex
	target, _ := url.Parse(s.url)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(r *http.Response) error {
		if r.Request.Method != "GET" || !strings.HasSuffix(r.Request.URL.Path, "/bundle") {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		pub, _ := envelope.DecodeKey(req.PublicKey, envelope.KexKeySize)
		dk, _ := envelope.DecodeKey(req.DeviceKey, envelope.SignKeySize)
		mallory.PublishList(append(append([]ed25519.PublicKey(nil), mallory.Acct.Keys...), dk))
		plain, _ := json.Marshal(schema.LinkKeys{V: 3, UserID: mallory.User.UserID, Handle: "mallory",
			IK: envelope.EncodeKey(mallory.Acct.IK.Public().(ed25519.PublicKey))})
		st := schema.LinkStatus{Status: schema.LinkApproved, ExpiresAt: time.Now().Add(time.Minute),
			UserID: mallory.User.UserID, Handle: "mallory", Bundle: forgeAnswer(t, pub, plain)}
		b, _ := json.Marshal(st)
		r.StatusCode, r.Body, r.ContentLength = 200, io.NopCloser(bytes.NewReader(b)), int64(len(b))
		r.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	rp.Director = func(r *http.Request) {
		r.URL.Scheme, r.URL.Host = target.Scheme, target.Host
		if r.Method == "POST" && r.URL.Path == "/v1/link" {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			_ = json.Unmarshal(b, &req)
			mu.Unlock()
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		}
	}
	hostile := httptest.NewServer(rp)
	defer hostile.Close()

	nk, _ := client.NewKeys(false)
	pl, err := client.StartLink(ctx, client.LinkConfig{Server: hostile.URL, Keys: nk, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	linked, err := pl.Wait(ctx)
	if err == nil || !errors.Is(err, client.ErrBadMessage) {
		t.Fatalf("the new device took the server's own answer: %+v, %v; want ErrBadMessage", linked, err)
	}
}

// forgeAnswer seals plain to the link key pub as a server that does not
// know the code's secret part can: the v3 construction with an empty
// secret (and, before v3, exactly the answer's construction).
func forgeAnswer(t *testing.T, pub, plain []byte) *schema.SealedBundle {
	t.Helper()
	to, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	eph, _ := ecdh.X25519().GenerateKey(rand.Reader)
	shared, _ := eph.ECDH(to)
	key, _ := hkdf.Key(sha256.New, shared, append(eph.PublicKey().Bytes(), pub...), schema.LinkBundleInfo, 32)
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	n := make([]byte, 12)
	return &schema.SealedBundle{EPK: envelope.EncodeKey(eph.PublicKey().Bytes()), N: envelope.EncodeKey(n), CT: envelope.EncodeKey(gcm.Seal(nil, n, plain, nil))}
}

// do sends req and returns the status and decoded error, if any.
func do(t *testing.T, req *http.Request) (int, *schema.Error) {
	t.Helper()
	return doJSON(t, req, nil)
}

func doJSON(t *testing.T, req *http.Request, out any) (int, *schema.Error) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		var eb schema.ErrorBody
		if err := json.Unmarshal(b, &eb); err != nil || eb.Error == nil {
			t.Fatalf("%s %s: status %d with body %q", req.Method, req.URL.Path, resp.StatusCode, b)
		}
		return resp.StatusCode, eb.Error
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, nil
}

func postJSON(t *testing.T, ctx context.Context, u string, body any, bearer string, out any) (int, *schema.Error) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, "POST", u, bytes.NewReader(b))
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return doJSON(t, req, out)
}
