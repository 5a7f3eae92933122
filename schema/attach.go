package schema

import "strings"

// Attachment limits (docs/api.md, "Attachments").
const (
	// MaxFileSize is the largest file a client may attach, in bytes of
	// plaintext: 25 MiB.
	MaxFileSize = 25 << 20
	// MaxAttachmentSize is the largest attachment the server stores, in
	// bytes of ciphertext: a MaxFileSize file sealed as docs/payload.md
	// says (the 16-byte AES-GCM tag added).
	MaxAttachmentSize = MaxFileSize + 16
	// MaxAttachments is the most attachments one message may carry.
	MaxAttachments = 4
	// MaxMsgIDLen is the longest client message id (an envelope's mid).
	MaxMsgIDLen = 64
)

// AttachmentUploaded answers POST /v1/attachments: ID names the stored
// attachment in GET /v1/attachments/{id} and in the payload (docs/payload.md);
// Size is the number of bytes stored.
type AttachmentUploaded struct {
	ID   string `json:"id"`
	Size int64  `json:"size"`
}

// ValidMsgID reports whether s is a well-formed client message id: 1 to 64
// ASCII letters, digits, '-' or '_' (docs/envelope.md), so a safe NATS
// subject token.
func ValidMsgID(s string) bool {
	if len(s) < 1 || len(s) > MaxMsgIDLen {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == ""
}
