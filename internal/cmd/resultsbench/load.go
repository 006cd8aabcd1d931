package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The bulk load writes the rows that results.Store.Create writes (a
// testcase, a group per buildset, the result, its group link, its data in
// key order) straight into the tables, in big transactions: the indexes
// that are not constraints are dropped first and built again at the end,
// as pg_restore does. It leaves the database as sluice would have it after
// n results, only faster.

// loadBatch is how many buildsets one SQLite transaction holds.
const loadBatch = 5000

// loadTables are the tables whose indexes the load drops and rebuilds.
var loadTables = []string{"results", "results_groups", "result_data", "groups"}

// loadSQLite loads n results into the SQLite database at path, which the
// store has migrated, through a connection of its own without fsync. It
// ends with a checkpoint, so that the queries find the data in the
// database file, not in a large write-ahead log.
func loadSQLite(ctx context.Context, path string, n, items int) error {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "foreign_keys(0)")
	q.Add("_pragma", "synchronous(OFF)")
	q.Add("_pragma", "cache_size(-262144)") // 256 MiB
	q.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String())
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	indexes, err := stringPairs(ctx, db, `SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN (`+
		quoteList(loadTables)+`)`)
	if err != nil {
		return fmt.Errorf("list indexes: %w", err)
	}
	for _, ix := range indexes {
		if _, err := db.ExecContext(ctx, `DROP INDEX "`+ix[0]+`"`); err != nil {
			return fmt.Errorf("drop index %s: %w", ix[0], err)
		}
	}
	var first int64
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) + 1 FROM results`).Scan(&first); err != nil {
		return err
	}

	for _, tc := range testcases() {
		if _, err := db.ExecContext(ctx, `INSERT INTO testcases (name, ref_url) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, tc[0], tc[1]); err != nil {
			return fmt.Errorf("insert testcase %s: %w", tc[0], err)
		}
	}
	g := newGen(items, 1)
	id := first
	buildsets := n / resultsPerBuildset
	for b0 := 0; b0 < buildsets; b0 += loadBatch {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		ins := &sqliteInserter{ctx: ctx, tx: tx}
		for b := b0; b < min(b0+loadBatch, buildsets); b++ {
			rs := g.buildset(b, loadEpoch.Add(time.Duration(b*resultsPerBuildset)*spacing))
			ins.add("groups (uuid, created_at)", rs[0].group, rs[0].submit.UnixNano())
			for _, r := range rs {
				ins.add("results (id, testcase_name, submit_time, outcome, note, ref_url)", id, r.testcase, r.submit.UnixNano(), r.outcome, "", r.refURL)
				ins.add("results_groups (result_id, group_uuid)", id, r.group)
				for _, kv := range r.data {
					ins.add("result_data (result_id, key, value)", id, kv[0], kv[1])
				}
				id++
			}
		}
		if err := ins.flush(); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	for _, ix := range indexes {
		if _, err := db.ExecContext(ctx, ix[1]); err != nil {
			return fmt.Errorf("create index %s: %w", ix[0], err)
		}
	}
	if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// sqliteInserter gathers rows per table and inserts them many to a
// statement.
type sqliteInserter struct {
	ctx   context.Context
	tx    *sql.Tx
	order []string
	rows  map[string][][]any
	err   error
}

// rowsPerStatement keeps the placeholders of one statement far below
// SQLite's limit of 32766.
const rowsPerStatement = 400

func (s *sqliteInserter) add(table string, values ...any) {
	if s.rows == nil {
		s.rows = map[string][][]any{}
	}
	if _, ok := s.rows[table]; !ok {
		s.order = append(s.order, table)
	}
	s.rows[table] = append(s.rows[table], values)
}

// flush inserts the gathered rows, table after table in the order they
// first came (groups before their links, results before their data).
func (s *sqliteInserter) flush() error {
	for _, table := range s.order {
		rows := s.rows[table]
		for len(rows) > 0 {
			chunk := rows[:min(len(rows), rowsPerStatement)]
			rows = rows[len(chunk):]
			tuple := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(chunk[0])), ", ") + ")"
			var b strings.Builder
			b.WriteString("INSERT INTO " + table + " VALUES ")
			args := make([]any, 0, len(chunk)*len(chunk[0]))
			for i, row := range chunk {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(tuple)
				args = append(args, row...)
			}
			if _, err := s.tx.ExecContext(s.ctx, b.String(), args...); err != nil {
				return fmt.Errorf("insert into %s: %w", table, err)
			}
		}
	}
	s.order, s.rows = nil, nil
	return nil
}

// loadPostgres loads n results into the PostgreSQL database dsn, which the
// store has migrated, with COPY, foreign-key triggers off for the session
// (session_replication_role, as pg_restore --disable-triggers), and ends
// with VACUUM ANALYZE, the state autovacuum brings an insert-heavy table
// to within a minute or so.
func loadPostgres(ctx context.Context, dsn string, n, items int) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, stmt := range []string{
		`SET session_replication_role = replica`,
		`SET maintenance_work_mem = '512MB'`,
		`SET synchronous_commit = off`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	rows, err := conn.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes
		WHERE schemaname = current_schema() AND tablename = ANY($1)
		AND indexname NOT IN (SELECT conname FROM pg_constraint)`, loadTables)
	if err != nil {
		return fmt.Errorf("list indexes: %w", err)
	}
	indexes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var p [2]string
		err := r.Scan(&p[0], &p[1])
		return p, err
	})
	if err != nil {
		return fmt.Errorf("list indexes: %w", err)
	}
	for _, ix := range indexes {
		if _, err := conn.Exec(ctx, `DROP INDEX "`+ix[0]+`"`); err != nil {
			return fmt.Errorf("drop index %s: %w", ix[0], err)
		}
	}
	var first int64
	if err := conn.QueryRow(ctx, `SELECT COALESCE(MAX(id), 0) + 1 FROM results`).Scan(&first); err != nil {
		return err
	}

	// One pass of the generator per table, each with the same seed, so
	// that every table sees the same results without holding them all.
	buildsets := n / resultsPerBuildset
	each := func(fn func(id int64, b int, rs []result) [][]any) pgx.CopyFromSource {
		g := newGen(items, 1)
		id, b := first, 0
		var pending [][]any
		return pgx.CopyFromFunc(func() ([]any, error) {
			for len(pending) == 0 {
				if b == buildsets {
					return nil, nil
				}
				rs := g.buildset(b, loadEpoch.Add(time.Duration(b*resultsPerBuildset)*spacing))
				pending = fn(id, b, rs)
				id += int64(len(rs))
				b++
			}
			row := pending[0]
			pending = pending[1:]
			return row, nil
		})
	}
	var names, urls []string
	for _, tc := range testcases() {
		names, urls = append(names, tc[0]), append(urls, tc[1])
	}
	copies := []struct {
		table string
		cols  []string
		src   pgx.CopyFromSource
	}{
		{"groups", []string{"uuid", "created_at"}, each(func(_ int64, _ int, rs []result) [][]any {
			return [][]any{{rs[0].group, rs[0].submit.UnixNano()}}
		})},
		{"results", []string{"id", "testcase_name", "submit_time", "outcome", "note", "ref_url"}, each(func(id int64, _ int, rs []result) [][]any {
			out := make([][]any, len(rs))
			for i, r := range rs {
				out[i] = []any{id + int64(i), r.testcase, r.submit.UnixNano(), r.outcome, "", r.refURL}
			}
			return out
		})},
		{"results_groups", []string{"result_id", "group_uuid"}, each(func(id int64, _ int, rs []result) [][]any {
			out := make([][]any, len(rs))
			for i, r := range rs {
				out[i] = []any{id + int64(i), r.group}
			}
			return out
		})},
		{"result_data", []string{"result_id", "key", "value"}, each(func(id int64, _ int, rs []result) [][]any {
			var out [][]any
			for i, r := range rs {
				for _, kv := range r.data {
					out = append(out, []any{id + int64(i), kv[0], kv[1]})
				}
			}
			return out
		})},
	}
	if _, err := conn.Exec(ctx, `INSERT INTO testcases (name, ref_url) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (name) DO NOTHING`,
		names, urls); err != nil {
		return fmt.Errorf("insert testcases: %w", err)
	}
	for _, c := range copies {
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, c.src); err != nil {
			return fmt.Errorf("copy into %s: %w", c.table, err)
		}
	}
	for _, ix := range indexes {
		if _, err := conn.Exec(ctx, ix[1]); err != nil {
			return fmt.Errorf("create index %s: %w", ix[0], err)
		}
	}
	// The identity would otherwise hand out the loaded ids again.
	if _, err := conn.Exec(ctx, `SELECT setval(pg_get_serial_sequence('results', 'id'), (SELECT MAX(id) FROM results))`); err != nil {
		return fmt.Errorf("set the results id sequence: %w", err)
	}
	for _, t := range loadTables {
		if _, err := conn.Exec(ctx, `VACUUM ANALYZE `+t); err != nil {
			return fmt.Errorf("vacuum analyze %s: %w", t, err)
		}
	}
	return nil
}

// stringPairs returns the rows of a query of two text columns.
func stringPairs(ctx context.Context, db *sql.DB, query string) ([][2]string, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var p [2]string
		if err := rows.Scan(&p[0], &p[1]); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// quoteList returns names as a list of SQL string literals.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "'" + strings.ReplaceAll(n, "'", "''") + "'"
	}
	return strings.Join(q, ", ")
}
