package natsapi

import "testing"

// TestNatsapiSyncsInFlight: a device holds at most max syncs at once; a
// finished one frees its slot; devices count apart.
func TestNatsapiSyncsInFlight(t *testing.T) {
	f := inFlight{n: map[string]int{}}
	for i := range DefaultMaxSyncs {
		if !f.enter("u.d", DefaultMaxSyncs) {
			t.Fatalf("sync %d refused", i+1)
		}
	}
	if f.enter("u.d", DefaultMaxSyncs) {
		t.Fatalf("sync %d admitted", DefaultMaxSyncs+1)
	}
	if !f.enter("u.e", DefaultMaxSyncs) {
		t.Fatal("another device's sync refused")
	}
	f.leave("u.d")
	if !f.enter("u.d", DefaultMaxSyncs) {
		t.Fatal("no slot after a sync finished")
	}
	for range DefaultMaxSyncs {
		f.leave("u.d")
	}
	f.leave("u.e")
	if len(f.n) != 0 {
		t.Fatalf("counts left: %v", f.n)
	}
}
