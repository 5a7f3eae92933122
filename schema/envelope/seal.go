package envelope

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Domain-separation labels; see docs/envelope.md.
const (
	wrapInfo     = "mayfly envelope v1 wrap"
	aadDomain    = "mayfly envelope v1 aad"
	signedDomain = "mayfly envelope v1 sig"
)

// Seal encrypts plaintext from h.From to h.To and returns the encoded
// envelope. The payload is encrypted once under a fresh content key; the
// content key is wrapped for recipient.Kex (wraps[0]) and for the sender's
// own key-exchange key (wraps[1]) so the sender's other devices can read
// their copy; the result is signed with sender.Sign. Seal does not check
// that the keys belong to h.From and h.To; the caller chooses them.
//
// Errors wrap [ErrMalformed] (h fails [Header.Validate]), [ErrTooLarge]
// (plaintext over [MaxPlaintext] bytes) or [ErrKey] (a missing, malformed or
// low-order key).
func Seal(h Header, sender Keys, recipient PublicKeys, plaintext []byte) ([]byte, error) {
	e, err := seal(h, sender, recipient, plaintext)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return e.MarshalJSON()
}

func seal(h Header, sender Keys, recipient PublicKeys, plaintext []byte) (*Envelope, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	if len(plaintext) > MaxPlaintext {
		return nil, fmt.Errorf("plaintext %d bytes, limit %d: %w", len(plaintext), MaxPlaintext, ErrTooLarge)
	}
	if err := sender.check("sender"); err != nil {
		return nil, err
	}
	recipientKex, err := kexPublic(recipient.Kex)
	if err != nil {
		return nil, fmt.Errorf("recipient %w", err)
	}
	e := &Envelope{from: h.From, to: h.To, msgID: h.MsgID, sentAt: h.SentAt.UnixMilli()}

	contentKey := make([]byte, contentKeySize)
	rand.Read(contentKey)
	for i, to := range []*ecdh.PublicKey{recipientKex, sender.Kex.PublicKey()} {
		if e.wraps[i], err = wrapKey(contentKey, to); err != nil {
			return nil, err
		}
	}
	rand.Read(e.nonce[:])
	e.ciphertext = newGCM(contentKey).Seal(nil, e.nonce[:], plaintext, e.aad())
	copy(e.sig[:], ed25519.Sign(sender.Sign, e.signedBytes()))
	return e, nil
}

// wrapKey encrypts contentKey for the X25519 public key to.
func wrapKey(contentKey []byte, to *ecdh.PublicKey) (wrap, error) {
	var w wrap
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return w, fmt.Errorf("generate ephemeral key: %w", err)
	}
	copy(w.ephemeral[:], eph.PublicKey().Bytes())
	toRaw := to.Bytes()
	copy(w.keyID[:], keyID(toRaw))
	shared, err := eph.ECDH(to)
	if err != nil {
		return w, fmt.Errorf("wrap: %v: %w", err, ErrKey)
	}
	kek, err := wrappingKey(shared, w.ephemeral[:], toRaw)
	if err != nil {
		return w, err
	}
	rand.Read(w.nonce[:])
	newGCM(kek).Seal(w.key[:0], w.nonce[:], contentKey, nil)
	return w, nil
}

// wrappingKey derives the key-encryption key of one wrap:
// HKDF-SHA256(ikm = shared, salt = ephemeral || recipient, info = wrapInfo).
func wrappingKey(shared, ephemeral, recipient []byte) ([]byte, error) {
	salt := make([]byte, 0, 2*KexKeySize)
	salt = append(append(salt, ephemeral...), recipient...)
	kek, err := hkdf.Key(sha256.New, shared, salt, wrapInfo, contentKeySize)
	if err != nil {
		return nil, fmt.Errorf("derive wrapping key: %w", err)
	}
	return kek, nil
}

// newGCM returns AES-256-GCM with a 12-byte nonce and 16-byte tag. key is
// always 32 bytes here, so construction cannot fail.
func newGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("envelope: " + err.Error())
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("envelope: " + err.Error())
	}
	return aead
}

// Open parses b, verifies its signature with senderSign, then unwraps and
// decrypts the payload with reader's key-exchange key. reader may be the
// recipient or the sender (any of the sender's devices). The caller must
// pass the known signing key of the envelope's From user; to learn From
// first, use [Parse] and then [Envelope.Open].
//
// Errors wrap those of [Parse], [ErrKey] (a malformed senderSign or reader
// key), [ErrSignature] (forged or altered envelope, or the wrong sender
// key), [ErrNoWrap] (reader is neither party) or [ErrDecrypt].
func Open(b []byte, reader Keys, senderSign ed25519.PublicKey) (Header, []byte, error) {
	e, err := Parse(b)
	if err != nil {
		return Header{}, nil, err
	}
	return e.Open(reader, senderSign)
}

// Verify checks e's signature against the sender's Ed25519 public key.
// The server may call it to refuse envelopes not signed by the
// authenticated sender's registered key. Errors wrap [ErrKey] (senderSign
// is not [SignKeySize] bytes) or [ErrSignature].
func (e *Envelope) Verify(senderSign ed25519.PublicKey) error {
	if len(senderSign) != SignKeySize {
		return fmt.Errorf("verify: sender signing key %d bytes, want %d: %w", len(senderSign), SignKeySize, ErrKey)
	}
	if !ed25519.Verify(senderSign, e.signedBytes(), e.sig[:]) {
		return fmt.Errorf("verify: %w", ErrSignature)
	}
	return nil
}

// Open verifies e with senderSign, then unwraps the content key with
// reader's key-exchange key and decrypts the payload. It returns the
// header and the plaintext, which the caller owns. Errors are those of
// [Open] other than the parse errors.
func (e *Envelope) Open(reader Keys, senderSign ed25519.PublicKey) (Header, []byte, error) {
	if err := checkKexPrivate(reader.Kex, "reader"); err != nil {
		return Header{}, nil, fmt.Errorf("open: %w", err)
	}
	if err := e.Verify(senderSign); err != nil {
		return Header{}, nil, fmt.Errorf("open: %w", err)
	}
	contentKey, err := e.unwrap(reader.Kex)
	if err != nil {
		return Header{}, nil, fmt.Errorf("open: %w", err)
	}
	plaintext, err := newGCM(contentKey).Open(nil, e.nonce[:], e.ciphertext, e.aad())
	if err != nil {
		return Header{}, nil, fmt.Errorf("open: payload: %w", ErrDecrypt)
	}
	return e.Header(), plaintext, nil
}

// unwrap returns the content key from the first wrap addressed to priv's
// public key that decrypts. Both wraps carry the same id when a user sends
// to themself.
func (e *Envelope) unwrap(priv *ecdh.PrivateKey) ([]byte, error) {
	pub := priv.PublicKey().Bytes()
	kid := keyID(pub)
	found := false
	for i := range e.wraps {
		w := &e.wraps[i]
		if !bytes.Equal(w.keyID[:], kid) {
			continue
		}
		found = true
		if key, err := w.open(priv, pub); err == nil {
			return key, nil
		}
	}
	if !found {
		return nil, ErrNoWrap
	}
	return nil, fmt.Errorf("content key: %w", ErrDecrypt)
}

func (w *wrap) open(priv *ecdh.PrivateKey, pub []byte) ([]byte, error) {
	eph, err := ecdh.X25519().NewPublicKey(w.ephemeral[:])
	if err != nil {
		return nil, err
	}
	shared, err := priv.ECDH(eph) // fails for a low-order ephemeral key
	if err != nil {
		return nil, err
	}
	kek, err := wrappingKey(shared, w.ephemeral[:], pub)
	if err != nil {
		return nil, err
	}
	return newGCM(kek).Open(nil, w.nonce[:], w.key[:], nil)
}

// appendLP appends x prefixed by its length as a 4-byte big-endian integer.
func appendLP(b, x []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
	return append(b, x...)
}

// appendHeader appends the length-prefixed encoding of the domain label,
// version and header fields shared by the AAD and the signed bytes.
func (e *Envelope) appendHeader(b []byte, domain string) []byte {
	b = appendLP(b, []byte(domain))
	b = binary.BigEndian.AppendUint32(b, Version)
	b = appendLP(b, []byte(e.from))
	b = appendLP(b, []byte(e.to))
	b = appendLP(b, []byte(e.msgID))
	return binary.BigEndian.AppendUint64(b, uint64(e.sentAt))
}

// aad returns the associated data of the payload AEAD.
func (e *Envelope) aad() []byte {
	return e.appendHeader(nil, aadDomain)
}

// signedBytes returns the exact bytes the sender signs.
func (e *Envelope) signedBytes() []byte {
	b := make([]byte, 0, 256+len(e.ciphertext))
	b = e.appendHeader(b, signedDomain)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.wraps)))
	for i := range e.wraps {
		w := &e.wraps[i]
		b = appendLP(b, w.keyID[:])
		b = appendLP(b, w.ephemeral[:])
		b = appendLP(b, w.nonce[:])
		b = appendLP(b, w.key[:])
	}
	b = appendLP(b, e.nonce[:])
	return appendLP(b, e.ciphertext)
}
