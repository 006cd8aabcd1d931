// Command resultsbench measures sluice's embedded ResultsDB (package
// results) on SQLite and on PostgreSQL in one run: how many results per
// second 8 concurrent clients POST through the real HTTP API, and how long
// GET /api/v2.0/results/latest takes on a database of a million results,
// for a plain item and for the query Greenwave makes for every gating
// decision. It prints a table of the values, the targets and the
// ratios measured/target and SQLite/PostgreSQL. `make bench` runs it.
//
// Upstream ResultsDB, the tool these numbers would best be compared with,
// is packaged neither in Debian nor on PyPI here, so it cannot run in the
// same run: the targets stand in for it.
//
// PostgreSQL is a throwaway cluster of internal/pgtest, started by the
// program and stopped at its end; without PostgreSQL installed its column
// says so. A timing never makes the program fail: it exits non-zero when a
// load, a query or the database fails, and, after printing the table, when
// a POST was refused (a status other than 201: the table counts them).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/sluice-ci/sluice/internal/benchmain"
)

type options struct {
	n, items   int
	clients    int
	ingestTime time.Duration
	queries    int
	dbs        []string
	work       string
	postgres   string
	cpuProfile string
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 1_000_000, "results loaded in bulk into each database before the queries")
	flag.IntVar(&o.items, "items", 10_000, "distinct items (NVRs) among the loaded results")
	flag.IntVar(&o.clients, "clients", 8, "concurrent clients that POST results")
	flag.DurationVar(&o.ingestTime, "ingest-time", 10*time.Second, "how long the clients POST, per database, after a warm-up of a tenth of it")
	flag.IntVar(&o.queries, "queries", 2000, "timed requests of each query, per database, after 200 untimed ones")
	dbs := flag.String("db", "sqlite,postgres", "databases to measure, comma-separated: sqlite, postgres")
	flag.StringVar(&o.work, "work", "", "keep the SQLite database in a new directory under `DIR` (default: a temporary directory, removed at the end)")
	flag.StringVar(&o.postgres, "postgres", "", "measure PostgreSQL on this empty database (`DSN`, postgres://..., as a superuser: the load sets session_replication_role) and leave the data there, instead of on a throwaway cluster")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to `FILE`")
	flag.Parse()
	o.dbs = strings.Split(*dbs, ",")
	benchmain.Run("resultsbench", o.validate, func(ctx context.Context, w io.Writer, log *slog.Logger) error {
		return run(ctx, o, w, log)
	})
}

func (o *options) validate() error {
	switch {
	case o.items < 1:
		return fmt.Errorf("-items %d: want at least 1", o.items)
	case o.n < o.items*resultsPerBuildset:
		return fmt.Errorf("-n %d: want at least %d (-items times %d results of a buildset), so that every item has results", o.n, o.items*resultsPerBuildset, resultsPerBuildset)
	case o.clients < 1:
		return fmt.Errorf("-clients %d: want at least 1", o.clients)
	case o.ingestTime <= 0:
		return fmt.Errorf("-ingest-time %v: want a positive duration", o.ingestTime)
	case o.queries < 1:
		return fmt.Errorf("-queries %d: want at least 1", o.queries)
	}
	for i, d := range o.dbs {
		if d != sqliteDB && d != postgresDB || slices.Contains(o.dbs[:i], d) {
			return fmt.Errorf("-db: %q is not sqlite or postgres, or given twice", d)
		}
	}
	return nil
}

// The databases, as -db names them.
const (
	sqliteDB   = "sqlite"
	postgresDB = "postgres"
)

func run(ctx context.Context, o options, w io.Writer, log *slog.Logger) (err error) {
	start := time.Now()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var work string
	if o.work == "" {
		work, err = os.MkdirTemp("", "resultsbench-")
		defer func() { err = errors.Join(err, os.RemoveAll(work)) }()
	} else if err = os.MkdirAll(o.work, 0o755); err == nil {
		work, err = os.MkdirTemp(o.work, "resultsbench-")
	}
	if err != nil {
		return fmt.Errorf("work directory: %w", err)
	}

	fmt.Fprintf(w, "resultsbench: %s results of %d items loaded per database, %d clients POSTing for %v, %d timed requests per query\n",
		thousands(o.n), o.items, o.clients, o.ingestTime, o.queries)
	fmt.Fprintf(w, "%s %s/%s, %d CPUs, GOMAXPROCS %d; server and clients in this one process, over loopback HTTP\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	if d, err := fsyncCost(work); err == nil {
		fmt.Fprintf(w, "fsync of a 4 KiB write in %s: %.2f ms (median of 50)\n", work, float64(d.Microseconds())/1000)
	}

	var reps []*report
	for _, name := range o.dbs {
		var rep *report
		switch name {
		case sqliteDB:
			rep, err = benchSQLite(ctx, o, work, w, log)
		case postgresDB:
			rep, err = benchPostgres(ctx, o, w, log)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		reps = append(reps, rep)
	}
	printTable(w, o, reps)
	printNotes(w, o)
	var refused []error
	for _, r := range reps {
		if r.failed > 0 {
			refused = append(refused, fmt.Errorf("%s: %d POSTs refused, the first: %s", r.db, r.failed, r.firstFailure))
		}
	}
	defer func() { err = errors.Join(err, errors.Join(refused...)) }()
	kept := ""
	if o.work != "" {
		kept = ", SQLite database kept in " + work
	}
	fmt.Fprintf(w, "\nwhole run: %.1f s%s\n", time.Since(start).Seconds(), kept)
	return nil
}

// fsyncCost times the fsync of a small write in dir, to tell what a
// durable commit costs on this machine.
func fsyncCost(dir string) (time.Duration, error) {
	f, err := os.CreateTemp(dir, "fsync-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	var ds []time.Duration
	for i := range 50 {
		start := time.Now()
		if _, err := f.WriteAt(buf, int64(i)*4096); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}

// thousands formats n with commas: 1,000,000.
func thousands(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
