package pgserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// predecessorGrace is how long Start lets an orphaned postmaster finish
	// the fast shutdown its parent-death signal began before it sends
	// SIGQUIT; SIGKILL follows quitTimeout later.
	predecessorGrace = 10 * time.Second
	// launcherFile, in Dir, holds the pid of the process whose Start
	// launched the cluster's current postmaster.
	launcherFile = "launcher.pid"
)

// awaitPredecessor waits until no postmaster of a previous, dead owner runs
// on the cluster: a supervisor restarting a killed mayflyd at once finds its
// postgres still shutting down (it got SIGINT from the parent-death signal).
// It returns at once when the lock file names no live postgres of this
// cluster, and ErrAlreadyRunning when the postmaster's launcher is alive.
// An orphan still running after predecessorGrace gets SIGQUIT, then
// SIGKILL. ctx bounds the wait.
func (s *Server) awaitPredecessor(ctx context.Context, dir string) error {
	pid := s.lockPID()
	if pid == 0 {
		return nil
	}
	launcher := readPID(filepath.Join(dir, launcherFile))
	if launcher != 0 && parentPID(pid) == launcher {
		return fmt.Errorf("%w: %s (postgres pid %d, started by running process %d)", ErrAlreadyRunning, s.dataDir, pid, launcher)
	}
	s.log.Info("waiting for the previous postgres on this cluster to stop", "pid", pid, "data_dir", s.dataDir)
	start := time.Now()
	quit, kill := start.Add(predecessorGrace), start.Add(predecessorGrace+quitTimeout)
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for pid = s.lockPID(); pid != 0; pid = s.lockPID() {
		now := time.Now()
		switch {
		case !quit.IsZero() && now.After(quit):
			s.log.Warn("previous postgres did not stop, sending SIGQUIT", "pid", pid)
			_ = syscall.Kill(pid, syscall.SIGQUIT)
			quit = time.Time{}
		case quit.IsZero() && !kill.IsZero() && now.After(kill):
			s.log.Warn("previous postgres did not quit, sending SIGKILL", "pid", pid)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			kill = time.Time{}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the previous postgres (pid %d) to stop: %w", pid, ctx.Err())
		case <-t.C:
		}
	}
	s.log.Info("previous postgres stopped", "waited", time.Since(start).Round(time.Millisecond))
	return nil
}

// lockPID returns the pid in the cluster's postmaster.pid when it is a
// running postmaster of this cluster, and 0 otherwise. A postmaster that
// died unreaped (a zombie, when pid 1 does not reap orphans) cannot remove
// its lock file, and postgres counts a zombie as running, so lockPID
// removes the file then.
func (s *Server) lockPID() int {
	lock := filepath.Join(s.dataDir, "postmaster.pid")
	pid := readPID(lock)
	if pid <= 0 {
		return 0
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0 // not running
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), "\x00"+s.dataDir+"\x00") {
		return 0 // another process reusing the pid: postgres judges the stale file
	}
	if state, _ := statField(stat, 3); state == "Z" {
		if err := os.Remove(lock); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("remove lock file of a dead postgres", "file", lock, "err", err)
		}
		return 0
	}
	return pid
}

// readPID returns the number on the first line of file, or 0.
func readPID(file string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0
	}
	return pid
}

// parentPID returns the parent of process pid, or 0.
func parentPID(pid int) int {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	v, _ := statField(stat, 4)
	ppid, _ := strconv.Atoi(v)
	return ppid
}

// statField returns field n (1-based, as in proc(5)) of a /proc/PID/stat
// line; the command name (field 2) may hold spaces, so fields are counted
// after its closing parenthesis.
func statField(stat []byte, n int) (string, bool) {
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 || n < 3 {
		return "", false
	}
	f := strings.Fields(string(stat[i+1:]))
	if n-3 >= len(f) {
		return "", false
	}
	return f[n-3], true
}

// writeLauncher records this process as the launcher of the cluster's
// postmaster.
func writeLauncher(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, launcherFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return fmt.Errorf("record launcher: %w", err)
	}
	return nil
}
