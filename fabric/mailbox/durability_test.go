package mailbox

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/fabric/node"
)

// envKillChild names the store directory of the node a child test process
// runs for TestMailboxAckedSurvivesKill.
const envKillChild = "MAYFLY_TEST_KILL_CHILD_STORE"

// TestMailboxKillChild is the child process of TestMailboxAckedSurvivesKill:
// the embedded default node (sync_interval always) on the given store, its
// URL on stdout, running until it is killed. It skips in a normal run.
func TestMailboxKillChild(t *testing.T) {
	dir := os.Getenv(envKillChild)
	if dir == "" {
		t.Skip("child process of TestMailboxAckedSurvivesKill")
	}
	n, err := node.Start(node.Config{Listen: "127.0.0.1:0", StoreDir: dir, ServicePassword: natstest.Password, ServerName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("url " + n.ClientURL() + "\n")
	select {} // until SIGKILL
}

// TestMailboxAckedSurvivesKill sends messages to a node in another process
// (the embedded default: fsync before every ack), kills that process with
// SIGKILL in the middle of the sends, restarts a node on the same store
// and finds every message whose send was acknowledged, both copies. The
// server's reported JetStream config shows the acks waited for fsync.
func TestMailboxAckedSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	child, url := startKillChild(t, dir)
	nc, err := nats.Connect(url, nats.UserInfo(node.ServiceUser, natstest.Password), nats.MaxReconnects(0))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	f := &fixture{nc: nc, friends: &friendsAllowList{}}
	if f.svc, err = New(testContext(t), Config{NATS: nc, Permit: f.friends, Partitions: 4, SendRate: -1, RotateInterval: -1}); err != nil {
		t.Fatal(err)
	}
	a, b := f.friendsPair(t)
	acked := sendUntilKilled(t, f, a, b, child, 100)
	if len(acked) < 100 {
		t.Fatalf("only %d sends acknowledged before the kill", len(acked))
	}
	nc.Close()

	n := natstest.RunWith(t, func(c *node.Config) { c.StoreDir = dir })
	if js := n.Server().JetStreamConfig(); js == nil || !js.SyncAlways {
		t.Fatalf("the embedded default does not sync every write: %+v", js)
	}
	g := newFixtureOn(t, n, func(c *Config) { c.RotateInterval = -1 })
	got := map[string]bool{}
	for _, m := range g.fetchAll(t, b.id) {
		got["r"+m.MsgID] = true
	}
	for _, m := range g.fetchAll(t, a.id) {
		got["s"+m.MsgID] = true
	}
	for _, id := range acked {
		if !got["r"+id] || !got["s"+id] {
			t.Errorf("acknowledged message %s lost after kill -9 (recipient copy %v, sync copy %v)", id, got["r"+id], got["s"+id])
		}
	}
	t.Logf("%d acknowledged sends before SIGKILL, all found after restart", len(acked))
}

// startKillChild runs TestMailboxKillChild in a new process on dir and
// returns it with its NATS URL. t.Cleanup kills it if it still runs.
func startKillChild(t *testing.T, dir string) (*exec.Cmd, string) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestMailboxKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envKillChild+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "url "); ok {
				urls <- u
			}
		}
		close(urls)
	}()
	select {
	case u, ok := <-urls:
		if !ok {
			t.Fatal("child process ended without a NATS URL")
		}
		return cmd, u
	case <-time.After(30 * time.Second):
		t.Fatal("child process gave no NATS URL in 30s")
	}
	return nil, ""
}

// sendUntilKilled sends from a to b from 8 goroutines, SIGKILLs child once
// killAfter sends were acknowledged, and returns the message ids of every
// acknowledged send.
func sendUntilKilled(t *testing.T, f *fixture, a, b user, child *exec.Cmd, killAfter int) []string {
	var (
		mu     sync.Mutex
		acked  []string
		killed bool
		wg     sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				id := nextMsgID()
				_, err := f.svc.Send(ctx, a.id, a.device, b.id, seal(t, a, b, id, "survive "+id))
				mu.Lock()
				if err == nil {
					acked = append(acked, id)
				}
				if len(acked) >= killAfter && !killed {
					killed = true
					child.Process.Signal(syscall.SIGKILL)
				}
				stop := killed && err != nil
				mu.Unlock()
				if stop {
					return
				}
			}
		})
	}
	wg.Wait()
	child.Wait()
	return acked
}
