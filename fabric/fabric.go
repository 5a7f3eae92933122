// Package fabric holds the helpers that publish Mayfly's fabric-wide
// notices: user events, device revocations and friend graph changes. Every
// subject comes from fabric/subject, which validates each id first; a bad
// id yields an error, never a subject with extra tokens or wildcards.
//
// Subpackages: subject names every subject, jsapi is the Direct Get and
// delete client, node runs the embedded server, token and account provide
// the identity services, friends the friend graph, natstest starts servers
// for tests. Functions here are safe for concurrent use.
package fabric

import (
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/fabric/subject"
	"github.com/mayfly-im/mayfly/schema"
)

// ErrBadID means a value was not a well-formed id and cannot go into a
// subject. It is subject.ErrBadID.
var ErrBadID = subject.ErrBadID

// PublishEvent publishes ev on userID's event subject. Core NATS: at most
// once, to the gateways that hold the user's connections now.
func PublishEvent(nc *nats.Conn, userID string, ev schema.Event) error {
	subj, err := subject.Events(userID)
	if err != nil {
		return err
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	if err := nc.Publish(subj, b); err != nil {
		return fmt.Errorf("publish event %s: %w", ev.Type, err)
	}
	return nil
}

// Every end of a device's sessions is announced to the fabric (not to
// clients) on subject.Revoked(user), payload a JSON [Revocation]. The auth
// callout listens on subject.RevokedAll to disconnect NATS clients.

// Revocation says which sessions of a device ended: those of a generation
// below Generation, or all of them when Generation is 0.
type Revocation struct {
	DeviceID   string `json:"device_id"`
	Generation int    `json:"generation,omitempty"`
}

// Ends reports whether a session of generation gen ended by r.
func (r Revocation) Ends(gen int) bool { return r.Generation == 0 || gen < r.Generation }

// PublishRevoked announces r for userID.
func PublishRevoked(nc *nats.Conn, userID string, r Revocation) error {
	subj, err := subject.Revoked(userID)
	if err != nil || !schema.ValidDeviceID(r.DeviceID) {
		return ErrBadID
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode revocation: %w", err)
	}
	if err := nc.Publish(subj, b); err != nil {
		return fmt.Errorf("publish revocation: %w", err)
	}
	return nil
}
