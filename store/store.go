package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect names the database behind a [DB], for the rare query that differs.
type Dialect int

// The dialects a [DB] speaks.
const (
	SQLite Dialect = iota + 1
	Postgres
)

// String returns "sqlite" or "postgres".
func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// Retries of a transaction that lost a race with another writer.
const (
	maxAttempts  = 8
	firstBackoff = 5 * time.Millisecond
	maxBackoff   = 500 * time.Millisecond
)

// DB is an open database: a write handle for [DB.Tx] and a read handle for
// the query methods. With SQLite they are two pools, the write one of a
// single connection; with PostgreSQL they are the same pool.
type DB struct {
	dialect Dialect
	target  string // names the database in errors and logs, without secrets
	w, r    *sql.DB
	txOpts  *sql.TxOptions
	log     *slog.Logger
}

// Open opens the database named by dsn (see the package documentation for
// its forms) and applies the migrations it lacks. A nil log discards.
func Open(ctx context.Context, dsn string, log *slog.Logger) (*DB, error) {
	return open(ctx, dsn, embedded, "migrations", log)
}

// open is Open with the migrations in the directory dir of fsys.
func open(ctx context.Context, dsn string, fsys fs.FS, dir string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	ms, err := loadMigrations(fsys, dir, c.dialect)
	if err != nil {
		return nil, err
	}
	db := &DB{dialect: c.dialect, target: c.target, log: log}
	switch c.dialect {
	case SQLite:
		err = db.openSQLite(ctx, c)
	case Postgres:
		err = db.openPostgres(ctx, c)
	}
	if err != nil {
		return nil, err
	}
	if err := db.migrate(ctx, ms); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: migrate: %w", db.target, err)
	}
	log.Debug("store opened", "dialect", db.dialect.String(), "database", db.target, "version", len(ms))
	return db, nil
}

func (db *DB) openSQLite(ctx context.Context, c config) error {
	w, err := sql.Open("sqlite", c.sqliteWriter)
	if err != nil {
		return fmt.Errorf("store %s: %w", db.target, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	// The first connection creates the file and switches it to WAL before
	// any reader opens it.
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return fmt.Errorf("store %s: open: %w", db.target, err)
	}
	r, err := sql.Open("sqlite", c.sqliteReader)
	if err != nil {
		w.Close()
		return fmt.Errorf("store %s: %w", db.target, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxIdleTime(0)
	r.SetConnMaxLifetime(0)
	db.w, db.r = w, r
	// BEGIN IMMEDIATE is set in the writer's DSN; the driver knows no
	// isolation levels but the default.
	db.txOpts = &sql.TxOptions{}
	return nil
}

func (db *DB) openPostgres(ctx context.Context, c config) error {
	p := c.openPostgres()
	n := max(8, 2*runtime.GOMAXPROCS(0))
	p.SetMaxOpenConns(n)
	p.SetMaxIdleConns(n)
	p.SetConnMaxIdleTime(5 * time.Minute)
	if err := p.PingContext(ctx); err != nil {
		p.Close()
		return fmt.Errorf("store %s: open: %w", db.target, err)
	}
	db.w, db.r = p, p
	db.txOpts = &sql.TxOptions{Isolation: sql.LevelSerializable}
	return nil
}

// Dialect returns the database's dialect.
func (db *DB) Dialect() Dialect { return db.dialect }

// Tx runs fn in a read-write transaction and commits it if fn returns nil.
// It rolls back when fn returns an error, which Tx returns as it is, or
// panics, which goes on up. When the transaction loses a race with another
// writer (SQLITE_BUSY; a serialization failure or a deadlock in
// PostgreSQL), Tx runs it again, a bounded number of times: fn must
// therefore have no effect outside tx. Inside fn, read through tx, not
// through db, and do not call Tx: with SQLite that waits for the one write
// connection that fn holds.
func (db *DB) Tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return db.tx(ctx, db.txOpts, fn)
}

// InsertTx is Tx for a transaction that only inserts rows and upserts
// them by a unique key, and reads nothing it decides on: on PostgreSQL it
// runs at READ COMMITTED, where such writers do not fail each other with
// serialization errors (ON CONFLICT settles their races), and at
// SERIALIZABLE, where inserts of the same keys do; on SQLite it is Tx.
func (db *DB) InsertTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if db.dialect == Postgres {
		return db.tx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted}, fn)
	}
	return db.tx(ctx, db.txOpts, fn)
}

func (db *DB) tx(ctx context.Context, opts *sql.TxOptions, fn func(tx *sql.Tx) error) error {
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		err := db.txOnce(ctx, opts, fn)
		if err == nil || !db.retryable(err) {
			return err
		}
		if attempt == maxAttempts {
			return fmt.Errorf("store %s: transaction: %d attempts: %w", db.target, attempt, err)
		}
		db.log.Debug("store transaction retried", "database", db.target, "attempt", attempt, "err", err)
		// Full jitter, so that the writers that collided spread out.
		t := time.NewTimer(rand.N(backoff) + time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("store %s: transaction: %w (after %w)", db.target, ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (db *DB) txOnce(ctx context.Context, opts *sql.TxOptions, fn func(tx *sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("store %s: begin: %w", db.target, err)
	}
	done := false
	// Rolls back on an error and on a panic, which then goes on unchanged.
	defer func() {
		if !done {
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	done = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store %s: commit: %w", db.target, err)
	}
	return nil
}

// Retryable reports whether err says that the transaction lost a race
// with another and may succeed when run again, as [DB.Tx] does: a
// function that runs parts of a transaction in savepoints returns such an
// error to Tx rather than keep it for itself.
func (db *DB) Retryable(err error) bool { return db.retryable(err) }

// retryable reports whether err says that the transaction lost a race with
// another and may succeed when run again.
func (db *DB) retryable(err error) bool {
	switch db.dialect {
	case SQLite:
		var e *sqlite.Error
		return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
	case Postgres:
		var e *pgconn.PgError
		// serialization_failure, deadlock_detected
		return errors.As(err, &e) && (e.Code == "40001" || e.Code == "40P01")
	}
	return false
}

// QueryContext runs a query that returns rows on the read handle. The query
// text goes to the driver as it is: see [DB.Rebind].
func (db *DB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return db.r.QueryContext(ctx, query, args...)
}

// QueryRowContext runs a query that returns at most one row on the read
// handle.
func (db *DB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return db.r.QueryRowContext(ctx, query, args...)
}

// Ping checks that the database answers, for health checks.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.w.PingContext(ctx); err != nil {
		return fmt.Errorf("store %s: ping: %w", db.target, err)
	}
	if db.r != db.w {
		if err := db.r.PingContext(ctx); err != nil {
			return fmt.Errorf("store %s: ping readers: %w", db.target, err)
		}
	}
	return nil
}

// Close closes the database's connections.
func (db *DB) Close() error {
	var errs []error
	if db.r != db.w {
		errs = append(errs, db.r.Close())
	}
	errs = append(errs, db.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store %s: close: %w", db.target, err)
	}
	return nil
}
