package store

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unavailable reports whether err means the database could not be reached
// or could not take the statement right now: no server accepted a
// connection (during a promotion, multi-host URLs find none that is
// read-write), a pooled connection died with its server, the server is
// shutting down or starting, or it has become read-only. A repeat a few
// seconds later may succeed; the request's outcome is unknown if the
// connection died after the statement was sent.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var ce *pgconn.ConnectError
	var pe *pgconn.PgError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), pgconn.SafeToRetry(err), pgconn.Timeout(err):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return true
	case errors.As(err, &pe):
		// Class 08 connection exception; 57P01-03 shutdown, crash, starting;
		// 25006 read-only transaction (a standby, or a demoted primary).
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" ||
			pe.Code == "57P03" || pe.Code == "25006"
	}
	return false
}
