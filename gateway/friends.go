package gateway

import (
	"net/http"

	"github.com/mayfly-im/mayfly/schema"
)

// friendRoutes registers the friend graph API (docs/api.md, "Friends") when
// a friends service is configured. Every route needs an access token.
func (s *Server) friendRoutes() {
	if s.cfg.Friends == nil {
		return
	}
	s.handle("POST /v1/friends/requests", s.authed(s.friendRequest))
	s.handle("GET /v1/friends/requests", s.authed(s.friendRequests))
	s.handle("POST /v1/friends/requests/{handle}/accept", s.authed(s.friendAccept))
	s.handle("POST /v1/friends/requests/{handle}/decline", s.authed(s.friendDecline))
	s.handle("DELETE /v1/friends/requests/{handle}", s.authed(s.friendCancel))
	s.handle("GET /v1/friends", s.authed(s.friendList))
	s.handle("DELETE /v1/friends/{handle}", s.authed(s.friendRemove))
	s.handle("POST /v1/blocks", s.authed(s.block))
	s.handle("GET /v1/blocks", s.authed(s.blockList))
	s.handle("DELETE /v1/blocks/{handle}", s.authed(s.unblock))
}

// friendRequest answers 201 {"request":...} for a new request, or 200
// {"friend":...} when the other user had requested the caller already.
func (s *Server) friendRequest(w http.ResponseWriter, r *http.Request) error {
	var req schema.HandleRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	res, err := s.cfg.Friends.Request(r.Context(), principal(r).UserID, req.Handle)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if res.Friend != nil {
		status = http.StatusOK
	}
	writeJSON(w, status, res)
	return nil
}

func (s *Server) friendRequests(w http.ResponseWriter, r *http.Request) error {
	l, err := s.cfg.Friends.Requests(r.Context(), principal(r).UserID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

func (s *Server) friendAccept(w http.ResponseWriter, r *http.Request) error {
	f, err := s.cfg.Friends.Accept(r.Context(), principal(r).UserID, r.PathValue("handle"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, schema.FriendRequestResult{Friend: &f})
	return nil
}

func (s *Server) friendDecline(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, s.cfg.Friends.Decline(r.Context(), principal(r).UserID, r.PathValue("handle")))
}

func (s *Server) friendCancel(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, s.cfg.Friends.Cancel(r.Context(), principal(r).UserID, r.PathValue("handle")))
}

func (s *Server) friendList(w http.ResponseWriter, r *http.Request) error {
	l, err := s.cfg.Friends.List(r.Context(), principal(r).UserID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

func (s *Server) friendRemove(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, s.cfg.Friends.Remove(r.Context(), principal(r).UserID, r.PathValue("handle")))
}

func (s *Server) block(w http.ResponseWriter, r *http.Request) error {
	var req schema.HandleRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	return noContent(w, s.cfg.Friends.Block(r.Context(), principal(r).UserID, req.Handle))
}

func (s *Server) blockList(w http.ResponseWriter, r *http.Request) error {
	l, err := s.cfg.Friends.Blocks(r.Context(), principal(r).UserID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

func (s *Server) unblock(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, s.cfg.Friends.Unblock(r.Context(), principal(r).UserID, r.PathValue("handle")))
}

// noContent answers 204 when err is nil, else returns err for handle to map.
func noContent(w http.ResponseWriter, err error) error {
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
