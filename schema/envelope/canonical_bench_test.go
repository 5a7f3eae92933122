package envelope

import "testing"

// BenchmarkEnvelopeRelayCheck is the relay's check of a sealed envelope of
// a 100-byte payload before storing it: shape and canonical bytes.
func BenchmarkEnvelopeRelayCheck(b *testing.B) {
	env := sealTest(b, make([]byte, 100))
	b.SetBytes(int64(len(env)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Check(env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnvelopeParse parses a sealed envelope of a 100-byte payload.
func BenchmarkEnvelopeParse(b *testing.B) {
	env := sealTest(b, make([]byte, 100))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(env); err != nil {
			b.Fatal(err)
		}
	}
}
