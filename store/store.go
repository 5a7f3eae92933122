// Package store keeps Mayfly's durable state in Postgres through pgx:
// accounts, devices, login challenges, refresh tokens and the friend graph
// (friends.go). It also applies its SQL migrations (migrations/NNN_*.sql).
//
// A [DB] is safe for concurrent use by many goroutines; every method takes a
// context and runs its statements on the shared pool. Multi-statement changes
// run in one transaction, so a failed request never leaves partial state.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
)

// Conditions callers branch on.
var (
	ErrNotFound         = errors.New("store: not found")
	ErrHandleTaken      = errors.New("store: handle taken")
	ErrChallengeUsed    = errors.New("store: challenge already used")
	ErrChallengeExpired = errors.New("store: challenge expired")
	ErrRefreshInvalid   = errors.New("store: refresh token invalid")
	ErrRefreshReused    = errors.New("store: refresh token reused")
	ErrDeviceRevoked    = errors.New("store: device revoked")
	ErrStaleList        = errors.New("store: device list version not above the stored one")
	ErrListVersionJump  = errors.New("store: device list version too far above the stored one")
	ErrKeyTaken         = errors.New("store: device key listed by another user")
	ErrPrekeyLimit      = errors.New("store: too many unclaimed one-time prekeys")
	// ErrSchemaTooNew means the database was migrated by a newer Mayfly than
	// this binary; running against it could corrupt data, so it is refused.
	ErrSchemaTooNew = errors.New("store: database schema is newer than this binary")
)

// versionTable is where tern records the applied migration number.
const versionTable = "mayfly_schema_version"

// DB is a handle on the Mayfly database.
type DB struct {
	pool *pgxpool.Pool
	log  *slog.Logger
}

// Open connects to the database at url (a libpq-style URL or DSN). It does
// not migrate; call [DB.Migrate]. The caller must Close the DB.
func Open(ctx context.Context, url string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return &DB{pool: pool, log: log}, nil
}

// Close closes all connections. It waits for queries in progress.
func (db *DB) Close() { db.pool.Close() }

// Ping checks the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// Pool returns the underlying pool, for packages that own their own tables
// (their queries still live next to their code).
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Migrate applies every migration the database lacks, each in its own
// transaction, under tern's advisory lock so concurrent starts are safe. It
// returns ErrSchemaTooNew if the database has migrations this binary lacks.
func (db *DB) Migrate(ctx context.Context) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: acquire connection: %w", err)
	}
	defer conn.Release()
	m, err := migrate.NewMigrator(ctx, conn.Conn(), versionTable)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := m.LoadMigrations(Migrations()); err != nil {
		return fmt.Errorf("migrate: load migrations: %w", err)
	}
	cur, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if want := int32(len(m.Migrations)); cur > want {
		return fmt.Errorf("%w: database is at version %d, this binary knows %d", ErrSchemaTooNew, cur, want)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	after, _ := m.GetCurrentVersion(ctx)
	if after != cur {
		db.log.Info("database migrated", "from_version", cur, "to_version", after)
	}
	return nil
}

// SchemaVersion returns the applied migration number and the number this
// binary knows.
func (db *DB) SchemaVersion(ctx context.Context) (have, known int32, err error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("schema version: %w", err)
	}
	defer conn.Release()
	m, err := migrate.NewMigrator(ctx, conn.Conn(), versionTable)
	if err != nil {
		return 0, 0, fmt.Errorf("schema version: %w", err)
	}
	if err := m.LoadMigrations(Migrations()); err != nil {
		return 0, 0, fmt.Errorf("schema version: %w", err)
	}
	have, err = m.GetCurrentVersion(ctx)
	return have, int32(len(m.Migrations)), err
}

// inTx runs fn in a transaction, committing if it returns nil. A non-nil
// error from fn that is one of the sentinel conditions may still want its
// changes kept: fn returns commitErr{err} for that. A transaction that
// Postgres aborts as a deadlock victim or serialization failure is run again
// (fn must start from scratch each time), at most txAttempts times in all.
func (db *DB) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	var err error
	for range txAttempts {
		if err = db.tryTx(ctx, fn); !isRetryable(err) {
			return err
		}
		db.log.Debug("retrying transaction", "err", err)
	}
	return err
}

// txAttempts bounds the runs of one transaction in inTx.
const txAttempts = 3

func (db *DB) tryTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	ferr := fn(tx)
	var keep commitErr
	if ferr != nil && !errors.As(ferr, &keep) {
		return ferr
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if ferr != nil {
		return keep.err
	}
	return nil
}

// isRetryable reports whether err is a deadlock or serialization failure,
// after which the whole transaction may simply be run again.
func isRetryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// commitErr asks inTx to commit and then return err.
type commitErr struct{ err error }

func (c commitErr) Error() string { return c.err.Error() }

// isUniqueViolation reports whether err is a unique-constraint violation on
// the named constraint (any constraint when name is empty).
func isUniqueViolation(err error, name string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && (name == "" || pe.ConstraintName == name)
}
