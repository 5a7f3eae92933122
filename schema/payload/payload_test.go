package payload

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

type vector struct{ Name, Key, Plain, Sealed, SHA256, Payload string }

func loadVectors(t testing.TB) []vector {
	raw, err := os.ReadFile("testdata/file-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	return vs
}

func unb64(t testing.TB, s string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPayloadFileVectors checks docs/payload.md's vectors both ways: the
// sealed bytes, digest and payload text from the key and plaintext, and
// the plaintext back from the payload and sealed bytes.
func TestPayloadFileVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			sealed, f, err := SealFileWithKey(unb64(t, v.Key), unb64(t, v.Plain))
			if err != nil {
				t.Fatal(err)
			}
			if got := base64.RawURLEncoding.EncodeToString(sealed); got != v.Sealed {
				t.Errorf("sealed = %s, want %s", got, v.Sealed)
			}
			if got := base64.RawURLEncoding.EncodeToString(f.SHA256); got != v.SHA256 {
				t.Errorf("sha256 = %s, want %s", got, v.SHA256)
			}
			p := Decode([]byte(v.Payload))
			if len(p.Files) != 1 || p.Dropped != 0 || p.Text != "see file" {
				t.Fatalf("Decode(vector payload) = %+v", p)
			}
			if !bytes.Equal(Encode(p), []byte(v.Payload)) {
				t.Errorf("Encode(Decode(payload)) = %s, want the vector's", Encode(p))
			}
			plain, err := OpenFile(p.Files[0], unb64(t, v.Sealed))
			if err != nil || !bytes.Equal(plain, unb64(t, v.Plain)) {
				t.Errorf("OpenFile = %q, %v; want %q", plain, err, unb64(t, v.Plain))
			}
		})
	}
}

func TestPayloadOpenFileRefuses(t *testing.T) {
	sealed, f, err := SealFile([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(sealed)
	flipped[0] ^= 1
	otherKey := f
	otherKey.Key = bytes.Repeat([]byte{9}, 32)
	for _, c := range []struct {
		name   string
		f      File
		sealed []byte
		want   error
	}{
		{"changed byte", f, flipped, ErrFileDigest},
		{"truncated", f, sealed[:len(sealed)-1], ErrFileDigest},
		{"wrong key", otherKey, sealed, ErrFileDecrypt},
		{"too large", f, make([]byte, MaxFileSize+SealedOverhead+1), ErrFileTooLarge},
	} {
		if _, err := OpenFile(c.f, c.sealed); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, _, err := SealFile(make([]byte, MaxFileSize+1)); !errors.Is(err, ErrFileTooLarge) {
		t.Errorf("SealFile over the limit: %v", err)
	}
}

func TestPayloadDecode(t *testing.T) {
	key := base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	file := func(edit string) string {
		f := map[string]any{"id": "a.b.c.d", "name": "x.png", "type": "image/png", "size": 3, "key": key, "sha256": key}
		k, v, _ := strings.Cut(edit, "=")
		if k != "" {
			var val any
			json.Unmarshal([]byte(v), &val)
			f[k] = val
		}
		b, _ := json.Marshal(f)
		return string(b)
	}
	for _, c := range []struct {
		in      string
		text    string
		files   int
		dropped int
	}{
		{`{"text":"hi"}`, "hi", 0, 0},
		{`plain bytes`, "plain bytes", 0, 0},
		{`{"text":5}`, `{"text":5}`, 0, 0},
		{`{"text":"a","files":[` + file("") + `]}`, "a", 1, 0},
		{`{"text":"a","files":[` + file("") + `,` + file("") + `,` + file("") + `,` + file("") + `,` + file("") + `]}`, "a", 4, 1},
		{`{"text":"a","files":[` + file(`key="AQ"`) + `]}`, "a", 0, 1},
		{`{"text":"a","files":[` + file(`sha256="AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="`) + `]}`, "a", 0, 1},
		{`{"text":"a","files":[` + file(`size=-1`) + `]}`, "a", 0, 1},
		{`{"text":"a","files":[` + file(`size=26214401`) + `]}`, "a", 0, 1},
		{`{"text":"a","files":[` + file(`id=""`) + `]}`, "a", 0, 1},
		{`{"text":"a","files":[` + file(`id="a b"`) + `]}`, "a", 0, 1},
		{`{"text":"a","files":[` + file(`type="text/plain; x"`) + `]}`, "a", 0, 1},
		{`{"text":"a","files":[` + file(`name="`+strings.Repeat("n", 256)+`"`) + `]}`, "a", 0, 1},
		{`{"text":"a","files":[7]}`, "a", 0, 1},
		{`{"text":"a","files":7}`, `{"text":"a","files":7}`, 0, 0},
	} {
		p := Decode([]byte(c.in))
		if p.Text != c.text || len(p.Files) != c.files || p.Dropped != c.dropped {
			t.Errorf("Decode(%.80s) = text %q, %d files, %d dropped; want %q, %d, %d", c.in, p.Text, len(p.Files), p.Dropped, c.text, c.files, c.dropped)
		}
	}
}

// FuzzPayloadDecode: Decode never panics, returns valid UTF-8 text, and
// every file it returns passes its checks and survives a round trip.
func FuzzPayloadDecode(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add([]byte(v.Payload))
	}
	f.Add([]byte(`{"text":"x","files":[{}]}`))
	f.Add([]byte("\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := Decode(b)
		if len(p.Files) > MaxFiles {
			t.Fatalf("%d files", len(p.Files))
		}
		for _, file := range p.Files {
			if len(file.Key) != 32 || len(file.SHA256) != 32 || file.ID == "" || file.Size < 0 || file.Size > MaxFileSize {
				t.Fatalf("unchecked file %+v", file)
			}
		}
		q := Decode(Encode(p))
		if q.Text != p.Text || len(q.Files) != len(p.Files) {
			t.Fatalf("round trip changed %+v into %+v", p, q)
		}
	})
}
