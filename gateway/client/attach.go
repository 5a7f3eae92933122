package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/payload"
)

// Attachment is a file to send with a message.
type Attachment struct {
	// Name is the file's name as the recipient will see it (no path).
	Name string
	// Type is its media type, e.g. image/png; may be empty.
	Type string
	// Data is its content, at most payload.MaxFileSize bytes.
	Data []byte
}

// SendFiles sends text with files to handle: each file is sealed with its
// own key (docs/payload.md), uploaded for this message, and the message
// carrying the keys is then sealed and sent as Send does. The files are
// stored until the message is read or recalled, at most 60 minutes.
// Errors: Send's, and attachment_too_large, attachment_quota,
// rate_limited; bad_request for more than payload.MaxFiles files. When the
// send fails after the uploads, the uploads stay until they expire.
func (c *Client) SendFiles(ctx context.Context, handle, text string, files []Attachment) (Sent, error) {
	me := c.Identity()
	if me.UserID == "" {
		return Sent{}, fmt.Errorf("send: %w", ErrNotLoggedIn)
	}
	if len(files) > payload.MaxFiles {
		return Sent{}, fmt.Errorf("send: %w", schema.Errorf(schema.CodeBadRequest, fmt.Sprintf("a message carries at most %d files", payload.MaxFiles)))
	}
	p, err := c.recipient(ctx, handle)
	if err != nil {
		return Sent{}, fmt.Errorf("send: %w", err)
	}
	if p.KeyChanged {
		return Sent{}, fmt.Errorf("send: %w", untrusted(p.Handle, errUntrusted))
	}
	mid := schema.NewID('m')
	retryUntil := time.Now().Add(dedupWindow)
	pl := payload.Payload{Text: text, LV: c.ownListVersion()}
	for _, f := range files {
		ref, err := c.upload(ctx, p.UserID, mid, f)
		if err != nil {
			return Sent{}, fmt.Errorf("send: file %q: %w", f.Name, err)
		}
		pl.Files = append(pl.Files, ref)
	}
	env, err := c.sealRetrying(ctx, p, mid, payload.Encode(pl), retryUntil)
	if err != nil {
		return Sent{}, fmt.Errorf("send: %w", err)
	}
	return c.sendSealed(ctx, p, mid, env, retryUntil)
}

// upload seals f and stores it for message mid to the user to.
func (c *Client) upload(ctx context.Context, to, mid string, f Attachment) (payload.File, error) {
	if len(f.Data) > payload.MaxFileSize {
		return payload.File{}, schema.Errorf(schema.CodeAttachmentTooLarge, "a file is at most 25 MiB")
	}
	sealed, ref, err := payload.SealFile(f.Data)
	if err != nil {
		return payload.File{}, err
	}
	ref.Name, ref.Type = f.Name, f.Type
	q := url.Values{"to": {to}, "mid": {mid}}
	var out schema.AttachmentUploaded
	if err := c.transfer(ctx, "upload", http.MethodPost, "/v1/attachments?"+q.Encode(), sealed, &out); err != nil {
		return payload.File{}, err
	}
	ref.ID = out.ID
	return ref, nil
}

// Download fetches file f of a message this user sent or received, checks
// it against its digest and decrypts it. Errors: unknown_attachment (read,
// recalled or expired meanwhile, or not for this user), rate_limited,
// unavailable, and payload.ErrFileDigest / ErrFileDecrypt when the bytes
// are not what the sender sealed.
func (c *Client) Download(ctx context.Context, f payload.File) ([]byte, error) {
	var sealed []byte
	if err := c.transfer(ctx, "download", http.MethodGet, "/v1/attachments/"+pathEscape(f.ID), nil, &sealed); err != nil {
		return nil, err
	}
	plain, err := payload.OpenFile(f, sealed)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	return plain, nil
}

// transferTimeout bounds one upload or download.
const transferTimeout = 5 * time.Minute

// transfer runs an attachment request with the session's token (refreshed
// once on token_expired): body is sent as application/octet-stream; a 2xx
// answer goes to *[]byte raw, or to any other out as JSON.
func (c *Client) transfer(ctx context.Context, op, method, path string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		tok, err := c.Token(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		err = c.rawRoundTrip(ctx, method, path, tok, body, out)
		if attempt == 0 && schema.HasCode(err, schema.CodeTokenExpired) {
			if rerr := c.refresh(ctx, tok); rerr != nil {
				return fmt.Errorf("%s: %w", op, rerr)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return nil
	}
}

func (c *Client) rawRoundTrip(ctx context.Context, method, path, token string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	path, query, _ := strings.Cut(path, "?")
	_, base := c.servers.current()
	u := endpoint(base, path)
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.http.Do(req)
	if err != nil {
		return unreachable(err)
	}
	defer resp.Body.Close()
	limit := int64(maxResponse)
	if raw, ok := out.(*[]byte); ok && resp.StatusCode < 300 {
		b, err := io.ReadAll(io.LimitReader(resp.Body, schema.MaxAttachmentSize+1))
		if err != nil {
			return unreachable(err)
		}
		*raw = b
		return nil
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return unreachable(err)
	}
	if resp.StatusCode >= 300 {
		return decodeError(resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode %s answer: %w", path, err)
	}
	return nil
}
