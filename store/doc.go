// Package store provides sluice's SQL database: SQLite, embedded and pure Go
// (modernc.org/sqlite), by default, or PostgreSQL (github.com/jackc/pgx/v5
// through database/sql), chosen by the DSN given to [Open]. It owns the
// connection handling and the schema migrations; the rows' meaning belongs
// to the packages that write them.
//
// # DSNs
//
//   - "sqlite:///abs/path/sluice.db", or a plain file path (relative paths
//     are made absolute): SQLite. The file is created when missing; its
//     directory must exist. ":memory:" and "file:" URIs are refused: the
//     separate read and write handles below need one file.
//   - "postgres://..." or "postgresql://...": PostgreSQL, in pgx's URL syntax
//     (sslmode, host=/socket/dir, ...). pgx's "key=value" form is refused, so
//     that it is never mistaken for a file name.
//
// # SQLite
//
// Every connection sets busy_timeout (5 s) and foreign_keys=ON. The database
// is in WAL mode, so readers never block the writer nor the writer the
// readers, with synchronous=FULL: each commit is synced to the WAL before it
// returns. NORMAL would be as safe against corruption and against a crash of
// sluice, but a power loss could take back the last commits; sluice reports
// outcomes to Gerrit and ResultsDB after it commits them, and its write rate
// is a few transactions per stage, so it pays the fsync per commit.
//
// Writes go through one connection (a write handle with MaxOpenConns 1) whose
// transactions start with BEGIN IMMEDIATE: writers in this process queue in
// the pool instead of failing with SQLITE_BUSY, and a transaction that reads
// then writes never has to upgrade its lock. Writers in other processes are
// waited for by busy_timeout, then retried by [DB.Tx]. Reads go through a
// separate pool of query_only connections.
//
// # PostgreSQL
//
// One pool serves reads and writes. [DB.Tx] runs at SERIALIZABLE isolation,
// which is what SQLite's single writer gives, so that code tested against
// one database is right on the other; serialization failures and deadlocks
// are retried.
//
// # Timestamps and JSON
//
// Timestamps are stored as unix nanoseconds in UTC, in INTEGER (SQLite) or
// BIGINT (PostgreSQL) columns: callers pass t.UnixNano() and read back
// time.Unix(0, n).UTC() with the same code and the same query text on both
// databases; they sort and compare as numbers; and no driver's time format
// is involved (a variable-width RFC 3339 text, for one, does not sort).
// They cover the years 1678 to 2262.
//
// JSON documents are TEXT checked by json_valid in SQLite and JSONB in
// PostgreSQL; both take and return the document as a string or []byte.
// JSONB keeps the value, not the bytes (key order and spacing change):
// whoever needs the exact bytes, to verify a signature say, keeps them
// elsewhere.
//
// # Migrations
//
// The schema is a sequence of migrations embedded in the binary, in the
// directory migrations:
//
//	NNNN_name.sql           one text for both databases
//	NNNN_name.sqlite.sql    or a pair: the SQLite text
//	NNNN_name.postgres.sql  and the PostgreSQL text
//
// NNNN is the version, four digits, counting from 0001 without gaps; name
// is lower case letters, digits and underscores, the same in both files of a
// pair. A version has either one common file or both files of a pair, never
// a single dialect file, so that both databases have the same versions.
// Any other file in the directory is an error.
//
// [Open] applies the migrations the database lacks, in order, each in its
// own transaction together with its row in schema_migrations(version, name,
// applied_at). Concurrent Opens of one database apply each migration once:
// the transaction first takes pg_advisory_xact_lock (PostgreSQL) or the
// write lock (SQLite, BEGIN IMMEDIATE), then looks at what is applied. A
// database that has a migration this binary does not know, because a newer
// sluice migrated it, is refused with [ErrSchemaTooNew]; a migration whose
// name differs from the binary's is refused too. Applied migrations are
// never edited: a change to the schema is a new migration.
//
// As every migration runs in a transaction, none may use what PostgreSQL
// refuses there (CREATE INDEX CONCURRENTLY, VACUUM); and a SQLite migration
// that rebuilds a table cannot turn foreign_keys off (the pragma is ignored
// inside a transaction), so it uses PRAGMA defer_foreign_keys=ON instead.
package store
