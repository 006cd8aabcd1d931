package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-ci/sluice/store"
)

// warmQueries are the untimed requests sent before each query is timed.
const warmQueries = 200

// report is what one database's run measured.
type report struct {
	db      string
	skipped string // why the database was not measured; empty when it was
	load    time.Duration
	loaded  int
	ingest  ingestStats
	retries int64 // transactions the store ran again during the timed ingest
	// failed counts the POSTs of the ingest, warm-up included, answered
	// with another status than 201; firstFailure is the first of them.
	failed       int
	firstFailure string
	queries      []queryStats
}

func benchSQLite(ctx context.Context, o options, work string, w io.Writer, log *slog.Logger) (*report, error) {
	dir := filepath.Join(work, "sqlite")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "sluice.db")
	return measure(ctx, o, sqliteDB, "sqlite://"+path, w, log, func(ctx context.Context) error {
		return loadSQLite(ctx, path, o.n, o.items)
	})
}

func benchPostgres(ctx context.Context, o options, w io.Writer, log *slog.Logger) (rep *report, err error) {
	if o.postgres != "" {
		fmt.Fprintf(w, "\n%s: on the database given with -postgres, as its server is configured\n", postgresDB)
		return measure(ctx, o, postgresDB, o.postgres, w, log, func(ctx context.Context) error {
			return loadPostgres(ctx, o.postgres, o.n, o.items)
		})
	}
	fmt.Fprintf(w, "\n%s: starting a throwaway cluster (internal/pgtest)\n", postgresDB)
	c, dsn, skipped, err := startCluster(ctx, os.Stderr)
	if err != nil {
		return nil, err
	}
	if skipped != "" {
		fmt.Fprintf(w, "%s: skipped: %s\n", postgresDB, skipped)
		return &report{db: postgresDB, skipped: skipped}, nil
	}
	defer c.stop()
	if err := durableCommits(ctx, dsn); err != nil {
		return nil, err
	}
	return measure(ctx, o, postgresDB, dsn, w, log, func(ctx context.Context) error {
		return loadPostgres(ctx, dsn, o.n, o.items)
	})
}

// durableCommits makes every session of the database of dsn wait for its
// commits' WAL to be written, as PostgreSQL does by default: pgtest's
// cluster runs with synchronous_commit off. fsync stays off: the server
// takes it from its command line only.
func durableCommits(ctx context.Context, dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	name := strings.TrimPrefix(u.Path, "/")
	if _, err := conn.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{name}.Sanitize()+` SET synchronous_commit = on`); err != nil {
		return fmt.Errorf("synchronous_commit on: %w", err)
	}
	return nil
}

// measure opens the database dsn as sluice serve does, loads it, times the
// ingest through the API, then the queries.
func measure(ctx context.Context, o options, name, dsn string, w io.Writer, log *slog.Logger,
	load func(context.Context) error) (_ *report, err error) {
	rep := &report{db: name, loaded: o.n}
	retries := &retryCounter{next: log.Handler(), n: new(atomic.Int64)}
	db, err := store.Open(ctx, dsn, slog.New(retries))
	if err != nil {
		return nil, err
	}
	defer db.Close()

	fmt.Fprintf(w, "%s: loading %s results in bulk\n", name, thousands(o.n))
	start := time.Now()
	if err := load(ctx); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	rep.load = time.Since(start)
	if err := countResults(ctx, db, o.n); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "%s: loaded in %.1f s\n", name, rep.load.Seconds())

	srv, err := startServer(db, log)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, srv.stop(ctx)) }()

	fmt.Fprintf(w, "%s: %d clients POST results for %v (after %v of warm-up)\n", name, o.clients, o.ingestTime, o.ingestTime/10)
	next := o.n / resultsPerBuildset
	warm, next, err := ingest(ctx, srv.base, o.clients, o.ingestTime/10, o.items, next, 100)
	if err != nil {
		return nil, fmt.Errorf("ingest warm-up: %w", err)
	}
	before := retries.n.Load()
	rep.ingest, _, err = ingest(ctx, srv.base, o.clients, o.ingestTime, o.items, next, 200)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	rep.retries = retries.n.Load() - before
	// Every POST answered 201 is stored, and none of the others.
	if err := countResults(ctx, db, o.n+warm.posted+rep.ingest.posted); err != nil {
		return nil, err
	}
	rep.failed = warm.failed + rep.ingest.failed
	if rep.failed > 0 {
		rep.firstFailure = cmp.Or(warm.firstFailure, rep.ingest.firstFailure)
		fmt.Fprintf(w, "%s: %d POSTs refused, the first: %s\n", name, rep.failed, rep.firstFailure)
	}

	g := newGen(o.items, 300)
	for _, q := range []latestQuery{itemQuery(g), greenwaveQuery(g)} {
		fmt.Fprintf(w, "%s: %d requests of %s\n", name, o.queries, q.name)
		st, err := timeQueries(ctx, srv.base, q, warmQueries, o.queries)
		if err != nil {
			return nil, err
		}
		rep.queries = append(rep.queries, st)
	}
	return rep, nil
}

// countResults checks that the database holds want results: every
// acknowledged POST and every loaded row.
func countResults(ctx context.Context, db *store.DB, want int) error {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM results`).Scan(&n); err != nil {
		return fmt.Errorf("count results: %w", err)
	}
	if n != want {
		return fmt.Errorf("the database holds %d results, want %d", n, want)
	}
	return nil
}

// retryCounter counts the store's retried transactions (a debug record)
// and hands warnings and errors on to next.
type retryCounter struct {
	next slog.Handler
	n    *atomic.Int64
}

func (h *retryCounter) Enabled(ctx context.Context, l slog.Level) bool {
	return l == slog.LevelDebug || h.next.Enabled(ctx, l)
}

func (h *retryCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "store transaction retried" {
		h.n.Add(1)
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *retryCounter) WithAttrs(as []slog.Attr) slog.Handler {
	return &retryCounter{next: h.next.WithAttrs(as), n: h.n}
}

func (h *retryCounter) WithGroup(name string) slog.Handler {
	return &retryCounter{next: h.next.WithGroup(name), n: h.n}
}
