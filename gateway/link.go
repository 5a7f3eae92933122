package gateway

import (
	"net/http"

	"github.com/mayfly-im/mayfly/schema"
)

// linkRoutes registers device linking (docs/api.md, "Device linking").
// Creating a request and polling for its bundle need no access token (the
// new device has none yet) and share the anonymous per-IP limit; the poll
// is authenticated by the link secret instead. Reading and approving a
// request need an access token of the approving user.
func (s *Server) linkRoutes() {
	s.handle("POST /v1/link", s.anonLimited(s.linkCreate))
	s.handle("GET /v1/link/{code}", s.authed(s.linkInfo))
	s.handle("POST /v1/link/{code}/approve", s.authed(s.linkApprove))
	s.handle("GET /v1/link/{code}/bundle", s.anonLimited(s.linkBundle))
}

func (s *Server) linkCreate(w http.ResponseWriter, r *http.Request) error {
	var req schema.LinkRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	l, err := s.cfg.Accounts.CreateLink(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, l)
	return nil
}

func (s *Server) linkInfo(w http.ResponseWriter, r *http.Request) error {
	l, err := s.cfg.Accounts.LinkInfo(r.Context(), principal(r), r.PathValue("code"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

func (s *Server) linkApprove(w http.ResponseWriter, r *http.Request) error {
	var req schema.LinkApproveRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	return noContent(w, s.cfg.Accounts.ApproveLink(r.Context(), principal(r), r.PathValue("code"), req))
}

// linkBundle answers the new device's poll; the link secret is its bearer
// token.
func (s *Server) linkBundle(w http.ResponseWriter, r *http.Request) error {
	st, err := s.cfg.Accounts.LinkBundle(r.Context(), r.PathValue("code"), bearer(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}
