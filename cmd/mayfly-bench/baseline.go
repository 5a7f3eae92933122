package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Baseline is raw JetStream's rate on the same server: asynchronous
// publishes of envelope-sized payloads to scratch streams with the
// mailboxes' storage (file, Replicas replicas; the server's sync setting
// applies to both), spread round-robin over Streams streams.
type Baseline struct {
	Streams  int     `json:"streams"`
	Replicas int     `json:"replicas"`
	Size     int     `json:"payload_bytes"`
	Acked    int64   `json:"acked"`
	Errors   int64   `json:"errors"`
	Seconds  float64 `json:"seconds"`
	PerSec   float64 `json:"acked_per_sec"`
	Pending  int     `json:"max_pending"`
}

// Scratch streams BENCH_RAW_<i> on subjects bench.raw.<i>; removed again
// afterwards.
const (
	baselineStream  = "BENCH_RAW_"
	baselineSubject = "bench.raw."
	// baselinePending bounds unacknowledged async publishes.
	baselinePending = 4096
)

// rawBaseline publishes size-byte payloads asynchronously for dur (at most
// maxMsgs) over streams scratch streams and returns the acknowledged rate.
func rawBaseline(ctx context.Context, natsURL string, size, streams, replicas int, dur time.Duration, maxMsgs int) (Baseline, error) {
	b := Baseline{Streams: streams, Replicas: max(1, replicas), Size: size, Pending: baselinePending}
	nc, err := nats.Connect(natsURL, nats.Name("mayfly-bench"))
	if err != nil {
		return b, fmt.Errorf("baseline: connect: %w", err)
	}
	defer nc.Close()
	var errs atomic.Int64
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(baselinePending),
		jetstream.WithPublishAsyncTimeout(30*time.Second),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { errs.Add(1) }))
	if err != nil {
		return b, fmt.Errorf("baseline: jetstream: %w", err)
	}
	subjects, err := scratchStreams(ctx, js, streams, replicas)
	defer func() {
		for i := range streams {
			js.DeleteStream(context.Background(), baselineStream+strconv.Itoa(i))
		}
	}()
	if err != nil {
		return b, err
	}
	data := make([]byte, size)
	rand.Read(data)
	start := time.Now()
	end := start.Add(dur)
	n := 0
	// A publish blocks while baselinePending are unacknowledged (backpressure,
	// not an error): the stall wait is as long as the ack timeout.
	stall := jetstream.WithStallWait(30 * time.Second)
	for ; n < maxMsgs && time.Now().Before(end) && ctx.Err() == nil; n++ {
		if _, err := js.PublishAsync(subjects[n%streams], data, stall); err != nil {
			errs.Add(1)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
	}
	b.Seconds = time.Since(start).Seconds()
	b.Errors = errs.Load()
	b.Acked = int64(n) - b.Errors - int64(js.PublishAsyncPending())
	b.PerSec = float64(b.Acked) / b.Seconds
	return b, nil
}

// scratchStreams (re)creates the scratch streams and returns their subjects.
func scratchStreams(ctx context.Context, js jetstream.JetStream, n, replicas int) ([]string, error) {
	var subjects []string
	for i := range n {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		name := baselineStream + strconv.Itoa(i)
		js.DeleteStream(sctx, name)
		_, err := js.CreateStream(sctx, jetstream.StreamConfig{
			Name: name, Subjects: []string{baselineSubject + strconv.Itoa(i)},
			Storage: jetstream.FileStorage, Replicas: max(1, replicas), MaxAge: 10 * time.Minute,
		})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("baseline: create stream %s: %w", name, err)
		}
		subjects = append(subjects, baselineSubject+strconv.Itoa(i))
	}
	return subjects, nil
}
