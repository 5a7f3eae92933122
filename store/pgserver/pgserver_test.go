package pgserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testDir returns a fresh directory reachable by the postgres user even when
// the test runs as root (t.TempDir's parents are 0700), removed at cleanup.
func testDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgserver-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startServer starts a server on dir and registers its Stop at cleanup.
func startServer(t *testing.T, dir string) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, err := Start(ctx, Config{Dir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopServer(t, s) })
	return s
}

func stopServer(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
}

func connect(t *testing.T, s *Server, database string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), s.URL(database))
	if err != nil {
		t.Fatalf("connect to %s: %v", s.URL(database), err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func systemID(t *testing.T, conn *pgx.Conn) uint64 {
	t.Helper()
	var id uint64
	if err := conn.QueryRow(t.Context(), "SELECT system_identifier FROM pg_control_system()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestPgserverLifecycle(t *testing.T) {
	dir := testDir(t)
	s := startServer(t, dir)
	if got, want := s.SocketDir(), filepath.Join(dir, "run"); got != want {
		t.Errorf("SocketDir() = %q, want %q", got, want)
	}
	if !strings.HasPrefix(s.URL("mayfly"), "postgres://mayfly@/mayfly?host=/") {
		t.Errorf("URL = %q, want a readable socket path", s.URL("mayfly"))
	}
	conn := connect(t, s, "mayfly") // the default Database was created
	id := systemID(t, conn)
	if _, err := conn.Exec(t.Context(), "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('kept')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())

	t.Run("already running", func(t *testing.T) {
		_, err := Start(t.Context(), Config{Dir: dir, Logger: testLogger(t)})
		if !errors.Is(err, ErrAlreadyRunning) {
			t.Fatalf("second Start on a running Dir: err = %v, want ErrAlreadyRunning", err)
		}
		t.Log(err)
	})

	stopServer(t, s)
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	if err := s.Err(); err != nil {
		t.Errorf("Err after Stop = %v, want nil", err)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Errorf("second Stop = %v, want nil", err)
	}

	s = startServer(t, dir)
	conn = connect(t, s, "mayfly")
	if got := systemID(t, conn); got != id {
		t.Errorf("system identifier after restart = %d, want %d (initdb ran again)", got, id)
	}
	var body string
	if err := conn.QueryRow(t.Context(), "SELECT body FROM notes").Scan(&body); err != nil || body != "kept" {
		t.Errorf("row after restart = %q, %v; want \"kept\"", body, err)
	}
}

// TestPgserverLongDir covers the /tmp socket fallback, an unexpected exit and
// recovery from the stale postmaster.pid it leaves.
func TestPgserverLongDir(t *testing.T) {
	dir := filepath.Join(testDir(t), strings.Repeat("long-directory-name-", 5))
	s := startServer(t, dir)
	sock := s.SocketDir()
	if !strings.HasPrefix(sock, "/tmp/mayfly-pg-") {
		t.Fatalf("SocketDir() = %q, want a /tmp/mayfly-pg-* fallback", sock)
	}
	conn := connect(t, s, "mayfly")
	if _, err := conn.Exec(t.Context(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())

	if err := syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after postgres was killed")
	}
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), "exited unexpectedly") {
		t.Errorf("Err after kill = %v, want an unexpected exit", err)
	}
	if _, err := os.Stat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temporary socket dir %s still there after exit: %v", sock, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "postmaster.pid")); err != nil {
		t.Fatalf("want a stale postmaster.pid after kill: %v", err)
	}

	s = startServer(t, dir)
	conn = connect(t, s, "mayfly")
	if _, err := conn.Exec(t.Context(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}

func TestPgserverFindBinDir(t *testing.T) {
	dir, err := FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	if !hasBinaries(dir) {
		t.Errorf("FindBinDir() = %q, which lacks initdb or postgres", dir)
	}

	t.Setenv("MAYFLY_PG_BINDIR", dir)
	if got, err := FindBinDir(); got != dir || err != nil {
		t.Errorf("FindBinDir() with MAYFLY_PG_BINDIR=%s = %q, %v", dir, got, err)
	}
	t.Setenv("MAYFLY_PG_BINDIR", t.TempDir())
	if _, err := FindBinDir(); !errors.Is(err, ErrNoBinaries) {
		t.Errorf("FindBinDir() with an empty MAYFLY_PG_BINDIR: err = %v, want ErrNoBinaries", err)
	}
}

func TestPgserverNoBinaries(t *testing.T) {
	_, err := Start(t.Context(), Config{Dir: testDir(t), BinDir: t.TempDir()})
	if !errors.Is(err, ErrNoBinaries) {
		t.Fatalf("Start with an empty BinDir: err = %v, want ErrNoBinaries", err)
	}
	if !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Errorf("error %q does not say what to install", err)
	}
}

func TestPgserverRequiresDir(t *testing.T) {
	if _, err := Start(t.Context(), Config{}); err == nil {
		t.Fatal("Start without Dir succeeded")
	}
}

func TestPgserverTraversable(t *testing.T) {
	base := testDir(t)
	closed := filepath.Join(base, "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	// A user that is neither owner nor group of the test directories.
	own := &owner{name: "nobody-here", uid: 54321, gid: 54321}
	if err := checkTraversable(filepath.Join(base, "open"), own); err != nil {
		t.Errorf("checkTraversable under a 0755 dir: %v", err)
	}
	err := checkTraversable(filepath.Join(closed, "pg"), own)
	if err == nil || !strings.Contains(err.Error(), "chmod o+x "+closed) {
		t.Errorf("checkTraversable under a 0700 dir: err = %v, want the chmod o+x fix for %s", err, closed)
	}
}

// TestPgserverRootIn0700Home starts a cluster as root under a 0700
// directory (a clone inside root's home): Start keeps it in RelocateDir,
// leaves the directory's mode alone and finds the same cluster again.
func TestPgserverRootIn0700Home(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the postgres user is only used when running as root")
	}
	home := filepath.Join(testDir(t), "root-home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	reloc := testDir(t)
	dir := filepath.Join(home, "mayfly", "mayfly-data", "pg")
	start := func() *Server {
		s, err := Start(t.Context(), Config{Dir: dir, RelocateDir: reloc, Logger: testLogger(t)})
		if err != nil {
			t.Fatalf("Start as root under a 0700 dir: %v", err)
		}
		return s
	}
	s := start()
	first := systemID(t, connect(t, s, "mayfly"))
	target, err := os.Readlink(dir)
	if err != nil || filepath.Dir(target) != reloc {
		t.Errorf("%s: link to %q, %v; want a symlink into %s", dir, target, err, reloc)
	}
	if !strings.HasPrefix(s.DataDir(), reloc+"/") {
		t.Errorf("DataDir %s, want it under %s", s.DataDir(), reloc)
	}
	stopServer(t, s)
	if fi, err := os.Stat(home); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("home after Start: %v, %v; want mode 0700 unchanged", fi.Mode(), err)
	}
	s = start()
	t.Cleanup(func() { stopServer(t, s) })
	if again := systemID(t, connect(t, s, "mayfly")); again != first {
		t.Errorf("second start found cluster %d, want the first one %d", again, first)
	}

	// A cluster already inside an unreachable directory is not moved.
	stuck := filepath.Join(home, "stuck")
	if err := os.MkdirAll(filepath.Join(stuck, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stuck, "data", "PG_VERSION"), []byte("16\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Start(t.Context(), Config{Dir: stuck, RelocateDir: reloc})
	if err == nil || !strings.Contains(err.Error(), "chmod o+x "+home) {
		t.Errorf("Start on a cluster inside a 0700 dir: err = %v, want the chmod o+x fix", err)
	}
}

func TestPgserverCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"15", "15", 0},
		{"9.6", "15", -1},
		{"16", "15", 1},
		{"10", "9.6", 1},
		{"16.1", "16", 1},
		{"x", "9", -1},
	}
	for _, tt := range tests {
		if got := compareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestPgserverURLEscaping(t *testing.T) {
	s := &Server{sockDir: "/tmp/a dir/run"}
	cfg, err := pgx.ParseConfig(s.URL("my db"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "/tmp/a dir/run" || cfg.Database != "my db" || cfg.User != "mayfly" {
		t.Errorf("ParseConfig(%q) = host %q, database %q, user %q", s.URL("my db"), cfg.Host, cfg.Database, cfg.User)
	}
}

// TestPgserverParentDeath checks that postgres shuts down when the process
// that started it dies without calling Stop: a helper process (this test
// binary, re-run) starts a server and is then killed.
func TestPgserverParentDeath(t *testing.T) {
	if dir := os.Getenv("PGSERVER_HELPER_DIR"); dir != "" {
		runHelper(dir)
		return
	}
	dir := testDir(t)
	cmd := startHelper(t, dir)
	pidFile := filepath.Join(dir, "data", "postmaster.pid")
	if _, err := os.Stat(pidFile); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := os.Stat(pidFile)
		if errors.Is(err, fs.ErrNotExist) {
			return // postgres shut down and removed its lock file
		}
		if time.Now().After(deadline) {
			t.Fatalf("postgres still running 10 s after its parent died (%s: %v)", pidFile, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPgserverRestartAfterParentKilled starts a server in a helper process,
// kills the helper and at once starts a server on the same directory, as a
// supervisor restarting a crashed mayflyd does: Start waits for the
// orphaned postgres to finish shutting down instead of failing.
func TestPgserverRestartAfterParentKilled(t *testing.T) {
	dir := testDir(t)
	cmd := startHelper(t, dir)
	cmd.Process.Kill()
	cmd.Wait()
	s := startServer(t, dir)
	var one int
	if err := connect(t, s, "mayfly").QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Errorf("query after restart: %d, %v", one, err)
	}
}

// startHelper runs this test binary as a helper process that starts a
// server on dir, and returns once the server is ready.
func startHelper(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPgserverParentDeath$")
	cmd.Env = append(os.Environ(), "PGSERVER_HELPER_DIR="+dir)
	cmd.Stderr = t.Output()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper said %q, %v; want ready", line, err)
	}
	return cmd
}

// runHelper starts a server on dir, reports "ready" on stdout and waits to
// be killed.
func runHelper(dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Start(ctx, Config{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	<-s.Done()
	os.Exit(1)
}
