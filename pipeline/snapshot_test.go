package pipeline

import (
	"fmt"
	"maps"
	"testing"
	"time"
)

// outcomes sums up how each change left the pipelines: merged, or its last
// report.
func outcomes(actions []Action) map[string]string {
	out := map[string]string{}
	for _, a := range actions {
		switch a := a.(type) {
		case RecordBuildsetOutcome:
			if a.Result == "MERGED" {
				out[a.Item.String()] = "merged"
			}
		case Report:
			if a.Action != "start" {
				out[a.Pipeline+" "+a.Change.String()] = a.Action + votesString(a.Votes)
			}
		}
	}
	return out
}

func snapshotScenario(w *world) {
	w.outcomeOf = failIf(3, StageSystest)
	for n := 1; n <= 5; n++ {
		w.handle(approve(change("hello", n, 1)))
	}
	w.handle(uploaded(change("hello", 9, 1)))
}

// TestSnapshotRestore kills the scheduler after every number of steps of
// a gate run, restores it from its snapshot and goes on: the changes end
// the same way as without the crash, and no stage run is lost.
func TestSnapshotRestore(t *testing.T) {
	t.Parallel()
	ref := newWorld(t, defaultConfig(t))
	snapshotScenario(ref)
	ref.drain()
	want := outcomes(ref.actions)
	if want["1,1"] != "merged" || want["5,1"] != "merged" || want["gate 3,1"] != "failure:Verified=-2" || want["check 9,1"] != "success:Verified=+1" {
		t.Fatalf("reference outcome unexpected: %v", want)
	}
	total := ref.handled
	for cut := 1; cut < total; cut++ {
		t.Run(fmt.Sprint("after ", cut), func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, defaultConfig(t))
			snapshotScenario(w)
			for w.handled < cut && w.step() {
			}
			snap, err := w.s.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			// kill -9: the pending completions are lost with the process.
			w2 := &world{t: t, now: w.now.Add(time.Hour), running: map[string]bool{}, outcomeOf: w.outcomeOf}
			s, acts, err := Restore(defaultConfig(t), func() time.Time { return w2.now }, snap)
			if err != nil {
				t.Fatal(err)
			}
			w2.s = s
			w2.exec(acts)
			w2.drain()
			got := outcomes(append(w.actions, w2.actions...))
			if !maps.Equal(got, want) {
				t.Errorf("outcomes after a restore = %v, want %v", got, want)
			}
			if len(s.st.Buildsets) != 0 {
				t.Errorf("%d buildsets left", len(s.st.Buildsets))
			}
			for _, a := range acts {
				if d, ok := a.(DispatchStage); ok && d.Attempt < 2 {
					// A run dispatched again after a restore is a new attempt,
					// unless it had not started.
					if r := findRun(w, d.Buildset, d.Stage); r {
						t.Errorf("stage %s of %s dispatched again as attempt %d", d.Stage, d.Buildset, d.Attempt)
					}
				}
			}
		})
	}
}

// findRun says whether the crashed world had dispatched the stage.
func findRun(w *world, bs, stage string) bool {
	for _, a := range w.actions {
		if d, ok := a.(DispatchStage); ok && d.Buildset == bs && d.Stage == stage {
			return true
		}
	}
	return false
}
