package natsapi

import (
	"sync"

	"github.com/mayfly-im/mayfly/schema"
)

// The limits of one device's requests match those of one WebSocket
// (docs/protocol.md, "Limits"; docs/nats-clients.md, "Limits"), with the
// same code: a native client gets no more than a WebSocket client.
var (
	errRateLimited  = schema.Errorf(schema.CodeRateLimited, "too many requests; slow down")
	errSyncsPending = schema.Errorf(schema.CodeRateLimited, "too many sync requests in progress; wait for their answers")
)

// limitDefaults fills the zero request limits.
func (c *Config) limitDefaults() {
	if c.RequestRate <= 0 {
		c.RequestRate = DefaultRequestRate
	}
	if c.RequestBurst <= 0 {
		c.RequestBurst = DefaultRequestBurst
	}
	if c.MaxSyncs <= 0 {
		c.MaxSyncs = DefaultMaxSyncs
	}
}

// inFlight counts requests in progress per key.
type inFlight struct {
	mu sync.Mutex
	n  map[string]int // guarded by mu; keys with a count of 0 are deleted
}

// enter takes a slot of key and reports true, or reports false when key
// already holds max.
func (f *inFlight) enter(key string, max int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[key] >= max {
		return false
	}
	f.n[key]++
	return true
}

// leave gives back a slot enter took.
func (f *inFlight) leave(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[key]--; f.n[key] <= 0 {
		delete(f.n, key)
	}
}
