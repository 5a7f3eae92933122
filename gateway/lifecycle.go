package gateway

import (
	"net/http"

	"github.com/mayfly-im/mayfly/schema"
)

var errNotYourHandle = schema.Errorf(schema.CodeBadRequest, `"handle" must be your own handle, to confirm the deletion`)

// deleteAccount deletes the caller's account once the body names its
// handle: keys, devices, friendships, requests and messages (fabric/lifecycle).
func (s *Server) deleteAccount(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Lifecycle == nil {
		return schema.Errorf(schema.CodeUnavailable, "account deletion is not available on this server")
	}
	var req schema.DeleteAccountRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	p := principal(r)
	u, err := s.cfg.Accounts.Lookup(r.Context(), req.Handle)
	if schema.HasCode(err, schema.CodeInternal) || schema.HasCode(err, schema.CodeUnavailable) {
		return err
	}
	if err != nil || u.UserID != p.UserID {
		return errNotYourHandle
	}
	if err := s.cfg.Lifecycle.DeleteAccount(r.Context(), p.UserID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
