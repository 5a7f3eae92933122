package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
	"github.com/mayfly-im/mayfly/store/storetest"
)

// TestCLICommandHelp: COMMAND -h prints that command's lines of the usage
// and exits 0, before anything else (no server, no home needed).
func TestCLICommandHelp(t *testing.T) {
	t.Parallel()
	e := &env{t: t, bin: buildMayfly(t), server: "http://127.0.0.1:1"}
	home := filepath.Join(t.TempDir(), "h")
	for _, args := range [][]string{
		{"send", "-h"}, {"read", "--help"}, {"friend", "-h"}, {"friend", "list", "-help"}, {"device", "link", "-h"},
		{"listen", "-h"}, {"unread", "-h"}, {"recall", "-h"}, {"register", "-h"}, {"token", "-h"}, {"whoami", "-h"},
	} {
		r := e.run(home, args...)
		if r.code != 0 || r.stderr != "" {
			t.Errorf("mayfly %v: exit %d, stderr %q; want 0 and nothing", args, r.code, r.stderr)
		}
		lines := 0
		for l := range strings.Lines(r.stdout) {
			if strings.HasPrefix(l, "  ") && !strings.HasPrefix(l, "   ") { // not a continuation line
				lines++
				if !strings.HasPrefix(l, "  "+args[0]+" ") {
					t.Errorf("mayfly %v: help line %q is another command's", args, l)
				}
			}
		}
		if lines == 0 {
			t.Errorf("mayfly %v printed no help for %s: %q", args, args[0], r.stdout)
		}
	}
	e.fails("usage", home, "frobnicate", "-h")
}

// unreadCount is a line of unread --json.
type unreadCount struct {
	From   string `json:"from"`
	UserID string `json:"user_id"`
	Count  int    `json:"count"`
}

// TestCLIUnreadRecallBlocks: unread counts without burning, recall by the
// id send printed, and the list of blocked users.
func TestCLIUnreadRecallBlocks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, bob, carol := filepath.Join(t.TempDir(), "alice"), filepath.Join(t.TempDir(), "bob"), filepath.Join(t.TempDir(), "carol")
	e.ok(alice, "register", "alice")
	e.ok(bob, "register", "bob")
	e.ok(carol, "register", "carol")
	e.ok(alice, "friend", "request", "bob")
	e.ok(bob, "friend", "accept", "alice")

	if out := e.ok(bob, "unread"); out != "" {
		t.Fatalf("unread with nothing waiting printed %q", out)
	}
	e.ok(alice, "send", "bob", "one")
	e.ok(alice, "send", "bob", "two")
	id := strings.TrimSpace(e.ok(alice, "send", "bob", "regret"))
	var c unreadCount
	if err := json.Unmarshal([]byte(e.ok(bob, "unread", "--json")), &c); err != nil || c.From != "alice" || c.Count != 3 || c.UserID == "" {
		t.Fatalf("unread --json = %+v (%v), want 3 from alice", c, err)
	}

	// recall ID withdraws the message; it is gone for bob, and a second
	// recall has nothing left to withdraw.
	if out := e.ok(alice, "recall", id); out != "recalled "+id+"\n" {
		t.Fatalf("recall printed %q", out)
	}
	e.fails("unknown_message", alice, "recall", id)
	e.fails("unknown_message", bob, "recall", id) // not bob's to recall
	if out := e.ok(bob, "unread"); out != "alice  2 unread\n" {
		t.Fatalf("unread after the recall printed %q", out)
	}
	ms := parseMessages(t, e.ok(bob, "read", "--json"))
	if len(ms) != 2 || ms[0].Text != "one" || ms[1].Text != "two" {
		t.Fatalf("read after unread and recall: %+v", ms)
	}
	if out := e.ok(bob, "unread"); out != "" {
		t.Fatalf("unread after read printed %q", out)
	}

	if out := e.ok(bob, "friend", "blocks"); out != "" {
		t.Fatalf("blocks before any block: %q", out)
	}
	e.ok(bob, "friend", "block", "carol")
	var b struct {
		Handle string    `json:"handle"`
		UserID string    `json:"user_id"`
		Since  time.Time `json:"since"`
	}
	out := e.ok(bob, "friend", "blocks", "--json")
	if err := json.Unmarshal([]byte(out), &b); err != nil || b.Handle != "carol" || b.UserID == "" || b.Since.IsZero() {
		t.Fatalf("friend blocks --json = %q (%v)", out, err)
	}
	if out := e.ok(bob, "friend", "blocks"); !strings.HasPrefix(out, "carol  blocked since ") || !strings.Contains(out, "Z (mayfly friend unblock carol)") {
		t.Fatalf("friend blocks = %q", out)
	}
	e.ok(bob, "friend", "unblock", "carol")
	if out := e.ok(bob, "friend", "blocks"); out != "" {
		t.Fatalf("blocks after unblock: %q", out)
	}
}

// newRestartableEnv is newEnv with a server that can be stopped and started
// again on the same address, database and data (cfg, with HTTPListen set).
func newRestartableEnv(t *testing.T) (*env, gatewaytest.Config, *gatewaytest.Server) {
	t.Helper()
	bin := buildMayfly(t)
	cfg := gatewaytest.Config{DatabaseURL: storetest.NewURL(t), DataDir: t.TempDir()}
	srv := gatewaytest.Start(t, cfg)
	cfg.HTTPListen = srv.HTTPAddr()
	return &env{t: t, bin: bin, server: "http://" + srv.HTTPAddr()}, cfg, srv
}

// TestCLIListenConnectionAndHandles: listen --json names users in events
// by handle, and says when its connection was lost and when it is back.
func TestCLIListenConnectionAndHandles(t *testing.T) {
	t.Parallel()
	e, cfg, srv := newRestartableEnv(t)
	alice, bob := filepath.Join(t.TempDir(), "alice"), filepath.Join(t.TempDir(), "bob")
	e.ok(alice, "register", "alice")
	e.ok(bob, "register", "bob")
	e.ok(alice, "friend", "request", "bob")
	e.ok(bob, "friend", "accept", "alice")

	l := e.start(bob, "listen", "--json")
	snap := l.waitLine(t, `{"type":"event","event":{"type":"presence_snapshot"`)
	if !strings.Contains(snap, `"handles":{"u`) || !strings.Contains(snap, `":"alice"}`) {
		t.Errorf("presence snapshot without alice's handle: %s", snap)
	}
	e.ok(alice, "send", "bob", "hi")
	if line := l.waitLine(t, `{"type":"event","event":{"type":"presence"`); !strings.Contains(line, `"peer":"alice"`) {
		t.Errorf("presence event without alice's handle: %s", line)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("stop mayflyd: %v", err)
	}
	cancel()
	line := l.waitLine(t, `{"type":"connection"`)
	if !strings.Contains(line, `"state":"lost"`) || !strings.Contains(line, `"retry_in":"`) {
		t.Fatalf("listen printed %s when the server went away", line)
	}
	t.Logf("server gone: %s", line)
	gatewaytest.Start(t, cfg)
	if line := l.waitLine(t, `{"type":"connection"`); line != `{"type":"connection","state":"back"}` {
		t.Fatalf("listen printed %s when the server came back", line)
	}
	l.cmd.Process.Signal(syscall.SIGINT)
	l.wait(t)
}

// TestCLIDeviceLastSeen: a device's "last seen" moves when it connects, not
// only at login and token refresh; device link prints times in UTC.
func TestCLIDeviceLastSeen(t *testing.T) {
	t.Parallel()
	e, cfg, _ := newRestartableEnv(t)
	alice, laptop := filepath.Join(t.TempDir(), "alice"), filepath.Join(t.TempDir(), "laptop")
	e.ok(alice, "register", "alice")

	// Make the device look unused for an hour, as after a long pause with
	// a still-valid access token.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	hourAgo := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	if _, err := db.Exec(ctx, `UPDATE devices SET last_seen_at = $1`, hourAgo); err != nil {
		t.Fatal(err)
	}
	lastSeen := func() time.Time {
		t.Helper()
		out := e.ok(alice, "device", "list")
		_, after, ok := strings.Cut(out, "last seen ")
		ts, _, _ := strings.Cut(after, " ")
		seen, err := time.Parse(time.RFC3339, strings.TrimSpace(ts))
		if !ok || err != nil {
			t.Fatalf("device list %q: %v", out, err)
		}
		return seen
	}
	if got := lastSeen(); !got.Equal(hourAgo) {
		t.Fatalf("last seen %v before connecting, want %v (device list alone does not connect)", got, hourAgo)
	}
	e.ok(alice, "read")
	if got := lastSeen(); time.Since(got) > 5*time.Minute {
		t.Fatalf("last seen %v after a connection, want about now", got)
	}

	link := e.start(laptop, "device", "link")
	link.waitLine(t, "link code: ")
	until := link.waitLine(t, "Waiting until ")
	ts, _, _ := strings.Cut(until, " ")
	if at, err := time.Parse(time.RFC3339, ts); err != nil || !strings.HasSuffix(ts, "Z") || time.Until(at) < 5*time.Minute {
		t.Errorf("device link prints %q, want a UTC time about ten minutes ahead (%v)", until, err)
	}
	link.cmd.Process.Signal(syscall.SIGINT)
	<-link.done
}
