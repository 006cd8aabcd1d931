package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sluice-ci/sluice/internal/pgtest"
)

// dialect is a database that the suite runs against.
type dialect struct {
	name    string
	dialect Dialect
	// setup prepares the server, if any, for t and its subtests, and
	// returns a function that gives a subtest the DSN of an empty
	// database of its own.
	setup func(t *testing.T) (fresh func(t *testing.T) string)
}

func dialects() []dialect {
	return []dialect{
		{"sqlite", SQLite, func(*testing.T) func(*testing.T) string {
			return func(t *testing.T) string { return filepath.Join(t.TempDir(), "sluice.db") }
		}},
		{"postgres", Postgres, func(t *testing.T) func(*testing.T) string {
			cluster := pgtest.Start(t)
			return func(t *testing.T) string { return pgtest.NewDatabase(t, cluster) }
		}},
	}
}

// suite is the tests that run against every dialect. Each gets an empty
// database.
var suite = []struct {
	name string
	run  func(t *testing.T, d dialect, dsn string)
}{
	{"OpenTwiceMigratesOnce", testOpenTwice},
	{"ConcurrentOpensMigrateOnce", testConcurrentOpens},
	{"ProcessesOpenAndWrite", testProcessesOpenAndWrite},
	{"NewerSchemaRefused", testNewerSchema},
	{"RenamedMigrationRefused", testRenamedMigration},
	{"LaterMigrationApplied", testLaterMigration},
	{"FailedMigrationLeavesNothing", testFailedMigration},
	{"TxCommits", testTxCommits},
	{"TxRollsBackOnError", testTxRollsBackOnError},
	{"TxRollsBackOnPanic", testTxRollsBackOnPanic},
	{"Rebind", testRebind},
	{"RecordByOutputSHA256", testRecordBySHA256},
	{"DeleteCascades", testDeleteCascades},
	{"ConstraintsHold", testConstraints},
	{"ConcurrentWriters", testConcurrentWriters},
	{"TxRetriesLostRaces", testTxRetries},
	{"TxRetriesSerializationFailure", testSerializationFailure},
	{"PingDialectClose", testPingDialectClose},
}

func TestStore(t *testing.T) {
	t.Parallel()
	for _, d := range dialects() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			fresh := d.setup(t)
			for _, tc := range suite {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, d, fresh(t))
				})
			}
		})
	}
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// openT opens dsn with the embedded migrations and closes it when t ends.
func openT(t *testing.T, dsn string) *DB {
	t.Helper()
	db, err := Open(t.Context(), dsn, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

// embeddedMigrations returns the binary's migrations in d.
func embeddedMigrations(t *testing.T, d Dialect) []migration {
	t.Helper()
	ms, err := loadMigrations(embedded, "migrations", d)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// schemaVersions returns the versions and names in schema_migrations.
func schemaVersions(t *testing.T, db *DB) map[int]string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT version, name FROM schema_migrations`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[int]string{}
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			t.Fatal(err)
		}
		if _, dup := got[v]; dup {
			t.Errorf("schema_migrations has version %d twice", v)
		}
		got[v] = name
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func wantVersions(t *testing.T, db *DB, ms []migration) {
	t.Helper()
	want := map[int]string{}
	for _, m := range ms {
		want[m.version] = m.name
	}
	if got := schemaVersions(t, db); !reflect.DeepEqual(got, want) {
		t.Errorf("schema_migrations = %v, want %v", got, want)
	}
}

func count(t *testing.T, db *DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func testOpenTwice(t *testing.T, d dialect, dsn string) {
	ms := embeddedMigrations(t, d.dialect)
	for range 2 {
		db, err := Open(t.Context(), dsn, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		wantVersions(t, db, ms)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func testConcurrentOpens(t *testing.T, d dialect, dsn string) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			db, err := Open(t.Context(), dsn, testLog(t))
			if err != nil {
				t.Error(err)
				return
			}
			if err := db.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	wantVersions(t, openT(t, dsn), embeddedMigrations(t, d.dialect))
}

// recordVersion adds a row to schema_migrations, as another binary would
// have.
func recordVersion(t *testing.T, db *DB, version int, name string) {
	t.Helper()
	err := db.Tx(t.Context(), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(t.Context(), db.Rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
			version, name, time.Now().UnixNano())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testNewerSchema(t *testing.T, d dialect, dsn string) {
	db := openT(t, dsn)
	n := len(embeddedMigrations(t, d.dialect))
	recordVersion(t, db, n+1, "from_the_future")
	_, err := Open(t.Context(), dsn, testLog(t))
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a database with migration %d = %v, want ErrSchemaTooNew", n+1, err)
	}
	if !strings.Contains(err.Error(), "from_the_future") {
		t.Errorf("the error does not name the unknown migration: %v", err)
	}
	t.Log(err)
}

func testRenamedMigration(t *testing.T, d dialect, dsn string) {
	db := openT(t, dsn)
	err := db.Tx(t.Context(), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(t.Context(), `UPDATE schema_migrations SET name = 'other' WHERE version = 1`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(t.Context(), dsn, testLog(t))
	if err == nil || errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), `"other"`) {
		t.Fatalf("Open of a database whose migration 1 is named other = %v", err)
	}
}

// testLaterMigration opens a database with one migration, then with two:
// the second Open applies the second only.
func testLaterMigration(t *testing.T, d dialect, dsn string) {
	v1 := fstest.MapFS{
		"0001_scratch.sql": {Data: []byte(`CREATE TABLE scratch (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);`)},
	}
	v2 := fstest.MapFS{
		"0001_scratch.sql":          v1["0001_scratch.sql"],
		"0002_more.sqlite.sql":      {Data: []byte(`ALTER TABLE scratch ADD COLUMN note TEXT NOT NULL DEFAULT 'sqlite';`)},
		"0002_more.postgres.sql":    {Data: []byte(`ALTER TABLE scratch ADD COLUMN note TEXT NOT NULL DEFAULT 'postgres';`)},
		"0003_and_more.sql":         {Data: []byte("-- a comment\nINSERT INTO scratch (id, n) VALUES (1, 1);\nINSERT INTO scratch (id, n) VALUES (2, 2);\n")},
		"0004_empty_is_allowed.sql": {Data: []byte("")},
	}
	db, err := open(t.Context(), dsn, v1, ".", testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = open(t.Context(), dsn, v2, ".", testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ms, err := loadMigrations(v2, ".", d.dialect)
	if err != nil {
		t.Fatal(err)
	}
	wantVersions(t, db, ms)
	var note string
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT note, count(*) FROM scratch GROUP BY note`).Scan(&note, &n); err != nil {
		t.Fatal(err)
	}
	if note != d.name || n != 2 {
		t.Errorf("scratch has %d rows with note %q, want 2 with %q", n, note, d.name)
	}
}

// testFailedMigration applies a migration whose second statement fails:
// its first is rolled back with it, and it is not recorded.
func testFailedMigration(t *testing.T, d dialect, dsn string) {
	fsys := fstest.MapFS{
		"0001_good.sql": {Data: []byte(`CREATE TABLE good (id INTEGER PRIMARY KEY);`)},
		"0002_bad.sql":  {Data: []byte("CREATE TABLE half (id INTEGER PRIMARY KEY);\nINSERT INTO no_such_table VALUES (1);\n")},
	}
	_, err := open(t.Context(), dsn, fsys, ".", testLog(t))
	if err == nil || !strings.Contains(err.Error(), "0002_bad") {
		t.Fatalf("open with a bad migration = %v, want an error naming 0002_bad", err)
	}
	// Only the good one is there.
	delete(fsys, "0002_bad.sql")
	db, err := open(t.Context(), dsn, fsys, ".", testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	wantVersions(t, db, []migration{{version: 1, name: "good"}})
	q := `SELECT count(*) FROM sqlite_master WHERE name = 'half'`
	if d.dialect == Postgres {
		q = `SELECT count(*) FROM information_schema.tables WHERE table_name = 'half'`
	}
	var n int
	if err := db.QueryRowContext(t.Context(), q).Scan(&n); err != nil || n != 0 {
		t.Errorf("table half of the failed migration: %d, %v; want gone", n, err)
	}
}

// buildRecord is what the suite writes in build_records and build_outputs,
// as the builder would.
type buildRecord struct {
	ID, Project, Commit string
	Change              *int
	Start, End          time.Time
	Outputs             []buildOutput
}

type buildOutput struct {
	Name, SHA256 string
	Size         int64
	Package      *[3]string // name, evr, arch
}

func (r buildRecord) insert(ctx context.Context, db *DB, tx *sql.Tx) error {
	doc, err := json.Marshal(map[string]any{"id": r.ID, "project": r.Project, "commit": r.Commit, "outputs": len(r.Outputs)})
	if err != nil {
		return err
	}
	var change, patchset any
	if r.Change != nil {
		change, patchset = *r.Change, 1
	}
	_, err = tx.ExecContext(ctx, db.Rebind(`INSERT INTO build_records
		(id, project, url, ref, commit_sha, tree, change_no, patchset, format, backend, outcome, reason, started_at, ended_at, record)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		r.ID, r.Project, "https://git.example/"+r.Project, "refs/heads/main", r.Commit, strings.Repeat("7", 40),
		change, patchset, "deb", "dpkg-buildpackage", "PASSED", "",
		r.Start.UnixNano(), r.End.UnixNano(), string(doc))
	if err != nil {
		return fmt.Errorf("insert record %s: %w", r.ID, err)
	}
	for _, o := range r.Outputs {
		var name, evr, arch any
		if o.Package != nil {
			name, evr, arch = o.Package[0], o.Package[1], o.Package[2]
		}
		_, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO build_outputs
			(record_id, name, sha256, size, package_name, package_evr, package_arch) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			r.ID, o.Name, o.SHA256, o.Size, name, evr, arch)
		if err != nil {
			return fmt.Errorf("insert output %s of %s: %w", o.Name, r.ID, err)
		}
	}
	return nil
}

func sha(c byte) string { return strings.Repeat(string(c), 64) }

func sampleRecord(id string) buildRecord {
	change := 1234
	start := time.Date(2026, 11, 23, 18, 39, 56, 123456789, time.UTC)
	return buildRecord{
		ID: id, Project: "hello", Commit: strings.Repeat("c", 40), Change: &change,
		Start: start, End: start.Add(90*time.Second + 1),
		Outputs: []buildOutput{
			{Name: "hello_1.0-1_amd64.deb", SHA256: sha('a'), Size: 1 << 33, Package: &[3]string{"hello", "1.0-1", "amd64"}},
			{Name: "hello_1.0-1.dsc", SHA256: sha('b'), Size: 812},
		},
	}
}

var errBoom = errors.New("boom")

func testTxCommits(t *testing.T, d dialect, dsn string) {
	db := openT(t, dsn)
	r := sampleRecord("r1")
	if err := db.Tx(t.Context(), func(tx *sql.Tx) error { return r.insert(t.Context(), db, tx) }); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, "build_records"); n != 1 {
		t.Errorf("%d records after a commit, want 1", n)
	}
	if n := count(t, db, "build_outputs"); n != 2 {
		t.Errorf("%d outputs after a commit, want 2", n)
	}
}

func testTxRollsBackOnError(t *testing.T, d dialect, dsn string) {
	db := openT(t, dsn)
	calls := 0
	err := db.Tx(t.Context(), func(tx *sql.Tx) error {
		calls++
		if err := sampleRecord("r1").insert(t.Context(), db, tx); err != nil {
			return err
		}
		return fmt.Errorf("after the inserts: %w", errBoom)
	})
	if !errors.Is(err, errBoom) || calls != 1 {
		t.Fatalf("Tx = %v after %d calls, want errBoom after 1", err, calls)
	}
	if n := count(t, db, "build_records") + count(t, db, "build_outputs"); n != 0 {
		t.Errorf("%d rows after a rollback, want none", n)
	}
	// The write connection is clean: the next transaction commits.
	if err := db.Tx(t.Context(), func(tx *sql.Tx) error { return sampleRecord("r2").insert(t.Context(), db, tx) }); err != nil {
		t.Fatal(err)
	}
}

func testTxRollsBackOnPanic(t *testing.T, d dialect, dsn string) {
	db := openT(t, dsn)
	type boom struct{ msg string }
	func() {
		defer func() {
			if p := recover(); p != (boom{"in fn"}) {
				t.Errorf("recovered %v, want the panic of fn", p)
			}
		}()
		db.Tx(t.Context(), func(tx *sql.Tx) error {
			if err := sampleRecord("r1").insert(t.Context(), db, tx); err != nil {
				t.Error(err)
			}
			panic(boom{"in fn"})
		})
		t.Error("Tx returned after fn panicked")
	}()
	if n := count(t, db, "build_records") + count(t, db, "build_outputs"); n != 0 {
		t.Errorf("%d rows after a panic, want none", n)
	}
	if err := db.Tx(t.Context(), func(tx *sql.Tx) error { return sampleRecord("r1").insert(t.Context(), db, tx) }); err != nil {
		t.Fatal(err)
	}
}

func testRebind(t *testing.T, d dialect, dsn string) {
	db := openT(t, dsn)
	q := db.Rebind(`SELECT ? || '?' || ?`)
	want := map[Dialect]string{SQLite: `SELECT ? || '?' || ?`, Postgres: `SELECT $1 || '?' || $2`}[d.dialect]
	if q != want {
		t.Errorf("Rebind = %q, want %q", q, want)
	}
	var got string
	if err := db.QueryRowContext(t.Context(), q, "a", "b").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "a?b" {
		t.Errorf("got %q, want a?b", got)
	}
}

func testRecordBySHA256(t *testing.T, d dialect, dsn string) {
	db := openT(t, dsn)
	want := sampleRecord("r1")
	other := sampleRecord("r2")
	other.Commit, other.Change = strings.Repeat("d", 40), nil
	other.Outputs = []buildOutput{{Name: "hello_1.0-1_arm64.deb", SHA256: sha('e'), Size: 1, Package: &[3]string{"hello", "1.0-1", "arm64"}}}
	err := db.Tx(t.Context(), func(tx *sql.Tx) error {
		return errors.Join(want.insert(t.Context(), db, tx), other.insert(t.Context(), db, tx))
	})
	if err != nil {
		t.Fatal(err)
	}

	var (
		id, project, commit, doc string
		change                   sql.NullInt64
		started, ended           int64
		pkg                      sql.NullString
		size                     int64
	)
	err = db.QueryRowContext(t.Context(), db.Rebind(`
		SELECT r.id, r.project, r.commit_sha, r.change_no, r.started_at, r.ended_at, r.record, o.package_name, o.size
		FROM build_outputs o JOIN build_records r ON r.id = o.record_id
		WHERE o.sha256 = ?`), sha('a')).Scan(&id, &project, &commit, &change, &started, &ended, &doc, &pkg, &size)
	if err != nil {
		t.Fatal(err)
	}
	if id != want.ID || project != want.Project || commit != want.Commit || change.Int64 != int64(*want.Change) ||
		pkg.String != "hello" || size != 1<<33 {
		t.Errorf("got record %s %s %s change %v package %v size %d", id, project, commit, change, pkg, size)
	}
	if s, e := time.Unix(0, started).UTC(), time.Unix(0, ended).UTC(); !s.Equal(want.Start) || !e.Equal(want.End) {
		t.Errorf("times %v, %v; want %v, %v", s, e, want.Start, want.End)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil || m["id"] != "r1" || m["outputs"] != 2.0 {
		t.Errorf("record %s: %v", doc, err)
	}

	// A release build has no change, and a source package no package row.
	if err := db.QueryRowContext(t.Context(), db.Rebind(`SELECT r.change_no, o.package_name
		FROM build_outputs o JOIN build_records r ON r.id = o.record_id WHERE o.sha256 = ?`), sha('e')).Scan(&change, &pkg); err != nil {
		t.Fatal(err)
	}
	if change.Valid || !pkg.Valid {
		t.Errorf("release record: change %v, package %v", change, pkg)
	}
	if err := db.QueryRowContext(t.Context(), db.Rebind(`SELECT package_name FROM build_outputs WHERE sha256 = ?`), sha('b')).Scan(&pkg); err != nil || pkg.Valid {
		t.Errorf("source package: package_name %v, %v; want NULL", pkg, err)
	}
	if err := db.QueryRowContext(t.Context(), db.Rebind(`SELECT id FROM build_records WHERE project = ? AND commit_sha = ?`),
		"hello", strings.Repeat("d", 40)).Scan(&id); err != nil || id != "r2" {
		t.Errorf("record by project and commit: %q, %v", id, err)
	}
	if err := db.QueryRowContext(t.Context(), db.Rebind(`SELECT record_id FROM build_outputs WHERE sha256 = ?`), sha('f')).Scan(&id); !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("unknown sha256: %v, want sql.ErrNoRows", err)
	}
}

func testDeleteCascades(t *testing.T, d dialect, dsn string) {
	db := openT(t, dsn)
	err := db.Tx(t.Context(), func(tx *sql.Tx) error {
		return errors.Join(sampleRecord("r1").insert(t.Context(), db, tx), sampleRecord("r2").insert(t.Context(), db, tx))
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Tx(t.Context(), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(t.Context(), db.Rebind(`DELETE FROM build_records WHERE id = ?`), "r1")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(t.Context(), db.Rebind(`SELECT count(*) FROM build_outputs WHERE record_id = ?`), "r1").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d outputs of the deleted record (%v), want 0", n, err)
	}
	if n := count(t, db, "build_outputs"); n != 2 {
		t.Errorf("%d outputs left, want the 2 of r2", n)
	}
}

// testConstraints checks that both databases refuse the same bad rows.
func testConstraints(t *testing.T, d dialect, dsn string) {
	db := openT(t, dsn)
	orphan := sampleRecord("r1")
	badJSON := sampleRecord("r2")
	badSHA := sampleRecord("r3")
	badSHA.Outputs[0].SHA256 = "abc"
	for _, tc := range []struct {
		name string
		fn   func(tx *sql.Tx) error
	}{
		{"output without record", func(tx *sql.Tx) error {
			_, err := tx.ExecContext(t.Context(), db.Rebind(`INSERT INTO build_outputs (record_id, name, sha256, size) VALUES (?, ?, ?, ?)`),
				orphan.ID, "x", sha('a'), 1)
			return err
		}},
		{"record not JSON", func(tx *sql.Tx) error {
			_, err := tx.ExecContext(t.Context(), db.Rebind(`INSERT INTO build_records
				(id, project, url, ref, commit_sha, tree, format, backend, outcome, started_at, ended_at, record)
				VALUES (?, '', '', '', '', '', '', '', '', 0, 0, ?)`), badJSON.ID, "{not json")
			return err
		}},
		{"sha256 not 64 long", func(tx *sql.Tx) error { return badSHA.insert(t.Context(), db, tx) }},
		{"record twice", func(tx *sql.Tx) error {
			return errors.Join(sampleRecord("r4").insert(t.Context(), db, tx), sampleRecord("r4").insert(t.Context(), db, tx))
		}},
	} {
		if err := db.Tx(t.Context(), tc.fn); err == nil {
			t.Errorf("%s: accepted", tc.name)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}
	if n := count(t, db, "build_records") + count(t, db, "build_outputs"); n != 0 {
		t.Errorf("%d rows left by refused transactions", n)
	}
}

func testConcurrentWriters(t *testing.T, d dialect, dsn string) {
	db := openT(t, dsn)
	const writers, each = 10, 50
	var wg sync.WaitGroup
	var failed atomic.Int32
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r := sampleRecord(fmt.Sprintf("w%d-%d", w, i))
				r.Outputs[0].SHA256 = fmt.Sprintf("%064x", w*each+i)
				err := db.Tx(t.Context(), func(tx *sql.Tx) error { return r.insert(t.Context(), db, tx) })
				if err != nil {
					t.Errorf("writer %d, insert %d: %v", w, i, err)
					if failed.Add(1) > 5 {
						return
					}
				}
			}
		})
	}
	// Readers at the same time see whole transactions only.
	wg.Go(func() {
		for range each {
			var records, outputs int
			err := db.QueryRowContext(t.Context(),
				`SELECT (SELECT count(*) FROM build_records), (SELECT count(*) FROM build_outputs)`).Scan(&records, &outputs)
			if err != nil {
				t.Errorf("reader: %v", err)
				return
			}
			if outputs != 2*records {
				t.Errorf("reader saw %d records and %d outputs", records, outputs)
			}
		}
	})
	wg.Wait()
	if n := count(t, db, "build_records"); n != writers*each {
		t.Errorf("%d records, want %d", n, writers*each)
	}
}

func testPingDialectClose(t *testing.T, d dialect, dsn string) {
	db, err := Open(t.Context(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := db.Dialect(); got != d.dialect {
		t.Errorf("Dialect = %v, want %v", got, d.dialect)
	}
	if err := db.Ping(t.Context()); err != nil {
		t.Error(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(t.Context()); err == nil {
		t.Error("Ping after Close succeeded")
	}
}
