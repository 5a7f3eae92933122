package gateway

import (
	"net/http"

	"github.com/mayfly-im/mayfly/schema"
)

func (s *Server) register(w http.ResponseWriter, r *http.Request) error {
	var req schema.RegisterRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	u, err := s.cfg.Accounts.Register(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, u)
	return nil
}

func (s *Server) challenge(w http.ResponseWriter, r *http.Request) error {
	var req schema.ChallengeRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	c, err := s.cfg.Accounts.Challenge(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	var req schema.LoginRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	sess, err := s.cfg.Accounts.Login(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sess)
	return nil
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request) error {
	var req schema.RefreshRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	sess, err := s.cfg.Accounts.Refresh(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sess)
	return nil
}

func (s *Server) lookup(w http.ResponseWriter, r *http.Request) error {
	u, err := s.cfg.Accounts.Lookup(r.Context(), r.PathValue("handle"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

func (s *Server) devices(w http.ResponseWriter, r *http.Request) error {
	l, err := s.cfg.Accounts.Devices(r.Context(), principal(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

func (s *Server) revokeDevice(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Accounts.RevokeDevice(r.Context(), principal(r), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
