package fabric

import (
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/schema"
)

// Friend graph change notices (docs/fabric.md, "Friend graph").
//
// Whenever a user's friend set or blocks change, the friends service
// publishes an empty core NATS message on fab.graph.<user> for each user
// affected. Every process that keeps a hot copy of friend lists subscribes
// to GraphChangesAll once and drops the named user's entry, so the next
// check reloads it from Postgres. Only services publish on fab.>; client
// users must never be granted it.
const (
	graphPrefix = "fab.graph."
	// GraphChangesAll matches every user's graph change subject.
	GraphChangesAll = graphPrefix + "*"
)

// GraphChanges returns the subject announcing changes to userID's friend
// graph: fab.graph.<user>. It returns ErrBadID for a malformed id.
func GraphChanges(userID string) (string, error) {
	if !schema.ValidUserID(userID) {
		return "", ErrBadID
	}
	return graphPrefix + userID, nil
}

// GraphChangeUser returns the user id named by a graph change subject, or
// ErrBadID if subj is not fab.graph.<valid user id>.
func GraphChangeUser(subj string) (string, error) {
	id, ok := strings.CutPrefix(subj, graphPrefix)
	if !ok || !schema.ValidUserID(id) {
		return "", ErrBadID
	}
	return id, nil
}

// PublishGraphChange announces that userID's friend graph changed. Core
// NATS: at most once, to the processes subscribed now.
func PublishGraphChange(nc *nats.Conn, userID string) error {
	subj, err := GraphChanges(userID)
	if err != nil {
		return err
	}
	if err := nc.Publish(subj, nil); err != nil {
		return fmt.Errorf("publish graph change: %w", err)
	}
	return nil
}
