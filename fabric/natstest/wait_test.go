package natstest

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg atomic.Pointer[string]
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.msg.Store(&s)
	panic(r)
}

// runRecorded runs f with a recorder and reports the Fatalf format, or "".
func runRecorded(t *testing.T, f func(testing.TB)) (msg string) {
	r := &fatalRecorder{TB: t}
	defer func() {
		if p := recover(); p != nil && p != any(r) {
			panic(p)
		}
		if m := r.msg.Load(); m != nil {
			msg = *m
		}
	}()
	f(r)
	return ""
}

func TestWaitFor(t *testing.T) {
	t.Parallel()
	t.Run("holds at once", func(t *testing.T) {
		t.Parallel()
		n := 0
		if msg := runRecorded(t, func(tb testing.TB) { WaitFor(tb, time.Second, "x", func() bool { n++; return true }) }); msg != "" || n != 1 {
			t.Errorf("WaitFor failed (%q) or polled %d times, want once", msg, n)
		}
	})
	t.Run("holds later", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		msg := runRecorded(t, func(tb testing.TB) {
			WaitFor(tb, 10*time.Second, "x", func() bool { return time.Since(start) > 150*time.Millisecond })
		})
		if msg != "" {
			t.Errorf("WaitFor failed: %q", msg)
		}
	})
	t.Run("never holds", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		msg := runRecorded(t, func(tb testing.TB) { WaitFor(tb, 200*time.Millisecond, "the thing", func() bool { return false }) })
		if msg != "the thing: not within 200ms" {
			t.Errorf("WaitFor failed with %q, want the not-within message", msg)
		}
		if took := time.Since(start); took < 200*time.Millisecond {
			t.Errorf("WaitFor gave up after %v, before its 200ms", took)
		}
	})
}
