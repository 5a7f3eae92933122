package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// user is one benchmark user with one device and, once connected, one
// WebSocket.
type user struct {
	idx     int // index in the worker's users
	handle  string
	base    string // gateway base URL of its WebSocket, http://host:port
	api     string // base URL of its HTTP API calls
	keys    benchKeys
	id      string // user id, after registration
	partner *user

	mu      sync.Mutex
	session schema.Session // guarded by mu

	conn *wsConn // set by connect
}

// token returns the user's current access token.
func (u *user) token() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.session.AccessToken
}

// apiClient calls the HTTP API, retrying temporary failures.
type apiClient struct {
	http *http.Client
}

func newAPIClient(conns int) *apiClient {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns
	tr.MaxIdleConnsPerHost = conns
	return &apiClient{http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// maxAttempts bounds retries of one request answered with a temporary error.
const maxAttempts = 8

// do sends a JSON request and decodes a 2xx answer into out. A temporary
// error answer (rate_limited, unavailable, internal) is retried with
// backoff; other error answers are returned as *schema.Error.
func (a *apiClient) do(ctx context.Context, method, u, token string, body, out any) error {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return err
		}
	}
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := a.once(ctx, method, u, token, raw, out)
		var se *schema.Error
		if err == nil || attempt == maxAttempts || (errors.As(err, &se) && !se.Temporary) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (a *apiClient) once(ctx context.Context, method, u, token string, raw []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, req.URL.Path, err)
	}
	if resp.StatusCode >= 300 {
		var eb schema.ErrorBody
		if json.Unmarshal(b, &eb) != nil || eb.Error == nil {
			return fmt.Errorf("%s %s: status %d", method, req.URL.Path, resp.StatusCode)
		}
		return eb.Error
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, req.URL.Path, err)
		}
	}
	return nil
}

// benchKeys are a bench user's identity key and its one device's key.
type benchKeys struct {
	ik, dk ed25519.PrivateKey
}

func newBenchKeys() benchKeys {
	_, ik, _ := ed25519.GenerateKey(nil)
	_, dk, _ := ed25519.GenerateKey(nil)
	return benchKeys{ik: ik, dk: dk}
}

func (k benchKeys) deviceID() string { return envelope.DeviceID(k.dk.Public().(ed25519.PublicKey)) }

// benchOPKs is how many one-time prekeys each bench user uploads; claims
// beyond them get SPK-only bundles, as a real client's would.
const benchOPKs = 20

// register creates u's account and publishes its device list (one device).
func (a *apiClient) register(ctx context.Context, u *user) error {
	req := schema.RegisterRequest{Handle: u.handle, IK: base64.RawURLEncoding.EncodeToString(u.keys.ik.Public().(ed25519.PublicKey))}
	var out schema.User
	if err := a.do(ctx, "POST", u.api+"/v1/register", "", req, &out); err != nil {
		return fmt.Errorf("register %s: %w", u.handle, err)
	}
	u.id = out.UserID
	list, err := envelope.SignDeviceList(u.id, 1, time.Now(), []ed25519.PublicKey{u.keys.dk.Public().(ed25519.PublicKey)}, u.keys.ik)
	if err != nil {
		return err
	}
	if err := a.do(ctx, "POST", u.api+"/v1/devicelist", "", schema.DeviceListRequest{List: list}, nil); err != nil {
		return fmt.Errorf("register %s: device list: %w", u.handle, err)
	}
	return nil
}

// login logs u's device in as "bench", answering a signed challenge, and
// uploads its signed prekey and benchOPKs one-time prekeys (the bench never
// opens messages, so the private keys are dropped).
func (a *apiClient) login(ctx context.Context, u *user) error {
	var ch schema.Challenge
	if err := a.do(ctx, "POST", u.api+"/v1/login/challenge", "", schema.ChallengeRequest{Handle: u.handle}, &ch); err != nil {
		return fmt.Errorf("login %s: challenge: %w", u.handle, err)
	}
	nonce, err := base64.RawURLEncoding.DecodeString(ch.Nonce)
	if err != nil {
		return fmt.Errorf("login %s: bad nonce: %w", u.handle, err)
	}
	id := u.keys.deviceID()
	sig := ed25519.Sign(u.keys.dk, schema.LoginMessage(ch.ChallengeID, id, nonce))
	req := schema.LoginRequest{ChallengeID: ch.ChallengeID, DeviceID: id, Signature: base64.RawURLEncoding.EncodeToString(sig), DeviceName: "bench"}
	var s schema.Session
	if err := a.do(ctx, "POST", u.api+"/v1/login", "", req, &s); err != nil {
		return fmt.Errorf("login %s: %w", u.handle, err)
	}
	u.mu.Lock()
	u.session = s
	u.mu.Unlock()
	up, err := benchPrekeys(u)
	if err != nil {
		return err
	}
	if err := a.do(ctx, "PUT", u.api+"/v1/prekeys", s.AccessToken, up, nil); err != nil {
		return fmt.Errorf("login %s: upload prekeys: %w", u.handle, err)
	}
	return nil
}

func benchPrekeys(u *user) (schema.PrekeysUpload, error) {
	var up schema.PrekeysUpload
	for i := range benchOPKs + 1 {
		priv, err := ecdh.X25519().GenerateKey(nil)
		if err != nil {
			return up, err
		}
		kind := envelope.KindOPK
		if i == 0 {
			kind = envelope.KindSPK
		}
		b, err := envelope.SignPrekey(u.id, u.keys.deviceID(), kind, priv, time.Now(), u.keys.dk)
		if err != nil {
			return up, err
		}
		if i == 0 {
			up.SPK = b
		} else {
			up.OPKs = append(up.OPKs, b)
		}
	}
	return up, nil
}

// claim claims u's partner's prekey bundle, as a sending client does, and
// returns the verified targets.
func (a *apiClient) claim(ctx context.Context, u *user) ([]envelope.Target, error) {
	var raw json.RawMessage
	if err := a.do(ctx, "POST", u.api+"/v1/users/"+u.partner.id+"/bundle", u.token(), nil, &raw); err != nil {
		return nil, fmt.Errorf("claim %s: %w", u.partner.handle, err)
	}
	bu, err := envelope.ParseBundle(raw)
	if err != nil {
		return nil, err
	}
	return bu.Verify(u.partner.id, u.partner.keys.ik.Public().(ed25519.PublicKey), "")
}

// refresh renews u's access token with its refresh token.
func (a *apiClient) refresh(ctx context.Context, u *user) error {
	u.mu.Lock()
	rt := u.session.RefreshToken
	u.mu.Unlock()
	var s schema.Session
	if err := a.do(ctx, "POST", u.api+"/v1/refresh", "", schema.RefreshRequest{RefreshToken: rt}, &s); err != nil {
		return fmt.Errorf("refresh %s: %w", u.handle, err)
	}
	u.mu.Lock()
	u.session = s
	u.mu.Unlock()
	return nil
}

// befriend makes a and b friends: a requests, b accepts.
func (a *apiClient) befriend(ctx context.Context, x, y *user) error {
	err := a.do(ctx, "POST", x.api+"/v1/friends/requests", x.token(), schema.HandleRequest{Handle: y.handle}, nil)
	if err != nil && !schema.HasCode(err, schema.CodeRequestExists) && !schema.HasCode(err, schema.CodeAlreadyFriends) {
		return fmt.Errorf("friend request %s -> %s: %w", x.handle, y.handle, err)
	}
	err = a.do(ctx, "POST", y.api+"/v1/friends/requests/"+url.PathEscape(x.handle)+"/accept", y.token(), nil, nil)
	if err != nil && !schema.HasCode(err, schema.CodeNoRequest) {
		return fmt.Errorf("accept %s -> %s: %w", x.handle, y.handle, err)
	}
	return nil
}

// forEach runs f for every i in [0, n) on at most par goroutines, stopping
// at the first error.
func forEach(ctx context.Context, n, par int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, min(par, n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(ctx, i); err != nil {
					cancel(err)
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}
