package schema_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mayfly-im/mayfly/schema"
)

// retryable is an error that says it is safe to retry, as pgconn's "conn
// closed" and failed-before-sending errors do.
type retryable struct{ safe bool }

func (r retryable) Error() string     { return "retryable" }
func (r retryable) SafeToRetry() bool { return r.safe }

// refusedPostgres returns the error pgx gives for a Postgres that refuses
// connections: a real dial to a closed port on 127.0.0.1.
func refusedPostgres(t *testing.T) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, "postgres://mayfly@"+addr+"/mayfly?sslmode=disable&connect_timeout=5")
	if err == nil {
		conn.Close(ctx)
		t.Fatal("connected to a closed port")
	}
	return err
}

// TestSchemaClientError: ClientError, the one mapping from an error to a
// client code, keeps client errors, answers unavailable (temporary) for a
// dependency that did not answer and internal for anything else; fault is
// set exactly when err carries no client error.
func TestSchemaClientError(t *testing.T) {
	notFound := schema.Errorf(schema.CodeNotFound, "no such user")
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, deadlineErr := pgx.Connect(expired, "postgres://mayfly@127.0.0.1:1/mayfly")
	for _, tc := range []struct {
		name  string
		err   error
		code  schema.Code
		fault bool
	}{
		{"client error", notFound, schema.CodeNotFound, false},
		{"wrapped client error", fmt.Errorf("lookup: %w", notFound), schema.CodeNotFound, false},
		{"service's internal error", schema.Errorf(schema.CodeInternal, "internal error"), schema.CodeInternal, false},
		{"service's unavailable error", schema.Errorf(schema.CodeUnavailable, "x"), schema.CodeUnavailable, false},
		{"plain error", errors.New("boom"), schema.CodeInternal, true},
		{"postgres refuses connections", fmt.Errorf("claim prekeys: %w", refusedPostgres(t)), schema.CodeUnavailable, true},
		{"connect past the deadline", deadlineErr, schema.CodeUnavailable, true},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), schema.CodeUnavailable, true},
		{"connection lost mid-answer", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), schema.CodeUnavailable, true},
		{"network error", &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}, schema.CodeUnavailable, true},
		{"safe to retry", fmt.Errorf("query: %w", retryable{safe: true}), schema.CodeUnavailable, true},
		{"not safe to retry", retryable{safe: false}, schema.CodeInternal, true},
		{"admin shutdown (failover)", &pgconn.PgError{Code: "57P01"}, schema.CodeUnavailable, true},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, schema.CodeUnavailable, true},
		{"starting up", &pgconn.PgError{Code: "57P03"}, schema.CodeUnavailable, true},
		{"read-only standby", fmt.Errorf("insert: %w", &pgconn.PgError{Code: "25006"}), schema.CodeUnavailable, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, schema.CodeUnavailable, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, schema.CodeUnavailable, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, schema.CodeInternal, true},
		{"syntax error", &pgconn.PgError{Code: "42601"}, schema.CodeInternal, true},
		{"canceled by the caller", context.Canceled, schema.CodeInternal, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, fault := schema.ClientError(tc.err)
			if e.Code != tc.code || fault != tc.fault {
				t.Fatalf("ClientError(%v) = %s, fault %v; want %s, fault %v", tc.err, e.Code, fault, tc.code, tc.fault)
			}
			if e.Temporary != e.Code.Temporary() {
				t.Fatalf("%s answered with temporary %v", e.Code, e.Temporary)
			}
			if tc.fault && (e.Message == tc.err.Error() || len(e.Message) > 80) {
				t.Fatalf("internal text reaches the client: %q", e.Message)
			}
			if got := schema.AsError(tc.err); got.Code != e.Code {
				t.Fatalf("AsError = %s, ClientError = %s", got.Code, e.Code)
			}
		})
	}
	if e, fault := schema.ClientError(nil); e.Code != schema.CodeInternal || !fault {
		t.Fatalf("ClientError(nil) = %s, %v", e.Code, fault)
	}
}
