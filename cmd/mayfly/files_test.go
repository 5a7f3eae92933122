package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// savedMessage is a read --json line with its files.
type savedMessage struct {
	Text  string `json:"text"`
	Files []struct {
		Name string `json:"name"`
		Size int64  `json:"size"`
		Path string `json:"path"`
	} `json:"files"`
}

func readSaved(t *testing.T, out string) []savedMessage {
	t.Helper()
	var ms []savedMessage
	for line := range strings.Lines(out) {
		var m savedMessage
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		ms = append(ms, m)
	}
	return ms
}

// TestCLISendFileReadSave: send --file carries files, read --save DIR
// writes them there under their sanitized names without overwriting, and
// --json names each saved path; a 25 MiB file works (4 MiB under -race),
// a larger one is refused before anything is uploaded.
func TestCLISendFileReadSave(t *testing.T) {
	e := newEnv(t)
	alice, bob := filepath.Join(t.TempDir(), "alice"), filepath.Join(t.TempDir(), "bob")
	e.ok(alice, "register", "alice")
	e.ok(bob, "register", "bob")
	e.ok(alice, "friend", "request", "bob")
	e.ok(bob, "friend", "accept", "alice")

	src, save := t.TempDir(), t.TempDir()
	note := filepath.Join(src, "note.txt")
	os.WriteFile(note, []byte("hello file\n"), 0o600)
	os.WriteFile(filepath.Join(save, "note.txt"), []byte("do not overwrite me"), 0o600)
	e.ok(alice, "send", "bob", "--file", note, "see", "the", "note")

	out := e.ok(bob, "read", "--save", save, "--json")
	ms := readSaved(t, out)
	if len(ms) != 1 || ms[0].Text != "see the note" || len(ms[0].Files) != 1 {
		t.Fatalf("read --save --json printed %q", out)
	}
	f := ms[0].Files[0]
	if f.Name != "note.txt" || f.Size != 11 || f.Path != filepath.Join(save, "note (2).txt") {
		t.Fatalf("saved file line %+v", f)
	}
	if b, _ := os.ReadFile(f.Path); string(b) != "hello file\n" {
		t.Fatalf("saved %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(save, "note.txt")); string(b) != "do not overwrite me" {
		t.Fatalf("an existing file was overwritten: %q", b)
	}
	if st, _ := os.Stat(f.Path); st.Mode().Perm() != 0o600 {
		t.Errorf("saved file mode %v, want 0600", st.Mode().Perm())
	}

	// The largest file, 25 MiB; under -race (CLI and server instrumented)
	// 4 MiB keeps the test well inside its per-command minute on a loaded
	// machine, and fabric/attach's TestAttachSizes stores the full size.
	big := filepath.Join(src, "big.bin")
	size := 25 << 20
	if raceEnabled {
		size = 4 << 20
	}
	data := make([]byte, size)
	rand.Read(data)
	os.WriteFile(big, data, 0o600)
	start := time.Now()
	e.ok(alice, "send", "bob", "--file", big)
	sent := time.Since(start)
	start = time.Now()
	ms = readSaved(t, e.ok(bob, "read", "--save", save, "--json"))
	got := time.Since(start)
	if len(ms) != 1 || len(ms[0].Files) != 1 {
		t.Fatalf("read of the big file: %+v", ms)
	}
	if b, _ := os.ReadFile(ms[0].Files[0].Path); !bytes.Equal(b, data) {
		t.Fatalf("the big file came back different (%d bytes)", len(b))
	}
	t.Logf("%d MiB file: send (seal + upload + message) %v, read (download + open + save + burn) %v", size>>20, sent.Round(time.Millisecond), got.Round(time.Millisecond))

	os.WriteFile(big, make([]byte, 25<<20+1), 0o600)
	e.fails("attachment_too_large", alice, "send", "bob", "--file", big)
	e.fails("usage", alice, "send", "bob", "--file")
	e.fails("usage", bob, "read", "--save", filepath.Join(save, "missing"))
}

func TestCLISafeName(t *testing.T) {
	long := strings.Repeat("é", 100) + ".jpeg"
	for _, c := range []struct{ in, want string }{
		{"photo.jpg", "photo.jpg"},
		{"../../etc/passwd", "passwd"},
		{"/abs/path/x.png", "x.png"},
		{`C:\Users\eve\evil.exe`, "evil.exe"},
		{"..", "file"},
		{".hidden", "hidden"},
		{"  . spaced", "spaced"},
		{"", "file"},
		{"a\x00b\nc\u202ed.txt", "abcd.txt"},
		{"we:ird", "weird"},
		{"\xff\xfe", "file"},
		{long, strings.Repeat("é", 57) + ".jpeg"},
	} {
		if got := safeName(c.in); got != c.want {
			t.Errorf("safeName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
