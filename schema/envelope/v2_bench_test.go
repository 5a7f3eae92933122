package envelope

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"fmt"
	"testing"
)

// benchPayload is the size of the payload the envelope benchmarks seal: a
// short text message in docs/payload.md's format.
const benchPayload = 100

// v2Targets returns n devices with signed and one-time prekeys as targets,
// and the first device's private prekeys.
func v2Targets(tb testing.TB, n int) ([]Target, v2Device) {
	var ts []Target
	var first v2Device
	for i := range n {
		d := newV2Device(tb, "ubob", byte(0x40+3*i))
		if i == 0 {
			first = d
		}
		ts = append(ts, Target{DeviceID: d.id(), SPK: d.spk.PublicKey().Bytes(), OPK: d.opk.PublicKey().Bytes()})
	}
	return ts, first
}

// BenchmarkEnvelopeSeal compares sealing a 100-byte payload: v1 (one wrap
// for the recipient, one for the sender) against v2 with 1 device, 5
// devices, and 5 + 5 (the recipient's five and the sender's other four
// plus one). Each v2 wrap costs two X25519 agreements (SPK and OPK) and a
// key generation. The encoded size is reported as B/envelope.
func BenchmarkEnvelopeSeal(b *testing.B) {
	payload := make([]byte, benchPayload)
	b.Run("v1", func(b *testing.B) {
		alice, bob, _ := testParties(b)
		env, _ := Seal(testHeader, alice, bob.Public(), payload)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Seal(testHeader, alice, bob.Public(), payload); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(env)), "B/envelope")
	})
	w := newV2World(b)
	for _, n := range []int{1, 5, 10} {
		b.Run(fmt.Sprintf("v2/devices=%d", n), func(b *testing.B) {
			targets, _ := v2Targets(b, n)
			env, err := SealV2(w.header, w.alice.key, targets, payload)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := SealV2(w.header, w.alice.key, targets, payload); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(env)), "B/envelope")
		})
	}
}

// BenchmarkEnvelopeOpen compares one reader's cost to open the envelopes of
// BenchmarkEnvelopeSeal: parse, verify the signature, unwrap its own wrap
// and decrypt. The number of wraps changes parsing and the signed bytes,
// not the unwrap.
func BenchmarkEnvelopeOpen(b *testing.B) {
	payload := make([]byte, benchPayload)
	b.Run("v1", func(b *testing.B) {
		alice, bob, _ := testParties(b)
		env, _ := Seal(testHeader, alice, bob.Public(), payload)
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := Open(env, bob, alice.Public().Sign); err != nil {
				b.Fatal(err)
			}
		}
	})
	w := newV2World(b)
	for _, n := range []int{1, 5, 10} {
		b.Run(fmt.Sprintf("v2/devices=%d", n), func(b *testing.B) {
			targets, reader := v2Targets(b, n)
			env, err := SealV2(w.header, w.alice.key, targets, payload)
			if err != nil {
				b.Fatal(err)
			}
			sender := w.alice.key.Public().(ed25519.PublicKey)
			b.ReportAllocs()
			for b.Loop() {
				openV2(b, env, reader.id(), sender, reader.spk, reader.opk)
			}
		})
	}
}

func openV2(b *testing.B, env []byte, id string, sender ed25519.PublicKey, spk, opk *ecdh.PrivateKey) {
	e, err := ParseV2(env)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.Open(id, sender, spk, opk); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkEnvelopeRelayCheckV2 is the relay's check of a v2 envelope of a
// 100-byte payload with 1 and 5 + 5 wraps (CheckV2, a full parse and
// re-encode), next to BenchmarkEnvelopeRelayCheck's v1 fast path.
func BenchmarkEnvelopeRelayCheckV2(b *testing.B) {
	w := newV2World(b)
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			targets, _ := v2Targets(b, n)
			env, err := SealV2(w.header, w.alice.key, targets, make([]byte, benchPayload))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(env)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := CheckV2(env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
