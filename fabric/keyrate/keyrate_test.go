package keyrate

import (
	"strconv"
	"testing"
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

func TestKeyrateBoundedMemory(t *testing.T) {
	l := New(1e6, 1) // refills at once: every bucket is idle-full at the sweep
	for i := 0; i < 3*sweepAt; i++ {
		l.Allow(strconv.Itoa(i))
	}
	if n := l.Len(); n > sweepAt+1 {
		t.Fatalf("%d buckets held, want at most %d", n, sweepAt+1)
	}
}
