package gateway

import (
	"net/http"
	"strconv"
	"time"

	"github.com/mayfly-im/mayfly/gateway/keyrate"
	"github.com/mayfly-im/mayfly/schema"
)

// Attachment requests per user (docs/api.md, "Attachments"): a message
// carries at most schema.MaxAttachments files, so uploads allow a burst of
// a few messages' worth; downloads twice that (each party may fetch on
// several devices).
const (
	uploadRate    = 1
	uploadBurst   = 8
	downloadRate  = 2
	downloadBurst = 16
	// transferTimeout replaces the server's 30-second read and write
	// deadlines for one upload or download: 25 MiB at 1 Mbit/s takes 210 s.
	transferTimeout = 5 * time.Minute
)

// extendDeadlines gives one attachment request transferTimeout to move its
// body; a server without deadlines ignores it.
func extendDeadlines(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	until := time.Now().Add(transferTimeout)
	rc.SetReadDeadline(until)
	rc.SetWriteDeadline(until)
}

// attachRoutes registers the attachment API: upload and download of
// client-encrypted files bound to one message (fabric/attach). Without
// Config.Attach both answer unavailable.
func (s *Server) attachRoutes() {
	up, down := keyrate.New(uploadRate, uploadBurst), keyrate.New(downloadRate, downloadBurst)
	s.handle("POST /v1/attachments", s.authed(s.userLimited(up, s.uploadAttachment)))
	s.handle("GET /v1/attachments/{id}", s.authed(s.userLimited(down, s.downloadAttachment)))
}

// userLimited wraps h with the per-user limit l.
func (s *Server) userLimited(l *keyrate.Limiter, h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if !l.Allow(principal(r).UserID) {
			return schema.Errorf(schema.CodeRateLimited, "too many attachment requests; slow down")
		}
		return h(w, r)
	}
}

var errNoAttach = schema.Errorf(schema.CodeUnavailable, "attachments are not enabled on this server")

// uploadAttachment stores the request body, the ciphertext of one file,
// for the message ?mid= to ?to=. The body's length must be given
// (Content-Length) and at most schema.MaxAttachmentSize.
func (s *Server) uploadAttachment(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Attach == nil {
		return errNoAttach
	}
	switch size := r.ContentLength; {
	case size > schema.MaxAttachmentSize:
		return schema.Errorf(schema.CodeAttachmentTooLarge, "an attachment is at most "+strconv.Itoa(schema.MaxAttachmentSize)+" bytes")
	case size <= 0:
		return schema.Errorf(schema.CodeBadRequest, "the upload needs a Content-Length and at least one byte")
	}
	extendDeadlines(w)
	q := r.URL.Query()
	body := http.MaxBytesReader(w, r.Body, r.ContentLength)
	id, err := s.cfg.Attach.Put(r.Context(), principal(r).UserID, q.Get("to"), q.Get("mid"), r.ContentLength, body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, schema.AttachmentUploaded{ID: id.String(), Size: r.ContentLength})
	return nil
}

// downloadAttachment streams attachment {id} to its sender or recipient.
// A failure after the first byte (burned meanwhile, storage gone) ends the
// response short of its Content-Length, which clients see as an error.
func (s *Server) downloadAttachment(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Attach == nil {
		return errNoAttach
	}
	f, err := s.cfg.Attach.Open(r.Context(), principal(r).UserID, r.PathValue("id"))
	if err != nil {
		return err
	}
	extendDeadlines(w)
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(f.Size, 10))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if _, err := f.WriteTo(r.Context(), w); err != nil {
		s.log.Warn("attachment download cut short", "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}
