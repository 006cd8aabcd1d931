// Command gearbench measures the dispatch of stage runs (package jobs)
// with no-op stages: the in-process pool of the embedded default, and a
// real gearmand (Debian's gearman-job-server, started by the program on a
// free loopback port) with 1, 4 and 8 sluice workers. For each it prints
// runs per second from the first dispatch to the last outcome of n runs
// dispatched at once, and the p50 and p99 of the latency from a run's
// dispatch to its start on a worker while n runs are dispatched at a
// steady -rate (2,000/s), beside the targets (8 workers: at least
// 2,000 runs/s, p99 under 20 ms at that load) and the ratios to the
// in-process pool. `make bench`
// runs it. A timing never makes it fail; a run that never ends does.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/sluice-ci/sluice/internal/benchmain"
	"github.com/sluice-ci/sluice/jobs"
	"github.com/sluice-ci/sluice/jobs/gearman/gearmantest"
)

func main() {
	n := flag.Int("n", 10_000, "no-op stage runs per configuration and phase")
	rate := flag.Int("rate", 2000, "runs per second of the latency phase")
	workersFlag := flag.String("workers", "1,4,8", "numbers of Gearman workers to measure, comma-separated")
	flag.Parse()
	var counts []int
	benchmain.Run("gearbench", func() error {
		if *rate < 1 {
			return fmt.Errorf("-rate %d: want at least 1", *rate)
		}
		if *n < 1 {
			return fmt.Errorf("-n %d: want at least 1", *n)
		}
		for _, s := range strings.Split(*workersFlag, ",") {
			v, err := strconv.Atoi(s)
			if err != nil || v < 1 || v > 64 {
				return fmt.Errorf("-workers: %q is not 1 to 64", s)
			}
			counts = append(counts, v)
		}
		return nil
	}, func(ctx context.Context, w io.Writer, log *slog.Logger) error {
		var rows []row
		r, err := measure(ctx, "in-process pool (8)", *n, *rate, func(ctx context.Context, stages map[string]jobs.StageFunc, report func(context.Context, jobs.Outcome)) (dispatcher, error) {
			return jobs.NewPool(stages, 8, report, log), nil
		})
		if err != nil {
			return err
		}
		rows = append(rows, r)
		dir, err := os.MkdirTemp("", "gearbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		srv, err := gearmantest.Start(dir)
		if err != nil {
			return fmt.Errorf("gearmand: %w", err)
		}
		defer srv.Stop()
		for _, c := range counts {
			r, err := measure(ctx, fmt.Sprintf("gearmand, %d workers", c), *n, *rate, func(ctx context.Context, stages map[string]jobs.StageFunc, report func(context.Context, jobs.Outcome)) (dispatcher, error) {
				for i := range c {
					wk := jobs.NewGearmanWorker([]string{srv.Addr}, fmt.Sprintf("bench-%d-%d", c, i), 1, stages, nil, log)
					go wk.Run(ctx)
				}
				return jobs.NewGearman([]string{srv.Addr}, "gearbench", report, log), nil
			})
			if err != nil {
				return err
			}
			r.workers = c
			rows = append(rows, r)
		}
		print(w, *n, *rate, rows)
		return nil
	})
}

type dispatcher interface {
	Dispatch(context.Context, jobs.Run) error
	Run(context.Context) error
}

type row struct {
	name          string
	workers       int
	perSecond     float64
	p50, p99, max time.Duration
}

// measure dispatches n no-op runs at once (throughput), then n more at
// rate a second (latency), on one dispatcher and its workers.
func measure(ctx context.Context, name string, n, rate int,
	mk func(context.Context, map[string]jobs.StageFunc, func(context.Context, jobs.Outcome)) (dispatcher, error)) (row, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	dispatched := make(map[string]time.Time, 2*n)
	var latencies []time.Duration
	var done chan struct{}
	ended := 0
	stages := map[string]jobs.StageFunc{"noop": func(_ context.Context, r jobs.Run) (jobs.Result, error) {
		now := time.Now()
		mu.Lock()
		latencies = append(latencies, now.Sub(dispatched[r.Key()]))
		mu.Unlock()
		return jobs.Result{Outcome: jobs.Passed}, nil
	}}
	report := func(_ context.Context, o jobs.Outcome) {
		mu.Lock()
		defer mu.Unlock()
		if ended++; ended == n {
			close(done)
		}
	}
	d, err := mk(ctx, stages, report)
	if err != nil {
		return row{}, err
	}
	var wg sync.WaitGroup
	wg.Go(func() { d.Run(ctx) })
	defer wg.Wait()
	defer cancel()
	// The workers connect and register before the clock starts.
	time.Sleep(500 * time.Millisecond)
	phase := func(first int, every time.Duration) (time.Duration, error) {
		mu.Lock()
		done, ended, latencies = make(chan struct{}), 0, latencies[:0]
		mu.Unlock()
		start := time.Now()
		for i := range n {
			if every > 0 {
				if wait := time.Until(start.Add(time.Duration(i) * every)); wait > 0 {
					time.Sleep(wait)
				}
			}
			r := jobs.Run{Pipeline: "check", Buildset: fmt.Sprintf("%032x", first+i), Stage: "noop", Attempt: 1, Project: "bench"}
			mu.Lock()
			dispatched[r.Key()] = time.Now()
			mu.Unlock()
			if err := d.Dispatch(ctx, r); err != nil {
				return 0, err
			}
		}
		select {
		case <-done:
		case <-time.After(10 * time.Minute):
			return 0, fmt.Errorf("%s: %d of %d runs ended in 10 minutes", name, ended, n)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		return time.Since(start), nil
	}
	elapsed, err := phase(0, 0)
	if err != nil {
		return row{}, err
	}
	if _, err := phase(n, time.Second/time.Duration(rate)); err != nil {
		return row{}, err
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(latencies)
	q := func(p float64) time.Duration { return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))] }
	return row{name: name, perSecond: float64(n) / elapsed.Seconds(), p50: q(0.50), p99: q(0.99), max: latencies[len(latencies)-1]}, nil
}

func print(w io.Writer, n, rate int, rows []row) {
	fmt.Fprintf(w, "Dispatch of no-op stage runs: runs/s of %d dispatched at once; latency from dispatch to start on a worker\nof %d dispatched at %d/s\n\n", n, n, rate)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "configuration\truns/s\tp50\tp99\tmax\truns/s ÷ in-process\tp99 ÷ in-process\ttarget\t")
	base := rows[0]
	for _, r := range rows {
		target := ""
		if r.workers == 8 {
			target = "≥ 2000 runs/s, p99 < 20 ms: "
			if r.perSecond >= 2000 && r.p99 < 20*time.Millisecond {
				target += "met"
			} else {
				target += "NOT met"
			}
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%.3f\t%.1f\t%s\t\n", r.name, r.perSecond, ms(r.p50), ms(r.p99), ms(r.max),
			r.perSecond/base.perSecond, float64(r.p99)/float64(max(base.p99, time.Microsecond)), target)
	}
	tw.Flush()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
