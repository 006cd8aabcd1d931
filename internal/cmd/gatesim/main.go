// Command gatesim is a deterministic discrete-event simulation of the gate
// that drives the real pipeline code (pipeline.Scheduler) in simulated
// time, without sleeping. Every random outcome is a hash of (seed, change,
// the set of changes tested together, stage, attempt), so that every
// policy faces the same world. It prints one table per failure
// probability and flake rate, with what Zuul's closed form predicts for
// the dependent pipeline beside the measured figures, then measures the
// scheduler itself with real goroutines and wall time: event-to-dispatch
// latency with 1,000 items queued. `make bench` runs it.
//
// A timing never makes it fail; it exits non-zero only on an internal
// error (a change merged that was not tested exactly as merged counts as
// one in the table, not as an exit).
package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"time"

	"github.com/sluice-ci/sluice/pipeline"
	"github.com/sluice-ci/sluice/zuul"
)

func main() {
	var o options
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the simulated world")
	flag.IntVar(&o.changes, "changes", 200, "changes per simulation")
	flag.DurationVar(&o.arrival, "arrival", time.Minute, "time between two approvals")
	flag.IntVar(&o.capacity, "capacity", 64, "concurrent stage runs")
	flag.Float64Var(&o.conflict, "conflict", 0.002, "probability that two changes within 20 of each other conflict textually")
	flag.IntVar(&o.queued, "queued", 1000, "items queued for the latency measurement")
	flag.IntVar(&o.samples, "samples", 400, "latency samples")
	flag.Parse()
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gatesim:", err)
		os.Exit(1)
	}
}

type options struct {
	seed            uint64
	changes         int
	arrival         time.Duration
	capacity        int
	conflict        float64
	queued, samples int
}

// policy is a gate window rule.
type policy struct {
	name                string
	window, floor, ceil int
	zuulDefault         bool
	confirm             bool // confirm-failures (sluice's extension)
	predictWindow       int  // W of the closed form (0: none)
}

var policies = []policy{
	{name: "serial (window 1)", window: 1, floor: 1, ceil: 1, predictWindow: 1},
	{name: "window 3", window: 3, floor: 3, ceil: 3, predictWindow: 3},
	{name: "window 10", window: 10, floor: 10, ceil: 10, predictWindow: 10},
	{name: "window 20", window: 20, floor: 20, ceil: 20, predictWindow: 20},
	{name: "Zuul default", zuulDefault: true},
	{name: "w20 confirm", window: 20, floor: 20, ceil: 20, predictWindow: 20, confirm: true},
	{name: "Zuul dflt confirm", zuulDefault: true, confirm: true},
}

func run(o options, w io.Writer) error {
	fmt.Fprintf(w, "gatesim: %d changes, one approved every %s, %d concurrent stage runs, seed %d\n",
		o.changes, o.arrival, o.capacity, o.seed)
	fmt.Fprintln(w, "stage durations lognormal (median, sigma): build.deb/build.rpm 8m 0.35, publish 2m 0.3, install 4m 0.35, systest 15m 0.4; merge 30s, submit 10s")
	fmt.Fprintf(w, "a bad change fails every buildset that contains it (one stage, fixed per change); textual conflicts p=%.3f per pair within 20\n", o.conflict)
	T := meanTestTime(o.seed)
	fmt.Fprintf(w, "T (mean buildset time without queueing, Monte Carlo of the stage graph) = %s\n\n", T.Round(time.Second))

	var target struct {
		serial, w20, bpm, w20c, bpmc float64
	}
	for _, q := range []float64{0.02, 0.1, 0.2} {
		for _, flake := range []float64{0, 0.02} {
			qEff := 1 - (1-q)*math.Pow(1-flake, stagesPerBuildset)
			fmt.Fprintf(w, "q=%.2f flake=%.2f (closed form with q'=1-(1-q)(1-flake)^%d=%.3f, T=%s)\n", q, flake, stagesPerBuildset, qEff, T.Round(time.Second))
			fmt.Fprintf(w, "  %-18s %9s %8s %7s %7s %7s %10s %10s %8s %10s %9s %7s %6s %6s %6s\n",
				"policy", "merged/h", "pred", "xserial", "ttm50", "ttm95", "reject-bad", "runs/merge", "bs/merge", "pred", "reset/mrg", "wrong", "badmrg", "confl", "untest")
			var serial float64
			for _, p := range policies {
				r, err := simulate(o, p, q, flake)
				if err != nil {
					return fmt.Errorf("simulate %s q=%.2f flake=%.2f: %w", p.name, q, flake, err)
				}
				thr := r.throughput()
				if p.window == 1 && !p.zuulDefault {
					serial = thr
				}
				predT, predB := "-", "-"
				if p.predictWindow > 0 {
					predT = fmt.Sprintf("%.2f", closedThroughput(qEff, T, p.predictWindow))
					predB = fmt.Sprintf("%.2f", closedRuns(qEff, p.predictWindow))
				}
				fmt.Fprintf(w, "  %-18s %9.2f %8s %7.2f %7s %7s %10s %10.1f %8.2f %10s %9.2f %7d %6d %6d %6d\n",
					p.name, thr, predT, thr/serial, dur(r.ttm.p(50)), dur(r.ttm.p(95)), dur(r.reject.p(50)),
					float64(r.stageRuns)/float64(max(r.merged, 1)), float64(r.buildsets)/float64(max(r.merged, 1)), predB,
					float64(r.resets)/float64(max(r.merged, 1)), r.wrongRejects, r.badMerged, r.conflicts, r.untested)
				if q == 0.1 && flake == 0 {
					switch {
					case p.window == 1 && !p.zuulDefault:
						target.serial = thr
					case p.window == 20 && p.confirm:
						target.w20c = thr
						target.bpmc = float64(r.buildsets) / float64(max(r.merged, 1))
					case p.window == 20:
						target.w20 = thr
						target.bpm = float64(r.buildsets) / float64(max(r.merged, 1))
					}
				}
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintln(w, "columns: merged/h over the run; pred = (1-(1-q')^W)/(q'T); xserial = throughput / serial's; ttm = approval to merge p50/p95;")
	fmt.Fprintln(w, "  reject-bad = approval to the failure report of a bad change, p50; runs = stage runs started; bs = buildsets (merges asked);")
	fmt.Fprintln(w, "  pred = W q'/((1-q')(1-(1-q')^W)); reset = buildsets dropped for a new speculative state; wrong = good changes rejected;")
	fmt.Fprintln(w, "  badmrg = bad changes merged (must be 0); confl = rejected for a textual conflict; untest = merged tips not tested exactly as merged (must be 0)")
	fmt.Fprintf(w, "target q=0.10 flake=0 window 20: >= 8x serial throughput: %.2fx (%s); <= 2.6 buildsets per merged change: %.2f (%s)\n",
		target.w20/target.serial, met(target.w20/target.serial >= 8), target.bpm, met(target.bpm <= 2.6))
	fmt.Fprintf(w, "  the same with confirm-failures: %.2fx (%s); %.2f buildsets per merged change (%s)\n\n",
		target.w20c/target.serial, met(target.w20c/target.serial >= 8), target.bpmc, met(target.bpmc <= 2.6))

	return latency(o, w)
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func dur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	h := d.Hours()
	if h >= 1 {
		return fmt.Sprintf("%.1fh", h)
	}
	return fmt.Sprintf("%.0fm", d.Minutes())
}

// closedThroughput is (1-(1-q)^W)/(q*T), in changes per hour.
func closedThroughput(q float64, T time.Duration, W int) float64 {
	if q == 0 {
		return float64(W) / T.Hours()
	}
	return (1 - math.Pow(1-q, float64(W))) / (q * T.Hours())
}

// closedRuns is W*q/((1-q)(1-(1-q)^W)), buildsets per merged change.
func closedRuns(q float64, W int) float64 {
	if q == 0 {
		return 1
	}
	return float64(W) * q / ((1 - q) * (1 - math.Pow(1-q, float64(W))))
}

// ---- percentiles

type samples []time.Duration

func (s samples) p(pct float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := slices.Clone(s)
	slices.Sort(c)
	i := int(math.Ceil(pct/100*float64(len(c)))) - 1
	return c[max(0, min(i, len(c)-1))]
}

// ---- the configuration the simulation gates with

const stagesPerBuildset = 5 // build.deb, build.rpm, publish, install, systest

func simConfig(p policy) *pipeline.Config {
	c := pipeline.DefaultConfig()
	c.Pipelines = slices.DeleteFunc(c.Pipelines, func(x pipeline.Pipeline) bool { return x.Name != "gate" })
	g := &c.Pipelines[0]
	g.Start = pipeline.ReporterConfig{}
	g.ConfirmFailures = p.confirm
	if !p.zuulDefault {
		g.Window, g.WindowFloor, g.WindowCeiling = &p.window, &p.floor, &p.ceil
	}
	c.Projects = []pipeline.Project{{Name: "pkgs", Queue: "pkgs", Formats: []string{"deb", "rpm"},
		Stages: []string{pipeline.StageInstall, pipeline.StageSystest}, Attempts: 3}}
	return c
}

func simChange(n int) zuul.Change {
	return zuul.Change{Project: "pkgs", Branch: "main", Number: n, Patchset: 1, Ref: zuul.ChangeRef(n, 1),
		Commit: fmt.Sprintf("%040x", n), Status: "NEW", Current: true,
		Approvals: []zuul.Approval{{Label: "Code-Review", Value: 2}, {Label: "Workflow", Value: 1}}}
}

func approval(n int) pipeline.TriggerEvent {
	c := simChange(n)
	return pipeline.TriggerEvent{Event: zuul.Event{Type: zuul.CommentAdded, Project: c.Project, Branch: c.Branch,
		Change: &c, Approvals: []zuul.Approval{{Label: "Workflow", Value: 1}}}, Change: &c}
}
