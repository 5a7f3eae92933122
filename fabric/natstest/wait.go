package natstest

import (
	"testing"
	"time"
)

// WaitFor polls cond until it holds, failing t with "<what>: not within
// <within>" once within has passed (as nats-server's checkFor and
// tailscale's tstest.WaitFor do). It polls quickly at first and then every
// 100ms, so a condition that holds at once costs nothing and a slow one
// does not spin. cond runs on the test goroutine; each request it makes
// should have its own short timeout (a request sent while a stream has no
// leader is never answered). It is the one polling helper of the module's
// tests: use it instead of a deadline loop or a fixed sleep.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	pause := 5 * time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(min(pause, time.Until(deadline)+time.Millisecond))
		pause = min(2*pause, 100*time.Millisecond)
	}
}
