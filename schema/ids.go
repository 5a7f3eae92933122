package schema

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// Handle limits.
const (
	HandleMinLen = 3
	HandleMaxLen = 32
)

// ValidHandle reports whether h is a well-formed handle: 3 to 32 ASCII
// letters, digits or underscores. Handles are unique case-insensitively.
func ValidHandle(h string) bool {
	if len(h) < HandleMinLen || len(h) > HandleMaxLen {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// idEncoding is lower-case base32 without padding: only [a-z2-7], so an id
// is always a single safe NATS subject token.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ID lengths: a one-letter kind prefix and 26 characters of 128 random bits.
const idLen = 27

// NewUserID returns a fresh, opaque, subject-safe user id ("u" + 26 chars).
func NewUserID() string { return newID('u') }

// NewDeviceID returns a fresh, opaque, subject-safe device id ("d" + 26 chars).
func NewDeviceID() string { return newID('d') }

// NewID returns a fresh opaque id with the given one-letter kind prefix.
func NewID(kind byte) string { return newID(kind) }

func newID(kind byte) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("schema: crypto/rand failed: " + err.Error())
	}
	return string(kind) + idEncoding.EncodeToString(b[:])
}

// ValidUserID reports whether s is a well-formed user id. Every user id is
// checked with it before it becomes part of a NATS subject.
func ValidUserID(s string) bool { return validID(s, 'u') }

// ValidDeviceID reports whether s is a well-formed device id.
func ValidDeviceID(s string) bool { return validID(s, 'd') }

// ValidID reports whether s is a well-formed id of the given kind, as made
// by NewID(kind): the kind letter and 26 characters of [a-z2-7].
func ValidID(kind byte, s string) bool { return validID(s, kind) }

func validID(s string, kind byte) bool {
	if len(s) != idLen || s[0] != kind {
		return false
	}
	return strings.Trim(s[1:], "abcdefghijklmnopqrstuvwxyz234567") == ""
}
