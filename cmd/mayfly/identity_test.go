package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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

// attackEnv is an env whose server's database and data directory the test
// can reach behind the clients' backs, as an attacker holding the server
// would.
type attackEnv struct {
	*env
	dbURL, data string
}

func newAttackEnv(t *testing.T) *attackEnv {
	t.Helper()
	bin := buildMayfly(t)
	dbURL, data := storetest.NewURL(t), t.TempDir()
	a := gatewaytest.Start(t, gatewaytest.Config{SendRate: 1000, SendBurst: 1000, DatabaseURL: dbURL, DataDir: data})
	return &attackEnv{env: &env{t: t, bin: bin, server: "http://" + a.HTTPAddr()}, dbURL: dbURL, data: data}
}

func (e *attackEnv) exec(sql string, args ...any) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.dbURL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

// storedEnvelopes returns every v2 envelope in the JetStream store's files:
// what a thief who copies the server's disk gets.
func (e *attackEnv) storedEnvelopes() [][]byte {
	e.t.Helper()
	var out [][]byte
	start := []byte(`{"v":2,"from":"`)
	err := filepath.WalkDir(filepath.Join(e.data, "nats"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i := bytes.Index(b, start); i >= 0; {
			rest := b[i:]
			sig := bytes.Index(rest, []byte(`"sig":"`))
			end := bytes.Index(rest[max(sig, 0):], []byte(`"}`))
			if sig >= 0 && end >= 0 {
				if _, err := envelope.ParseV2(rest[:sig+end+2]); err == nil {
					out = append(out, bytes.Clone(rest[:sig+end+2]))
				}
			}
			next := bytes.Index(rest[1:], start)
			if next < 0 {
				break
			}
			i += next + 1
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// homeKeys is every key a home holds: its device key and id and every
// prekey private key left in prekeys.json.
type homeKeys struct {
	deviceID string
	device   ed25519.PrivateKey
	prekeys  []*ecdh.PrivateKey
}

func loadHome(t *testing.T, home string) homeKeys {
	t.Helper()
	d, err := client.OpenDir(home)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := d.Config("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	h := homeKeys{deviceID: cfg.Keys.DeviceID(), device: cfg.Keys.Device}
	for _, s := range append(cfg.Prekeys.SPKs, cfg.Prekeys.OPKs...) {
		raw, _ := base64.RawURLEncoding.DecodeString(s.Private)
		k, err := ecdh.X25519().NewPrivateKey(raw)
		if err != nil {
			t.Fatal(err)
		}
		h.prekeys = append(h.prekeys, k)
	}
	if len(h.prekeys) < 2 {
		t.Fatalf("home %s holds %d prekeys", home, len(h.prekeys))
	}
	return h
}

// opensWith tries every pair of prekeys of the homes (and every key alone)
// as every device of the homes: what someone who stole all of them could
// do. It returns the plaintext of the first that opens env.
func opensWith(t *testing.T, env []byte, senderKey ed25519.PublicKey, homes ...homeKeys) ([]byte, bool) {
	t.Helper()
	e, err := envelope.ParseV2(env)
	if err != nil {
		t.Fatal(err)
	}
	var all []*ecdh.PrivateKey
	for _, h := range homes {
		all = append(all, h.prekeys...)
	}
	for _, h := range homes {
		for _, spk := range all {
			for _, opk := range append([]*ecdh.PrivateKey{nil}, all...) {
				if pt, err := e.Open(h.deviceID, senderKey, spk, opk); err == nil {
					return pt, true
				}
			}
		}
	}
	return nil, false
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
}

// friendsCLI registers ha and hb in new homes and makes them friends.
func friendsCLI(t *testing.T, e *env, ha, hb string) (alice, bob string) {
	alice, bob = filepath.Join(t.TempDir(), "alice"), filepath.Join(t.TempDir(), "bob")
	e.ok(alice, "register", ha)
	e.ok(bob, "register", hb)
	e.ok(alice, "friend", "request", hb)
	e.ok(bob, "friend", "accept", ha)
	return alice, bob
}

// TestCLIIdentity runs the identity attacks on one server (each needs the
// server's database and disk), each with its own pair of users.
func TestCLIIdentity(t *testing.T) {
	t.Parallel()
	e := newAttackEnv(t)
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, e *attackEnv, ha, hb string)
	}{
		{"forward_secrecy", identityForwardSecrecy},
		{"revoked_home_copy", identityRevokedHomeCopy},
		{"key_swap", identityKeySwap},
		{"reset", identityReset},
	} {
		t.Run(tc.name, func(t *testing.T) {
			se := &attackEnv{env: &env{t: t, bin: e.bin, server: e.server}, dbURL: e.dbURL, data: e.data}
			prefix := strings.ReplaceAll(tc.name, "_", "")
			prefix = prefix[:min(len(prefix), 6)]
			tc.run(t, se, prefix+"_alice", prefix+"_bob")
		})
	}
}

// identityForwardSecrecy keeps the envelope the server stored,
// lets bob read (burn) it, then tries to open it with every key left in
// both users' homes: nothing opens it. Before the read, the same attempt
// with bob's home opens it, so the attack is a real one.
func identityForwardSecrecy(t *testing.T, e *attackEnv, ha, hb string) {
	alice, bob := friendsCLI(t, e.env, ha, hb)
	e.ok(alice, "send", hb, "burn after reading")
	var env []byte
	from := []byte(`"from":"` + userIDOf(t, e.env, alice) + `"`)
	for _, s := range e.storedEnvelopes() {
		if bytes.Contains(s, from) {
			env = s
		}
	}
	if env == nil {
		t.Fatal("found no stored envelope of alice's in the JetStream files")
	}
	aliceKeys := loadHome(t, alice)
	senderKey := aliceKeys.device.Public().(ed25519.PublicKey)
	if pt, ok := opensWith(t, env, senderKey, loadHome(t, bob)); !ok || !strings.Contains(string(pt), "burn after reading") {
		t.Fatalf("control: bob's home does not open the stored envelope before the read")
	}
	if ms := parseMessages(t, e.ok(bob, "read", "--json")); len(ms) != 1 {
		t.Fatalf("bob read %+v", ms)
	}
	if _, ok := opensWith(t, env, senderKey, loadHome(t, bob), loadHome(t, alice)); ok {
		t.Fatal("the burned message's stored envelope still opens with keys left in the homes")
	}
}

// identityRevokedHomeCopy copies the full home of a linked laptop,
// then revokes the laptop on alice's primary: the copy cannot log in
// (device_revoked, with or without the copied session), is not sealed to
// in messages sent afterwards, and cannot put itself back into the device
// list, neither with a list it signs itself nor by replaying the list that
// named it.
func identityRevokedHomeCopy(t *testing.T, e *attackEnv, ha, hb string) {
	alice, bob := friendsCLI(t, e.env, ha, hb)
	laptop := filepath.Join(t.TempDir(), "laptop")
	link := e.start(laptop, "device", "link")
	code := link.waitLine(t, "link code: ")
	e.ok(alice, "device", "approve", code)
	link.wait(t)
	e.ok(bob, "send", ha, "before the revocation")
	if ms := parseMessages(t, e.ok(laptop, "read", "--json")); len(ms) != 1 {
		t.Fatalf("laptop read %+v", ms)
	}
	listWithLaptop := currentList(t, e.env, alice)

	stolen := filepath.Join(t.TempDir(), "stolen")
	copyDir(t, laptop, stolen)
	lk := loadHome(t, laptop)
	e.ok(alice, "device", "revoke", lk.deviceID)

	e.fails("token_revoked", stolen, "read")
	if err := os.Remove(filepath.Join(stolen, "session.json")); err != nil {
		t.Fatal(err)
	}
	e.fails("device_revoked", stolen, "read")
	e.fails("token_revoked", laptop, "read")
	// Sent after the revocation: no wrap for the laptop, and no key of the
	// copy opens it.
	e.ok(bob, "send", ha, "after the revocation")
	var after []byte
	for _, env := range e.storedEnvelopes() {
		if strings.Contains(string(env), `"fd":"`+loadHome(t, bob).deviceID) && !bytes.Contains(env, []byte(lk.deviceID)) {
			after = env
		}
	}
	if after == nil {
		t.Fatal("no envelope sent after the revocation found, or it still names the revoked laptop")
	}
	if _, ok := opensWith(t, after, loadHome(t, bob).device.Public().(ed25519.PublicKey), loadHome(t, stolen)); ok {
		t.Fatal("the stolen copy opened a message sent after the revocation")
	}
	// Back into the list: a list signed by the laptop's own key, and the
	// old list that named it.
	self, err := envelope.SignDeviceList(userIDOf(t, e.env, alice), 99, time.Now(), []ed25519.PublicKey{lk.device.Public().(ed25519.PublicKey)}, lk.device)
	if err != nil {
		t.Fatal(err)
	}
	for name, list := range map[string][]byte{"self-signed": self, "replayed": listWithLaptop} {
		if code := postList(t, e.server, list); code != schema.CodeBadSignature && code != schema.CodeStaleDeviceList && code != schema.CodeDeviceRevoked {
			t.Errorf("%s list: %q, want it refused", name, code)
		}
	}
	if ms := parseMessages(t, e.ok(alice, "read", "--json")); len(ms) != 1 || ms[0].Text != "after the revocation" {
		t.Fatalf("alice's primary read %+v", ms)
	}
}

// currentList returns home's user's device list as the server serves it.
func currentList(t *testing.T, e *env, home string) []byte {
	t.Helper()
	d, _ := client.OpenDir(home)
	cfg, err := d.Config(e.server)
	if err != nil {
		t.Fatal(err)
	}
	var r schema.DeviceListRequest
	getJSON(t, e.server+"/v1/devicelist/"+cfg.UserID, &r)
	return r.List
}

// identityKeySwap replaces bob's identity key, device list and
// prekeys in Postgres, as a server that wants to read alice's next message
// would: alice's send fails with untrusted_keys and nothing reaches the
// server; friend verify shows the change; only after --accept does a send
// go through (to the new key, now that alice chose to trust it).
func identityKeySwap(t *testing.T, e *attackEnv, ha, hb string) {
	alice, bob := friendsCLI(t, e.env, ha, hb)
	e.ok(alice, "send", hb, "first")
	parseMessages(t, e.ok(bob, "read", "--json"))

	bobID := userIDOf(t, e.env, bob)
	_, evilIK, _ := ed25519.GenerateKey(nil)
	_, evilDK, _ := ed25519.GenerateKey(nil)
	evilDev := envelope.DeviceID(evilDK.Public().(ed25519.PublicKey))
	list, err := envelope.SignDeviceList(bobID, 50, time.Now(), []ed25519.PublicKey{evilDK.Public().(ed25519.PublicKey)}, evilIK)
	if err != nil {
		t.Fatal(err)
	}
	spkPriv, _ := ecdh.X25519().GenerateKey(nil)
	spk, err := envelope.SignPrekey(bobID, evilDev, envelope.KindSPK, spkPriv, time.Now(), evilDK)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := envelope.ParsePrekey(spk)
	kid := p.KeyID()
	e.exec(`UPDATE users SET ik = $2, device_list = $3, list_version = 50 WHERE id = $1`, bobID, []byte(evilIK.Public().(ed25519.PublicKey)), list)
	e.exec(`INSERT INTO devices (id, user_id, name, sign_key) VALUES ($1, $2, 'evil', $3)`, evilDev, bobID, []byte(evilDK.Public().(ed25519.PublicKey)))
	e.exec(`INSERT INTO prekeys (device_id, kind, kid, body) VALUES ($1, 'spk', $2, $3)`, evilDev, kid[:], spk)
	before := len(e.storedEnvelopes())

	r := e.run(alice, "send", hb, "for bob only")
	if first, _, _ := strings.Cut(r.stderr, "\n"); r.code == 0 || !strings.HasPrefix(first, "untrusted_keys: ") {
		t.Fatalf("send after the swap: exit %d, stderr %q; want untrusted_keys", r.code, r.stderr)
	}
	if n := len(e.storedEnvelopes()); n != before {
		t.Fatalf("%d envelopes stored after the refused send, want %d", n, before)
	}
	for _, env := range e.storedEnvelopes() {
		if bytes.Contains(env, []byte(evilDev)) {
			t.Fatal("an envelope was sealed to the swapped-in device")
		}
	}
	out := e.ok(alice, "friend", "verify", hb)
	if !strings.Contains(out, "KEY CHANGED") || !strings.Contains(out, "safety number: ") {
		t.Fatalf("friend verify printed %q", out)
	}
	e.fails("untrusted_keys", alice, "send", hb, "still refused")
	e.ok(alice, "friend", "verify", hb, "--accept")
	e.ok(alice, "send", hb, "sealed to the accepted key")
}

func userIDOf(t *testing.T, e *env, home string) string {
	t.Helper()
	_, rest, _ := strings.Cut(e.ok(home, "whoami"), "user_id: ")
	id, _, _ := strings.Cut(rest, "\n")
	return id
}

// postList publishes a device list without a token and returns the error
// code, "" on success.
func postList(t *testing.T, server string, list []byte) schema.Code {
	t.Helper()
	body, _ := json.Marshal(schema.DeviceListRequest{List: list})
	resp, err := http.Post(server+"/v1/devicelist", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb schema.ErrorBody
	if resp.StatusCode < 300 || json.NewDecoder(resp.Body).Decode(&eb) != nil || eb.Error == nil {
		return ""
	}
	return eb.Error.Code
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// identityReset: with the primary lost, the linked laptop resets the
// identity: it becomes the primary, the old primary's home can no longer
// log in, and bob's send stops at untrusted_keys until he accepts the new
// key.
func identityReset(t *testing.T, e *attackEnv, ha, hb string) {
	alice, bob := friendsCLI(t, e.env, ha, hb)
	laptop := filepath.Join(t.TempDir(), "laptop")
	link := e.start(laptop, "device", "link")
	e.ok(alice, "device", "approve", link.waitLine(t, "link code: "))
	link.wait(t)
	e.fails("forbidden", laptop, "device", "approve", "AAAAA-AAAAA")
	e.ok(bob, "send", ha, "before")

	// A linked device's reset waits: the primary sees it and may cancel it.
	if out := e.ok(laptop, "device", "reset-identity"); !strings.Contains(out, "identity reset requested") {
		t.Fatalf("reset printed %q", out)
	}
	if out := e.ok(alice, "device", "list"); !strings.Contains(out, "IDENTITY RESET PENDING") {
		t.Fatalf("the primary's device list does not show the pending reset: %q", out)
	}
	e.fails("forbidden", laptop, "device", "reset-identity", "--cancel")
	e.ok(alice, "device", "reset-identity", "--cancel")
	e.ok(laptop, "device", "reset-identity")
	if out := e.ok(laptop, "device", "reset-identity"); !strings.Contains(out, "identity reset requested") {
		t.Fatalf("a second run before the delay printed %q", out)
	}
	e.exec(`UPDATE identity_resets SET not_before = now()`) // the 72 hours pass
	if out := e.ok(laptop, "device", "reset-identity"); !strings.Contains(out, "now the primary of "+ha) {
		t.Fatalf("reset printed %q", out)
	}
	if who := e.ok(laptop, "whoami"); !strings.Contains(who, "primary device") {
		t.Fatalf("whoami after the reset %q", who)
	}
	if err := os.Remove(filepath.Join(alice, "session.json")); err != nil {
		t.Fatal(err)
	}
	e.fails("device_revoked", alice, "device", "list")
	e.fails("untrusted_keys", bob, "send", ha, "to whom?")
	if out := e.ok(bob, "friend", "verify", ha); !strings.Contains(out, "KEY CHANGED") {
		t.Fatalf("verify printed %q", out)
	}
	e.ok(bob, "friend", "verify", ha, "--accept")
	e.ok(bob, "send", ha, "after")
	ms := parseMessages(t, e.ok(laptop, "read", "--json"))
	if len(ms) == 0 || ms[len(ms)-1].Text != "after" {
		t.Fatalf("laptop read %+v", ms)
	}
}
