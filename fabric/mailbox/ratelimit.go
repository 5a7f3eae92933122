package mailbox

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// userLimiter holds one token bucket per sending user. Buckets idle long
// enough to have refilled are dropped when the map grows, so memory stays
// bounded by the users who sent recently.
type userLimiter struct {
	r     rate.Limit
	burst int

	mu sync.Mutex
	m  map[string]*userBucket // guarded by mu
}

type userBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

const userLimiterSweepAt = 10000

func newUserLimiter(perSec float64, burst int) *userLimiter {
	return &userLimiter{r: rate.Limit(perSec), burst: burst, m: map[string]*userBucket{}}
}

// allow reports whether user may send one more message now.
func (l *userLimiter) allow(user string) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.m[user]
	if !ok {
		if len(l.m) >= userLimiterSweepAt {
			l.sweep(now) // mu held
		}
		b = &userBucket{lim: rate.NewLimiter(l.r, l.burst)}
		l.m[user] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}

// sweep drops buckets idle long enough to be full again. mu must be held.
func (l *userLimiter) sweep(now time.Time) {
	idle := time.Duration(float64(l.burst)/float64(l.r)*float64(time.Second)) + time.Second
	for u, b := range l.m {
		if now.Sub(b.seen) > idle {
			delete(l.m, u)
		}
	}
}
