package envelope

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// fuzzSeeds returns a real sealed envelope and broken variants of it.
func fuzzSeeds(tb testing.TB) [][]byte {
	good := sealTest(tb, []byte("fuzz seed"))
	return [][]byte{
		good,
		sealTest(tb, nil),
		good[:len(good)/2],
		bytes.Replace(good, []byte(`"v":1`), []byte(`"v":2`), 1),
		bytes.Replace(good, []byte(`"from":"alice"`), []byte(`"from":"al ice"`), 1),
		bytes.Replace(good, []byte(`"ts":`), []byte(`"ts":-`), 1),
		bytes.Replace(good, []byte(`"kid"`), []byte(`"kid":"AA","x"`), 1),
		[]byte(strings.Replace(string(good), `{"kid"`, `{"kid":null,"kid"`, 1)),
		[]byte(`{"v":1,"wraps":[{},{}]}`),
		[]byte(`{"v":1e0}`),
		[]byte(`[`),
		[]byte(``),
	}
}

// FuzzParse checks that Parse never panics and that everything it accepts
// has a well-formed header and a canonical encoding Parse accepts again
// unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Parse(data)
		if err != nil {
			if e != nil {
				t.Fatal("envelope returned with an error")
			}
			return
		}
		if err := e.Header().Validate(); err != nil {
			t.Fatalf("accepted header invalid: %v", err)
		}
		canon, err := e.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON: %v", err)
		}
		if len(canon) > len(data) {
			t.Fatalf("canonical form %d bytes, longer than input %d", len(canon), len(data))
		}
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("Parse(canonical) = %v\n%s", err, canon)
		}
		if !reflect.DeepEqual(e, again) {
			t.Fatalf("canonical form parses differently")
		}
		if !bytes.Equal(e.signedBytes(), again.signedBytes()) {
			t.Fatal("signed bytes differ after re-encoding")
		}
	})
}

// FuzzOpen checks that Open never panics, whoever reads.
func FuzzOpen(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	alice, bob, carol := testParties(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, reader := range []Keys{bob, alice, carol} {
			h, got, err := Open(data, reader, alice.Public().Sign)
			if err != nil {
				if got != nil || h != (Header{}) {
					t.Fatal("result returned with an error")
				}
				continue
			}
			if len(got) > MaxPlaintext {
				t.Fatalf("opened %d bytes", len(got))
			}
		}
	})
}
