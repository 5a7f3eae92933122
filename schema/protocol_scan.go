package schema

import (
	"encoding/json"
	"errors"
	"fmt"
)

// A hand-written reader for the top level of a client frame. It accepts
// exactly the syntax encoding/json accepts (RFC 8259; bytes of invalid UTF-8
// inside strings are accepted, as encoding/json does; at most
// maxNestingDepth nested arrays and objects in one member value) and
// reports the same problems, in the same order, as reading the frame with a
// json.Decoder token by token did: a frame is read once, without
// allocating, instead of three times. protocol_ref_test.go keeps the
// json.Decoder reader and compares the two.

// maxNestingDepth is encoding/json's limit of nested arrays and objects in
// one value.
const maxNestingDepth = 10000

// member is one member of a frame object: its name, unescaped, and its raw
// value without surrounding whitespace. raw aliases the frame.
type member struct {
	name string
	raw  []byte
	// compact is true when raw has no whitespace outside strings.
	compact bool
}

// object is the members of a frame object, in input order.
type object struct {
	members [maxFields]member
	n       int
	// deepest is the deepest nesting of arrays and objects in any member
	// value. encoding/json counts the frame's own object too, so a value
	// nested maxNestingDepth deep is read but cannot be decoded.
	deepest int
}

// get returns the raw value of member name, if present.
func (o *object) get(name string) ([]byte, bool) {
	for i := range o.n {
		if o.members[i].name == name {
			return o.members[i].raw, true
		}
	}
	return nil, false
}

var (
	errNotObject = errors.New("not a JSON object")
	errMalformed = errors.New("malformed JSON")
)

// readObject reads the members of the single JSON object b into o. Null
// values, duplicate names, more than maxFields members and anything after
// the object are errors.
func readObject(b []byte, o *object) error {
	s := scanner{b: b}
	s.skipSpace()
	if s.peek() != '{' {
		return errNotObject
	}
	s.i++
	s.skipSpace()
	if s.peek() == '}' {
		s.i++
		return s.end()
	}
	for {
		s.skipSpace()
		name, ok := s.name()
		if !ok {
			return errMalformed
		}
		s.skipSpace()
		if s.peek() != ':' {
			return errMalformed
		}
		s.i++
		s.skipSpace()
		start := s.i
		s.spaced = false
		depth, ok := s.value()
		if !ok {
			return errMalformed
		}
		if err := o.add(member{name: name, raw: b[start:s.i], compact: !s.spaced}, depth); err != nil {
			return err
		}
		s.skipSpace()
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return s.end()
		default:
			return errMalformed
		}
	}
}

// add appends one member, checking it in the order the json.Decoder reader
// did: duplicate, null, too many.
func (o *object) add(m member, depth int) error {
	if _, dup := o.get(m.name); dup {
		return fmt.Errorf("duplicate member %.32q", m.name)
	}
	if string(m.raw) == "null" {
		return fmt.Errorf("member %.32q is null", m.name)
	}
	if o.n == maxFields {
		return errors.New("too many members")
	}
	o.members[o.n] = m
	o.n++
	o.deepest = max(o.deepest, depth)
	return nil
}

// scanner reads JSON from b at offset i.
type scanner struct {
	b      []byte
	i      int
	spaced bool // skipSpace skipped something
}

// peek returns the byte at i, or 0 at the end.
func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) skipSpace() {
	start := s.i
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			s.spaced = s.spaced || s.i > start
			return
		}
	}
	s.spaced = s.spaced || s.i > start
}

// end checks that nothing but whitespace follows the object.
func (s *scanner) end() error {
	s.skipSpace()
	if s.i != len(s.b) {
		return errors.New("data after the JSON object")
	}
	return nil
}

// name reads a member name and returns it unescaped.
func (s *scanner) name() (string, bool) {
	start := s.i
	if !s.str() {
		return "", false
	}
	raw := s.b[start:s.i]
	// The members of client frames, without allocating.
	switch string(raw) {
	case `"type"`:
		return "type", true
	case `"id"`:
		return "id", true
	case `"to"`:
		return "to", true
	case `"envelope"`:
		return "envelope", true
	case `"seq"`:
		return "seq", true
	case `"cursor"`:
		return "cursor", true
	}
	return decodeString(raw)
}

// decodeString returns the string raw holds, if raw is a JSON string.
// Strings of printable ASCII without escapes, all a valid frame has, are
// copied without encoding/json.
func decodeString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	for _, c := range raw[1 : len(raw)-1] {
		if c == '\\' || c >= 0x80 {
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return "", false
			}
			return s, true
		}
	}
	return string(raw[1 : len(raw)-1]), true
}

// str reads a string.
func (s *scanner) str() bool {
	if s.peek() != '"' {
		return false
	}
	for s.i++; s.i < len(s.b); s.i++ {
		for s.i < len(s.b) && plain[s.b[s.i]] {
			s.i++
		}
		if s.i == len(s.b) {
			break
		}
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if !s.escape() {
				return false
			}
		}
	}
	return false
}

// escape checks the escape sequence whose backslash is at i and leaves i
// on its last byte.
func (s *scanner) escape() bool {
	s.i++
	switch s.peek() {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return true
	case 'u':
		if s.i+4 >= len(s.b) {
			return false
		}
		for _, c := range s.b[s.i+1 : s.i+5] {
			if !isHex(c) {
				return false
			}
		}
		s.i += 4
		return true
	}
	return false
}

// plain marks the bytes a string holds as they are: all but control
// characters, the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// value reads one value and returns its deepest nesting of arrays and
// objects (0 for a scalar).
func (s *scanner) value() (deepest int, ok bool) {
	var buf [32]byte
	stack := buf[:0] // the open '{' and '['
	for {
		// A value is expected at i.
		s.skipSpace()
		switch c := s.peek(); c {
		case '{', '[':
			if len(stack) == maxNestingDepth {
				return 0, false
			}
			s.i++
			deepest = max(deepest, len(stack)+1)
			s.skipSpace()
			if c == '{' && s.peek() == '}' || c == '[' && s.peek() == ']' {
				s.i++
				break
			}
			stack = append(stack, c)
			if c == '{' && !s.key() {
				return 0, false
			}
			continue
		case '"':
			if !s.str() {
				return 0, false
			}
		case 't':
			if !s.literal("true") {
				return 0, false
			}
		case 'f':
			if !s.literal("false") {
				return 0, false
			}
		case 'n':
			if !s.literal("null") {
				return 0, false
			}
		default:
			if !s.number() {
				return 0, false
			}
		}
		// A value ended: close containers until one continues.
		var more bool
		if stack, more, ok = s.next(stack); !ok {
			return 0, false
		}
		if !more {
			return deepest, true
		}
	}
}

// next follows a value inside the containers on stack: it closes those that
// end and reports whether another value follows (more) or the outermost
// value ended.
func (s *scanner) next(stack []byte) (_ []byte, more, ok bool) {
	for len(stack) > 0 {
		s.skipSpace()
		top := stack[len(stack)-1]
		switch c := s.peek(); {
		case c == ',':
			s.i++
			if top == '{' {
				s.skipSpace()
				if !s.key() {
					return nil, false, false
				}
			}
			return stack, true, true
		case top == '{' && c == '}', top == '[' && c == ']':
			s.i++
			stack = stack[:len(stack)-1]
		default:
			return nil, false, false
		}
	}
	return stack, false, true
}

// key reads an object key and its colon.
func (s *scanner) key() bool {
	if !s.str() {
		return false
	}
	s.skipSpace()
	if s.peek() != ':' {
		return false
	}
	s.i++
	return true
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *scanner) number() bool {
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return false
	}
	if s.peek() == '.' {
		s.i++
		if !isDigit(s.peek()) {
			return false
		}
		s.digits()
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !isDigit(s.peek()) {
			return false
		}
		s.digits()
	}
	return true
}

func (s *scanner) digits() {
	for s.i < len(s.b) && isDigit(s.b[s.i]) {
		s.i++
	}
}
