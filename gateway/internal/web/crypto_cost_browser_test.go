package web_test

import (
	"fmt"
	"os"
	"testing"
)

// costHelpers defines window.C in the page: it seals and opens envelopes
// in a loop, timing each call with performance.now(), and
// returns the median and 90th percentile in milliseconds with the envelope
// size in bytes.
const costHelpers = `(async () => {
  const id = await import("/assets/js/identity.js");
  const env2 = await import("/assets/js/envelope.js");
  const b64 = await import("/assets/js/b64.js");
  const d = (s) => b64.decode(s);
  const stats = async (n, fn) => {
    for (let i = 0; i < 10; i++) await fn(i);
    const ts = [];
    let size = 0;
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const out = await fn(i);
      ts.push(performance.now() - t0);
      size = out;
    }
    ts.sort((a, b) => a - b);
    return { median: ts[Math.floor(n / 2)], p90: ts[Math.floor(n * 0.9)], bytes: size };
  };
  const payload = new Uint8Array(100).fill(120);
  window.C = {
    async v2(n, bundles, dkSeed, from, fd, to, reader) {
      const dk = (await id.importPrivate("Ed25519", d(dkSeed))).private;
      const targets = [];
      for (const b of bundles) targets.push(...await id.verifyBundle(await id.parseBundle(b.bundle), b.uid, d(b.ik), b.skip || ""));
      const hdr = (i) => ({ from, fd, to, mid: "m" + i, ts: 1750000000000 + i });
      let last;
      const seal = await stats(n, async (i) => { last = await env2.seal(hdr(i), dk, targets, payload); return last.length; });
      const list = await id.parseDeviceList(reader.list); // verified once, as the client caches it
      await id.verifyDeviceList(list, from, d(reader.ik));
      const spk = await id.importPrivate("X25519", d(reader.spk));
      const opk = await id.importPrivate("X25519", d(reader.opk));
      const open = await stats(n, async () => (await env2.open(last, list, reader.device, async (k) => (k === "spk" ? spk : opk))).plaintext.length);
      return { seal, open, wraps: targets.length };
    },
  };
  return true;
})()`

type costStats struct {
	Median, P90 float64
	Bytes       int
}

type costResult struct {
	Seal, Open costStats
	Wraps      int
}

// TestWebCryptoCost measures what sealing and opening a 100-byte message
// costs in the browser, for envelope v2 at 1, 5 and 10 wraps
// (every target with a one-time prekey), and the envelope sizes; the
// figures go to BENCHMARKS.md. It asserts nothing about speed and runs
// only when MAYFLY_BENCH is set:
//
//	MAYFLY_BENCH=1 go test -count=1 -run TestWebCryptoCost -v ./gateway/internal/web/
func TestWebCryptoCost(t *testing.T) {
	t.Parallel()
	if os.Getenv("MAYFLY_BENCH") == "" {
		t.Skip("a measurement for BENCHMARKS.md; set MAYFLY_BENCH=1 to run it")
	}
	tb := identityPage(t)
	tb.eval(costHelpers, nil)
	const n = 200
	alice, carol := newV2User(t, "u_alice", 5), newV2User(t, "u_carol", 5)
	for _, c := range []struct {
		name    string
		devices int
		own     bool
	}{{"1", 1, false}, {"5", 5, false}, {"5+5", 5, true}} {
		bob := newV2User(t, "u_bob", c.devices)
		bundles := []map[string]string{{"bundle": string(bob.bundle(t, true)), "uid": bob.id, "ik": bob.ikPub()}}
		if c.own {
			// The format's maximum: the sender's five other devices (a
			// sender with six listed devices is not possible; carol's list
			// of five stands in for "five more").
			bundles = append(bundles, map[string]string{"bundle": string(carol.bundle(t, true)), "uid": carol.id, "ik": carol.ikPub()})
		}
		reader := map[string]string{"list": string(alice.list(t)), "ik": alice.ikPub(), "device": bob.dev[0].id(),
			"spk": priv(bob.dev[0].spk), "opk": priv(bob.dev[0].opk)}
		var r costResult
		tb.eval(fmt.Sprintf(`C.v2(%d, %s, %q, %q, %q, %q, %s)`, n, jsJSON(bundles), b64.EncodeToString(alice.dev[0].key.Seed()),
			alice.id, alice.dev[0].id(), bob.id, jsJSON(reader)), &r)
		t.Logf("v2 %-3s devices (%2d wraps): seal median %.2f ms p90 %.2f ms, open median %.2f ms p90 %.2f ms, envelope %d bytes",
			c.name, r.Wraps, r.Seal.Median, r.Seal.P90, r.Open.Median, r.Open.P90, r.Seal.Bytes)
	}
	tb.checkNoErrors()
}
