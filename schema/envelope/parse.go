package envelope

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Field names of the JSON encoding, in canonical order.
var (
	envelopeFields = []string{"v", "from", "to", "mid", "ts", "wraps", "n", "ct", "sig"}
	wrapFields     = []string{"kid", "epk", "n", "k"}
)

// Parse checks the shape of an encoded envelope without any key, as the
// server does before storing or relaying it: size, JSON syntax, the exact
// field set (no unknown or duplicate fields), version, ids, time range,
// base64url and the length of every key, nonce, wrapped key, ciphertext and
// signature. It does not verify the signature; see [Envelope.Verify].
//
// Errors wrap [ErrTooLarge] (over [MaxEncoded] bytes, or a ciphertext over
// [MaxPlaintext] plus the tag), [ErrVersion] ("v" is an integer other than
// [Version]) or [ErrMalformed] (anything else), with the offending field
// named in the message.
func Parse(b []byte) (*Envelope, error) {
	if len(b) > MaxEncoded {
		return nil, fmt.Errorf("parse: %d bytes, limit %d: %w", len(b), MaxEncoded, ErrTooLarge)
	}
	m, err := readObject(b)
	if err != nil {
		return nil, fmt.Errorf("parse: %v: %w", err, ErrMalformed)
	}
	if err := checkVersion(m); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if err := checkFields(m, envelopeFields); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	e := new(Envelope)
	if err := e.decodeHeader(m); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if err := e.decodeWraps(m["wraps"]); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if err := e.decodeBody(m); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	return e, nil
}

func checkVersion(m map[string]json.RawMessage) error {
	return checkVersionIs(m, Version)
}

func (e *Envelope) decodeHeader(m map[string]json.RawMessage) error {
	var err error
	if e.from, err = decodeString(m["from"], "from"); err != nil {
		return err
	}
	if e.to, err = decodeString(m["to"], "to"); err != nil {
		return err
	}
	if e.msgID, err = decodeString(m["mid"], "mid"); err != nil {
		return err
	}
	if err := validateIDs(e.from, e.to, e.msgID); err != nil {
		return err
	}
	if bytes.Equal(m["ts"], []byte("null")) {
		return fmt.Errorf("field \"ts\": null: %w", ErrMalformed)
	}
	if err := json.Unmarshal(m["ts"], &e.sentAt); err != nil {
		return fmt.Errorf("field \"ts\": not an integer: %w", ErrMalformed)
	}
	return validateSentAt(e.sentAt)
}

func (e *Envelope) decodeWraps(raw json.RawMessage) error {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return fmt.Errorf("field \"wraps\": not an array: %w", ErrMalformed)
	}
	if len(list) != numWraps {
		return fmt.Errorf("field \"wraps\": %d wraps, want %d: %w", len(list), numWraps, ErrMalformed)
	}
	for i, raw := range list {
		if err := e.wraps[i].decode(raw); err != nil {
			return fmt.Errorf("wraps[%d]: %w", i, err)
		}
	}
	return nil
}

func (w *wrap) decode(raw json.RawMessage) error {
	m, err := readObject(raw)
	if err != nil {
		return fmt.Errorf("%v: %w", err, ErrMalformed)
	}
	if err := checkFields(m, wrapFields); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		dst  []byte
	}{
		{"kid", w.keyID[:]},
		{"epk", w.ephemeral[:]},
		{"n", w.nonce[:]},
		{"k", w.key[:]},
	} {
		if err := decodeFixed(m[f.name], f.name, f.dst); err != nil {
			return err
		}
	}
	return nil
}

func (e *Envelope) decodeBody(m map[string]json.RawMessage) error {
	if err := decodeFixed(m["n"], "n", e.nonce[:]); err != nil {
		return err
	}
	if err := decodeFixed(m["sig"], "sig", e.sig[:]); err != nil {
		return err
	}
	ct, err := decodeBytes(m["ct"], "ct")
	if err != nil {
		return err
	}
	switch {
	case len(ct) < tagSize:
		return fmt.Errorf("field \"ct\": %d bytes, minimum %d: %w", len(ct), tagSize, ErrMalformed)
	case len(ct) > MaxPlaintext+tagSize:
		return fmt.Errorf("field \"ct\": %d bytes, limit %d: %w", len(ct), MaxPlaintext+tagSize, ErrTooLarge)
	}
	e.ciphertext = ct
	return nil
}

// readObject decodes a single JSON object into its raw members, rejecting
// duplicate member names and trailing data. Member names are compared
// exactly, after unescaping.
func readObject(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("bad JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	m := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("bad JSON: %v", err)
		}
		key, _ := tok.(string) // the decoder guarantees a string here
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("duplicate field %.32q", key)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("bad JSON: %v", err)
		}
		m[key] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, fmt.Errorf("bad JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after JSON object")
	}
	return m, nil
}

// checkFields reports a missing or unknown member of m.
func checkFields(m map[string]json.RawMessage, names []string) error {
	for _, name := range names {
		if _, ok := m[name]; !ok {
			return fmt.Errorf("missing field %q: %w", name, ErrMalformed)
		}
	}
	if len(m) != len(names) {
		for key := range m {
			if !contains(names, key) {
				return fmt.Errorf("unknown field %.32q: %w", key, ErrMalformed)
			}
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func decodeString(raw json.RawMessage, name string) (string, error) {
	var s string
	if bytes.Equal(raw, []byte("null")) {
		return "", fmt.Errorf("field %q: null: %w", name, ErrMalformed)
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("field %q: not a string: %w", name, ErrMalformed)
	}
	return s, nil
}

func decodeBytes(raw json.RawMessage, name string) ([]byte, error) {
	s, err := decodeString(raw, name)
	if err != nil {
		return nil, err
	}
	b, err := decodeB64(s)
	if err != nil {
		return nil, fmt.Errorf("field %q: %v: %w", name, err, ErrMalformed)
	}
	return b, nil
}

// decodeFixed decodes a base64url field that must be exactly len(dst) bytes.
func decodeFixed(raw json.RawMessage, name string, dst []byte) error {
	b, err := decodeBytes(raw, name)
	if err != nil {
		return err
	}
	if len(b) != len(dst) {
		return fmt.Errorf("field %q: %d bytes, want %d: %w", name, len(b), len(dst), ErrMalformed)
	}
	copy(dst, b)
	return nil
}

// decodeB64 decodes canonical base64url without padding. The standard
// decoder ignores CR and LF; re-encoding rejects them, so every byte string
// has exactly one accepted encoding.
func decodeB64(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, errors.New("bad base64url")
	}
	if base64.RawURLEncoding.EncodeToString(b) != s {
		return nil, errors.New("non-canonical base64url")
	}
	return b, nil
}

// DecodeKey decodes a base64url (no padding) key from the HTTP API and
// checks that it is wantLen bytes long: [SignKeySize] for an Ed25519 public
// key, [KexKeySize] for an X25519 public key. Errors wrap [ErrKey].
func DecodeKey(s string, wantLen int) ([]byte, error) {
	b, err := decodeB64(s)
	if err != nil {
		return nil, fmt.Errorf("decode key: %v: %w", err, ErrKey)
	}
	if len(b) != wantLen {
		return nil, fmt.Errorf("decode key: %d bytes, want %d: %w", len(b), wantLen, ErrKey)
	}
	return b, nil
}

func validateIDs(from, to, msgID string) error {
	for _, f := range []struct{ name, id string }{{"from", from}, {"to", to}, {"mid", msgID}} {
		if err := validateID(f.id); err != nil {
			return fmt.Errorf("field %q: %v: %w", f.name, err, ErrMalformed)
		}
	}
	return nil
}

// validateID checks a user id or client message id: 1 to MaxIDLen bytes of
// [A-Za-z0-9_-].
func validateID(id string) error {
	if len(id) == 0 || len(id) > MaxIDLen {
		return fmt.Errorf("length %d, want 1 to %d", len(id), MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("byte %d is not in [A-Za-z0-9_-]", i)
		}
	}
	return nil
}

func validateSentAt(ms int64) error {
	if ms < 1 || ms > MaxSentAtMillis {
		return fmt.Errorf("field \"ts\": %d out of range 1 to %d: %w", ms, int64(MaxSentAtMillis), ErrMalformed)
	}
	return nil
}
