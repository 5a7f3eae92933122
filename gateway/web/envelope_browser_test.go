package web_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mayfly-im/mayfly/gateway/web"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

var b64 = base64.RawURLEncoding

// docExample is the example envelope of docs/envelope.md: alice (seeds 0x01,
// 0xfe) to bob (0x02, 0xfd), payload "x".
const docExample = `{"v":1,"from":"alice","to":"bob","mid":"m-0001","ts":1700000000123,` +
	`"wraps":[{"kid":"SDpeI4prI7g","epk":"jmPPS7HMSMzttTmWLE-2mM5JseCQ70pE8fcID3Jwrgs","n":"eTJhbfN59TIE6Dwx","k":"v52PVJXCdaqWIDnhIjTx0Ho8mx_eo27eqcqTQBOUguxriuBJy6g0_0f1p-ggXCOJ"},` +
	`{"kid":"CET8I98mbyE","epk":"zQQWU1lDMLRbVmpyRuiiZHFaAKGq3dK0ZFSeLvP8lFw","n":"Q9dy8-DErbj3HeRb","k":"8GNqzEM3IszxApG8Y2DaaRA3j7h_TincGs4rAQz8XU5lX71_h2_2Otjkoosnjglp"}],` +
	`"n":"o9-2-sDh8CPYx3ru","ct":"106k_qFzLKFNaBUh5XLnc1g",` +
	`"sig":"C12DVa-zCVYy0Ag0QTcwb49bIuhvwCU65fP6GS1rtdZUjTJDgIg5ZQwBq-_38FiDBoWoI3enx442y5mTekwlDg"}`

// seedKeys returns the deterministic keys of docs/envelope.md's vectors.
func seedKeys(t *testing.T, seed byte) envelope.Keys {
	t.Helper()
	kex, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{seed ^ 0xff}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return envelope.Keys{Sign: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32)), Kex: kex}
}

// jsKeys is a private identity in the form the test's JS helpers import.
type jsKeys struct {
	SignSeed   string `json:"sign_seed"`
	KexPrivate string `json:"kex_private"`
}

func toJS(k envelope.Keys) string {
	b, _ := json.Marshal(jsKeys{SignSeed: b64.EncodeToString(k.Sign.Seed()), KexPrivate: b64.EncodeToString(k.Kex.Bytes())})
	return string(b)
}

// envelopeHelpers defines window.T in the page: thin wrappers over the
// client's own envelope module, taking and returning JSON-friendly values.
const envelopeHelpers = `(async () => {
  const env = await import("/assets/js/envelope.js");
  const b64 = await import("/assets/js/b64.js");
  const keys = (k) => env.importIdentity(b64.decode(k.sign_seed), b64.decode(k.kex_private));
  const utf8 = new TextEncoder(), text = new TextDecoder();
  window.T = {
    async identity(k) {
      const id = await keys(k);
      return { sign: b64.encode(id.signPublic), kex: b64.encode(id.kexPublic),
               fingerprint: await env.fingerprint(id.signPublic, id.kexPublic) };
    },
    safety: (a, b) => env.safetyNumber(a, b),
    async open(envJSON, reader, senderSign) {
      try {
        const r = await env.open(envJSON, await keys(reader), b64.decode(senderSign));
        return { header: r.header, text: text.decode(r.plaintext) };
      } catch (e) { return { error: e.kind || e.message }; }
    },
    async seal(header, sender, recipientKex, plaintext) {
      return env.seal(header, await keys(sender), b64.decode(recipientKex), utf8.encode(plaintext));
    },
    async sealBytes(header, sender, recipientKex, n) {
      const p = new Uint8Array(n);
      for (let i = 0; i < n; i++) p[i] = i % 251;
      return env.seal(header, await keys(sender), b64.decode(recipientKex), p);
    },
    parse(input) {
      try { env.parse(input); return "ok"; } catch (e) { return e.kind || e.message; }
    },
  };
  return true;
})()`

// envelopePage opens the client's envelope module in a page served by the
// web handler alone (no server needed) and installs the helpers.
func envelopePage(t *testing.T) *tab {
	t.Helper()
	srv := httptest.NewServer(web.New())
	t.Cleanup(srv.Close)
	tb := newTab(t, startBrowser(t), "interop")
	tb.do("load page", chromedp.Navigate(srv.URL+"/"))
	tb.eval(envelopeHelpers, nil)
	return tb
}

func TestWebEnvelopeVectors(t *testing.T) {
	tb := envelopePage(t)
	alice, bob := seedKeys(t, 1), seedKeys(t, 2)

	var id struct{ Sign, Kex, Fingerprint string }
	tb.eval(fmt.Sprintf(`T.identity(%s)`, toJS(alice)), &id)
	if id.Sign != "iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w" || id.Kex != "gj_6UILYzUPv9CrzlCPdGPqSRccR6ew4uGOAFJBEegY" {
		t.Errorf("alice public keys in JS = %s %s, want the docs/envelope.md vector", id.Sign, id.Kex)
	}
	if want := "67301 95140 26273 63382 36569 12116"; id.Fingerprint != want {
		t.Errorf("alice fingerprint in JS = %q, want %q", id.Fingerprint, want)
	}
	var safety string
	tb.eval(`T.safety("67301 95140 26273 63382 36569 12116", "09338 87533 84100 90615 23252 63940")`, &safety)
	if want := envelope.SafetyNumber(alice.Public(), bob.Public()); safety != want {
		t.Errorf("safety number in JS = %q, want %q", safety, want)
	}

	var got struct {
		Header struct {
			From, To, Mid string
			TS            int64
		}
		Text, Error string
	}
	tb.eval(fmt.Sprintf(`T.open(%s, %s, %q)`, jsString(docExample), toJS(bob), b64.EncodeToString(alice.Public().Sign)), &got)
	if got.Error != "" || got.Text != "x" || got.Header.Mid != "m-0001" || got.Header.TS != 1700000000123 {
		t.Errorf("JS open of the docs example = %+v, want text \"x\" from m-0001", got)
	}
	tb.checkNoErrors()
}

// interopOpen is what T.open returns.
type interopOpen struct {
	Header struct {
		From, To, Mid string
		TS            int64
	}
	Text, Error string
}

func TestWebEnvelopeInterop(t *testing.T) {
	tb := envelopePage(t)
	alice, err := envelope.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := envelope.NewKeys()
	carol, _ := envelope.NewKeys()
	aliceSign := b64.EncodeToString(alice.Public().Sign)

	t.Run("GoSealsJSOpens", func(t *testing.T) {
		text := "hello from Go, ünïcødé ✓ 🔥"
		h := envelope.Header{From: "u_alice", To: "u_bob", MsgID: "go-1", SentAt: time.UnixMilli(1_750_000_000_456)}
		sealed, err := envelope.Seal(h, alice, bob.Public(), []byte(`{"text":`+jsString(text)+`}`))
		if err != nil {
			t.Fatal(err)
		}
		for _, reader := range []envelope.Keys{bob, alice} { // recipient and sender's own copy
			var got interopOpen
			tb.eval(fmt.Sprintf(`T.open(%s, %s, %q)`, jsString(string(sealed)), toJS(reader), aliceSign), &got)
			if got.Error != "" || got.Text != `{"text":`+jsString(text)+`}` || got.Header.From != "u_alice" ||
				got.Header.To != "u_bob" || got.Header.Mid != "go-1" || got.Header.TS != 1_750_000_000_456 {
				t.Errorf("JS open = %+v", got)
			}
		}
		var got interopOpen
		tb.eval(fmt.Sprintf(`T.open(%s, %s, %q)`, jsString(string(sealed)), toJS(carol), aliceSign), &got)
		if got.Error != "no_wrap" {
			t.Errorf("JS open by a third party: error %q, want no_wrap", got.Error)
		}
		tb.eval(fmt.Sprintf(`T.open(%s, %s, %q)`, jsString(string(sealed)), toJS(bob), b64.EncodeToString(carol.Public().Sign)), &got)
		if got.Error != "signature" {
			t.Errorf("JS open with the wrong sender key: error %q, want signature", got.Error)
		}
	})

	t.Run("JSSealsGoOpens", func(t *testing.T) {
		for _, text := range []string{"", "hi from the browser", strings.Repeat("ß", 20000)} {
			hdr := `{"from":"u_alice","to":"u_bob","mid":"js-1","ts":1750000000789}`
			var sealed string
			tb.eval(fmt.Sprintf(`T.seal(%s, %s, %q, %s)`, hdr, toJS(alice), b64.EncodeToString(bob.Public().Kex), jsString(text)), &sealed)
			for _, reader := range []envelope.Keys{bob, alice} {
				h, plain, err := envelope.Open([]byte(sealed), reader, alice.Public().Sign)
				if err != nil {
					t.Fatalf("Go open of a JS envelope (%d bytes of text): %v", len(text), err)
				}
				if string(plain) != text || h.From != "u_alice" || h.To != "u_bob" || h.MsgID != "js-1" || h.SentAt.UnixMilli() != 1750000000789 {
					t.Errorf("Go open = %+v %q", h, plain)
				}
			}
			// The JS encoder writes Go's canonical form.
			e, err := envelope.Parse([]byte(sealed))
			if err != nil {
				t.Fatal(err)
			}
			if canon, _ := e.MarshalJSON(); string(canon) != sealed {
				t.Errorf("JS encoding is not canonical:\n js %s\n go %s", sealed, canon)
			}
		}
	})

	t.Run("JSSealsMaxPayload", func(t *testing.T) {
		hdr := `{"from":"u_alice","to":"u_bob","mid":"js-max","ts":1}`
		var sealed string
		tb.eval(fmt.Sprintf(`T.sealBytes(%s, %s, %q, %d)`, hdr, toJS(alice), b64.EncodeToString(bob.Public().Kex), envelope.MaxPlaintext), &sealed)
		_, plain, err := envelope.Open([]byte(sealed), bob, alice.Public().Sign)
		if err != nil || len(plain) != envelope.MaxPlaintext || plain[300] != 300%251 {
			t.Errorf("Go open of a full-size JS envelope: %d bytes, %v", len(plain), err)
		}
		var kind string
		tb.eval(fmt.Sprintf(`T.sealBytes(%s, %s, %q, %d).then(() => "sealed", (e) => e.kind)`, hdr, toJS(alice),
			b64.EncodeToString(bob.Public().Kex), envelope.MaxPlaintext+1), &kind)
		if kind != "too_large" {
			t.Errorf("JS seal of MaxPlaintext+1 bytes: %q, want too_large", kind)
		}
	})
	tb.checkNoErrors()
}

// TestWebEnvelopeParse checks that the JS shape check agrees with Go's
// Parse on mutated envelopes (except duplicate members, which JSON.parse
// cannot see; the server refuses those).
func TestWebEnvelopeParse(t *testing.T) {
	tb := envelopePage(t)
	alice, bob := seedKeys(t, 1), seedKeys(t, 2)
	good, err := envelope.Seal(envelope.Header{From: "a", To: "b", MsgID: "m", SentAt: time.UnixMilli(5)}, alice, bob.Public(), []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(m map[string]any)) string { return mutateJSON(string(good), f) }
	wrap0 := func(m map[string]any) map[string]any { return m["wraps"].([]any)[0].(map[string]any) }
	cases := map[string]string{
		"good":             string(good),
		"not json":         `{"v":1,`,
		"array":            `[1]`,
		"version 2":        mutate(func(m map[string]any) { m["v"] = 2 }),
		"version string":   mutate(func(m map[string]any) { m["v"] = "1" }),
		"unknown member":   mutate(func(m map[string]any) { m["x"] = 1 }),
		"missing sig":      mutate(func(m map[string]any) { delete(m, "sig") }),
		"bad from":         mutate(func(m map[string]any) { m["from"] = "a.b" }),
		"long mid":         mutate(func(m map[string]any) { m["mid"] = strings.Repeat("m", 65) }),
		"ts zero":          mutate(func(m map[string]any) { m["ts"] = 0 }),
		"ts fraction":      mutate(func(m map[string]any) { m["ts"] = 1.5 }),
		"ts too big":       mutate(func(m map[string]any) { m["ts"] = json.Number("9007199254740993") }),
		"one wrap":         mutate(func(m map[string]any) { m["wraps"] = m["wraps"].([]any)[:1] }),
		"padded nonce":     mutate(func(m map[string]any) { m["n"] = m["n"].(string) + "=" }),
		"std base64":       mutate(func(m map[string]any) { m["sig"] = strings.NewReplacer("-", "+", "_", "/").Replace(m["sig"].(string)) }),
		"short kid":        mutate(func(m map[string]any) { wrap0(m)["kid"] = "AAAA" }),
		"wrap extra":       mutate(func(m map[string]any) { wrap0(m)["x"] = "AAAA" }),
		"noncanonical bit": mutate(func(m map[string]any) { s := m["sig"].(string); m["sig"] = s[:len(s)-1] + "B" }),
		"short ct":         mutate(func(m map[string]any) { m["ct"] = "AAAA" }),
	}
	for name, input := range cases {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			want := "ok"
			if _, err := envelope.Parse([]byte(input)); err != nil {
				want = goKind(err)
			}
			var got string
			tb.eval(fmt.Sprintf(`T.parse(%s)`, jsString(input)), &got)
			if got != want {
				t.Errorf("JS parse = %q, Go Parse = %q", got, want)
			}
		})
	}
	tb.checkNoErrors()
}

func goKind(err error) string {
	switch {
	case errors.Is(err, envelope.ErrVersion):
		return "version"
	case errors.Is(err, envelope.ErrTooLarge):
		return "too_large"
	case errors.Is(err, envelope.ErrMalformed):
		return "malformed"
	case errors.Is(err, envelope.ErrKey):
		return "key"
	}
	return err.Error()
}

// mutateJSON decodes the JSON object in (numbers kept exact), lets f change
// it and returns it encoded again.
func mutateJSON(in string, f func(m map[string]any)) string {
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(in))
	dec.UseNumber()
	dec.Decode(&m)
	f(m)
	b, _ := json.Marshal(m)
	return string(b)
}
