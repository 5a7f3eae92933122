package store_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/store"
	"github.com/mayfly-im/mayfly/store/storetest"
)

// TestStoreUnavailable provokes each way the database goes away during a
// failover (docs/dr.md) and checks schema.DependencyDown sees the errors
// pgx returns for it, so clients get unavailable and repeat, and that
// ordinary statement errors are not mistaken for it.
func TestStoreUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("nothing listens", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		_, err = store.Open(ctx, "postgres://mayfly@"+addr+"/mayfly?connect_timeout=2", nil)
		if err == nil || !schema.DependencyDown(err) {
			t.Fatalf("open with no server: DependencyDown(%v) = false, want true", err)
		}
	})

	db := storetest.New(t)
	t.Run("connection terminated", func(t *testing.T) {
		c, err := db.Pool().Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
		var pid int
		if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Pool().Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
			t.Fatal(err)
		}
		_, err = c.Exec(ctx, "SELECT 1")
		if err == nil || !schema.DependencyDown(err) {
			t.Fatalf("statement on a terminated connection: DependencyDown(%v) = false, want true", err)
		}
	})

	t.Run("read-only server", func(t *testing.T) {
		tx, err := db.Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx) //nolint:errcheck // the transaction failed on purpose
		if _, err := tx.Exec(ctx, "SET TRANSACTION READ ONLY"); err != nil {
			t.Fatal(err)
		}
		_, err = tx.Exec(ctx, "CREATE TABLE unavailable_probe (x int)")
		if err == nil || !schema.DependencyDown(err) {
			t.Fatalf("write in a read-only transaction: DependencyDown(%v) = false, want true", err)
		}
	})

	t.Run("ordinary errors", func(t *testing.T) {
		_, err := db.Pool().Exec(ctx, "SELECT no_such_column FROM users")
		if err == nil || schema.DependencyDown(err) {
			t.Fatalf("undefined column: DependencyDown(%v) = true, want false", err)
		}
		if schema.DependencyDown(context.Canceled) || schema.DependencyDown(store.ErrNotFound) || schema.DependencyDown(nil) {
			t.Fatal("DependencyDown is true for a cancelled request, not found or nil")
		}
	})
}
