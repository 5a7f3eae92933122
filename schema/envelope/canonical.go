package envelope

import (
	"encoding/base64"
	"strconv"
	"time"
)

// Check checks the shape of an encoded envelope as [Parse] does, with the
// same result and errors, and returns its header and canonical encoding:
// the bytes [Envelope.MarshalJSON] gives for what Parse returns. It is the
// server's check before storing or relaying an envelope.
//
// An envelope already in canonical form, as [Seal] writes it, is checked in
// one pass without decoding anything: canon is then b itself (not a copy).
// Anything else is parsed and re-encoded.
func Check(b []byte) (h Header, canon []byte, err error) {
	if h, ok := checkCanonical(b); ok {
		return h, b, nil
	}
	e, err := Parse(b)
	if err != nil {
		return Header{}, nil, err
	}
	return e.Header(), e.appendCanonical(nil), nil
}

// appendCanonical appends the canonical JSON encoding of e to dst: the
// documented field order, no whitespace, base64url without padding. Ids are
// validated ([A-Za-z0-9_-]), so no string needs escaping.
func (e *Envelope) appendCanonical(dst []byte) []byte {
	enc := base64.RawURLEncoding
	dst = append(dst, `{"v":1,"from":"`...)
	dst = append(dst, e.from...)
	dst = append(dst, `","to":"`...)
	dst = append(dst, e.to...)
	dst = append(dst, `","mid":"`...)
	dst = append(dst, e.msgID...)
	dst = append(dst, `","ts":`...)
	dst = strconv.AppendInt(dst, e.sentAt, 10)
	dst = append(dst, `,"wraps":[`...)
	for i := range e.wraps {
		w := &e.wraps[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"kid":"`...)
		dst = enc.AppendEncode(dst, w.keyID[:])
		dst = append(dst, `","epk":"`...)
		dst = enc.AppendEncode(dst, w.ephemeral[:])
		dst = append(dst, `","n":"`...)
		dst = enc.AppendEncode(dst, w.nonce[:])
		dst = append(dst, `","k":"`...)
		dst = enc.AppendEncode(dst, w.key[:])
		dst = append(dst, `"}`...)
	}
	dst = append(dst, `],"n":"`...)
	dst = enc.AppendEncode(dst, e.nonce[:])
	dst = append(dst, `","ct":"`...)
	dst = enc.AppendEncode(dst, e.ciphertext)
	dst = append(dst, `","sig":"`...)
	dst = enc.AppendEncode(dst, e.sig[:])
	return append(dst, `"}`...)
}

// checkCanonical reports whether b is a canonical envelope Parse accepts,
// and returns its header. A false result says nothing about b: Parse
// decides. canonical_test.go checks the two agree.
func checkCanonical(b []byte) (Header, bool) {
	if len(b) > MaxEncoded {
		return Header{}, false
	}
	s := canonScanner{b: b, ok: true}
	s.lit(`{"v":1,"from":"`)
	from := s.id()
	s.lit(`","to":"`)
	to := s.id()
	s.lit(`","mid":"`)
	mid := s.id()
	s.lit(`","ts":`)
	ts := s.millis()
	s.lit(`,"wraps":[`)
	s.wrap()
	s.lit(`,`)
	s.wrap()
	s.lit(`],"n":"`)
	s.bytes(NonceSize, NonceSize)
	s.lit(`","ct":"`)
	s.bytes(tagSize, MaxPlaintext+tagSize)
	s.lit(`","sig":"`)
	s.bytes(SignatureSize, SignatureSize)
	s.lit(`"}`)
	if !s.ok || s.i != len(b) {
		return Header{}, false
	}
	return Header{From: string(from), To: string(to), MsgID: string(mid), SentAt: time.UnixMilli(ts).UTC()}, true
}

// canonScanner reads the canonical encoding; ok turns false at the first
// byte that does not fit, and every later call does nothing.
type canonScanner struct {
	b  []byte
	i  int
	ok bool
}

// lit reads the literal l.
func (s *canonScanner) lit(l string) {
	if !s.ok || len(s.b)-s.i < len(l) || string(s.b[s.i:s.i+len(l)]) != l {
		s.ok = false
		return
	}
	s.i += len(l)
}

// token reads bytes of [A-Za-z0-9_-], the alphabet of ids and of
// base64url, and stops before any other byte.
func (s *canonScanner) token() []byte {
	if !s.ok {
		return nil
	}
	start := s.i
	for s.i < len(s.b) && b64Value[s.b[s.i]] != 0xff {
		s.i++
	}
	return s.b[start:s.i]
}

// id reads a user id or message id.
func (s *canonScanner) id() []byte {
	t := s.token()
	if len(t) == 0 || len(t) > MaxIDLen {
		s.ok = false
	}
	return t
}

// millis reads the sent-at time: a JSON integer in 1..MaxSentAtMillis.
func (s *canonScanner) millis() int64 {
	if !s.ok {
		return 0
	}
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' && s.i-start < 17 {
		s.i++
	}
	digits := s.b[start:s.i]
	ms, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil || len(digits) > 16 || digits[0] == '0' || ms > MaxSentAtMillis {
		s.ok = false
	}
	return ms
}

// bytes reads the base64url encoding, canonical and without padding, of
// minLen to maxLen bytes.
func (s *canonScanner) bytes(minLen, maxLen int) {
	t := s.token()
	if !s.ok {
		return
	}
	n := len(t) / 4 * 3
	var mask byte // the bits of the last character that encode nothing
	switch len(t) % 4 {
	case 1:
		s.ok = false
		return
	case 2:
		n, mask = n+1, 0x0f
	case 3:
		n, mask = n+2, 0x03
	}
	if n < minLen || n > maxLen || mask != 0 && b64Value[t[len(t)-1]]&mask != 0 {
		s.ok = false
	}
}

// wrap reads one wrap object.
func (s *canonScanner) wrap() {
	s.lit(`{"kid":"`)
	s.bytes(KeyIDSize, KeyIDSize)
	s.lit(`","epk":"`)
	s.bytes(KexKeySize, KexKeySize)
	s.lit(`","n":"`)
	s.bytes(NonceSize, NonceSize)
	s.lit(`","k":"`)
	s.bytes(WrappedKeySize, WrappedKeySize)
	s.lit(`"}`)
}

// b64Value maps each byte to its base64url value, 0xff outside the
// alphabet.
var b64Value = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// encodedLen is the length of e's canonical encoding.
func (e *Envelope) encodedLen() int {
	const fixed = len(`{"v":1,"from":"","to":"","mid":"","ts":,"wraps":[,],"n":"","ct":"","sig":""}`) +
		numWraps*len(`{"kid":"","epk":"","n":"","k":""}`)
	enc := base64.RawURLEncoding
	n := fixed + len(e.from) + len(e.to) + len(e.msgID) + 16 +
		enc.EncodedLen(NonceSize) + enc.EncodedLen(len(e.ciphertext)) + enc.EncodedLen(SignatureSize)
	return n + numWraps*(enc.EncodedLen(KeyIDSize)+enc.EncodedLen(KexKeySize)+enc.EncodedLen(NonceSize)+enc.EncodedLen(WrappedKeySize))
}
