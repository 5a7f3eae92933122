// Package pgserver runs a private PostgreSQL server from the machine's
// PostgreSQL binaries, on a unix socket only.
//
// [Start] initializes a cluster under Config.Dir on first use (initdb into
// Dir/data, superuser "mayfly", trust authentication, UTF8, C locale), then
// runs postgres as a child process that listens on no TCP address, only on a
// unix socket in a 0700 directory (Dir/run). Trust authentication is safe for
// that reason: only the owner of the socket directory (and root) can connect.
// [Server.Stop] shuts it down (fast shutdown); if this process dies first, the
// kernel sends postgres SIGINT (parent-death signal), so no server is left
// behind. The server is in its own process group, so a terminal Ctrl-C reaches
// only this process, which then stops postgres itself.
//
// Logs: postgres writes its log to stderr; each line goes to Config.Logger at
// debug level (message "postgres log", key "line"). The last lines are kept
// and included in the error when postgres fails to start or exits on its own.
//
// Running as root: PostgreSQL refuses to run as root, so when the process is
// root, initdb and postgres run as Config.RunAs (default "postgres"), Dir is
// chowned to that user recursively and made 0700, and every parent directory
// of Dir must be traversable by that user (others have x, or the user owns
// it). When a parent is not (a clone inside root's 0700 home) and Dir holds
// no cluster yet, Start makes Dir a symlink to a fresh directory
// Config.RelocateDir/pg-* (default /var/lib/mayfly) and keeps the cluster
// there; later starts follow the symlink. A cluster already in an
// unreachable Dir is never moved: Start fails naming the directory and the
// fix.
//
// Socket path length: a unix socket path must fit in 108 bytes. When
// Dir/run/.s.PGSQL.5432 would be 100 bytes or longer, the socket goes into a
// fresh /tmp/mayfly-pg-* directory instead, removed when the server exits.
//
// Binaries: [FindBinDir] locates initdb and postgres; it is the one place in
// this package that reads the environment ($MAYFLY_PG_BINDIR, $PATH). When
// none are found the error is [ErrNoBinaries], which says what to install.
//
// For test authors: run one cluster per test binary (initdb takes about two
// seconds) and give each test its own database or schema. Do not use
// t.TempDir() for Dir when tests may run as root: its parents are mode 0700
// and owned by root, so the postgres user cannot reach Dir and Start fails.
// Use os.MkdirTemp("", "...") followed by os.Chmod(dir, 0o755), and remove it
// in t.Cleanup after Stop. Do not skip when the binaries are missing; fail
// with the ErrNoBinaries message so the fix is visible.
//
// Restarts: when the process that started a server dies (kill -9), postgres
// gets SIGINT and shuts down, which takes a moment. A Start on the same Dir
// meanwhile waits for it (bounded by ctx; after 10 s it sends SIGQUIT, then
// SIGKILL) instead of failing, unless the process that launched it (pid in
// Dir/launcher.pid) still runs: then it fails with [ErrAlreadyRunning].
//
// Concurrency: Start, Stop, URL, SocketDir, Done and Err may be called from
// any goroutine; Stop may be called concurrently and more than once. One
// Server owns one data directory; a second Start on a directory whose server
// is running fails with [ErrAlreadyRunning]. Start and Stop block; every
// goroutine Start creates ends by the time Done is closed.
package pgserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Config configures Start. Zero values mean the documented defaults.
type Config struct {
	// Dir is the root directory, required. The cluster lives in Dir/data and
	// the socket in Dir/run (see the package doc for the length fallback).
	// It is created if missing and made mode 0700.
	Dir string
	// BinDir is the directory holding initdb and postgres. Default: the
	// result of FindBinDir.
	BinDir string
	// Logger receives the server's log lines at debug level and lifecycle
	// events. Default: discard.
	Logger *slog.Logger
	// RunAs is the OS user initdb and postgres run as when this process is
	// root. Default "postgres". Ignored when not root.
	RunAs string
	// Database is created if it does not exist yet. Default "mayfly".
	Database string
	// RelocateDir is where the cluster is kept instead when this process is
	// root and RunAs cannot reach Dir (see the package doc); default
	// DefaultRelocateDir. Ignored when not root.
	RelocateDir string
}

// ErrNoBinaries is returned (wrapped) by FindBinDir and Start when initdb and
// postgres cannot be found.
var ErrNoBinaries = errors.New("pgserver: no PostgreSQL server binaries found (initdb, postgres); install them with: apt-get install postgresql (Debian/Ubuntu), or pass a database URL")

// ErrAlreadyRunning is returned (wrapped) by Start when another postmaster is
// running on the same data directory.
var ErrAlreadyRunning = errors.New("pgserver: another PostgreSQL server is already running on this data directory")

const (
	superuser     = "mayfly"
	port          = "5432"
	socketName    = ".s.PGSQL." + port
	maxSocketPath = 100 // sun_path is 108 bytes including the NUL; keep a margin
	readyTimeout  = 30 * time.Second
	quitTimeout   = 5 * time.Second // after SIGQUIT, before SIGKILL
	pipeTimeout   = 2 * time.Second // for orphaned children holding stderr
)

// Server is a running PostgreSQL server started by Start.
type Server struct {
	log      *slog.Logger
	dataDir  string
	sockDir  string
	tempSock bool // sockDir was made by Start and is removed on exit
	cmd      *exec.Cmd
	logTail  *logTail
	started  atomic.Bool // Start succeeded
	stopping atomic.Bool // Stop (or a failed Start) asked it to exit
	done     chan struct{}
	exitErr  error // written before done is closed
}

// Start starts a PostgreSQL server for cfg, running initdb first if
// Dir/data holds no cluster yet, and returns once the server accepts
// connections and cfg.Database exists. ctx bounds startup only (at most 30 s
// of waiting for readiness); cancelling it later does not stop the server.
// The caller owns the Server and must call Stop.
//
// Errors wrap ErrNoBinaries when the binaries are missing and
// ErrAlreadyRunning when another server runs on Dir; when postgres exits
// during startup the error includes its last log lines.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	s, err := start(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	return s, nil
}

func start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("config: Dir is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	database := cfg.Database
	if database == "" {
		database = "mayfly"
	}
	binDir, err := resolveBinDir(cfg.BinDir)
	if err != nil {
		return nil, err
	}
	own, err := lookupOwner(cfg.RunAs)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", cfg.Dir, err)
	}
	if own != nil {
		if err := relocate(log, dir, cfg.RelocateDir, own); err != nil {
			return nil, err
		}
	}
	if dir, err = prepareDir(dir, own); err != nil {
		return nil, err
	}
	dataDir := filepath.Join(dir, "data")
	if err := initCluster(ctx, log, binDir, dir, own); err != nil {
		return nil, err
	}
	sockDir, temp, err := socketDir(dir, own)
	if err != nil {
		return nil, err
	}
	s := &Server{
		log:      log,
		dataDir:  dataDir,
		sockDir:  sockDir,
		tempSock: temp,
		logTail:  newLogTail(log),
		done:     make(chan struct{}),
	}
	if err := s.awaitPredecessor(ctx, dir); err != nil {
		if temp {
			os.RemoveAll(sockDir)
		}
		return nil, err
	}
	if err := writeLauncher(dir); err != nil {
		return nil, err
	}
	if err := s.launch(binDir, dir, own); err != nil {
		if temp {
			os.RemoveAll(sockDir)
		}
		return nil, err
	}
	if err := s.ready(ctx, database); err != nil {
		s.abort()
		return nil, err
	}
	s.started.Store(true)
	log.Info("postgres started", "data_dir", dataDir, "socket_dir", sockDir, "pid", s.cmd.Process.Pid)
	return s, nil
}

// resolveBinDir returns dir if it holds the binaries, or FindBinDir's
// answer when dir is empty.
func resolveBinDir(dir string) (string, error) {
	if dir == "" {
		return FindBinDir()
	}
	if !hasBinaries(dir) {
		return "", fmt.Errorf("look in %s: %w", dir, ErrNoBinaries)
	}
	return dir, nil
}

// initCluster runs initdb unless dir/data already holds a cluster. initdb
// writes into dir/data.init, renamed to dir/data when complete, so an
// interrupted initdb never leaves a half-made cluster that looks usable.
func initCluster(ctx context.Context, log *slog.Logger, binDir, dir string, own *owner) error {
	dataDir := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("check cluster: %w", err)
	}
	tmp := filepath.Join(dir, "data.init")
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove leftover %s: %w", tmp, err)
	}
	log.Info("initializing postgres cluster", "data_dir", dataDir)
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"),
		"-D", tmp, "-U", superuser, "--auth=trust", "--encoding=UTF8", "--locale=C")
	cmd.Dir = dir
	cmd.SysProcAttr = procAttr(own, syscall.SIGKILL)
	cmd.WaitDelay = pipeTimeout
	out, err := cmd.CombinedOutput()
	log.Debug("initdb output", "output", string(out))
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("initdb: %w: %s", err, lastLines(string(out), 10))
	}
	if err := os.Rename(tmp, dataDir); err != nil {
		return fmt.Errorf("move new cluster into place (is %s a non-empty directory without a cluster?): %w", dataDir, err)
	}
	return nil
}

// socketDir returns the directory for the server's socket: dir/run, or a new
// temporary directory (temp true) when that path would be too long.
func socketDir(dir string, own *owner) (path string, temp bool, err error) {
	run := filepath.Join(dir, "run")
	if len(run)+len("/"+socketName) < maxSocketPath {
		if err := mkdirOwned(run, own); err != nil {
			return "", false, err
		}
		return run, false, nil
	}
	tmp, err := os.MkdirTemp("/tmp", "mayfly-pg-")
	if err != nil {
		return "", false, fmt.Errorf("make socket directory: %w", err)
	}
	if err := mkdirOwned(tmp, own); err != nil {
		os.RemoveAll(tmp)
		return "", false, err
	}
	return tmp, true, nil
}

// procAttr returns the attributes for a child: its own process group, the
// given parent-death signal, and the owner's credentials when running as
// root. Go applies Pdeathsig after the credential change, which would
// otherwise clear it.
func procAttr(own *owner, deathSig syscall.Signal) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig}
	if own != nil {
		attr.Credential = &syscall.Credential{Uid: own.uid, Gid: own.gid}
	}
	return attr
}

// launch starts postgres. The child is started and waited for by one
// goroutine locked to its OS thread: the parent-death signal fires when the
// thread that forked the child exits, so that thread must live as long as the
// child does.
func (s *Server) launch(binDir, dir string, own *owner) error {
	quoted := `"` + strings.ReplaceAll(s.sockDir, `"`, `""`) + `"`
	s.cmd = exec.Command(filepath.Join(binDir, "postgres"),
		"-D", s.dataDir,
		"-c", "listen_addresses=",
		"-c", "port="+port,
		"-c", "unix_socket_directories="+quoted,
		"-c", "unix_socket_permissions=0700",
		"-c", "fsync=on",
		"-c", "log_destination=stderr",
		"-c", "logging_collector=off",
		"-c", "log_line_prefix=",
	)
	s.cmd.Dir = dir
	s.cmd.Stdout = s.logTail
	s.cmd.Stderr = s.logTail
	s.cmd.WaitDelay = pipeTimeout
	s.cmd.SysProcAttr = procAttr(own, syscall.SIGINT)

	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := s.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		s.finish(s.cmd.Wait())
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("run postgres: %w", err)
	}
	return nil
}

// finish records how postgres exited, removes a temporary socket directory
// and closes done. It runs once, on the goroutine that waited for the child.
func (s *Server) finish(err error) {
	s.logTail.flush()
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil // exited cleanly; an orphaned child held stderr open
	}
	if !s.stopping.Load() {
		if err == nil {
			err = errors.New("exit status 0")
		}
		s.exitErr = fmt.Errorf("postgres exited unexpectedly: %w; last log lines:\n%s", err, s.logTail.String())
		if s.started.Load() { // a failed Start reports it in its error instead
			s.log.Error("postgres exited unexpectedly", "err", err, "data_dir", s.dataDir)
		}
	} else {
		s.log.Info("postgres stopped", "data_dir", s.dataDir)
	}
	if s.tempSock {
		if err := os.RemoveAll(s.sockDir); err != nil {
			s.log.Warn("remove socket directory", "dir", s.sockDir, "err", err)
		}
	}
	close(s.done)
}

// URL returns a connection URL for database on this server, for example
// "postgres://mayfly@/mayfly?host=/srv/data/pg/run&sslmode=disable". It
// does not check that the database exists.
func (s *Server) URL(database string) string {
	return "postgres://" + superuser + "@/" + escapeURI(database, false) +
		"?host=" + escapeURI(s.sockDir, true) + "&sslmode=disable"
}

// escapeURI percent-encodes every byte of s but the unreserved characters
// and, with keepSlash, "/" (legal in a query; keeps a path readable). pgx,
// like libpq, decodes only percent escapes: "+" stays "+".
func escapeURI(s string, keepSlash bool) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := range len(s) {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '/' && keepSlash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// SocketDir returns the absolute directory holding the server's unix socket.
func (s *Server) SocketDir() string { return s.sockDir }

// DataDir returns the absolute directory of the cluster's files (Dir/data),
// for tests that inspect what Postgres wrote.
func (s *Server) DataDir() string { return s.dataDir }

// Done returns a channel closed once postgres has exited, whether stopped by
// Stop or on its own.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err returns nil while postgres runs and after Stop shut it down. After
// postgres exited on its own it returns an error with the exit status and
// the last log lines.
func (s *Server) Err() error {
	select {
	case <-s.done:
		return s.exitErr
	default:
		return nil
	}
}

// Stop shuts postgres down and waits for it to exit. It sends SIGINT (fast
// shutdown: sessions are disconnected, data is checkpointed). If ctx expires
// first it sends SIGQUIT (immediate shutdown, recovery on next start), then
// SIGKILL to the process group after 5 s more, waits for the exit and returns
// ctx's error wrapped. Stop removes a temporary socket directory Start made.
// It is safe to call more than once and concurrently; calls after the server
// has exited return nil.
func (s *Server) Stop(ctx context.Context) error {
	if s.stopping.CompareAndSwap(false, true) {
		s.signal(syscall.SIGINT)
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
	}
	s.log.Warn("postgres did not stop in time, sending SIGQUIT", "data_dir", s.dataDir)
	s.signal(syscall.SIGQUIT)
	t := time.NewTimer(quitTimeout)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
		s.kill()
		<-s.done
	}
	return fmt.Errorf("stop postgres: %w", ctx.Err())
}

// abort kills a server that failed to become ready and waits for it.
func (s *Server) abort() {
	s.stopping.Store(true)
	s.signal(syscall.SIGQUIT)
	t := time.NewTimer(quitTimeout)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
		s.kill()
		<-s.done
	}
}

// signal sends sig to the postmaster unless it has exited.
func (s *Server) signal(sig os.Signal) {
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Signal(sig) // fails only when it has just exited
	}
}

// kill sends SIGKILL to the postmaster's process group, which holds its
// backends too, unless it has exited.
func (s *Server) kill() {
	select {
	case <-s.done:
	default:
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	}
}
