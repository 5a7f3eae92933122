package gateway

import (
	"net/http"

	"github.com/mayfly-im/mayfly/gateway/keyrate"
	"github.com/mayfly-im/mayfly/schema"
)

// Bundle claims per user: a send claims at most two bundles (the
// recipient's and the sender's own), so twice the default send rate.
const (
	claimRate  = 10
	claimBurst = 40
)

// identityRoutes registers identity v2 (docs/api.md, "Identity"): device
// lists, identity reset, prekeys and bundle claims. Publishing a list needs
// no token (the identity key's signature is the authority) and shares the
// anonymous per-address limit; claims are limited per user so nobody drains
// a friend's one-time prekeys quickly.
func (s *Server) identityRoutes() {
	claims := keyrate.New(claimRate, claimBurst)
	s.handle("POST /v1/devicelist", s.anonLimited(s.publishList))
	s.handle("GET /v1/devicelist/{user_id}", s.anonLimited(s.deviceList))
	s.handle("POST /v1/identity/reset", s.authed(s.resetIdentity))
	s.handle("GET /v1/identity/reset", s.authed(s.pendingReset))
	s.handle("DELETE /v1/identity/reset", s.authed(s.cancelReset))
	s.handle("PUT /v1/prekeys", s.authed(s.putPrekeys))
	s.handle("GET /v1/prekeys", s.authed(s.prekeyStatus))
	s.handle("POST /v1/users/{user_id}/bundle", s.authed(s.claimLimited(claims, s.claimBundle)))
}

func (s *Server) publishList(w http.ResponseWriter, r *http.Request) error {
	var req schema.DeviceListRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	out, err := s.cfg.Accounts.PublishList(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) deviceList(w http.ResponseWriter, r *http.Request) error {
	l, err := s.cfg.Accounts.DeviceListOf(r.Context(), r.PathValue("user_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

func (s *Server) resetIdentity(w http.ResponseWriter, r *http.Request) error {
	var req schema.IdentityResetRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	p := principal(r)
	out, err := s.cfg.Accounts.ResetIdentity(r.Context(), p, req)
	if err != nil {
		return err
	}
	if out.Status == schema.ResetPending {
		writeJSON(w, http.StatusAccepted, out)
		return nil
	}
	if s.cfg.Friends != nil {
		if err := s.cfg.Friends.AnnounceKeyChange(r.Context(), p.UserID); err != nil {
			s.log.Error("announce identity reset", "user_id", p.UserID, "err", err)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) pendingReset(w http.ResponseWriter, r *http.Request) error {
	out, err := s.cfg.Accounts.PendingIdentityReset(r.Context(), principal(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) cancelReset(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Accounts.CancelIdentityReset(r.Context(), principal(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) putPrekeys(w http.ResponseWriter, r *http.Request) error {
	var req schema.PrekeysUpload
	if err := decode(w, r, &req); err != nil {
		return err
	}
	st, err := s.cfg.Accounts.PutPrekeys(r.Context(), principal(r), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) prekeyStatus(w http.ResponseWriter, r *http.Request) error {
	st, err := s.cfg.Accounts.PrekeyStatus(r.Context(), principal(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) claimBundle(w http.ResponseWriter, r *http.Request) error {
	b, err := s.cfg.Accounts.ClaimBundle(r.Context(), principal(r), r.PathValue("user_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// claimLimited wraps an authenticated h with the per-user limit l.
func (s *Server) claimLimited(l *keyrate.Limiter, h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if !l.Allow(principal(r).UserID) {
			return schema.Errorf(schema.CodeRateLimited, "too many prekey claims; slow down")
		}
		return h(w, r)
	}
}
