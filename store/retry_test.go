package store

import (
	"database/sql"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// lostRace returns an error that says a transaction lost a race with
// another writer: with SQLite a real SQLITE_BUSY, got from the database
// file at path while another connection holds its write lock.
func lostRace(t *testing.T, d Dialect, path string) error {
	t.Helper()
	if d == Postgres {
		return &pgconn.PgError{Severity: "ERROR", Code: "40001", Message: "could not serialize access due to concurrent update"}
	}
	holder, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	tx, err := holder.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	other, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate&_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx2, err := other.BeginTx(t.Context(), nil)
	if err == nil {
		tx2.Rollback()
		t.Fatal("BEGIN IMMEDIATE succeeded while another connection held the write lock")
	}
	return err
}

func testTxRetries(t *testing.T, d dialect, dsn string) {
	db := openT(t, dsn)
	lost := lostRace(t, d.dialect, dsn)
	if !db.retryable(lost) {
		t.Fatalf("%v is not retryable", lost)
	}
	if db.retryable(errBoom) || db.retryable(sql.ErrNoRows) {
		t.Fatal("errBoom or sql.ErrNoRows is retryable")
	}

	t.Run("then commits", func(t *testing.T) {
		calls := 0
		err := db.Tx(t.Context(), func(tx *sql.Tx) error {
			calls++
			if err := sampleRecord("r1").insert(t.Context(), db, tx); err != nil {
				return err
			}
			if calls < 3 {
				return lost
			}
			return nil
		})
		if err != nil || calls != 3 {
			t.Fatalf("Tx = %v after %d calls, want nil after 3", err, calls)
		}
		if n := count(t, db, "build_records"); n != 1 {
			t.Errorf("%d records, want 1", n)
		}
	})
	t.Run("gives up", func(t *testing.T) {
		calls := 0
		err := db.Tx(t.Context(), func(tx *sql.Tx) error {
			calls++
			return lost
		})
		if !errors.Is(err, lost) || calls != maxAttempts {
			t.Fatalf("Tx = %v after %d calls, want the lost race after %d", err, calls, maxAttempts)
		}
	})
}

// testSerializationFailure makes another transaction change a row that fn
// has read, between fn's read and its write: PostgreSQL refuses fn's
// write, and Tx runs fn again, which then sees the other's change.
func testSerializationFailure(t *testing.T, d dialect, dsn string) {
	if d.dialect != Postgres {
		t.Skip("SQLite has one writer at a time: no serialization failures")
	}
	db := openT(t, dsn)
	ctx := t.Context()
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT INTO counter VALUES (1, 0)`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	add := func(tx *sql.Tx, k int) error {
		_, err := tx.ExecContext(ctx, `UPDATE counter SET n = n + $1 WHERE id = 1`, k)
		return err
	}
	calls := 0
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		calls++
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT n FROM counter WHERE id = 1`).Scan(&n); err != nil {
			return err
		}
		if calls == 1 {
			// On another connection of the pool, which PostgreSQL allows.
			if err := db.Tx(ctx, func(tx *sql.Tx) error { return add(tx, 10) }); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE counter SET n = $1 WHERE id = 1`, n+1)
		return err
	})
	if err != nil || calls != 2 {
		t.Fatalf("Tx = %v after %d calls, want nil after 2", err, calls)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT n FROM counter WHERE id = 1`).Scan(&n); err != nil || n != 11 {
		t.Errorf("counter = %d, %v; want 11", n, err)
	}
}
