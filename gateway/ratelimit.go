package gateway

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ipLimiter holds one token bucket per client IP. Idle buckets are dropped
// when the map grows, so its memory stays bounded by recent clients.
type ipLimiter struct {
	r     rate.Limit
	burst int

	mu sync.Mutex
	m  map[string]*ipBucket // guarded by mu
}

type ipBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

const ipLimiterSweepAt = 10000

func newIPLimiter(perSec float64, burst int) *ipLimiter {
	return &ipLimiter{r: rate.Limit(perSec), burst: burst, m: map[string]*ipBucket{}}
}

// allow reports whether ip may make one more request now.
func (l *ipLimiter) allow(ip string) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.m[ip]
	if !ok {
		if len(l.m) >= ipLimiterSweepAt {
			l.sweep(now) // mu held
		}
		b = &ipBucket{lim: rate.NewLimiter(l.r, l.burst)}
		l.m[ip] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}

// sweep drops buckets idle long enough to have refilled. mu must be held.
func (l *ipLimiter) sweep(now time.Time) {
	idle := time.Duration(float64(l.burst)/float64(l.r)*float64(time.Second)) + time.Second
	for ip, b := range l.m {
		if now.Sub(b.seen) > idle {
			delete(l.m, ip)
		}
	}
}
