package schema

import (
	"errors"
	"testing"
)

func TestCheckMembers(t *testing.T) {
	tests := []struct {
		in  string
		dup bool
	}{
		{`{"handle":"a","sign_key":"b"}`, false},
		{`{"handle":"a","handle":"b"}`, true},
		{`{"handle":"a","HANDLE":"b"}`, true},
		{`{"a":{"x":1,"x":2}}`, true},
		{`{"a":[{"x":1},{"x":2}]}`, false},
		{`{"a":[{"x":1,"x":2}]}`, true},
		{`{"a":{"x":1},"b":{"x":1}}`, false},
		{`{"a":{"b":{}},"a":1}`, true},
		{`[{"x":1},{"x":1}]`, false},
		{`{"a":"x","b":"a"}`, false},
		{`{"a":1,`, false}, // malformed: the decoder reports it
		{``, false},
	}
	for _, tt := range tests {
		err := CheckMembers([]byte(tt.in))
		if got := errors.Is(err, ErrDuplicateMember); got != tt.dup {
			t.Errorf("CheckMembers(%s) = %v, want duplicate %v", tt.in, err, tt.dup)
		}
	}
}
