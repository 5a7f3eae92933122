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

// connectionLine is listen --json's line for a connection that could not
// be made, was made after that, was lost, or is back.
type connectionLine struct {
	Type    string `json:"type"`  // "connection"
	State   string `json:"state"` // "unreachable", "connected", "lost" or "back"
	Error   string `json:"error,omitempty"`
	RetryIn string `json:"retry_in,omitempty"` // a Go duration
}

// connState prints when listen could not connect, when its connection is
// lost, and when it is up again.
type connState struct {
	c    *cli
	json bool
	lost atomic.Bool
	// ever is set once a connection synced: before that a failure is "could
	// not connect", not "lost".
	ever atomic.Bool
}

// disconnected prints that the connection could not be made or was lost,
// and when the next attempt is, once per outage.
func (s *connState) disconnected(_ context.Context, err error, retryIn time.Duration) {
	if s.lost.Swap(true) {
		return
	}
	why := oneLine(err.Error())
	retry := retryIn.Round(100 * time.Millisecond)
	state, text, next := "lost", "connection lost", "reconnecting"
	if !s.ever.Load() {
		state, text, next = "unreachable", "could not connect", "trying again"
	}
	if s.json {
		s.c.jsonLine(connectionLine{Type: "connection", State: state, Error: why, RetryIn: retry.String()})
		return
	}
	fmt.Fprintf(s.c.out, "* %s (%s); %s in %s, then with backoff\n", text, why, next, retry)
}

// synced prints that the connection is up after a failure.
func (s *connState) synced(context.Context, uint64) {
	first := !s.ever.Swap(true)
	if !s.lost.Swap(false) {
		return
	}
	state, text := "back", "connection back; replayed what came meanwhile"
	if first {
		state, text = "connected", "connected"
	}
	if s.json {
		s.c.jsonLine(connectionLine{Type: "connection", State: state})
		return
	}
	fmt.Fprintln(s.c.out, "* "+text)
}
