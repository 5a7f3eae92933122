// Package keyrate limits events per key (a user id, a client address) with
// one token bucket per key. Buckets idle long enough to have refilled are
// dropped when the map grows, at most once per refill time, so memory stays
// bounded by the keys seen within about two refill times and a flood of new
// keys costs one sweep per refill time, not one per key. A [Limiter] is safe
// for concurrent use.
package keyrate

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// sweepAt is the number of buckets at which idle ones are dropped.
const sweepAt = 10000

// Limiter holds the buckets.
type Limiter struct {
	r     rate.Limit
	burst int

	idle  time.Duration    // how long an untouched bucket takes to refill
	clock func() time.Time // time.Now; tests move it

	mu        sync.Mutex
	m         map[string]*bucket // guarded by mu
	lastSweep time.Time          // guarded by mu
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// New returns a Limiter allowing perSec events per second per key, with
// bursts of burst.
func New(perSec float64, burst int) *Limiter {
	idle := time.Duration(float64(burst)/perSec*float64(time.Second)) + time.Second
	return &Limiter{r: rate.Limit(perSec), burst: burst, idle: idle, clock: time.Now, m: map[string]*bucket{}}
}

// Allow reports whether key may have one more event now, and takes it.
func (l *Limiter) Allow(key string) bool {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.m[key]
	if !ok {
		if len(l.m) >= sweepAt && now.Sub(l.lastSweep) >= l.idle {
			l.sweep(now)
		}
		b = &bucket{lim: rate.NewLimiter(l.r, l.burst)}
		l.m[key] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}

// sweep drops buckets idle long enough to be full again. mu must be held.
func (l *Limiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, b := range l.m {
		if now.Sub(b.seen) > l.idle {
			delete(l.m, k)
		}
	}
}

// Len returns the number of buckets held.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
