// Package web serves Mayfly's browser client: static HTML, CSS and
// JavaScript modules embedded in the binary, served at "/" (the app) and
// under "/assets/" (everything it loads), with a strict Content Security
// Policy. The client does all cryptography in the page with WebCrypto and
// talks to the same HTTP API and WebSocket protocol as every other client;
// docs/web.md describes it.
//
// A [Handler] is immutable after [New] and safe for concurrent use.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// AssetPrefix is the URL path under which the client's files are served.
const AssetPrefix = "/assets/"

// CSP is the Content-Security-Policy of every response: scripts, styles,
// images and connections only from the page's own origin (which includes
// its ws:// or wss:// WebSocket), no inline script or style, no plugins,
// frames, forms to elsewhere or base-URI tricks, and Trusted Types enforced
// so no string can reach an HTML or script sink. Pictures and voice notes
// decrypted in the page are shown from blob: URLs (img-src, media-src),
// which the page may also read back (connect-src blob:, local data only).
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src blob:; " +
	"connect-src 'self' blob:; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " +
	"require-trusted-types-for 'script'; trusted-types 'none'"

// contentTypes maps the extensions of the embedded files to their types;
// fixed here rather than taken from the host's mime database.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".json": "application/json",
}

type file struct {
	body        []byte
	contentType string
	etag        string
}

// Handler serves the embedded client. GET (and HEAD) of "/" answers the
// app's index.html; AssetPrefix+name answers the embedded file name; any
// other path answers 404. Responses carry an ETag and "no-cache", so a new
// binary's files are picked up on the next load without stale mixes.
type Handler struct {
	files map[string]file // URL path -> file
}

// New returns a Handler for the files embedded in the binary. It panics if
// the embedded tree is unreadable, which only a broken build can cause.
func New() *Handler {
	h := &Handler{files: map[string]file{}}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := contentTypes[path.Ext(p)]
		if ct == "" {
			ct = "application/octet-stream"
		}
		f := file{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
		h.files[AssetPrefix+strings.TrimPrefix(p, "static/")] = f
		if p == "static/index.html" {
			h.files["/"] = f
		}
		return nil
	})
	if err != nil {
		panic("web: read embedded files: " + err.Error())
	}
	return h
}

// ServeHTTP implements [http.Handler].
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	setSecurityHeaders(hdr)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	f, ok := h.files[r.URL.Path]
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", f.etag)
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Type", f.contentType)
	if r.Method == http.MethodHead {
		return
	}
	w.Write(f.body)
}

// setSecurityHeaders sets the headers every response of the client carries.
func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(self), geolocation=(), payment=(), usb=()") // the microphone records voice notes
}
