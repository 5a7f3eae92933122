package main

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/gateway/gatewaytest"
)

// TestCLIListenCouldNotConnect: when listen's very first connection fails
// it says it could not connect (not that a connection was lost), and says
// connected once the server is up.
func TestCLIListenCouldNotConnect(t *testing.T) {
	t.Parallel()
	e, cfg, srv := newRestartableEnv(t)
	bob := filepath.Join(t.TempDir(), "bob")
	e.ok(bob, "register", "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("stop mayflyd: %v", err)
	}
	cancel()

	text := e.start(bob, "listen")
	if line := text.waitLine(t, "* "); !strings.HasPrefix(line, "could not connect (") || !strings.Contains(line, "trying again in") {
		t.Errorf("listen printed %q when it could not connect at all", line)
	}
	text.cmd.Process.Signal(syscall.SIGINT)
	text.wait(t)
	l := e.start(bob, "listen", "--json")
	line := l.waitLine(t, `{"type":"connection"`)
	if !strings.Contains(line, `"state":"unreachable"`) || !strings.Contains(line, `"retry_in":"`) {
		t.Fatalf("listen printed %s when it could not connect at all", line)
	}
	gatewaytest.Start(t, cfg)
	if line := l.waitLine(t, `{"type":"connection"`); line != `{"type":"connection","state":"connected"}` {
		t.Fatalf("listen printed %s when the server came up", line)
	}
	l.cmd.Process.Signal(syscall.SIGINT)
	l.wait(t)
}
