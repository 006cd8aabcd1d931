package pipeline

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluice-ci/sluice/zuul"
)

// fakeParts are in-memory Dispatcher, Merger, Reporter, Submitter and
// Recorder: stage runs pass at once, merges succeed, submits merge.
type fakeParts struct {
	r       *Runner
	mu      sync.Mutex
	reports chan Report
	records chan RecordBuildsetOutcome
	submits []string
	wg      sync.WaitGroup
}

func (f *fakeParts) Dispatch(ctx context.Context, d DispatchStage) error {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		_ = f.r.Deliver(ctx, StageEnded{Buildset: d.Buildset, Stage: d.Stage, Attempt: d.Attempt, Outcome: OutcomePassed})
	}()
	return nil
}

func (f *fakeParts) Cancel(context.Context, CancelStage) error { return nil }

func (f *fakeParts) Merge(_ context.Context, ref string, changes []zuul.Change) (map[string]string, string, error) {
	return map[string]string{changes[0].Project: "0123456789abcdef0123456789abcdef01234567"}, "", nil
}

func (f *fakeParts) Report(_ context.Context, r Report) error {
	f.reports <- r
	return nil
}

func (f *fakeParts) Submit(_ context.Context, s Submit) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.submits = append(f.submits, s.Change.String())
	return true, nil
}

func (f *fakeParts) RecordBuildset(_ context.Context, r RecordBuildsetOutcome) error {
	f.records <- r
	return nil
}

func TestRunner(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		c := approved(change("hello", 5, 1))
		f := &fakeParts{reports: make(chan Report, 10), records: make(chan RecordBuildsetOutcome, 10)}
		s, err := NewScheduler(defaultConfig(t), func() time.Time { return time.Now() }, "")
		if err != nil {
			t.Fatal(err)
		}
		f.r = NewRunner(s, Parts{Dispatcher: f, Merger: f, Reporter: f, Submitter: f, Recorder: f, Query: fakeQuery{c}},
			slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
		done := make(chan error)
		go func() { done <- f.r.Run(ctx) }()

		// The event names patchset 1 without approvals; the query adds them.
		ev := zuul.Event{Type: zuul.CommentAdded, Project: "hello", Branch: "main", Change: &zuul.Change{Project: "hello", Number: 5, Patchset: 1},
			Approvals: []zuul.Approval{{Label: "Workflow", Value: 1}}, Comment: "recheck"}
		if err := f.r.Trigger(ctx, ev, 0); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for range 2 { // gate start, check success
			r := <-f.reports
			got[r.Pipeline] = r.Action
		}
		if got["check"] != "success" || got["gate"] != "start" {
			t.Errorf("reports = %v", got)
		}
		results := map[string]bool{}
		for range 2 {
			r := <-f.records
			results[r.Pipeline+" "+r.Result] = true
		}
		if !results["gate MERGED"] || !results["check SUCCESS"] {
			t.Errorf("records = %v", results)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		f.wg.Wait()
		if len(f.submits) != 1 || f.submits[0] != "5,1" {
			t.Errorf("submits = %v", f.submits)
		}
	})
}
