package payload

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
)

// fileAAD is the associated data of every sealed file (docs/payload.md).
var fileAAD = []byte("mayfly file v1")

// SealedOverhead is what sealing adds to a file: the AES-GCM tag.
const SealedOverhead = 16

// Errors of OpenFile and SealFile.
var (
	// ErrFileTooLarge: the file is over MaxFileSize.
	ErrFileTooLarge = errors.New("payload: file too large")
	// ErrFileDigest: the downloaded bytes are not the ones the sender
	// sealed (the reference's SHA-256 differs).
	ErrFileDigest = errors.New("payload: file digest mismatch")
	// ErrFileDecrypt: the digest matched but the key does not open it
	// (only a faulty or malicious sender causes this).
	ErrFileDecrypt = errors.New("payload: file does not decrypt")
)

// SealFile encrypts a file for upload with a fresh random key: the stored
// bytes are AES-256-GCM(key, nonce = 12 zero bytes, aad = "mayfly file v1",
// plain), ciphertext then 16-byte tag. A zero nonce is safe because each
// key seals exactly one file. It returns the sealed bytes and the File
// reference's Key, SHA256 and Size; the caller adds ID, Name and Type.
func SealFile(plain []byte) ([]byte, File, error) {
	key := make([]byte, 32)
	rand.Read(key)
	return SealFileWithKey(key, plain)
}

// SealFileWithKey is SealFile with a given key, for test vectors. Never
// use a key twice.
func SealFileWithKey(key, plain []byte) ([]byte, File, error) {
	if len(plain) > MaxFileSize {
		return nil, File{}, ErrFileTooLarge
	}
	gcm, err := fileCipher(key)
	if err != nil {
		return nil, File{}, err
	}
	sealed := gcm.Seal(make([]byte, 0, len(plain)+SealedOverhead), make([]byte, gcm.NonceSize()), plain, fileAAD)
	sum := sha256.Sum256(sealed)
	return sealed, File{Size: int64(len(plain)), Key: key, SHA256: sum[:]}, nil
}

// OpenFile checks sealed against f's digest and decrypts it with f's key.
// Errors: ErrFileDigest, ErrFileDecrypt, ErrFileTooLarge.
func OpenFile(f File, sealed []byte) ([]byte, error) {
	if len(sealed) > MaxFileSize+SealedOverhead {
		return nil, ErrFileTooLarge
	}
	sum := sha256.Sum256(sealed)
	if len(f.SHA256) != len(sum) || subtle.ConstantTimeCompare(sum[:], f.SHA256) != 1 {
		return nil, ErrFileDigest
	}
	gcm, err := fileCipher(f.Key)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, make([]byte, gcm.NonceSize()), sealed, fileAAD)
	if err != nil {
		return nil, ErrFileDecrypt
	}
	return plain, nil
}

func fileCipher(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, ErrFileDecrypt
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, ErrFileDecrypt
	}
	return cipher.NewGCM(block)
}
