package web_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mayfly-im/mayfly/gateway/internal/web"
	"github.com/mayfly-im/mayfly/schema"
)

func serve(h http.Handler, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestWebHandler(t *testing.T) {
	t.Parallel()
	h := web.New()
	tests := []struct {
		method, path string
		status       int
		contentType  string
		bodyHas      string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", `<script type="module" src="/assets/js/app.js">`},
		{"HEAD", "/", 200, "text/html; charset=utf-8", ""},
		{"GET", "/assets/index.html", 200, "text/html; charset=utf-8", "<title>Mayfly</title>"},
		{"GET", "/assets/js/envelope.js", 200, "text/javascript; charset=utf-8", "export async function seal"},
		{"GET", "/assets/app.css", 200, "text/css; charset=utf-8", ":root"},
		{"GET", "/assets/icon.svg", 200, "image/svg+xml", "<svg"},
		{"GET", "/assets/nope.js", 404, "text/plain; charset=utf-8", "not found"},
		{"GET", "/assets/../web.go", 404, "text/plain; charset=utf-8", ""},
		{"POST", "/", 405, "text/plain; charset=utf-8", ""},
	}
	for _, tt := range tests {
		w := serve(h, tt.method, tt.path, nil)
		if w.Code != tt.status || w.Header().Get("Content-Type") != tt.contentType || !strings.Contains(w.Body.String(), tt.bodyHas) {
			t.Errorf("%s %s = %d %q (body %d bytes), want %d %q containing %q",
				tt.method, tt.path, w.Code, w.Header().Get("Content-Type"), w.Body.Len(), tt.status, tt.contentType, tt.bodyHas)
		}
		if got := w.Header().Get("Content-Security-Policy"); got != web.CSP {
			t.Errorf("%s %s: CSP %q", tt.method, tt.path, got)
		}
		if tt.method == "HEAD" && w.Body.Len() != 0 {
			t.Errorf("HEAD %s has a body", tt.path)
		}
	}
}

func TestWebHandlerCaching(t *testing.T) {
	t.Parallel()
	h := web.New()
	first := serve(h, "GET", "/assets/js/app.js", nil)
	etag := first.Header().Get("ETag")
	if etag == "" || first.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("no ETag or no-cache: %v", first.Header())
	}
	if w := serve(h, "GET", "/assets/js/app.js", map[string]string{"If-None-Match": etag}); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("revalidation = %d with %d bytes, want 304 and no body", w.Code, w.Body.Len())
	}
	if w := serve(h, "GET", "/assets/js/app.js", map[string]string{"If-None-Match": `"stale"`}); w.Code != http.StatusOK {
		t.Errorf("stale ETag = %d, want 200", w.Code)
	}
	if other := serve(h, "GET", "/assets/js/ws.js", nil).Header().Get("ETag"); other == etag {
		t.Error("two files share an ETag")
	}
}

func TestWebCSPIsStrict(t *testing.T) {
	t.Parallel()
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'",
		"require-trusted-types-for 'script'", "base-uri 'none'"} {
		if !strings.Contains(web.CSP, want) {
			t.Errorf("CSP lacks %q: %s", want, web.CSP)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*", "http:", "https:"} {
		if strings.Contains(web.CSP, bad) {
			t.Errorf("CSP allows %q: %s", bad, web.CSP)
		}
	}
}

// TestWebErrorSentences checks that the client has a sentence for every
// error code the server can send (notify.js, SENTENCES).
func TestWebErrorSentences(t *testing.T) {
	t.Parallel()
	js := serve(web.New(), "GET", "/assets/js/notify.js", nil).Body.String()
	for _, code := range schema.Codes() {
		if !strings.Contains(js, "\n  "+string(code)+": \"") {
			t.Errorf("notify.js has no sentence for error code %s", code)
		}
	}
}
