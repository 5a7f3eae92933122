package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// wireEnvelope is the JSON form of docs/envelope.md as encoding/json writes
// it: the reference for the hand-written canonical encoding.
type wireEnvelope struct {
	V     int        `json:"v"`
	From  string     `json:"from"`
	To    string     `json:"to"`
	MsgID string     `json:"mid"`
	TS    int64      `json:"ts"`
	Wraps []wireWrap `json:"wraps"`
	N     string     `json:"n"`
	CT    string     `json:"ct"`
	Sig   string     `json:"sig"`
}

type wireWrap struct {
	KID string `json:"kid"`
	EPK string `json:"epk"`
	N   string `json:"n"`
	K   string `json:"k"`
}

// marshalRef encodes e with encoding/json.
func marshalRef(t testing.TB, e *Envelope) []byte {
	w := wireEnvelope{
		V: Version, From: e.from, To: e.to, MsgID: e.msgID, TS: e.sentAt,
		N: EncodeKey(e.nonce[:]), CT: EncodeKey(e.ciphertext), Sig: EncodeKey(e.sig[:]),
	}
	for _, wr := range e.wraps {
		w.Wraps = append(w.Wraps, wireWrap{
			KID: EncodeKey(wr.keyID[:]), EPK: EncodeKey(wr.ephemeral[:]),
			N: EncodeKey(wr.nonce[:]), K: EncodeKey(wr.key[:]),
		})
	}
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCanonicalMarshalMatchesEncodingJSON(t *testing.T) {
	// Payload sizes 0 to 5 cover every base64 tail of the ciphertext.
	for n := range 6 {
		b := sealTest(t, bytes.Repeat([]byte{'x'}, n))
		e, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := e.MarshalJSON()
		if want := marshalRef(t, e); !bytes.Equal(got, want) {
			t.Fatalf("payload %d: MarshalJSON =\n%s\nencoding/json:\n%s", n, got, want)
		}
		if e.encodedLen() < len(got) {
			t.Fatalf("payload %d: encodedLen %d, encoded %d bytes", n, e.encodedLen(), len(got))
		}
	}
}

func TestCanonicalCheckSealedIsInput(t *testing.T) {
	b := sealTest(t, []byte("hello"))
	h, canon, err := Check(b)
	if err != nil {
		t.Fatal(err)
	}
	if h != testHeader {
		t.Errorf("header %+v, want %+v", h, testHeader)
	}
	if &canon[0] != &b[0] || len(canon) != len(b) {
		t.Error("canonical input was copied")
	}
}

// nonCanonical returns variants of a sealed envelope that Parse accepts
// but that are not in canonical form, and variants Parse rejects that
// differ from the canonical form in one place.
func nonCanonical(tb testing.TB) (accepted, rejected [][]byte) {
	good := sealTest(tb, []byte("hello"))
	var indented bytes.Buffer
	json.Indent(&indented, good, "", " ")
	rep := func(old, new string) []byte { return bytes.Replace(good, []byte(old), []byte(new), 1) }
	e, _ := Parse(good)
	sig := EncodeKey(e.sig[:])
	// The signature is 64 bytes: its last character carries 4 unused bits.
	lastBit := sig[:len(sig)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[b64Value[sig[len(sig)-1]]|1])
	accepted = [][]byte{
		indented.Bytes(),
		rep(`"from"`, `"\u0066rom"`),
		rep(`"from":"alice"`, `"from":"\u0061lice"`),
		rep(`{"v":1,`, `{ "v":1,`),
		rep(`"mid":"m-0001"`, `"mid":"m\u002d0001"`),
	}
	rejected = [][]byte{
		rep(`"ts":1700000000123`, `"ts":1700000000123.0e0`),
		rep(`"v":1,`, `"v":1.0,`),
		rep(`"v":1,`, `"v":1e0,`),
		rep(`"v":1,`, `"v":2,`),
		rep(`"v":1,`, `"v":01,`),
		rep(`"ts":1700000000123`, `"ts":01700000000123`),
		rep(`"ts":1700000000123`, `"ts":0`),
		rep(`"ts":1700000000123`, `"ts":9007199254740992`),
		rep(`"ts":1700000000123`, `"ts":99999999999999999999`),
		rep(`"ts":1700000000123`, `"ts":-1`),
		rep(`"from":"alice"`, `"from":""`),
		rep(`"from":"alice"`, `"from":"`+strings.Repeat("a", MaxIDLen+1)+`"`),
		rep(`"from":"alice"`, `"from":"al.ce"`),
		rep(sig, lastBit),
		rep(sig, sig[:len(sig)-1]),
		rep(sig, sig+"A"),
		rep(sig, sig+"AA"),
		rep(`"sig":"`, `"sig":"A`),
		rep(`"}`, `"} `),
		rep(`"}`, `"}}`),
		append(bytes.Clone(good), ' '),
		good[:len(good)-1],
	}
	return accepted, rejected
}

// checkSameAsParse fails t unless Check(b) agrees with Parse(b) and, when
// the fast path took b, b is what MarshalJSON gives for Parse(b).
func checkSameAsParse(t *testing.T, b []byte) {
	t.Helper()
	h, canon, err := Check(b)
	e, perr := Parse(b)
	if (err == nil) != (perr == nil) || err != nil && err.Error() != perr.Error() {
		t.Fatalf("Check(%q) = %v, Parse = %v", b, err, perr)
	}
	if perr != nil {
		if _, ok := checkCanonical(b); ok {
			t.Fatalf("fast path accepted %q, Parse: %v", b, perr)
		}
		return
	}
	want, _ := e.MarshalJSON()
	if h != e.Header() || !bytes.Equal(canon, want) {
		t.Fatalf("Check(%q) = %+v, %s; Parse: %+v, %s", b, h, canon, e.Header(), want)
	}
	if _, ok := checkCanonical(b); ok != bytes.Equal(b, want) {
		t.Fatalf("fast path %v on %q, canonical %v", ok, b, bytes.Equal(b, want))
	}
}

func TestCanonicalCheckMatchesParse(t *testing.T) {
	accepted, rejected := nonCanonical(t)
	for n := range 6 {
		checkSameAsParse(t, sealTest(t, bytes.Repeat([]byte{'y'}, n)))
	}
	for i, b := range accepted {
		t.Run(fmt.Sprint("accepted", i), func(t *testing.T) {
			if _, err := Parse(b); err != nil {
				t.Fatalf("Parse(%s) = %v", b, err)
			}
			if _, ok := checkCanonical(b); ok {
				t.Fatalf("fast path took non-canonical %s", b)
			}
			checkSameAsParse(t, b)
		})
	}
	for i, b := range rejected {
		t.Run(fmt.Sprint("rejected", i), func(t *testing.T) {
			if _, ok := checkCanonical(b); ok {
				t.Fatalf("fast path took %s", b)
			}
			checkSameAsParse(t, b)
		})
	}
	for _, b := range fuzzSeeds(t) {
		checkSameAsParse(t, b)
	}
	// Canonical at the limits: the fast path takes them.
	good := sealTest(t, []byte("hello"))
	for _, b := range [][]byte{
		bytes.Replace(good, []byte(`"ts":1700000000123`), []byte(`"ts":9007199254740991`), 1),
		bytes.Replace(good, []byte(`"ts":1700000000123`), []byte(`"ts":1`), 1),
		bytes.Replace(good, []byte(`"from":"alice"`), []byte(`"from":"`+strings.Repeat("a", MaxIDLen)+`"`), 1),
		bytes.Replace(good, []byte(`"mid":"m-0001"`), []byte(`"mid":"_"`), 1),
	} {
		checkSameAsParse(t, b)
		if _, ok := checkCanonical(b); !ok {
			t.Fatalf("fast path refused %s", b)
		}
	}
	big := sealTest(t, make([]byte, MaxPlaintext))
	checkSameAsParse(t, big)
	if _, ok := checkCanonical(big); !ok {
		t.Fatal("fast path refused the largest envelope")
	}
	checkSameAsParse(t, bytes.Replace(big, []byte(`"ct":"`), []byte(`"ct":"AAAA`), 1))
}

func TestCanonicalCheckErrors(t *testing.T) {
	_, _, err := Check([]byte(`{"v":2}`))
	if !errors.Is(err, ErrVersion) {
		t.Fatalf("Check(v2) = %v", err)
	}
}

// FuzzCheck checks that Check agrees with Parse on any input and that its
// fast path takes exactly the canonical encodings.
func FuzzCheck(f *testing.F) {
	accepted, rejected := nonCanonical(f)
	for _, b := range append(append(fuzzSeeds(f), accepted...), rejected...) {
		f.Add(b)
	}
	f.Fuzz(checkSameAsParse)
}
