package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseDSN(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dsn string
		dialect   Dialect
		target    string // "" when the DSN is refused
	}{
		{"sqlite URL", "sqlite://" + dir + "/sluice.db", SQLite, dir + "/sluice.db"},
		{"absolute path", dir + "/sluice.db", SQLite, dir + "/sluice.db"},
		{"relative path", "sluice.db", SQLite, filepath.Join(wd, "sluice.db")},
		{"odd file name", dir + "/a?b#c%20.db", SQLite, dir + "/a?b#c%20.db"},
		{"postgres", "postgres://sluice:s3cret@db.example:6543/ci?sslmode=disable", Postgres, "postgres://db.example:6543/ci"},
		{"postgresql", "postgresql://db.example/ci", Postgres, "postgres://db.example:5432/ci"},
		{"postgres socket", "postgres:///ci?host=/run/postgresql", Postgres, "postgres:///ci?host=/run/postgresql"},
		{"empty", "", 0, ""},
		{"sqlite URL relative", "sqlite://sluice.db", 0, ""},
		{"sqlite URL with a query", "sqlite://" + dir + "/sluice.db?mode=ro", 0, ""},
		{"sqlite without slashes", "sqlite:sluice.db", 0, ""},
		{"memory", ":memory:", 0, ""},
		{"file URI", "file:sluice.db", 0, ""},
		{"key=value", "host=db.example dbname=ci", 0, ""},
		{"mysql", "mysql://db.example/ci", 0, ""},
		{"missing directory", dir + "/no/such/sluice.db", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := parseDSN(tc.dsn)
			if tc.target == "" {
				if err == nil {
					t.Fatalf("parseDSN(%q) = %+v, want an error", tc.dsn, c)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.dialect != tc.dialect || c.target != tc.target {
				t.Errorf("parseDSN(%q) = %v %q, want %v %q", tc.dsn, c.dialect, c.target, tc.dialect, tc.target)
			}
			if strings.Contains(c.target, "s3cret") {
				t.Errorf("target %q shows the password", c.target)
			}
		})
	}
}

// TestOpenOddFileName checks that a path with URI metacharacters names the
// file it says, and that a missing directory is reported as such.
func TestOpenOddFileName(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "a?b#c%20 d.db")
	db, err := Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Error(err)
	}
	_, err = Open(t.Context(), filepath.Join(dir, "missing", "sluice.db"), nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open in a missing directory = %v, want fs.ErrNotExist", err)
	}
}

// TestSQLitePragmas checks the settings of the write and read handles.
func TestSQLitePragmas(t *testing.T) {
	t.Parallel()
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "sluice.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tc := range []struct{ pragma, writer, reader string }{
		{"journal_mode", "wal", "wal"},
		{"synchronous", "2", ""}, // FULL; readers do not write
		{"foreign_keys", "1", "1"},
		{"busy_timeout", "5000", "5000"},
		{"query_only", "0", "1"},
	} {
		var got string
		if err := db.w.QueryRowContext(t.Context(), "PRAGMA "+tc.pragma).Scan(&got); err != nil || got != tc.writer {
			t.Errorf("writer: %s = %q, %v; want %q", tc.pragma, got, err, tc.writer)
		}
		if tc.reader == "" {
			continue
		}
		if err := db.QueryRowContext(t.Context(), "PRAGMA "+tc.pragma).Scan(&got); err != nil || got != tc.reader {
			t.Errorf("reader: %s = %q, %v; want %q", tc.pragma, got, err, tc.reader)
		}
	}
	if _, err := db.r.ExecContext(t.Context(), `DELETE FROM build_records`); err == nil {
		t.Error("a reader wrote")
	}
}
