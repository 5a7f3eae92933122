package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// DiskSync is the data disk's synced-write rate: writers goroutines each
// append 1 KiB to its own file and fsync it, over and over, for Seconds.
// With sync_interval always every JetStream store and delete is one such
// write, and nats-server runs one at a time per stream (and per JetStream
// API worker), so this bounds what Mayfly can store and burn.
type DiskSync struct {
	Writers int     `json:"writers"`
	Syncs   int64   `json:"syncs"`
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"syncs_per_sec"`
}

// diskSyncWriters are the concurrencies diskSync measures: one stream, and
// the mailboxes' 16 partitions.
var diskSyncWriters = []int{1, mailboxPartitions}

// diskSync measures synced 1 KiB appends per second with writers
// concurrent writers in a scratch directory under dir, for dur.
func diskSync(dir string, writers int, dur time.Duration) (DiskSync, error) {
	res := DiskSync{Writers: writers}
	scratch, err := os.MkdirTemp(dir, "disksync")
	if err != nil {
		return res, fmt.Errorf("disk sync: %w", err)
	}
	defer os.RemoveAll(scratch)
	var syncs atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(dur)
	block := make([]byte, 1024)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := appendSynced(filepath.Join(scratch, fmt.Sprint(i)), block, deadline, &syncs)
			if err != nil {
				once.Do(func() { first = err })
			}
		}()
	}
	wg.Wait()
	res.Syncs, res.Seconds = syncs.Load(), time.Since(start).Seconds()
	res.PerSec = float64(res.Syncs) / res.Seconds
	return res, first
}

// appendSynced appends block to file and fsyncs it until deadline.
func appendSynced(file string, block []byte, deadline time.Time, n *atomic.Int64) error {
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("disk sync: %w", err)
	}
	defer f.Close()
	for time.Now().Before(deadline) {
		if _, err := f.Write(block); err != nil {
			return fmt.Errorf("disk sync: %w", err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("disk sync: %w", err)
		}
		n.Add(1)
	}
	return nil
}
