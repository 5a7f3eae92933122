package gateway_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/mayfly-im/mayfly/fabric/token"
	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/schema"
)

// accessClaims are the claims of an access token for c's session, valid
// for another minute unless changed.
func accessClaims(c *gatewaytest.Client) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": token.DefaultIssuer, "aud": []string{token.DefaultAudience},
		"sub": c.Session.UserID, "did": c.Session.DeviceID, "gen": 1,
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Minute).Unix(), "jti": schema.NewID('t'),
	}
}

func signJWT(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAccountTokenAttacks presents every kind of bad access token to an
// authenticated endpoint and to the WebSocket handshake.
func TestAccountTokenAttacks(t *testing.T) {
	t.Parallel()
	e := startAcctEnv(t, gatewaytest.Config{})
	alice := gatewaytest.NewUser(t, e.addr, "alice")
	serverKey, err := token.LoadOrCreateKey(e.tokenKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	serverPub := serverKey.Public().(ed25519.PublicKey)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	claims := func(f func(jwt.MapClaims)) jwt.MapClaims {
		c := accessClaims(alice)
		f(c)
		return c
	}
	same := func(jwt.MapClaims) {}
	expired := func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }
	parts := strings.Split(alice.Session.AccessToken, ".")

	// The control: a token made here with the server's key is accepted, so
	// every refusal below is for the one thing each case changes.
	ok := alice.Session
	ok.AccessToken = signJWT(t, jwt.SigningMethodEdDSA, serverKey, claims(same))
	control := &gatewaytest.Client{T: t, BaseURL: alice.BaseURL, Session: ok}
	control.Must(http.MethodGet, "/v1/devices", nil, nil)

	tests := []struct {
		name string
		tok  string
		want schema.Code
	}{
		{"no token", "", schema.CodeUnauthorized},
		{"garbage", "garbage", schema.CodeTokenInvalid},
		{"expired", signJWT(t, jwt.SigningMethodEdDSA, serverKey, claims(expired)), schema.CodeTokenExpired},
		{"forged: another Ed25519 key", signJWT(t, jwt.SigningMethodEdDSA, otherKey, claims(same)), schema.CodeTokenInvalid},
		{"forged and expired", signJWT(t, jwt.SigningMethodEdDSA, otherKey, claims(expired)), schema.CodeTokenInvalid},
		{"alg none", signJWT(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(same)), schema.CodeTokenInvalid},
		{"HS256 keyed with the server's public key", signJWT(t, jwt.SigningMethodHS256, []byte(serverPub), claims(same)), schema.CodeTokenInvalid},
		{"tampered payload", parts[0] + "." + signJWTPayload(t, claims(func(c jwt.MapClaims) { c["gen"] = 2 })) + "." + parts[2], schema.CodeTokenInvalid},
		{"wrong audience", signJWT(t, jwt.SigningMethodEdDSA, serverKey, claims(func(c jwt.MapClaims) { c["aud"] = "other" })), schema.CodeTokenInvalid},
		{"wrong issuer", signJWT(t, jwt.SigningMethodEdDSA, serverKey, claims(func(c jwt.MapClaims) { c["iss"] = "other" })), schema.CodeTokenInvalid},
		{"unknown device", signJWT(t, jwt.SigningMethodEdDSA, serverKey, claims(func(c jwt.MapClaims) { c["did"] = schema.NewDeviceID() })), schema.CodeTokenRevoked},
		{"another user's device", signJWT(t, jwt.SigningMethodEdDSA, serverKey, claims(func(c jwt.MapClaims) { c["sub"] = schema.NewUserID() })), schema.CodeTokenRevoked},
		{"old generation", signJWT(t, jwt.SigningMethodEdDSA, serverKey, claims(func(c jwt.MapClaims) { c["gen"] = 2 })), schema.CodeTokenRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &gatewaytest.Client{T: t, BaseURL: alice.BaseURL, Session: schema.Session{AccessToken: tt.tok}}
			e.refused(t, c, http.MethodGet, "/v1/devices", nil, tt.want)
			status, code := wsRefused(t, e.addr, tt.tok)
			if status != tt.want.Status() || code != tt.want {
				t.Errorf("websocket handshake = %d %s, want %d %s", status, code, tt.want.Status(), tt.want)
			}
		})
	}
}

// signJWTPayload returns the base64url payload segment for c.
func signJWTPayload(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SigningString()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(s, ".")[1]
}

// wsRefused tries the WebSocket handshake with tok (as a bearer header,
// when not empty) and returns the refusal's status and code.
func wsRefused(t *testing.T, addr, tok string) (int, schema.Code) {
	t.Helper()
	h := http.Header{}
	if tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	return wsDialRefused(t, "ws://"+addr+"/v1/ws", h, []string{schema.SubprotocolV1})
}

func wsDialRefused(t *testing.T, url string, h http.Header, protocols []string) (int, schema.Code) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: protocols}
	conn, resp, err := d.Dial(url, h)
	if err == nil {
		conn.Close()
		t.Fatalf("websocket handshake succeeded")
	}
	if resp == nil {
		t.Fatalf("websocket handshake: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
		t.Errorf("websocket refusal 429 without Retry-After")
	}
	var eb schema.ErrorBody
	if err := decodeBody(resp, &eb); err != nil || eb.Error == nil {
		t.Fatalf("websocket refusal %d has no error body: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, eb.Error.Code
}
