// Package storetest gives tests a real Postgres: one private server per test
// binary (started by [Main] from the machine's PostgreSQL binaries, on a unix
// socket), and a fresh, fully migrated database per test ([New], [NewURL]),
// cloned from a migrated template so it costs milliseconds.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }
//
// or, to also fail on goroutines the tests leave behind,
// os.Exit(storetest.MainNoLeaks(m)).
//
// Tests never skip for want of Postgres: without the binaries Main fails
// with the install instruction. The helpers are safe for parallel tests.
package storetest

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/mayfly-im/mayfly/store"
	"github.com/mayfly-im/mayfly/store/pgserver"
)

const template = "mayfly_template"

// server is set by Main before any test runs and read-only afterwards.
var (
	server *pgserver.Server
	seq    atomic.Int64
)

// Main starts the private Postgres, migrates a template database, runs the
// tests and stops Postgres. It returns the exit code for os.Exit.
func Main(m *testing.M) int {
	dir, err := os.MkdirTemp("", "mayfly-storetest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "storetest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Postgres runs as the postgres user when tests run as root; it must be
	// able to reach its directory.
	os.Chmod(dir, 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	server, err = pgserver.Start(ctx, pgserver.Config{Dir: dir, Database: template})
	if err != nil {
		fmt.Fprintln(os.Stderr, "storetest: start postgres:", err)
		return 1
	}
	defer server.Stop(context.Background())
	if err := migrateTemplate(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "storetest:", err)
		return 1
	}
	return m.Run()
}

func migrateTemplate(ctx context.Context) error {
	db, err := store.Open(ctx, server.URL(template), nil)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Migrate(ctx)
}

// MainNoLeaks is Main that also fails the run when goroutines are left
// once the tests passed and Postgres stopped (goleak; opts name the
// goroutines a package knows to outlive its tests). It returns the exit
// code for os.Exit.
func MainNoLeaks(m *testing.M, opts ...goleak.Option) int {
	code := Main(m)
	if code != 0 {
		return code
	}
	if err := goleak.Find(opts...); err != nil {
		fmt.Fprintln(os.Stderr, "storetest: goroutines left after the tests:", err)
		return 1
	}
	return 0
}

// NewURL creates a fresh migrated database for t and returns its URL.
func NewURL(t testing.TB) string {
	t.Helper()
	if server == nil {
		t.Fatal("storetest: call storetest.Main from TestMain")
	}
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, server.URL("postgres"))
	if err != nil {
		t.Fatalf("storetest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+template); err != nil {
		t.Fatalf("storetest: create database: %v", err)
	}
	return server.URL(name)
}

// New returns a DB on a fresh migrated database, closed by t.Cleanup.
func New(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), NewURL(t), nil)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(db.Close)
	return db
}

// Server returns the running private Postgres (for tests that need its
// socket or want to look at its files).
func Server() *pgserver.Server { return server }
