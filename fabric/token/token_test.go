package token_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mayfly-im/mayfly/fabric/token"
	"github.com/mayfly-im/mayfly/schema"
)

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newIssuer(t testing.TB, key ed25519.PrivateKey) *token.Issuer {
	t.Helper()
	is, err := token.New(token.Config{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// validClaims returns the claims an Issuer puts in a token, as a map a test
// can break one entry of.
func validClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": token.DefaultIssuer,
		"aud": []string{token.DefaultAudience},
		"sub": schema.NewUserID(),
		"did": schema.NewDeviceID(),
		"gen": 1,
		"iat": now.Unix(),
		"exp": now.Add(token.DefaultTTL).Unix(),
		"jti": schema.NewID('t'),
	}
}

func sign(t testing.TB, m jwt.SigningMethod, key any, c jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

func TestTokenIssueVerify(t *testing.T) {
	is := newIssuer(t, newKey(t))
	want := token.Claims{UserID: schema.NewUserID(), DeviceID: schema.NewDeviceID(), Generation: 3}
	tok, exp, err := is.Issue(want)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(exp); d < token.DefaultTTL-time.Minute || d > token.DefaultTTL {
		t.Errorf("expiry in %v, want about %v", d, token.DefaultTTL)
	}
	got, err := is.Verify(tok)
	if err != nil {
		t.Fatalf("Verify(issued) = %v", err)
	}
	if got.UserID != want.UserID || got.DeviceID != want.DeviceID || got.Generation != want.Generation || !got.ExpiresAt.Equal(exp) {
		t.Errorf("Verify = %+v, want %+v expiring %v", got, want, exp)
	}
	if alg := headerAlg(t, tok); alg != "EdDSA" {
		t.Errorf("alg = %q, want EdDSA", alg)
	}
}

func headerAlg(t *testing.T, tok string) string {
	t.Helper()
	p, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Method.Alg()
}

// TestTokenRefused feeds Verify every kind of token that must not pass.
func TestTokenRefused(t *testing.T) {
	key := newKey(t)
	is := newIssuer(t, key)
	now := time.Now()
	pub := key.Public().(ed25519.PublicKey)
	with := func(k string, v any) jwt.MapClaims {
		c := validClaims(now)
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	good, _, err := is.Issue(token.Claims{UserID: schema.NewUserID(), DeviceID: schema.NewDeviceID(), Generation: 1})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	tests := []struct {
		name string
		tok  string
		want error
	}{
		{"empty", "", token.ErrInvalid},
		{"garbage", "not.a.token", token.ErrInvalid},
		{"too long", strings.Repeat("a", 5000), token.ErrInvalid},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, validClaims(now)), token.ErrInvalid},
		{"HS256 keyed with the public key", sign(t, jwt.SigningMethodHS256, []byte(pub), validClaims(now)), token.ErrInvalid},
		{"EdDSA by another key", sign(t, jwt.SigningMethodEdDSA, newKey(t), validClaims(now)), token.ErrInvalid},
		{"expired and by another key", sign(t, jwt.SigningMethodEdDSA, newKey(t), with("exp", now.Add(-time.Hour).Unix())), token.ErrInvalid},
		{"tampered payload", parts[0] + "." + tamper(t, parts[1]) + "." + parts[2], token.ErrInvalid},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(sign(t, jwt.SigningMethodEdDSA, key, validClaims(now)), ".")[2], token.ErrInvalid},
		{"non-canonical signature base64", parts[0] + "." + parts[1] + "." + flipTrailingBits(parts[2]), token.ErrInvalid},
		{"padded signature", parts[0] + "." + parts[1] + "." + parts[2] + "==", token.ErrInvalid},
		{"wrong issuer", sign(t, jwt.SigningMethodEdDSA, key, with("iss", "someone")), token.ErrInvalid},
		{"no issuer", sign(t, jwt.SigningMethodEdDSA, key, with("iss", nil)), token.ErrInvalid},
		{"wrong audience", sign(t, jwt.SigningMethodEdDSA, key, with("aud", []string{"other"})), token.ErrInvalid},
		{"no audience", sign(t, jwt.SigningMethodEdDSA, key, with("aud", nil)), token.ErrInvalid},
		{"no expiry", sign(t, jwt.SigningMethodEdDSA, key, with("exp", nil)), token.ErrInvalid},
		{"no issue time", sign(t, jwt.SigningMethodEdDSA, key, with("iat", nil)), token.ErrInvalid},
		{"issued in the future", sign(t, jwt.SigningMethodEdDSA, key, with("iat", now.Add(time.Hour).Unix())), token.ErrInvalid},
		{"not valid yet", sign(t, jwt.SigningMethodEdDSA, key, with("nbf", now.Add(time.Hour).Unix())), token.ErrInvalid},
		{"bad subject", sign(t, jwt.SigningMethodEdDSA, key, with("sub", "alice.>")), token.ErrInvalid},
		{"no subject", sign(t, jwt.SigningMethodEdDSA, key, with("sub", nil)), token.ErrInvalid},
		{"bad device", sign(t, jwt.SigningMethodEdDSA, key, with("did", "d*")), token.ErrInvalid},
		{"generation 0", sign(t, jwt.SigningMethodEdDSA, key, with("gen", 0)), token.ErrInvalid},
		{"generation not a number", sign(t, jwt.SigningMethodEdDSA, key, with("gen", "1")), token.ErrInvalid},
		{"expired", sign(t, jwt.SigningMethodEdDSA, key, with("exp", now.Add(-time.Minute).Unix())), token.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := is.Verify(tt.tok)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %+v, %v; want %v", c, err, tt.want)
			}
			if tt.want == token.ErrInvalid && errors.Is(err, token.ErrExpired) {
				t.Fatalf("Verify = %v; a bad token must not read as merely expired", err)
			}
		})
	}
}

// tamper rewrites a JWT segment's JSON so "gen" is 99, keeping it valid base64url.
func tamper(t *testing.T, seg string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), `"gen":1`, `"gen":99`, 1)
	if s == string(b) {
		t.Fatalf("no gen claim in %s", b)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// flipTrailingBits changes the unused low bits of the last base64 character,
// which a lenient decoder ignores.
func flipTrailingBits(seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[last^1])
}

func TestTokenLeeway(t *testing.T) {
	key := newKey(t)
	is := newIssuer(t, key)
	c := validClaims(time.Now())
	c["exp"] = time.Now().Add(-token.Leeway / 2).Unix()
	if _, err := is.Verify(sign(t, jwt.SigningMethodEdDSA, key, c)); err != nil {
		t.Errorf("Verify(expired %v ago) = %v, want accepted within leeway", token.Leeway/2, err)
	}
}

func TestTokenNewNeedsKey(t *testing.T) {
	if _, err := token.New(token.Config{}); err == nil {
		t.Error("New without key succeeded")
	}
}

func TestTokenLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "token.pem")
	k1, err := token.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	k2, err := token.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Error("second load returned a different key")
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(bad, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := token.LoadOrCreateKey(bad); err == nil {
		t.Error("LoadOrCreateKey(garbage) succeeded")
	}
}

// FuzzTokenVerify checks that Verify never panics and accepts exactly the
// tokens the Issuer issued, byte for byte: no mutation of an issued token,
// and nothing signed with another key or algorithm, passes.
func FuzzTokenVerify(f *testing.F) {
	key := newKey(f)
	is := newIssuer(f, key)
	issued := map[string]token.Claims{}
	for range 3 {
		c := token.Claims{UserID: schema.NewUserID(), DeviceID: schema.NewDeviceID(), Generation: 1}
		tok, _, err := is.Issue(c)
		if err != nil {
			f.Fatal(err)
		}
		issued[tok] = c
		f.Add(tok)
	}
	now := time.Now()
	pub := key.Public().(ed25519.PublicKey)
	f.Add(sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, validClaims(now)))
	f.Add(sign(f, jwt.SigningMethodHS256, []byte(pub), validClaims(now)))
	f.Add(sign(f, jwt.SigningMethodEdDSA, newKey(f), validClaims(now)))
	f.Add("")
	f.Add("..")
	f.Add("eyJhbGciOiJFZERTQSJ9.e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := is.Verify(tok)
		if err != nil {
			if !errors.Is(err, token.ErrInvalid) && !errors.Is(err, token.ErrExpired) {
				t.Fatalf("Verify error %v is neither ErrInvalid nor ErrExpired", err)
			}
			return
		}
		want, ok := issued[tok]
		if !ok {
			t.Fatalf("Verify accepted a token the issuer never issued: %q", tok)
		}
		if c.UserID != want.UserID || c.DeviceID != want.DeviceID || c.Generation != want.Generation {
			t.Fatalf("Verify = %+v, issued %+v", c, want)
		}
	})
}
