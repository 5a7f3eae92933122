package client

import (
	"testing"
	"time"
)

// TestClientBackoff: delays double from MinBackoff up to MaxBackoff, with
// jitter in the upper half of each step.
func TestClientBackoff(t *testing.T) {
	t.Parallel()
	k, _ := NewKeys(false)
	c, err := New(Config{Server: "http://127.0.0.1:1", Keys: k, MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for n, step := range []time.Duration{100, 200, 400, 800, 1600, 2000, 2000} {
		step *= time.Millisecond
		if n == 6 {
			n = 1000 // far past the cap, without overflow
		}
		seen := map[time.Duration]bool{}
		for range 50 {
			d := c.backoff(n)
			if d < step/2 || d > step {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, d, step/2, step)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Fatalf("backoff(%d) took only %d values in 50 draws: no jitter", n, len(seen))
		}
	}
}
