package jobs

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
)

// TestPool runs stage functions through a pool: outcomes come back once
// per run, a repeated dispatch runs once, an error is ERROR, a panic is
// the stage's ERROR, a cancelled run (queued or running) is reported
// cancelled, and an unknown stage is refused.
func TestPool(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		block := make(chan struct{})
		var mu sync.Mutex
		calls := map[string]int{}
		stages := map[string]StageFunc{
			"build": func(ctx context.Context, r Run) (Result, error) {
				mu.Lock()
				calls[r.Key()]++
				mu.Unlock()
				if r.Params["FAIL"] == "1" {
					return Result{Outcome: Failed}, nil
				}
				return Result{Outcome: Passed, LogURL: "http://logs/" + r.Key()}, nil
			},
			"broken": func(ctx context.Context, r Run) (Result, error) { return Result{}, errors.New("no disk") },
			"panics": func(ctx context.Context, r Run) (Result, error) { panic("oops") },
			"slow": func(ctx context.Context, r Run) (Result, error) {
				select {
				case <-block:
					return Result{Outcome: Passed}, nil
				case <-ctx.Done():
					return Result{}, ctx.Err()
				}
			},
		}
		got := map[string]Outcome{}
		reports := map[string]int{}
		p := NewPool(stages, 1, func(_ context.Context, o Outcome) {
			mu.Lock()
			defer mu.Unlock()
			got[o.Run.Key()] = o
			reports[o.Run.Key()]++
		}, slog.New(slog.DiscardHandler))
		done := make(chan error)
		go func() { done <- p.Run(ctx) }()

		runs := []Run{
			{Buildset: "b1", Stage: "slow", Attempt: 1},
			{Buildset: "b1", Stage: "build", Attempt: 1},
			{Buildset: "b1", Stage: "build", Attempt: 1}, // repeated delivery
			{Buildset: "b2", Stage: "build", Attempt: 1, Params: map[string]string{"FAIL": "1"}},
			{Buildset: "b3", Stage: "broken", Attempt: 1},
			{Buildset: "b4", Stage: "panics", Attempt: 1},
			{Buildset: "b5", Stage: "build", Attempt: 2},
		}
		for _, r := range runs {
			if err := p.Dispatch(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Dispatch(ctx, Run{Buildset: "b", Stage: "nope", Attempt: 1}); !errors.Is(err, ErrUnknownStage) {
			t.Fatalf("unknown stage: %v", err)
		}
		synctest.Wait() // the one worker is in "slow"; the rest are queued
		if err := p.Cancel(ctx, "b5/build/2"); err != nil {
			t.Fatal(err)
		}
		if err := p.Cancel(ctx, "b1/slow/1"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		want := map[string]string{"b1/slow/1": Error, "b1/build/1": Passed, "b2/build/1": Failed,
			"b3/broken/1": Error, "b4/panics/1": Error, "b5/build/2": Error}
		for k, o := range want {
			if got[k].Result.Outcome != o || reports[k] != 1 {
				t.Errorf("%s: %+v reported %d times, want %s once", k, got[k], reports[k], o)
			}
		}
		if !got["b1/slow/1"].Canceled || !got["b5/build/2"].Canceled || got["b1/build/1"].Canceled {
			t.Errorf("cancelled flags: %+v", got)
		}
		if calls["b1/build/1"] != 1 || calls["b5/build/2"] != 0 {
			t.Errorf("calls %v", calls)
		}
		if got["b1/build/1"].Result.LogURL != "http://logs/b1/build/1" || got["b3/broken/1"].Err != "no disk" {
			t.Errorf("outcomes %+v", got)
		}
		cancel()
		mu.Unlock()
		<-done
		mu.Lock()
	})
}
