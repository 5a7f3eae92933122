package main

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app/apptest"
	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/schema"
)

// TestMayflydAdmin runs `mayflyd admin` against the private Postgres of a
// running mayflyd (reached through its socket) and of a stopped one
// (started for the command and stopped again): suspend, unsuspend, delete,
// and an unknown handle.
func TestMayflydAdmin(t *testing.T) {
	t.Parallel()
	bin := buildMayflyd(t)
	dir := dataDir(t)
	p := startMayflyd(t, bin, dir)
	alice := apptest.NewUser(t, p.http, "alice")
	bob := apptest.NewUser(t, p.http, "bob")
	admin := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append(append([]string{"admin"}, args...), "--data", dir)...).CombinedOutput()
		return string(out), err
	}
	if out, err := admin("suspend", "alice"); err != nil || !strings.Contains(out, "suspended") {
		t.Fatalf("admin suspend while running: %v\n%s", err, out)
	}
	var ch schema.Challenge
	alice.Must(http.MethodPost, "/v1/login/challenge", schema.ChallengeRequest{Handle: "alice"}, &ch)
	if _, e := alice.Do(http.MethodPost, "/v1/login", apptest.SignChallenge(ch, alice.DK, "phone"), nil); e == nil || e.Code != schema.CodeAccountSuspended {
		t.Errorf("login after admin suspend: %v, want account_suspended", e)
	}
	if out, err := admin("unsuspend", "alice"); err != nil || !strings.Contains(out, "unsuspended") {
		t.Fatalf("admin unsuspend: %v\n%s", err, out)
	}
	alice.Login("phone")
	if out, err := admin("delete", "alice"); err != nil || !strings.Contains(out, "deletion recorded") {
		t.Fatalf("admin delete: %v\n%s", err, out)
	}
	natstest.WaitFor(t, 15*time.Second, "alice deleted after admin delete", func() bool {
		_, e := bob.Do(http.MethodGet, "/v1/users/alice", nil, nil)
		return e != nil && e.Code == schema.CodeNotFound
	})
	if out, err := admin("suspend", "nobody"); err == nil || !strings.Contains(out, "no user has this handle") {
		t.Errorf("admin suspend of an unknown handle: %v\n%s", err, out)
	}
	if out, err := admin("suspend"); err == nil || !strings.Contains(out, "usage: mayflyd admin") {
		t.Errorf("admin without a handle: %v\n%s", err, out)
	}
	p.stop(t)

	if out, err := admin("suspend", "bob"); err != nil || !strings.Contains(out, "suspended") {
		t.Fatalf("admin suspend while stopped: %v\n%s", err, out)
	}
	checkPostgresStopped(t, dir)
}
