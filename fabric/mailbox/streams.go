package mailbox

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/fabric/subject"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// Stream settings that are not configurable; docs/fabric.md gives reasons.
const (
	// maxConsumers is small and positive: nothing in Mayfly creates
	// consumers on mailbox streams (replay uses Direct Get), but operators'
	// tools (nats stream view) make short-lived ordered consumers.
	maxConsumers = 8
	// maxMsgSize is the largest envelope plus room for the relay's headers.
	maxMsgSize = envelope.MaxEncoded + 2048
	// metaPartitions records the partition count on every stream.
	metaPartitions = "mayfly_partitions"
)

// streamConfig is the configuration of partition p.
func (s *Service) streamConfig(p int) jetstream.StreamConfig {
	name := streamName(p)
	src := subject.MailboxPartition(p)
	return jetstream.StreamConfig{
		Name:                 name,
		Description:          "Mayfly mailboxes, partition " + strconv.Itoa(p),
		Subjects:             []string{src},
		Storage:              jetstream.FileStorage,
		Replicas:             s.cfg.Replicas,
		Placement:            s.cfg.Placement,
		Retention:            jetstream.LimitsPolicy,
		MaxAge:               s.cfg.MaxAge,
		MaxMsgs:              -1,
		MaxBytes:             -1,
		MaxMsgsPerSubject:    s.cfg.MaxPerMailbox,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxMsgSize:           maxMsgSize,
		Duplicates:           s.cfg.DuplicateWindow,
		AllowDirect:          true,
		MaxConsumers:         maxConsumers,
		RePublish:            &jetstream.RePublish{Source: ">", Destination: subject.DeliveryAll},
		Metadata:             map[string]string{metaPartitions: strconv.Itoa(s.cfg.Partitions)},
	}
}

// ensureStreams checks the existing mailbox streams against the configured
// partition count, then creates or updates MBX_0..MBX_{n-1}.
func (s *Service) ensureStreams(ctx context.Context) error {
	if err := s.checkPartitions(ctx); err != nil {
		return err
	}
	for p := range s.cfg.Partitions {
		if _, err := s.js.CreateOrUpdateStream(ctx, s.streamConfig(p)); err != nil {
			return fmt.Errorf("mailbox: create or update stream %s: %w", streamName(p), err)
		}
	}
	return nil
}

// checkPartitions refuses a partition count that differs from the one the
// existing MBX_* streams were made with: user ids would hash elsewhere and
// mailboxes would seem empty.
func (s *Service) checkPartitions(ctx context.Context) error {
	lister := s.js.ListStreams(ctx)
	for info := range lister.Info() {
		name := info.Config.Name
		p, ok := subject.ParseMailboxStream(name)
		if !ok {
			continue // not ours
		}
		got := info.Config.Metadata[metaPartitions]
		if p >= s.cfg.Partitions || (got != "" && got != strconv.Itoa(s.cfg.Partitions)) {
			return fmt.Errorf("%w: %d partitions configured, but stream %s was created for %s",
				ErrConfig, s.cfg.Partitions, name, orUnknown(got))
		}
	}
	if err := lister.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return fmt.Errorf("mailbox: list streams: %w", err)
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown number"
	}
	return s
}
