package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/mayfly-im/mayfly/gateway/client"
	"github.com/mayfly-im/mayfly/schema"
)

// What listen prints besides messages: events with the handles of the users
// they name, and the state of its connection.

// eventLine is an event as listen --json prints it. Handles maps each user
// id the event names to the handle, where known; Peer is the handle of the
// one user the event is about (peer_id, peer or presence), if any.
type eventLine struct {
	Type    string            `json:"type"` // "event"
	Event   *schema.Event     `json:"event"`
	Peer    string            `json:"peer,omitempty"`
	Handles map[string]string `json:"handles,omitempty"`
}

// newEventLine names e's users by handle from the client's known peers.
func newEventLine(cl *client.Client, e schema.Event) eventLine {
	l := eventLine{Type: "event", Event: &e}
	add := func(id string) string {
		p, ok := cl.Peer(id)
		if !ok || id == "" {
			return ""
		}
		if l.Handles == nil {
			l.Handles = map[string]string{}
		}
		l.Handles[id] = p.Handle
		return p.Handle
	}
	switch {
	case e.Peer != nil:
		l.Peer = e.Peer.Handle
		if e.Peer.UserID != "" {
			l.Handles = map[string]string{e.Peer.UserID: e.Peer.Handle}
		}
	case e.Presence != nil:
		l.Peer = add(e.Presence.UserID)
	case e.PeerID != "":
		l.Peer = add(e.PeerID)
	}
	for _, p := range e.Presences {
		add(p.UserID)
	}
	return l
}

// connectionLine is listen --json's line for a lost or regained connection.
type connectionLine struct {
	Type    string `json:"type"`  // "connection"
	State   string `json:"state"` // "lost" or "back"
	Error   string `json:"error,omitempty"`
	RetryIn string `json:"retry_in,omitempty"` // a Go duration
}

// connState prints when listen's connection is lost and when it is back.
type connState struct {
	c    *cli
	json bool
	lost atomic.Bool
}

// disconnected prints that the connection was lost and when the next
// attempt is, once per outage.
func (s *connState) disconnected(_ context.Context, err error, retryIn time.Duration) {
	if s.lost.Swap(true) {
		return
	}
	why := oneLine(err.Error())
	retry := retryIn.Round(100 * time.Millisecond)
	if s.json {
		s.c.jsonLine(connectionLine{Type: "connection", State: "lost", Error: why, RetryIn: retry.String()})
		return
	}
	fmt.Fprintf(s.c.out, "* connection lost (%s); reconnecting in %s, then with backoff\n", why, retry)
}

// synced prints that the connection is back after an outage.
func (s *connState) synced(context.Context, uint64) {
	if !s.lost.Swap(false) {
		return
	}
	if s.json {
		s.c.jsonLine(connectionLine{Type: "connection", State: "back"})
		return
	}
	fmt.Fprintln(s.c.out, "* connection back; replayed what came meanwhile")
}
