package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// The targets.
const (
	ingestTarget  = 2000.0                // results/s, at least
	latencyTarget = 20 * time.Millisecond // p99, at most
)

// metric is a row of the table: a value per database.
type metric struct {
	name   string
	unit   string
	target string                        // as printed; empty when none
	limit  float64                       // the target in unit; 0 when none
	atMost bool                          // the target is an upper bound
	value  func(*report) (float64, bool) // false when not measured
}

func metrics(o options) []metric {
	out := []metric{
		{name: fmt.Sprintf("bulk load of %s results", thousands(o.n)), unit: "s",
			value: func(r *report) (float64, bool) { return r.load.Seconds(), true }},
		{name: fmt.Sprintf("ingest, POST /results, %d clients", o.clients), unit: "results/s",
			target: fmt.Sprintf(">= %.0f", ingestTarget), limit: ingestTarget,
			value: func(r *report) (float64, bool) {
				return float64(r.ingest.posted) / r.ingest.elapsed.Seconds(), r.ingest.posted > 0
			}},
		{name: "  POST latency p50", unit: "ms", value: func(r *report) (float64, bool) { return ms(pct(r.ingest.latency, 50)) }},
		{name: "  POST latency p99", unit: "ms", value: func(r *report) (float64, bool) { return ms(pct(r.ingest.latency, 99)) }},
		{name: "  transactions retried", unit: "count", value: func(r *report) (float64, bool) { return float64(r.retries), true }},
		{name: "  POSTs refused (not 201)", unit: "count", value: func(r *report) (float64, bool) { return float64(r.failed), true }},
	}
	for i, name := range []string{"latest?item=X", "greenwave latest"} {
		at := func(r *report) *queryStats {
			if i < len(r.queries) {
				return &r.queries[i]
			}
			return nil
		}
		out = append(out,
			metric{name: name + " p50", unit: "ms", value: func(r *report) (float64, bool) {
				if q := at(r); q != nil {
					return ms(pct(q.latency, 50))
				}
				return 0, false
			}},
			metric{name: name + " p99", unit: "ms", target: fmt.Sprintf("< %d", latencyTarget.Milliseconds()),
				limit: float64(latencyTarget.Milliseconds()), atMost: true,
				value: func(r *report) (float64, bool) {
					if q := at(r); q != nil {
						return ms(pct(q.latency, 99))
					}
					return 0, false
				}},
			metric{name: "  results per answer", unit: "mean", value: func(r *report) (float64, bool) {
				if q := at(r); q != nil && len(q.latency) > 0 {
					return float64(q.returned) / float64(len(q.latency)), true
				}
				return 0, false
			}},
		)
	}
	return out
}

// pct returns the p-th percentile of ds (nearest rank), and false for
// none.
func pct(ds []time.Duration, p int) (time.Duration, bool) {
	if len(ds) == 0 {
		return 0, false
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(float64(p)/100*float64(len(s)))) - 1
	return s[max(i, 0)], true
}

func ms(d time.Duration, ok bool) (float64, bool) {
	return float64(d.Microseconds()) / 1000, ok
}

func printTable(w io.Writer, o options, reps []*report) {
	byDB := map[string]*report{}
	for _, r := range reps {
		byDB[r.db] = r
	}
	fmt.Fprintf(w, "\n")
	const layout = "%-36s %-10s %10s %10s %8s %14s %16s %16s\n"
	fmt.Fprintf(w, layout, "measurement", "unit", sqliteDB, postgresDB, "target", "sqlite/target", "postgres/target", "sqlite/postgres")
	cell := func(m metric, db string) (float64, string) {
		r := byDB[db]
		switch {
		case r == nil:
			return math.NaN(), "-"
		case r.skipped != "":
			return math.NaN(), "skipped"
		}
		v, ok := m.value(r)
		if !ok {
			return math.NaN(), "-"
		}
		if m.unit == "count" {
			return v, fmt.Sprintf("%.0f", v)
		}
		return v, format(v)
	}
	ratio := func(a, b float64) string {
		if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
			return ""
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	for _, m := range metrics(o) {
		sv, s := cell(m, sqliteDB)
		pv, p := cell(m, postgresDB)
		var st, pt string
		if m.limit > 0 {
			st, pt = ratio(sv, m.limit), ratio(pv, m.limit)
		}
		sp := ""
		if m.unit != "count" && m.unit != "mean" {
			sp = ratio(sv, pv)
		}
		fmt.Fprintf(w, layout, m.name, m.unit, s, p, m.target, st, pt, sp)
	}

	fmt.Fprintf(w, "\ntargets (upstream ResultsDB cannot run here: neither in Debian nor on PyPI)\n")
	for _, m := range metrics(o) {
		if m.limit == 0 {
			continue
		}
		for _, db := range []string{sqliteDB, postgresDB} {
			v, s := cell(m, db)
			verdict := "not measured"
			if !math.IsNaN(v) {
				ok := v >= m.limit
				if m.atMost {
					ok = v < m.limit
				}
				verdict = map[bool]string{true: "met", false: "not met"}[ok]
			}
			fmt.Fprintf(w, "  %-24s %-9s %8s %-10s (target %s): %s\n", m.name, db, s, m.unit, m.target, verdict)
		}
	}
}

// format prints a value with 3 significant digits or as an integer.
func format(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func pgNote(o options) string {
	if o.postgres != "" {
		return "PostgreSQL is the database given with -postgres, on its server's settings (fsync, synchronous_commit), over the network path of its DSN"
	}
	return "PostgreSQL is internal/pgtest's throwaway cluster on this machine, which runs with fsync=off; the benchmark's database has synchronous_commit=on, so a commit waits for its WAL write but not for the disk: its ingest is an upper bound of a durable server's"
}

func printNotes(w io.Writer, o options) {
	notes := []string{
		"the server is results.NewAPI behind an http.Server on 127.0.0.1, with cmd/sluice serve's timeouts; the clients are in the same process and share its CPUs",
		"SQLite is opened as sluice serve opens it (store.Open of a file in a temporary directory: WAL, synchronous=FULL, one writer): every POST is a commit that waits for an fsync",
		pgNote(o),
		fmt.Sprintf("ingest: each client POSTs the %d results of one buildset after the other (a group per buildset, given by UUID; testcase as {name, ref_url}; 7 or 8 data keys), timed after a warm-up; its rate is the results acknowledged with 201 over the wall-clock time", resultsPerBuildset),
		fmt.Sprintf("bulk load: %s results of %d items (%d per buildset, %d testcases, 7 or 8 data keys each), written as Store.Create writes them, in big transactions (SQLite) or with COPY (PostgreSQL), with the indexes built at the end; it is not what sluice does, only how the test data gets there", thousands(o.n), o.items, resultsPerBuildset, len(testcases())),
		"after the load, SQLite has no ANALYZE statistics (sluice never runs ANALYZE, so its planner works without them); PostgreSQL gets VACUUM ANALYZE, which autovacuum would run on its own",
		"queries run after the ingest, one request at a time, each after 200 untimed ones; every answer is checked (its items, types, testcases); latency is the request's round trip up to the last byte of the answer",
		"greenwave latest: results/latest?item=X&type=koji_build,brew-build&_distinct_on=scenario,system_architecture,system_variant&testcases=T, X a Koji or Brew build, T a stage or a system test at even odds",
	}
	fmt.Fprintf(w, "\nnotes\n")
	for _, n := range notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
}
