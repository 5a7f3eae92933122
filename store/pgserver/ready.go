package pgserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	pollInterval   = 50 * time.Millisecond
	connectTimeout = time.Second // per attempt while waiting for readiness
)

// ready waits until the server accepts connections, then makes sure
// database exists. It fails when postgres exits, ctx ends or 30 s pass.
func (s *Server) ready(ctx context.Context, database string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	conn, err := s.connectWhenReady(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return ensureDatabase(ctx, conn, database)
}

func (s *Server) connectWhenReady(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(s.URL("postgres"))
	if err != nil {
		return nil, fmt.Errorf("parse own url: %w", err)
	}
	cfg.ConnectTimeout = connectTimeout
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	err = errors.New("server not started yet")
	for {
		// Connect only once our child holds the data directory's lock file:
		// until then the socket may belong to another server on the same Dir.
		if s.ownsLockFile() {
			var conn *pgx.Conn
			if conn, err = pgx.ConnectConfig(ctx, cfg); err == nil {
				return conn, nil
			}
		}
		select {
		case <-s.done:
			return nil, s.startupExitError()
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for postgres to accept connections: %w (last attempt: %v); last log lines:\n%s",
				ctx.Err(), err, s.logTail.String())
		case <-t.C:
		}
	}
}

// ownsLockFile reports whether postmaster.pid names our child, which
// postgres writes before it creates its socket.
func (s *Server) ownsLockFile() bool {
	b, err := os.ReadFile(filepath.Join(s.dataDir, "postmaster.pid"))
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(first) == strconv.Itoa(s.cmd.Process.Pid)
}

// startupExitError explains why postgres exited during startup. done must
// be closed.
func (s *Server) startupExitError() error {
	tail := s.logTail.String()
	if strings.Contains(tail, `lock file "postmaster.pid" already exists`) {
		return fmt.Errorf("%w: %s; if no server is running (a stale lock file, e.g. after a container restart reused its process id), remove %s/postmaster.pid; last log lines:\n%s",
			ErrAlreadyRunning, s.dataDir, s.dataDir, tail)
	}
	return s.exitErr
}

// ensureDatabase creates database unless it exists.
func ensureDatabase(ctx context.Context, conn *pgx.Conn, database string) error {
	var exists bool
	err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", database).Scan(&exists)
	if err != nil {
		return fmt.Errorf("check database %q: %w", database, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{database}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database
		err = nil
	}
	if err != nil {
		return fmt.Errorf("create database %q: %w", database, err)
	}
	return nil
}
