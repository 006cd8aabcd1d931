package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// ErrSchemaTooNew is returned by [Open] for a database that a newer sluice
// has migrated: it holds a migration this binary does not know.
var ErrSchemaTooNew = errors.New("store: database schema is newer than this binary")

//go:embed migrations/*.sql
var embedded embed.FS

// migration is one version of the schema, in one dialect.
type migration struct {
	version int
	name    string
	sql     string
}

// migrationName is NNNN_name.sql, NNNN_name.sqlite.sql or
// NNNN_name.postgres.sql.
var migrationName = regexp.MustCompile(`^([0-9]{4})_([a-z0-9_]+?)(?:\.(sqlite|postgres))?\.sql$`)

// loadMigrations reads and checks every migration file in the directory dir
// of fsys, for both dialects so that a bad file fails on either, and returns
// d's migrations in order.
func loadMigrations(fsys fs.FS, dir string, d Dialect) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	type version struct {
		name  string
		files map[string]string // "", "sqlite" or "postgres" → text
	}
	versions := map[int]*version{}
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			return nil, fmt.Errorf("store: migrations: %s: not NNNN_name.sql, NNNN_name.sqlite.sql or NNNN_name.postgres.sql", e.Name())
		}
		n, _ := strconv.Atoi(m[1])
		v := versions[n]
		if v == nil {
			v = &version{name: m[2], files: map[string]string{}}
			versions[n] = v
		}
		if v.name != m[2] {
			return nil, fmt.Errorf("store: migrations: %s: version %d is already named %q", e.Name(), n, v.name)
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("store: migrations: %w", err)
		}
		v.files[m[3]] = string(data)
	}
	ms := make([]migration, 0, len(versions))
	for n := 1; n <= len(versions); n++ {
		v := versions[n]
		if v == nil {
			return nil, fmt.Errorf("store: migrations: version %04d is missing (versions count from 0001 without gaps)", n)
		}
		_, common := v.files[""]
		_, lite := v.files["sqlite"]
		_, pg := v.files["postgres"]
		if common && (lite || pg) || !common && !(lite && pg) {
			return nil, fmt.Errorf("store: migrations: version %04d %s: want %04d_%s.sql or both %04d_%s.sqlite.sql and %04d_%s.postgres.sql",
				n, v.name, n, v.name, n, v.name, n, v.name)
		}
		text := v.files[""]
		if !common {
			text = v.files[d.String()]
		}
		ms = append(ms, migration{version: n, name: v.name, sql: text})
	}
	return ms, nil
}

// migrateLockKey names the PostgreSQL advisory lock that migrations take;
// advisory locks are per database.
const migrateLockKey = 0x736c75696365 // "sluice"

const createSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at BIGINT NOT NULL
)`

// migrate applies the migrations of ms that the database lacks, one
// transaction each. Each transaction takes the migration lock before it
// reads schema_migrations, so that concurrent Opens apply each migration
// once.
func (db *DB) migrate(ctx context.Context, ms []migration) error {
	// PostgreSQL: READ COMMITTED, whose statements see what was committed
	// before they started: a SERIALIZABLE snapshot would be taken by the
	// statement that waits for the lock and miss the migration applied
	// meanwhile. SQLite: BEGIN IMMEDIATE is the lock.
	opts := &sql.TxOptions{}
	for {
		var applied *migration
		err := db.tx(ctx, opts, func(tx *sql.Tx) error {
			applied = nil
			if db.dialect == Postgres {
				if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLockKey)); err != nil {
					return fmt.Errorf("lock: %w", err)
				}
			}
			if _, err := tx.ExecContext(ctx, createSchemaMigrations); err != nil {
				return fmt.Errorf("create schema_migrations: %w", err)
			}
			have, err := appliedMigrations(ctx, tx)
			if err != nil {
				return err
			}
			next, err := pending(ms, have)
			if err != nil || next == nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, next.sql); err != nil {
				return fmt.Errorf("%04d_%s: %w", next.version, next.name, err)
			}
			if _, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
				next.version, next.name, time.Now().UnixNano()); err != nil {
				return fmt.Errorf("%04d_%s: record: %w", next.version, next.name, err)
			}
			applied = next
			return nil
		})
		if err != nil {
			return err
		}
		if applied == nil {
			return nil
		}
		db.log.Info("store migration applied", "database", db.target, "version", applied.version, "name", applied.name)
	}
}

// appliedMigrations returns the rows of schema_migrations, by version.
func appliedMigrations(ctx context.Context, tx *sql.Tx) (map[int]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT version, name FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	have := map[int]string{}
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		have[v] = name
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return have, nil
}

// pending checks the applied migrations against ms and returns the first
// of ms that is not applied, or nil.
func pending(ms []migration, have map[int]string) (*migration, error) {
	for _, v := range slices.Sorted(maps.Keys(have)) {
		switch {
		case v < 1:
			return nil, fmt.Errorf("the database has migration %d %q, which no sluice makes", v, have[v])
		case v > len(ms):
			return nil, fmt.Errorf("the database has migration %d %q, this binary's last is %d: %w", v, have[v], len(ms), ErrSchemaTooNew)
		}
		if m := ms[v-1]; have[v] != m.name {
			return nil, fmt.Errorf("the database has migration %d %q where this binary has %q", v, have[v], m.name)
		}
	}
	for i := range ms {
		if _, ok := have[ms[i].version]; !ok {
			return &ms[i], nil
		}
	}
	return nil, nil
}
