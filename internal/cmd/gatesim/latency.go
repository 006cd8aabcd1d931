package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/sluice-ci/sluice/pipeline"
	"github.com/sluice-ci/sluice/zuul"
)

// dispatched is a DispatchStage as the fake dispatcher saw it, and when.
type dispatched struct {
	d  pipeline.DispatchStage
	at time.Time
}

// benchParts are instant in-memory parts for the latency measurement: the
// dispatcher only notes the runs (the measuring loop plays the workers),
// merges succeed, submits merge and a new change is approved for each
// merged one, to keep the queue full.
type benchParts struct {
	runner *pipeline.Runner
	ctx    context.Context
	ch     chan dispatched
	next   chan int
}

func (b *benchParts) Dispatch(_ context.Context, d pipeline.DispatchStage) error {
	b.ch <- dispatched{d, time.Now()}
	return nil
}
func (b *benchParts) Cancel(context.Context, pipeline.CancelStage) error { return nil }
func (b *benchParts) Merge(_ context.Context, _ string, cs []zuul.Change) (map[string]string, string, error) {
	return map[string]string{"pkgs": "0123456789abcdef0123456789abcdef01234567"}, "", nil
}
func (b *benchParts) Report(context.Context, pipeline.Report) error { return nil }
func (b *benchParts) Submit(ctx context.Context, s pipeline.Submit) (bool, error) {
	n := <-b.next
	b.next <- n + 1
	if err := b.runner.Deliver(ctx, approval(n)); err != nil {
		return false, err
	}
	return true, nil
}

// latency measures, with real goroutines and wall time, the time from
// delivering a stage outcome to the Runner to the dispatch of the stage it
// unblocks, with o.queued items in the gate.
func latency(o options, w io.Writer) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := simConfig(policy{zuulDefault: true})
	s, err := pipeline.NewScheduler(cfg, time.Now, "")
	if err != nil {
		return err
	}
	b := &benchParts{ctx: ctx, ch: make(chan dispatched, 1<<16), next: make(chan int, 1)}
	b.next <- o.queued + 1
	b.runner = pipeline.NewRunner(s, pipeline.Parts{Dispatcher: b, Merger: b, Reporter: b, Submitter: b},
		slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	done := make(chan error, 1)
	go func() { done <- b.runner.Run(ctx) }()
	start := time.Now()
	for n := 1; n <= o.queued; n++ {
		if err := b.runner.Deliver(ctx, approval(n)); err != nil {
			return err
		}
	}

	var lat samples
	var queue []pipeline.DispatchStage
	builds := map[string]int{}
	tests := map[string]int{}
	timeout := time.NewTimer(5 * time.Minute)
	defer timeout.Stop()
	take := func() (dispatched, error) {
		select {
		case d := <-b.ch:
			return d, nil
		case <-timeout.C:
			return dispatched{}, fmt.Errorf("latency: no dispatch for 5 minutes")
		}
	}
	for len(lat) < o.samples {
		for len(queue) == 0 || len(b.ch) > 0 {
			d, err := take()
			if err != nil {
				return err
			}
			queue = append(queue, d.d)
		}
		r := queue[0]
		queue = queue[1:]
		// want is the stage this outcome unblocks, if any.
		want := ""
		switch r.Stage {
		case "build.deb", "build.rpm":
			builds[r.Buildset]++
			if builds[r.Buildset] == 2 {
				want = pipeline.StagePublish
			}
		case pipeline.StagePublish:
			want = pipeline.StageInstall
		default:
			tests[r.Buildset]++
		}
		t0 := time.Now()
		if err := b.runner.Deliver(ctx, pipeline.StageEnded{Buildset: r.Buildset, Stage: r.Stage, Attempt: r.Attempt, Outcome: pipeline.OutcomePassed}); err != nil {
			return err
		}
		for want != "" {
			d, err := take()
			if err != nil {
				return err
			}
			queue = append(queue, d.d)
			if d.d.Buildset == r.Buildset && d.d.Stage == want {
				lat = append(lat, d.at.Sub(t0))
				want = ""
			}
		}
	}
	items := 0
	cancel()
	if err := <-done; err != nil {
		return err
	}
	for _, ps := range s.State().Pipelines {
		for _, q := range ps.Queues {
			items += len(q.Items)
		}
	}
	p99 := lat.p(99)
	fmt.Fprintf(w, "scheduler latency (real Runner, wall time, %d items queued, %d samples, %s in all): event-to-dispatch p50 %s p99 %s (target p99 < 50ms: %s)\n",
		items, len(lat), time.Since(start).Round(time.Millisecond), lat.p(50).Round(time.Microsecond), p99.Round(time.Microsecond), met(p99 < 50*time.Millisecond))
	return nil
}
