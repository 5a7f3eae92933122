package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIAccountDelete: account delete without --yes is refused and changes
// nothing; with it the account is gone for the friend too, this home forgets
// its keys, and the handle can be registered again.
func TestCLIAccountDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()
	alice, bob := filepath.Join(dir, "alice"), filepath.Join(dir, "bob")
	e.ok(alice, "register", "alice")
	e.ok(bob, "register", "bob")
	e.ok(alice, "friend", "request", "bob")
	e.ok(bob, "friend", "accept", "alice")
	e.ok(alice, "send", "bob", "before the end")

	e.fails("usage", alice, "account")
	e.fails("usage", alice, "account", "delete")
	e.fails("usage", alice, "account", "delete", "--yes", "extra")
	e.ok(alice, "whoami")
	if out := e.ok(alice, "account", "delete", "--yes"); !strings.Contains(out, "deleted account alice") {
		t.Fatalf("account delete printed %q", out)
	}
	e.fails("not_registered", alice, "whoami")
	if out := e.ok(bob, "friend", "list", "--json"); strings.Contains(out, "alice") {
		t.Errorf("bob's friends after alice's deletion: %s", out)
	}
	if out := e.ok(bob, "read", "--json"); strings.Contains(out, "before the end") {
		t.Errorf("bob still reads alice's message: %s", out)
	}
	e.fails("not_found", bob, "friend", "request", "alice")
	e.ok(alice, "register", "alice")
}
