// Package payload is the plaintext format inside a message envelope
// (docs/payload.md): the text, and the attached files with the key and
// digest that open them, and the sealing of a file for upload (SealFile,
// OpenFile). Every Mayfly client writes and reads this format, so the web
// client, the Go client library and the CLI read each other's messages.
//
// Decode is lenient by the format's rules (a payload that is not the
// expected object reads as text) but never returns a file reference that
// fails its checks: such references are dropped and counted in
// Payload.Dropped. The package has no state; everything is safe for
// concurrent use.
package payload

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits of a file reference (docs/payload.md).
const (
	// MaxFiles is the most files one message carries.
	MaxFiles = 4
	// MaxFileSize is the largest file, in bytes of plaintext (25 MiB).
	MaxFileSize = 25 << 20
	// MaxNameLen is the longest file name, in bytes.
	MaxNameLen = 255
	// MaxTypeLen is the longest media type, in bytes.
	MaxTypeLen = 127
	// MaxIDLen is the longest attachment id, in bytes.
	MaxIDLen = 200
	// MaxLV is the largest device list version "lv" a reader accepts
	// (2^53-1, the largest integer a JavaScript reader holds exactly).
	MaxLV = 1<<53 - 1
)

// File references one attached file: where it is stored and what opens it.
type File struct {
	// ID is the attachment id the server gave the upload.
	ID string
	// Name is the file's name as the sender gave it; readers sanitize it
	// before using it as a path.
	Name string
	// Type is the media type (image/png, audio/webm, ...); may be empty.
	Type string
	// Size is the plaintext length in bytes.
	Size int64
	// Key is the 32-byte AES-256-GCM key the file was sealed with.
	Key []byte
	// SHA256 is the SHA-256 digest of the stored (sealed) bytes.
	SHA256 []byte
}

// Payload is one message's plaintext.
type Payload struct {
	// Text is the message text; may be empty.
	Text string
	// Files are the attached files, at most MaxFiles.
	Files []File
	// LV is the sender's own device list version when it sealed
	// (docs/payload.md, "lv"); 0 when absent or not an integer from 1 to
	// MaxLV.
	LV int64
	// Dropped counts file references Decode refused as malformed.
	Dropped int
}

// wire is the JSON form.
type wire struct {
	Text  *string           `json:"text"`
	Files []json.RawMessage `json:"files,omitempty"`
	LV    json.RawMessage   `json:"lv,omitempty"`
}

type wireFile struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Type   string `json:"type"`
	Size   int64  `json:"size"`
	Key    string `json:"key"`
	SHA256 string `json:"sha256"`
}

var b64 = base64.RawURLEncoding

// Encode returns p's JSON form: {"text":...} and, when p has files,
// "files":[...], and when p.LV is positive, "lv". Dropped is not encoded.
func Encode(p Payload) []byte {
	w := struct {
		Text  string     `json:"text"`
		Files []wireFile `json:"files,omitempty"`
		LV    int64      `json:"lv,omitempty"`
	}{Text: p.Text, LV: max(p.LV, 0)}
	for _, f := range p.Files {
		w.Files = append(w.Files, wireFile{ID: f.ID, Name: f.Name, Type: f.Type, Size: f.Size,
			Key: b64.EncodeToString(f.Key), SHA256: b64.EncodeToString(f.SHA256)})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(w)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// Decode reads a payload. A payload that is not a JSON object with a
// string "text" reads as its own bytes as UTF-8 text (invalid sequences
// replaced) with no files. A bad "lv" reads as 0, the rest stands. File references beyond MaxFiles, or failing
// their checks (docs/payload.md), are dropped and counted.
func Decode(b []byte) Payload {
	var w wire
	if json.Unmarshal(b, &w) != nil || w.Text == nil {
		return Payload{Text: strings.ToValidUTF8(string(b), string(utf8.RuneError))}
	}
	p := Payload{Text: *w.Text}
	if n, err := strconv.ParseInt(string(w.LV), 10, 64); err == nil && n > 0 && n <= MaxLV {
		p.LV = n
	}
	for i, raw := range w.Files {
		f, ok := decodeFile(raw)
		if !ok || i >= MaxFiles {
			p.Dropped++
			continue
		}
		p.Files = append(p.Files, f)
	}
	return p
}

// decodeFile checks one file reference.
func decodeFile(raw json.RawMessage) (File, bool) {
	var w wireFile
	if json.Unmarshal(raw, &w) != nil {
		return File{}, false
	}
	key, err1 := b64.Strict().DecodeString(w.Key)
	sum, err2 := b64.Strict().DecodeString(w.SHA256)
	ok := err1 == nil && err2 == nil && len(key) == 32 && len(sum) == 32 &&
		w.ID != "" && len(w.ID) <= MaxIDLen && isPrintableASCII(w.ID) &&
		len(w.Name) <= MaxNameLen && utf8.ValidString(w.Name) &&
		len(w.Type) <= MaxTypeLen && isPrintableASCII(w.Type) &&
		w.Size >= 0 && w.Size <= MaxFileSize
	if !ok {
		return File{}, false
	}
	return File{ID: w.ID, Name: w.Name, Type: w.Type, Size: w.Size, Key: key, SHA256: sum}, true
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
