package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrDuplicateMember is returned by [CheckMembers] for an object that names
// a member twice.
var ErrDuplicateMember = errors.New("a member is given twice")

// CheckMembers reports an error when any JSON object in b, at any depth,
// names a member twice. Names are compared case-insensitively, as
// encoding/json matches them to struct fields: {"handle":1,"HANDLE":2}
// names one field twice. Request decoders of every transport call it
// before decoding, so "the last one wins" never decides what a request
// means. Malformed JSON is left for the decoder to report; CheckMembers then
// returns nil or ErrDuplicateMember for what it read before the fault.
func CheckMembers(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	// stack holds, per open container, the member names seen (nil for an
	// array) and whether the next string token of an object is a name.
	type frame struct {
		names  map[string]struct{}
		object bool
		isName bool
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err == io.EOF || err != nil {
			return nil
		}
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		if top != nil && top.object && top.isName {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			name := strings.ToLower(fmt.Sprint(tok))
			if _, dup := top.names[name]; dup {
				return ErrDuplicateMember
			}
			top.names[name] = struct{}{}
			top.isName = false
			continue
		}
		if top != nil && top.object {
			top.isName = true // this token is a value; a name comes next
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{names: map[string]struct{}{}, object: true, isName: true})
		case json.Delim('['):
			stack = append(stack, frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].object {
				stack[len(stack)-1].isName = true
			}
		}
	}
}
