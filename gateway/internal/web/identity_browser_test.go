package web_test

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mayfly-im/mayfly/gateway/internal/web"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

var b64 = base64.RawURLEncoding

// identityHelpers defines window.T2 in the page: thin wrappers over the
// client's identity v2 modules (identity.js, envelope.js), taking and
// returning JSON-friendly values (keys as base64url, private keys as their
// raw 32 bytes).
const identityHelpers = `(async () => {
  const id = await import("/assets/js/identity.js");
  const env = await import("/assets/js/envelope.js");
  const b64 = await import("/assets/js/b64.js");
  const d = (s) => b64.decode(s);
  const e = (b) => b64.encode(b);
  const utf8 = new TextEncoder(), text = new TextDecoder();
  const kind = async (fn) => { try { await fn(); return "ok"; } catch (x) { return x.kind || x.message; } };
  const counter = () => { let c = 0; return (n) => { const b = new Uint8Array(n); for (let i = 0; i < n; i++) b[i] = (c++) & 255; return b; }; };
  const targets = async (bs) => {
    const out = [];
    for (const b of bs) out.push(...await id.verifyBundle(await id.parseBundle(b.bundle), b.uid, d(b.ik), b.skip || ""));
    return out;
  };
  window.T2 = {
    async pub(alg, raw) { return e((await id.importPrivate(alg, d(raw))).public); },
    async deviceID(key) { return id.deviceID(d(key)); },
    async signList(uid, ver, ts, keys, ikSeed) {
      return id.encodeDeviceList(await id.signDeviceList(uid, ver, ts, keys.map(d), await id.importPrivate("Ed25519", d(ikSeed))));
    },
    async signPrekey(uid, did, k, priv, ts, dkSeed) {
      const p = await id.importPrivate("X25519", d(priv));
      return JSON.stringify(id.prekeyJSON(await id.signPrekey(uid, did, k, p.public, ts, (await id.importPrivate("Ed25519", d(dkSeed))).private)));
    },
    async targets(bs) {
      try { return (await targets(bs)).map((t) => ({ d: t.d, spk: e(t.spk), opk: t.opk ? e(t.opk) : "" })); }
      catch (x) { return { error: x.kind || x.message }; }
    },
    async seal(header, dkSeed, bs, plain, n, deterministic) {
      const p = n === undefined ? utf8.encode(plain) : Uint8Array.from({ length: n }, (_, i) => i % 251);
      const dk = (await id.importPrivate("Ed25519", d(dkSeed))).private;
      try { return await env.seal(header, dk, await targets(bs), p, deterministic ? counter() : undefined); }
      catch (x) { return "error:" + (x.kind || x.message); }
    },
    async open(envelope, list, uid, ik, device, spk, opk) {
      try {
        const l = await id.parseDeviceList(list);
        await id.verifyDeviceList(l, uid, d(ik));
        const keys = { spk: spk && await id.importPrivate("X25519", d(spk)), opk: opk && await id.importPrivate("X25519", d(opk)) };
        const r = await env.open(envelope, l, device, async (k, kid) => keys[k] || null);
        return { header: r.header, text: text.decode(r.plaintext), opk: e(r.wrap.opk) };
      } catch (x) { return { error: x.kind || x.message }; }
    },
    parse(what, input) {
      const f = { envelope: env.parse, list: id.parseDeviceList, prekey: id.parsePrekey, bundle: id.parseBundle }[what];
      return kind(() => f(input));
    },
    async fingerprint(ik) { return id.identityFingerprint(d(ik)); },
    async linkCode(secret, pub, dk) { return (await import("/assets/js/link.js")).linkCode(secret, d(pub), d(dk)); },
    async openLink(priv, secret, answer) {
      const link = await import("/assets/js/link.js");
      try {
        const a = await link.openBundle(await id.importPrivate("X25519", d(priv)), secret, answer);
        return { user_id: a.user_id, handle: a.handle, ik: e(a.ik) };
      } catch (x) { return { error: x.kind || x.message }; }
    },
    async safety(a, b) { return id.safetyNumber(d(a), d(b)); },
  };
  return true;
})()`

// identityPage opens the client's identity modules in a page served by the
// web handler alone (no server needed) and installs the helpers.
func identityPage(t *testing.T) *tab {
	t.Helper()
	srv := httptest.NewServer(web.New())
	t.Cleanup(srv.Close)
	tb := newTab(t, startBrowser(t), "interop")
	tb.do("load page", chromedp.Navigate(srv.URL+"/"))
	tb.eval(identityHelpers, nil)
	return tb
}

// v2Vectors are the fields of schema/envelope/testdata/v2-vectors.json the
// browser reproduces.
type v2Vectors struct {
	AliceIKSeed     string `json:"alice_ik_seed_hex"`
	BobIKSeed       string `json:"bob_ik_seed_hex"`
	AliceDeviceSeed string `json:"alice_device_seed_hex"`
	Bob1DeviceSeed  string `json:"bob1_device_seed_hex"`
	Bob1SPK         string `json:"bob1_spk_private_hex"`
	Bob1OPK         string `json:"bob1_opk_private_hex"`
	Bob2DeviceSeed  string `json:"bob2_device_seed_hex"`
	Bob2SPK         string `json:"bob2_spk_private_hex"`
	Bob2OPK         string `json:"bob2_opk_private_hex"`
	AliceDeviceID   string `json:"alice_device_id"`
	Bob1DeviceID    string `json:"bob1_device_id"`
	Bob2DeviceID    string `json:"bob2_device_id"`
	BobList         string `json:"bob_device_list"`
	BobBundle       string `json:"bob_bundle"`
	Plaintext       string `json:"plaintext"`
	Envelope        string `json:"envelope"`
	AliceFP         string `json:"alice_fingerprint"`
	SafetyNumber    string `json:"safety_number"`
}

func loadV2Vectors(t *testing.T) v2Vectors {
	t.Helper()
	raw, err := os.ReadFile("../../../schema/envelope/testdata/v2-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v v2Vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// hexB64 turns a vector's hex into the base64url the helpers take.
func hexB64(t *testing.T, s string) string {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(b)
}

// jsJSON returns v as a JavaScript expression.
func jsJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestWebIdentity checks the client's identity v2 code against Go's in
// one page: the test vectors, interop both ways, and the parsers.
func TestWebIdentity(t *testing.T) {
	t.Parallel()
	tb := identityPage(t)
	t.Run("Vectors", func(t *testing.T) { identityVectors(t, tb) })
	t.Run("Interop", func(t *testing.T) { envelopeInterop(t, tb) })
	t.Run("Parse", func(t *testing.T) { identityParse(t, tb) })
	t.Run("LinkVectors", func(t *testing.T) { linkVectors(t, tb) })
	tb.checkNoErrors()
}

// linkVectors reproduces schema/testdata/link-v3-vectors.json: the code's
// lookup part, and the answer Go sealed opens with the secret part only.
func linkVectors(t *testing.T, tb *tab) {
	raw, err := os.ReadFile("../../../schema/testdata/link-v3-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Private, Public, DeviceKey, Secret, Code, AnswerPlain string
		Answer                                                map[string]string
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for k, dst := range map[string]any{"link_private": &v.Private, "link_public": &v.Public, "device_key": &v.DeviceKey,
		"secret": &v.Secret, "code": &v.Code, "answer_plain": &v.AnswerPlain, "answer": &v.Answer} {
		if err := json.Unmarshal(m[k], dst); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	var code string
	tb.eval(fmt.Sprintf(`T2.linkCode(%q, %q, %q)`, v.Secret, v.Public, v.DeviceKey), &code)
	if code != v.Code {
		t.Errorf("JS link code %q, want %q", code, v.Code)
	}
	var want map[string]any
	var got map[string]string
	if err := json.Unmarshal([]byte(v.AnswerPlain), &want); err != nil {
		t.Fatal(err)
	}
	tb.eval(fmt.Sprintf(`T2.openLink(%q, %q, %s)`, v.Private, v.Secret, jsJSON(v.Answer)), &got)
	if got["user_id"] != want["user_id"] || got["handle"] != want["handle"] || got["ik"] != want["ik"] {
		t.Errorf("JS opened the vector answer as %v, want %v", got, want)
	}
	tb.eval(fmt.Sprintf(`T2.openLink(%q, "AAAAABBBBBCCCCD", %s)`, v.Private, jsJSON(v.Answer)), &got)
	if got["error"] != "decrypt" {
		t.Errorf("JS opened the answer with another secret: %v", got)
	}
}

// identityVectors reproduces schema/envelope/testdata/v2-vectors.json.
func identityVectors(t *testing.T, tb *tab) {
	v := loadV2Vectors(t)
	var bob1, bob2, alice, aliceIK, bobIK string
	tb.eval(fmt.Sprintf(`T2.pub("Ed25519", %q)`, hexB64(t, v.Bob1DeviceSeed)), &bob1)
	tb.eval(fmt.Sprintf(`T2.pub("Ed25519", %q)`, hexB64(t, v.Bob2DeviceSeed)), &bob2)
	tb.eval(fmt.Sprintf(`T2.pub("Ed25519", %q)`, hexB64(t, v.AliceDeviceSeed)), &alice)
	tb.eval(fmt.Sprintf(`T2.pub("Ed25519", %q)`, hexB64(t, v.AliceIKSeed)), &aliceIK)
	tb.eval(fmt.Sprintf(`T2.pub("Ed25519", %q)`, hexB64(t, v.BobIKSeed)), &bobIK)

	for key, want := range map[string]string{alice: v.AliceDeviceID, bob1: v.Bob1DeviceID, bob2: v.Bob2DeviceID} {
		var got string
		tb.eval(fmt.Sprintf(`T2.deviceID(%q)`, key), &got)
		if got != want {
			t.Errorf("JS device id = %q, want %q", got, want)
		}
	}
	var list string
	tb.eval(fmt.Sprintf(`T2.signList("ubob", 1, 1700000000000, [%q, %q], %q)`, bob1, bob2, hexB64(t, v.BobIKSeed)), &list)
	if list != v.BobList {
		t.Errorf("JS device list:\n got %s\nwant %s", list, v.BobList)
	}
	for _, pk := range []struct{ dev, seed, kind, priv string }{
		{v.Bob1DeviceID, v.Bob1DeviceSeed, "spk", v.Bob1SPK}, {v.Bob1DeviceID, v.Bob1DeviceSeed, "opk", v.Bob1OPK},
		{v.Bob2DeviceID, v.Bob2DeviceSeed, "spk", v.Bob2SPK}, {v.Bob2DeviceID, v.Bob2DeviceSeed, "opk", v.Bob2OPK},
	} {
		var got string
		tb.eval(fmt.Sprintf(`T2.signPrekey("ubob", %q, %q, %q, 1700000000000, %q)`, pk.dev, pk.kind, hexB64(t, pk.priv), hexB64(t, pk.seed)), &got)
		if !strings.Contains(v.BobBundle, got) {
			t.Errorf("JS %s of %s = %s, not in the vector bundle", pk.kind, pk.dev, got)
		}
	}
	bundles := []map[string]string{{"bundle": v.BobBundle, "uid": "ubob", "ik": bobIK}}
	hdr := `{"from":"ualice","fd":` + jsString(v.AliceDeviceID) + `,"to":"ubob","mid":"m-0001","ts":1700000000123}`
	var sealed string
	tb.eval(fmt.Sprintf(`T2.seal(%s, %q, %s, %s, undefined, true)`, hdr, hexB64(t, v.AliceDeviceSeed), jsJSON(bundles), jsString(v.Plaintext)), &sealed)
	if sealed != v.Envelope {
		t.Errorf("JS envelope with the vectors' randomness:\n got %s\nwant %s", sealed, v.Envelope)
	}

	var aliceList string
	tb.eval(fmt.Sprintf(`T2.signList("ualice", 1, 1700000000000, [%q], %q)`, alice, hexB64(t, v.AliceIKSeed)), &aliceList)
	for _, r := range []struct{ dev, spk, opk string }{{v.Bob1DeviceID, v.Bob1SPK, v.Bob1OPK}, {v.Bob2DeviceID, v.Bob2SPK, v.Bob2OPK}} {
		var got interopOpen
		tb.eval(fmt.Sprintf(`T2.open(%s, %s, "ualice", %q, %q, %q, %q)`, jsString(v.Envelope), jsString(aliceList), aliceIK,
			r.dev, hexB64(t, r.spk), hexB64(t, r.opk)), &got)
		if got.Error != "" || got.Text != v.Plaintext || got.Header.Mid != "m-0001" || got.Header.TS != 1700000000123 {
			t.Errorf("JS open of the vector envelope as %s = %+v", r.dev, got)
		}
	}

	var fp, safety string
	tb.eval(fmt.Sprintf(`T2.fingerprint(%q)`, aliceIK), &fp)
	tb.eval(fmt.Sprintf(`T2.safety(%q, %q)`, bobIK, aliceIK), &safety)
	if fp != v.AliceFP || safety != v.SafetyNumber {
		t.Errorf("JS fingerprint %q and safety number %q, want %q and %q", fp, safety, v.AliceFP, v.SafetyNumber)
	}
}

// v2User is a test user: an identity key and devices, each with a signing
// key and prekeys, all random.
type v2User struct {
	id  string
	ik  ed25519.PrivateKey
	dev []v2Dev
}

type v2Dev struct {
	key      ed25519.PrivateKey
	spk, opk *ecdh.PrivateKey
}

func (d v2Dev) id() string { return envelope.DeviceID(d.key.Public().(ed25519.PublicKey)) }

func newV2User(t *testing.T, id string, devices int) v2User {
	t.Helper()
	u := v2User{id: id}
	_, u.ik, _ = ed25519.GenerateKey(rand.Reader)
	for range devices {
		var d v2Dev
		_, d.key, _ = ed25519.GenerateKey(rand.Reader)
		d.spk, _ = ecdh.X25519().GenerateKey(rand.Reader)
		d.opk, _ = ecdh.X25519().GenerateKey(rand.Reader)
		u.dev = append(u.dev, d)
	}
	return u
}

func (u v2User) ikPub() string { return b64.EncodeToString(u.ik.Public().(ed25519.PublicKey)) }

func (u v2User) list(t *testing.T) []byte {
	t.Helper()
	var keys []ed25519.PublicKey
	for _, d := range u.dev {
		keys = append(keys, d.key.Public().(ed25519.PublicKey))
	}
	l, err := envelope.SignDeviceList(u.id, 1, time.Now(), keys, u.ik)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// bundle signs u's bundle; devices without prekeys are left out, and with
// opk false no device has a one-time prekey.
func (u v2User) bundle(t *testing.T, opk bool) []byte {
	t.Helper()
	var parts []envelope.BundleParts
	for _, d := range u.dev {
		p := envelope.BundleParts{ID: d.id()}
		var err error
		if p.SPK, err = envelope.SignPrekey(u.id, d.id(), envelope.KindSPK, d.spk, time.Now(), d.key); err != nil {
			t.Fatal(err)
		}
		if opk {
			if p.OPK, err = envelope.SignPrekey(u.id, d.id(), envelope.KindOPK, d.opk, time.Now(), d.key); err != nil {
				t.Fatal(err)
			}
		}
		parts = append(parts, p)
	}
	b, err := envelope.NewBundle(u.list(t), parts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (u v2User) targets(t *testing.T, opk bool, skip string) []envelope.Target {
	t.Helper()
	bu, err := envelope.ParseBundle(u.bundle(t, opk))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := bu.Verify(u.id, u.ik.Public().(ed25519.PublicKey), skip)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func priv(k *ecdh.PrivateKey) string { return b64.EncodeToString(k.Bytes()) }

// envelopeInterop seals in Go and opens in the page, and the other way.
func envelopeInterop(t *testing.T, tb *tab) {
	alice, bob, carol := newV2User(t, "u_alice", 2), newV2User(t, "u_bob", 2), newV2User(t, "u_carol", 1)
	aliceList := string(alice.list(t))

	t.Run("GoSealsJSOpens", func(t *testing.T) {
		text := `{"text":"hello from Go, ünïcødé ✓ 🔥"}`
		h := envelope.HeaderV2{From: alice.id, FromDevice: alice.dev[0].id(), To: bob.id, MsgID: "go-1", SentAt: time.UnixMilli(1_750_000_000_456)}
		targets := append(bob.targets(t, true, ""), alice.targets(t, false, alice.dev[0].id())...)
		sealed, err := envelope.SealV2(h, alice.dev[0].key, targets, []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		open := func(list string, ik string, d v2Dev, opk *ecdh.PrivateKey) interopOpen {
			var got interopOpen
			o := "null"
			if opk != nil {
				o = jsString(priv(opk))
			}
			tb.eval(fmt.Sprintf(`T2.open(%s, %s, %q, %q, %q, %q, %s)`, jsString(string(sealed)), jsString(list), alice.id, ik,
				d.id(), priv(d.spk), o), &got)
			return got
		}
		for _, r := range []struct {
			d   v2Dev
			opk *ecdh.PrivateKey
		}{{bob.dev[0], bob.dev[0].opk}, {bob.dev[1], bob.dev[1].opk}, {alice.dev[1], nil}} {
			got := open(aliceList, alice.ikPub(), r.d, r.opk)
			if got.Error != "" || got.Text != text || got.Header.From != alice.id || got.Header.Mid != "go-1" || got.Header.TS != 1_750_000_000_456 {
				t.Errorf("JS open as %s = %+v", r.d.id(), got)
			}
		}
		for name, c := range map[string]struct {
			got  interopOpen
			want string
		}{
			"third party":        {open(aliceList, alice.ikPub(), carol.dev[0], carol.dev[0].opk), "no_wrap"},
			"sending device":     {open(aliceList, alice.ikPub(), alice.dev[0], nil), "no_wrap"},
			"one-time key gone":  {open(aliceList, alice.ikPub(), bob.dev[0], nil), "no_wrap"},
			"wrong one-time key": {open(aliceList, alice.ikPub(), bob.dev[0], bob.dev[1].opk), "no_wrap"},
			"list of another IK": {open(aliceList, carol.ikPub(), bob.dev[0], bob.dev[0].opk), "identity"},
		} {
			if c.got.Error != c.want {
				t.Errorf("JS open, %s: %+v, want error %q", name, c.got, c.want)
			}
		}
		// A list signed by alice's IK that no longer names the sending
		// device (it was revoked): the envelope does not verify.
		revoked, err := envelope.SignDeviceList(alice.id, 2, time.Now(), []ed25519.PublicKey{alice.dev[1].key.Public().(ed25519.PublicKey)}, alice.ik)
		if err != nil {
			t.Fatal(err)
		}
		if got := open(string(revoked), alice.ikPub(), bob.dev[0], bob.dev[0].opk); got.Error != "signature" {
			t.Errorf("JS open of an envelope from a device no longer listed: %+v, want error signature", got)
		}
	})

	t.Run("JSSealsGoOpens", func(t *testing.T) {
		bundles := []map[string]string{
			{"bundle": string(bob.bundle(t, true)), "uid": bob.id, "ik": bob.ikPub()},
			{"bundle": string(alice.bundle(t, false)), "uid": alice.id, "ik": alice.ikPub(), "skip": alice.dev[0].id()},
		}
		aliceKey := b64.EncodeToString(alice.dev[0].key.Seed())
		for _, text := range []string{"", "hi from the browser", strings.Repeat("ß", 20000)} {
			hdr := fmt.Sprintf(`{"from":%q,"fd":%q,"to":%q,"mid":"js-1","ts":1750000000789}`, alice.id, alice.dev[0].id(), bob.id)
			var sealed string
			tb.eval(fmt.Sprintf(`T2.seal(%s, %q, %s, %s)`, hdr, aliceKey, jsJSON(bundles), jsString(text)), &sealed)
			e, err := envelope.ParseV2([]byte(sealed))
			if err != nil {
				t.Fatalf("Go parse of a JS envelope (%.40s): %v", sealed, err)
			}
			if canon, _ := e.MarshalJSON(); string(canon) != sealed {
				t.Errorf("JS encoding is not canonical:\n js %.200s\n go %.200s", sealed, canon)
			}
			if len(e.Wraps()) != 3 {
				t.Errorf("JS envelope has %d wraps, want 3 (bob's two devices, alice's other)", len(e.Wraps()))
			}
			for _, r := range []struct {
				d   v2Dev
				opk *ecdh.PrivateKey
			}{{bob.dev[0], bob.dev[0].opk}, {bob.dev[1], bob.dev[1].opk}, {alice.dev[1], nil}} {
				plain, err := e.Open(r.d.id(), alice.dev[0].key.Public().(ed25519.PublicKey), r.d.spk, r.opk)
				if err != nil || string(plain) != text {
					t.Errorf("Go open of a JS envelope as %s (%d bytes of text): %q, %v", r.d.id(), len(text), plain, err)
				}
			}
			if h := e.Header(); h.From != alice.id || h.FromDevice != alice.dev[0].id() || h.To != bob.id || h.MsgID != "js-1" || h.SentAt.UnixMilli() != 1750000000789 {
				t.Errorf("Go header of a JS envelope = %+v", h)
			}
		}
	})

	t.Run("JSSealsMaxPayload", func(t *testing.T) {
		bundles := []map[string]string{{"bundle": string(bob.bundle(t, false)), "uid": bob.id, "ik": bob.ikPub()}}
		hdr := fmt.Sprintf(`{"from":%q,"fd":%q,"to":%q,"mid":"js-max","ts":1}`, alice.id, alice.dev[0].id(), bob.id)
		aliceKey := b64.EncodeToString(alice.dev[0].key.Seed())
		var sealed string
		tb.eval(fmt.Sprintf(`T2.seal(%s, %q, %s, "", %d)`, hdr, aliceKey, jsJSON(bundles), envelope.MaxPlaintext), &sealed)
		e, err := envelope.ParseV2([]byte(sealed))
		if err != nil {
			t.Fatalf("Go parse of a full-size JS envelope: %v", err)
		}
		plain, err := e.Open(bob.dev[1].id(), alice.dev[0].key.Public().(ed25519.PublicKey), bob.dev[1].spk, nil)
		if err != nil || len(plain) != envelope.MaxPlaintext || plain[300] != 300%251 {
			t.Errorf("Go open of a full-size JS envelope (SPK only): %d bytes, %v", len(plain), err)
		}
		tb.eval(fmt.Sprintf(`T2.seal(%s, %q, %s, "", %d)`, hdr, aliceKey, jsJSON(bundles), envelope.MaxPlaintext+1), &sealed)
		if sealed != "error:too_large" {
			t.Errorf("JS seal of MaxPlaintext+1 bytes: %.40q, want error:too_large", sealed)
		}
	})

	t.Run("JSRefusesUntrustedBundles", func(t *testing.T) {
		forged := newV2User(t, bob.id, 1) // the server swaps in its own IK and device
		for name, c := range map[string]struct {
			bundle []byte
			ik     string
		}{
			"another IK":  {forged.bundle(t, true), bob.ikPub()},
			"another uid": {carol.bundle(t, true), bob.ikPub()},
		} {
			var got struct{ Error string }
			tb.eval(fmt.Sprintf(`T2.targets([{bundle: %s, uid: %q, ik: %q}])`, jsString(string(c.bundle)), bob.id, c.ik), &got)
			if got.Error != "identity" {
				t.Errorf("JS bundle check, %s: error %q, want identity", name, got.Error)
			}
		}
		// A prekey moved to another device of the same list does not verify.
		var m map[string]any
		json.Unmarshal(bob.bundle(t, true), &m)
		devs := m["devices"].([]any)
		devs[0].(map[string]any)["spk"], devs[1].(map[string]any)["spk"] = devs[1].(map[string]any)["spk"], devs[0].(map[string]any)["spk"]
		moved, _ := json.Marshal(m)
		var got struct{ Error string }
		tb.eval(fmt.Sprintf(`T2.targets([{bundle: %s, uid: %q, ik: %q}])`, jsString(string(moved)), bob.id, bob.ikPub()), &got)
		if got.Error != "signature" {
			t.Errorf("JS bundle check, swapped prekeys: error %q, want signature", got.Error)
		}
	})
}

// identityParse checks that the JS shape checks of envelopes, device
// lists, prekeys and bundles agree with Go's parsers on mutated inputs,
// with the same error kind (except duplicate members, which JSON.parse
// cannot see; the server refuses those).
func identityParse(t *testing.T, tb *tab) {
	v := loadV2Vectors(t)
	var bu map[string]any
	json.Unmarshal([]byte(v.BobBundle), &bu)
	prekey, _ := json.Marshal(bu["devices"].([]any)[0].(map[string]any)["spk"])

	mutate := mutateJSON
	at := func(m map[string]any, path ...any) map[string]any {
		var cur any = m
		for _, p := range path {
			switch p := p.(type) {
			case string:
				cur = cur.(map[string]any)[p]
			case int:
				cur = cur.([]any)[p]
			}
		}
		return cur.(map[string]any)
	}
	lowOrder := b64.EncodeToString(make([]byte, 32))
	type input struct{ what, in string }
	env := func(f func(m map[string]any)) input { return input{"envelope", mutate(v.Envelope, f)} }
	list := func(f func(m map[string]any)) input { return input{"list", mutate(v.BobList, f)} }
	pk := func(f func(m map[string]any)) input { return input{"prekey", mutate(string(prekey), f)} }
	bundle := func(f func(m map[string]any)) input { return input{"bundle", mutate(v.BobBundle, f)} }
	cases := map[string]input{
		"envelope good":           {"envelope", v.Envelope},
		"envelope v1":             env(func(m map[string]any) { m["v"] = 1 }),
		"envelope v string":       env(func(m map[string]any) { m["v"] = "2" }),
		"envelope unknown member": env(func(m map[string]any) { m["x"] = 1 }),
		"envelope no fd":          env(func(m map[string]any) { delete(m, "fd") }),
		"envelope bad fd":         env(func(m map[string]any) { m["fd"] = "d.x" }),
		"envelope ts zero":        env(func(m map[string]any) { m["ts"] = 0 }),
		"envelope ts too big":     env(func(m map[string]any) { m["ts"] = json.Number("9007199254740993") }),
		"envelope no wraps":       env(func(m map[string]any) { m["wraps"] = []any{} }),
		"envelope 11 wraps": env(func(m map[string]any) {
			w := m["wraps"].([]any)
			for len(w) < 11 {
				w = append(w, w[0])
			}
			m["wraps"] = w
		}),
		"envelope wrap twice":     env(func(m map[string]any) { w := m["wraps"].([]any); m["wraps"] = []any{w[0], w[0]} }),
		"envelope opk 4 bytes":    env(func(m map[string]any) { at(m, "wraps", 0)["opk"] = "AAAAAA" }),
		"envelope opk empty":      env(func(m map[string]any) { at(m, "wraps", 0)["opk"] = "" }),
		"envelope short spk":      env(func(m map[string]any) { at(m, "wraps", 0)["spk"] = "AAAA" }),
		"envelope wrap extra":     env(func(m map[string]any) { at(m, "wraps", 1)["x"] = "" }),
		"envelope padded n":       env(func(m map[string]any) { m["n"] = m["n"].(string) + "=" }),
		"envelope short ct":       env(func(m map[string]any) { m["ct"] = "AAAA" }),
		"list good":               {"list", v.BobList},
		"list v1":                 list(func(m map[string]any) { m["v"] = 1 }),
		"list ver 0":              list(func(m map[string]any) { m["ver"] = 0 }),
		"list no devices":         list(func(m map[string]any) { m["devices"] = []any{} }),
		"list device twice":       list(func(m map[string]any) { d := m["devices"].([]any); m["devices"] = []any{d[0], d[0]} }),
		"list id of another key":  list(func(m map[string]any) { at(m, "devices", 0)["id"] = at(m, "devices", 1)["id"] }),
		"list bad uid":            list(func(m map[string]any) { m["uid"] = "u b" }),
		"list short sig":          list(func(m map[string]any) { m["sig"] = "AAAA" }),
		"list devices null":       list(func(m map[string]any) { m["devices"] = nil }),
		"prekey good":             {"prekey", string(prekey)},
		"prekey kind":             pk(func(m map[string]any) { m["kind"] = "ik" }),
		"prekey low order":        pk(func(m map[string]any) { m["pub"] = lowOrder }),
		"prekey extra":            pk(func(m map[string]any) { m["v"] = 2 }),
		"prekey ts fraction":      pk(func(m map[string]any) { m["ts"] = 1.5 }),
		"bundle good":             {"bundle", v.BobBundle},
		"bundle opk null":         bundle(func(m map[string]any) { at(m, "devices", 0)["opk"] = nil }),
		"bundle spk null":         bundle(func(m map[string]any) { at(m, "devices", 0)["spk"] = nil }),
		"bundle opk as spk":       bundle(func(m map[string]any) { at(m, "devices", 0)["spk"] = at(m, "devices", 0)["opk"] }),
		"bundle unlisted device":  bundle(func(m map[string]any) { at(m, "devices", 0)["id"] = "dunknown" }),
		"bundle device twice":     bundle(func(m map[string]any) { d := m["devices"].([]any); m["devices"] = []any{d[0], d[0]} }),
		"bundle more than listed": bundle(func(m map[string]any) { d := m["devices"].([]any); m["devices"] = []any{d[0], d[1], d[0]} }),
		"bundle no devices":       bundle(func(m map[string]any) { m["devices"] = []any{} }),
		"bundle list v3":          bundle(func(m map[string]any) { at(m, "list")["v"] = 3 }),
		"bundle low-order opk":    bundle(func(m map[string]any) { at(m, "devices", 1, "opk")["pub"] = lowOrder }),
		"bundle missing devices":  bundle(func(m map[string]any) { delete(m, "devices") }),
		"envelope over the limit": {"envelope", `{"v":2,"x":"` + strings.Repeat("a", envelope.MaxEncoded) + `"}`},
		"list over the limit":     {"list", `{"v":2,"x":"` + strings.Repeat("a", envelope.MaxListEncoded) + `"}`},
		"bundle not json":         {"bundle", `{"list":`},
		"prekey array":            {"prekey", `[1]`},
	}
	goParse := map[string]func([]byte) error{
		"envelope": func(b []byte) error { _, err := envelope.ParseV2(b); return err },
		"list":     func(b []byte) error { _, err := envelope.ParseDeviceList(b); return err },
		"prekey":   func(b []byte) error { _, err := envelope.ParsePrekey(b); return err },
		"bundle":   func(b []byte) error { _, err := envelope.ParseBundle(b); return err },
	}
	for name, c := range cases {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			want := "ok"
			if err := goParse[c.what]([]byte(c.in)); err != nil {
				want = goKind(err)
			}
			var got string
			tb.eval(fmt.Sprintf(`T2.parse(%q, %s)`, c.what, jsString(c.in)), &got)
			if got != want {
				t.Errorf("JS parse = %q, Go = %q", got, want)
			}
		})
	}
}

// interopOpen is what T.open returns.
type interopOpen struct {
	Header struct {
		From, To, Mid string
		TS            int64
	}
	Text, Error string
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
