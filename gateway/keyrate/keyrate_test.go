package keyrate

import (
	"strconv"
	"testing"
	"time"
)

func TestKeyrateBurstThenRefuse(t *testing.T) {
	l := New(0.001, 3)
	for i := 0; i < 3; i++ {
		if !l.Allow("a") {
			t.Fatalf("event %d of the burst refused", i)
		}
	}
	if l.Allow("a") {
		t.Fatal("event past the burst allowed")
	}
	if !l.Allow("b") {
		t.Fatal("another key shares a's bucket")
	}
}

// TestKeyrateBoundedMemory feeds a stream of new keys over a simulated
// minute: the buckets held stay bounded by the keys of about two refill
// times, and sweeps happen once per refill time, not once per key.
func TestKeyrateBoundedMemory(t *testing.T) {
	l := New(10, 10) // refills in 1s; idle = 2s
	now := time.Unix(1e9, 0)
	l.clock = func() time.Time { return now }
	sweeps, last := 0, time.Time{}
	max := 0
	for i := 0; i < 60_000; i++ { // 1,000 new keys a (simulated) second
		now = now.Add(time.Millisecond)
		l.Allow(strconv.Itoa(i))
		if l.lastSweep != last {
			sweeps, last = sweeps+1, l.lastSweep
		}
		if n := l.Len(); n > max {
			max = n
		}
	}
	if max > sweepAt+2*2000+1 {
		t.Fatalf("held %d buckets, want at most sweepAt plus two idle windows of keys", max)
	}
	if sweeps > 60/2+1 {
		t.Fatalf("%d sweeps in 60s with a 2s idle time", sweeps)
	}
}
