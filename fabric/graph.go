package fabric

import (
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/fabric/subject"
)

// Friend graph change notices (docs/fabric.md, "Friend graph").
//
// Whenever a user's friend set or blocks change, the friends service
// publishes an empty core NATS message on fab.graph.<user> for each user
// affected. Every process that keeps a hot copy of friend lists subscribes
// to subject.GraphChangesAll once and drops the named user's entry, so the next
// check reloads it from Postgres. Only services publish on fab.>; client
// users must never be granted it. The subjects are subject.GraphChanges,
// subject.ParseGraphChanges and subject.GraphChangesAll.

// PublishGraphChange announces that userID's friend graph changed. Core
// NATS: at most once, to the processes subscribed now.
func PublishGraphChange(nc *nats.Conn, userID string) error {
	subj, err := subject.GraphChanges(userID)
	if err != nil {
		return err
	}
	if err := nc.Publish(subj, nil); err != nil {
		return fmt.Errorf("publish graph change: %w", err)
	}
	return nil
}
