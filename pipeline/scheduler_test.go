package pipeline

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-ci/sluice/zuul"
)

func TestCheckVotes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		outcome  func([]zuul.Change, string, int) Outcome
		conflict bool
		want     []string
	}{
		{name: "pass", want: []string{"1:success:Verified=+1"}},
		{name: "build fails", outcome: failIf(1, "build.rpm"), want: []string{"1:failure:Verified=-1"}},
		{name: "systest fails", outcome: failIf(1, StageSystest), want: []string{"1:failure:Verified=-1"}},
		{name: "merge conflict", conflict: true, want: []string{"1:merge-failure:Verified=-1"}},
		{name: "infra error three times", outcome: func(_ []zuul.Change, st string, _ int) Outcome {
			if st == StageLint {
				return OutcomeError
			}
			return OutcomePassed
		}, want: []string{"1:failure:Verified=-1"}},
		{name: "infra error once then passes", outcome: func(_ []zuul.Change, st string, a int) Outcome {
			if st == StageLint && a == 1 {
				return OutcomeError
			}
			return OutcomePassed
		}, want: []string{"1:success:Verified=+1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, defaultConfig(t))
			w.outcomeOf = tc.outcome
			if tc.conflict {
				w.conflictOf = func(cs []zuul.Change) string { return cs[len(cs)-1].String() }
			}
			w.handle(uploaded(change("hello", 1, 1)))
			w.drain()
			if got := w.reports("check"); !slices.Equal(got, tc.want) {
				t.Errorf("reports = %v, want %v", got, tc.want)
			}
			if n := w.queueLen("check"); n != 0 {
				t.Errorf("%d items left in check", n)
			}
			if len(w.s.st.Buildsets) != 0 {
				t.Errorf("%d buildsets left", len(w.s.st.Buildsets))
			}
		})
	}
}

func TestGate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		outcome    func([]zuul.Change, string, int) Outcome
		conflictOf func([]zuul.Change) string
		submitOf   func(zuul.Change) bool
		merges     []string
		submitted  []int
		reports    []string
	}{
		{
			name:      "all pass",
			merges:    []string{"1", "1,2", "1,2,3"},
			submitted: []int{1, 2, 3},
			reports:   []string{"1:start:Verified=+0", "2:start:Verified=+0", "3:start:Verified=+0"},
		},
		{
			// The middle change fails: the third is tested again without it,
			// the first and third merge, the middle is reported -2 once the
			// first (ahead of it) merged.
			name:      "middle fails",
			outcome:   failIf(2, StageInstall),
			merges:    []string{"1", "1,2", "1,2,3", "1,3"},
			submitted: []int{1, 3},
			reports:   []string{"1:start:Verified=+0", "2:start:Verified=+0", "3:start:Verified=+0", "2:failure:Verified=-2"},
		},
		{
			name: "middle conflicts",
			conflictOf: func(cs []zuul.Change) string {
				for _, c := range cs {
					if c.Number == 2 {
						return c.String()
					}
				}
				return ""
			},
			merges:    []string{"1", "1,2", "1,2,3", "1,3"},
			submitted: []int{1, 3},
			reports:   []string{"1:start:Verified=+0", "2:start:Verified=+0", "3:start:Verified=+0", "2:merge-failure:Verified=-2"},
		},
		{
			// Gerrit refuses the head's submit (409): it is reported, and the
			// items behind are tested again without it.
			name:      "submit refused",
			submitOf:  func(c zuul.Change) bool { return c.Number != 1 },
			merges:    []string{"1", "1,2", "1,2,3", "2", "2,3"},
			submitted: []int{1, 2, 3},
			reports:   []string{"1:start:Verified=+0", "2:start:Verified=+0", "3:start:Verified=+0", "1:merge-failure:Verified=-2"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, defaultConfig(t))
			w.outcomeOf, w.conflictOf, w.submitOf = tc.outcome, tc.conflictOf, tc.submitOf
			for n := 1; n <= 3; n++ {
				w.handle(approve(change("hello", n, 1)))
			}
			w.drain()
			if got := w.merges("gate"); !slices.Equal(got, tc.merges) {
				t.Errorf("merge requests = %v, want %v", got, tc.merges)
			}
			if got := w.submitted(); !slices.Equal(got, tc.submitted) {
				t.Errorf("submitted = %v, want %v", got, tc.submitted)
			}
			if got := w.reports("gate"); !slices.Equal(got, tc.reports) {
				t.Errorf("reports = %v, want %v", got, tc.reports)
			}
			if n := w.queueLen("gate"); n != 0 {
				t.Errorf("%d items left in gate", n)
			}
			if len(w.s.st.Buildsets) != 0 {
				t.Errorf("%d buildsets left", len(w.s.st.Buildsets))
			}
		})
	}
}

// TestGateFailureReportedAfterHead checks the order: the failing item is
// reported only once the item ahead of it is settled (merged).
func TestGateFailureReportedAfterHead(t *testing.T) {
	t.Parallel()
	w := newWorld(t, defaultConfig(t))
	w.outcomeOf = failIf(2, "build.deb")
	for n := 1; n <= 3; n++ {
		w.handle(approve(change("hello", n, 1)))
	}
	w.drain()
	submit1, report2 := -1, -1
	for i, a := range w.actions {
		switch a := a.(type) {
		case Submit:
			if a.Change.Number == 1 {
				submit1 = i
			}
		case Report:
			if a.Change.Number == 2 && a.Action == "failure" {
				report2 = i
			}
		}
	}
	if submit1 < 0 || report2 < 0 || report2 < submit1 {
		t.Errorf("submit of 1 at %d, failure report of 2 at %d: want the report after", submit1, report2)
	}
}

func TestRecheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		comment string
		want    bool
	}{
		{"recheck", true},
		{"Patch Set 1:\n\nrecheck", true},
		{"Patch Set 3: Code-Review+1\n\nrecheck", true},
		{"RECHECK", true},
		{"recheck please, flaky mirror", true},
		{"I will not recheck", false},
		{"Patch Set 1: Looks good", false},
		{"", false},
	}
	for _, tc := range tests {
		t.Run(tc.comment, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, defaultConfig(t))
			w.handle(commented(change("hello", 7, 1), tc.comment))
			got := len(w.merges("check")) == 1
			if got != tc.want {
				t.Errorf("comment %q enqueued = %v, want %v", tc.comment, got, tc.want)
			}
		})
	}
}

func TestNewPatchsetSupersedes(t *testing.T) {
	t.Parallel()
	w := newWorld(t, defaultConfig(t))
	w.handle(uploaded(change("hello", 1, 1)))
	w.step() // merge done: stages dispatched
	if len(w.running) == 0 {
		t.Fatal("no stage running for patchset 1")
	}
	old := w.s.st.Pipelines[0].Queues[0].Items[0].Buildset
	w.handle(uploaded(change("hello", 1, 2)))
	for k := range w.running {
		if strings.HasPrefix(k, old) {
			t.Errorf("stage run %s of the superseded patchset still running", k)
		}
	}
	w.drain()
	if got, want := w.reports("check"), []string{"1:success:Verified=+1"}; !slices.Equal(got, want) {
		t.Errorf("reports = %v, want %v", got, want)
	}
	var superseded bool
	for _, a := range w.actions {
		if r, ok := a.(Report); ok && r.Change.Patchset != 2 {
			t.Errorf("patchset %d reported", r.Change.Patchset)
		}
		if r, ok := a.(RecordBuildsetOutcome); ok && r.Buildset == old && r.Result == "SUPERSEDED" {
			superseded = true
		}
	}
	if !superseded {
		t.Error("the old buildset was not recorded as superseded")
	}
}

func TestNewPatchsetLeavesGate(t *testing.T) {
	t.Parallel()
	w := newWorld(t, defaultConfig(t))
	for n := 1; n <= 3; n++ {
		w.handle(approve(change("hello", n, 1)))
	}
	w.handle(uploaded(change("hello", 2, 2)))
	w.drain()
	if got, want := w.merges("gate"), []string{"1", "1,2", "1,2,3", "1,3"}; !slices.Equal(got, want) {
		t.Errorf("merge requests = %v, want %v", got, want)
	}
	if got, want := w.submitted(), []int{1, 3}; !slices.Equal(got, want) {
		t.Errorf("submitted = %v, want %v", got, want)
	}
}

func TestDependsOn(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig(t)
	cfg.Projects = []Project{{Name: "libfoo", Queue: "integrated"}, {Name: "foo-tools", Queue: "integrated"}, {Name: "other"}}
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	lib := change("libfoo", 10, 1)
	tool := change("foo-tools", 20, 1)
	tool.Message = "Use the new API\n\nDepends-On: https://review.example.org/c/libfoo/+/10\nChange-Id: I0000000000000000000000000000000000000014\n"
	withDep := func(ev TriggerEvent, deps ...zuul.Change) TriggerEvent {
		for _, d := range deps {
			ev.Needs = append(ev.Needs, NumberKey(&d))
			ev.Deps = append(ev.Deps, Dep{Change: d})
		}
		return ev
	}

	t.Run("check tests the dependency with it", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, cfg)
		w.handle(withDep(uploaded(tool), lib))
		w.drain()
		if got, want := w.merges("check"), []string{"10,20"}; !slices.Equal(got, want) {
			t.Errorf("merge requests = %v, want %v", got, want)
		}
	})
	t.Run("gate waits for the dependency", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, cfg)
		w.handle(withDep(approve(tool), lib)) // lib is not approved yet
		if got := w.merges("gate"); len(got) != 0 {
			t.Fatalf("merge requests %v before the dependency is approved", got)
		}
		if n := w.queueLen("gate"); n != 1 {
			t.Fatalf("%d items in gate, want 1 waiting", n)
		}
		w.handle(approve(lib))
		w.drain()
		if got, want := w.merges("gate"), []string{"10", "10,20"}; !slices.Equal(got, want) {
			t.Errorf("merge requests = %v, want %v", got, want)
		}
		if got, want := w.submitted(), []int{10, 20}; !slices.Equal(got, want) {
			t.Errorf("submitted = %v, want %v", got, want)
		}
	})
	t.Run("gate enqueues an approved dependency ahead", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, cfg)
		w.handle(withDep(approve(tool), approved(lib)))
		w.drain()
		if got, want := w.merges("gate"), []string{"10", "10,20"}; !slices.Equal(got, want) {
			t.Errorf("merge requests = %v, want %v", got, want)
		}
	})
	t.Run("dependency fails: dependent dequeued and reported", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, cfg)
		w.outcomeOf = failIf(10, StageSystest)
		w.handle(approve(lib))
		w.handle(withDep(approve(tool), lib))
		w.drain()
		if got := w.submitted(); len(got) != 0 {
			t.Errorf("submitted %v", got)
		}
		want := []string{"10:start:Verified=+0", "20:start:Verified=+0", "10:failure:Verified=-2", "20:failure:Verified=-2"}
		if got := w.reports("gate"); !slices.Equal(got, want) {
			t.Errorf("reports = %v, want %v", got, want)
		}
	})
	t.Run("dependency in another queue", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, cfg)
		o := change("other", 30, 1)
		w.handle(approve(o))
		w.handle(withDep(approve(tool), approved(o)))
		w.drain()
		if got, want := w.submitted(), []int{30}; !slices.Equal(got, want) {
			t.Errorf("submitted = %v, want %v", got, want)
		}
		rep := w.reports("gate")
		if !slices.Contains(rep, "20:failure:Verified=-2") {
			t.Errorf("reports = %v, want a failure for 20", rep)
		}
	})
	t.Run("cycle is reported", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, cfg)
		ev := approve(tool)
		ev.Needs = []string{NumberKey(&lib)}
		ev.Deps = []Dep{{Change: approved(lib), Needs: []string{NumberKey(&tool)}}}
		w.handle(ev)
		w.drain()
		if got := w.merges("gate"); len(got) != 0 {
			t.Errorf("merge requests %v for a cycle", got)
		}
		var msg string
		for _, a := range w.actions {
			if r, ok := a.(Report); ok {
				msg = r.Message
			}
		}
		if !strings.Contains(msg, "dependency cycle") {
			t.Errorf("report %q does not name the cycle", msg)
		}
	})
}

func TestWindow(t *testing.T) {
	t.Parallel()
	// Zuul's defaults: 20, floor 3, linear +1, exponential /2.
	tests := []struct {
		name   string
		steps  string // s: a success, f: a failure
		expect []int
	}{
		{"failures halve to the floor", "ffff", []int{10, 5, 3, 3}},
		{"successes add one", "sss", []int{21, 22, 23}},
		{"mixed", "fsfs", []int{10, 11, 5, 6}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := defaultConfig(t)
			p := cfg.pipeline("gate")
			s, _ := NewScheduler(cfg, nil, "x")
			q := &Queue{Window: *p.Window}
			for i, c := range tc.steps {
				if c == 's' {
					s.increaseWindow(p, q)
				} else {
					s.decreaseWindow(p, q)
				}
				if q.Window != tc.expect[i] {
					t.Errorf("after %q: window %d, want %d", tc.steps[:i+1], q.Window, tc.expect[i])
				}
			}
		})
	}
	t.Run("only items in the window are tested", func(t *testing.T) {
		t.Parallel()
		cfg := defaultConfig(t)
		cfg.pipeline("gate").Window = intp(3)
		w := newWorld(t, cfg)
		w.outcomeOf = failIf(1, StageLint)
		for n := 1; n <= 6; n++ {
			w.handle(approve(change("hello", n, 1)))
		}
		if got, want := w.merges("gate"), []string{"1", "1,2", "1,2,3"}; !slices.Equal(got, want) {
			t.Fatalf("merge requests = %v, want %v", got, want)
		}
		w.drain()
		// 1 fails: window 3 stays at the floor 3, then grows with each merge.
		if got, want := w.submitted(), []int{2, 3, 4, 5, 6}; !slices.Equal(got, want) {
			t.Errorf("submitted = %v, want %v", got, want)
		}
		if got := w.s.st.Pipelines[1].Queues[0].Window; got != 3+5 {
			t.Errorf("window after 1 failure at the floor and 5 merges = %d, want 8", got)
		}
	})
}

func TestInstallFailureCancelsSystest(t *testing.T) {
	t.Parallel()
	w := newWorld(t, defaultConfig(t))
	w.outcomeOf = failIf(1, StageInstall)
	w.handle(uploaded(change("hello", 1, 1)))
	var systest string
	for w.step() {
		for k := range w.running {
			if strings.Contains(k, "/systest/") {
				systest = k
			}
		}
		if systest != "" {
			break
		}
	}
	if systest == "" {
		t.Fatal("systest never ran")
	}
	w.drain()
	var cancelled bool
	var rep Report
	for _, a := range w.actions {
		if c, ok := a.(CancelStage); ok && runKey(c.Buildset, c.Stage, c.Attempt) == systest {
			cancelled = true
		}
		if r, ok := a.(Report); ok {
			rep = r
		}
	}
	if !cancelled {
		t.Error("the running systest was not cancelled")
	}
	states := map[string]RunState{}
	for _, s := range rep.Stages {
		states[s.Stage] = s.State
	}
	want := map[string]RunState{"build.deb": Passed, "build.rpm": Passed, StagePublish: Passed, StageLint: Passed, StageInstall: Failed, StageSystest: Cancelled}
	for k, v := range want {
		if states[k] != v {
			t.Errorf("stage %s: %s, want %s", k, states[k], v)
		}
	}
	if rep.Action != "failure" {
		t.Errorf("report %s, want failure", rep.Action)
	}
}

func TestAbortRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		failed   string
		failFast bool
		before   map[string]RunState
		want     map[string]RunState
		cancels  int
	}{
		{name: "install fails, systest not started", failed: StageInstall,
			before: map[string]RunState{StageSystest: Pending, StageLint: Running},
			want:   map[string]RunState{StageSystest: Skipped, StageLint: Running}},
		{name: "install fails, systest running", failed: StageInstall,
			before:  map[string]RunState{StageSystest: Running, StageLint: Passed},
			want:    map[string]RunState{StageSystest: Cancelled, StageLint: Passed},
			cancels: 1},
		{name: "build fails, the rest skipped", failed: "build.deb",
			before: map[string]RunState{"build.rpm": Running, StagePublish: Pending, StageLint: Pending, StageInstall: Pending, StageSystest: Pending},
			want:   map[string]RunState{"build.rpm": Running, StagePublish: Skipped, StageLint: Skipped, StageInstall: Skipped, StageSystest: Skipped}},
		{name: "lint fails, others go on", failed: StageLint,
			before: map[string]RunState{StageInstall: Running, StageSystest: Running},
			want:   map[string]RunState{StageInstall: Running, StageSystest: Running}},
		{name: "fail-fast stops all", failed: StageLint, failFast: true,
			before:  map[string]RunState{StageInstall: Running, StageSystest: Running},
			want:    map[string]RunState{StageInstall: Cancelled, StageSystest: Cancelled},
			cancels: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bs := &Buildset{State: Testing, Runs: newRuns(DefaultConfig().project("p"), false)}
			for _, r := range bs.Runs {
				r.State = Passed
				if s, ok := tc.before[r.Stage]; ok {
					r.State = s
				}
			}
			f := bs.run(tc.failed)
			f.State = Failed
			if n := len(bs.abortAfter(f, tc.failFast)); n != tc.cancels {
				t.Errorf("%d runs to cancel, want %d", n, tc.cancels)
			}
			for k, v := range tc.want {
				if got := bs.run(k).State; got != v {
					t.Errorf("stage %s: %s, want %s", k, got, v)
				}
			}
			if !bs.failed() {
				t.Error("buildset not failed")
			}
		})
	}
}

func TestParams(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig(t)
	cfg.ZuulURL = "https://sluice.example.org/p"
	w := newWorld(t, cfg)
	w.handle(approve(change("hello", 1, 1)))
	w.handle(approve(change("hello", 2, 3)))
	w.drain()
	var got map[string]string
	var bs string
	for _, a := range w.actions {
		if d, ok := a.(DispatchStage); ok && d.Params["ZUUL_CHANGE"] == "2" {
			got, bs = d.Params, d.Buildset
			break
		}
	}
	want := map[string]string{
		"ZUUL_PROJECT": "hello", "ZUUL_BRANCH": "main", "ZUUL_CHANGE": "2", "ZUUL_PATCHSET": "3",
		"ZUUL_REF": "refs/sluice/gate/" + bs, "ZUUL_URL": "https://sluice.example.org/p", "ZUUL_PIPELINE": "gate",
		"ZUUL_UUID": bs, "ZUUL_CHANGE_IDS": "1,1 2,3", "ZUUL_COMMIT": "merge-of-2,3",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(bs) != 32 {
		t.Errorf("buildset id %q: want 32 hex digits", bs)
	}
}

func TestPostSupercedes(t *testing.T) {
	t.Parallel()
	w := newWorld(t, defaultConfig(t))
	ref := func(rev string) TriggerEvent {
		return TriggerEvent{Event: zuul.Event{Type: zuul.RefUpdated, Project: "hello", RefName: "refs/heads/main", NewRev: rev}}
	}
	w.handle(ref("aaaa"))
	w.handle(ref("bbbb"))
	w.handle(ref("cccc")) // replaces bbbb, which did not start
	w.drain()
	var revs []string
	for _, a := range w.actions {
		if d, ok := a.(DispatchStage); ok && d.Stage == StageRelease {
			revs = append(revs, d.Params["ZUUL_NEWREV"])
		}
	}
	if want := []string{"aaaa", "cccc"}; !slices.Equal(revs, want) {
		t.Errorf("released %v, want %v", revs, want)
	}
	if n := w.queueLen("post"); n != 0 {
		t.Errorf("%d items left in post", n)
	}
}

func TestChangeMergedRetestsCheck(t *testing.T) {
	t.Parallel()
	w := newWorld(t, defaultConfig(t))
	w.handle(uploaded(change("hello", 1, 1)))
	w.handle(uploaded(change("other", 2, 1)))
	w.step()
	w.step()
	m := change("hello", 9, 1)
	m.Status = "MERGED"
	w.handle(TriggerEvent{Event: zuul.Event{Type: zuul.ChangeMerged, Project: "hello", Branch: "main", Change: &m, NewRev: "abcd"}, Change: &m})
	w.drain()
	if got, want := w.merges("check"), []string{"1", "2", "1"}; !slices.Equal(got, want) {
		t.Errorf("merge requests = %v, want %v (1 again on the new tip)", got, want)
	}
	if got, want := w.reports("check"), []string{"2:success:Verified=+1", "1:success:Verified=+1"}; !slices.Equal(got, want) {
		t.Errorf("reports = %v, want %v", got, want)
	}
}

// TestConfirmFailures: the bad change 1 is ahead; the buildsets behind it
// fail first (runs end newest first). Zuul's rule resets the queue at
// each of those failures; confirm-failures waits for 1's own failure.
func TestConfirmFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		confirm bool
		merges  []string
	}{
		{false, []string{"1", "1,2", "1,2,3", "1,2,3,4", "1,2,4", "1,3", "1,3,4", "1,4", "2", "2,3", "2,3,4"}},
		{true, []string{"1", "1,2", "1,2,3", "1,2,3,4", "2", "2,3", "2,3,4"}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint("confirm ", tc.confirm), func(t *testing.T) {
			t.Parallel()
			cfg := defaultConfig(t)
			cfg.pipeline("gate").ConfirmFailures = tc.confirm
			w := newWorld(t, cfg)
			w.lifo = true
			w.outcomeOf = failIf(1, "build.deb")
			for n := 1; n <= 4; n++ {
				w.handle(approve(change("hello", n, 1)))
			}
			w.drain()
			if got := w.merges("gate"); !slices.Equal(got, tc.merges) {
				t.Errorf("merge requests = %v, want %v", got, tc.merges)
			}
			if got, want := w.submitted(), []int{2, 3, 4}; !slices.Equal(got, want) {
				t.Errorf("submitted = %v, want %v", got, want)
			}
		})
	}
}

// TestRetrigger runs one stage of a buildset under test again, as a new
// attempt: the running attempt is cancelled, its outcome ignored; a
// buildset that is gone is not touched.
func TestRetrigger(t *testing.T) {
	t.Parallel()
	w := newWorld(t, defaultConfig(t))
	w.handle(uploaded(change("p", 1, 1)))
	w.step() // the merge: the builds are dispatched
	var bs string
	for id := range w.s.st.Buildsets {
		bs = id
	}
	if bs == "" {
		t.Fatal("no buildset")
	}
	before := len(w.actions)
	w.handle(RetriggerStage{Buildset: bs, Stage: "build.deb"})
	var got []string
	for _, a := range w.actions[before:] {
		switch a := a.(type) {
		case CancelStage:
			got = append(got, fmt.Sprintf("cancel %s %d", a.Stage, a.Attempt))
		case DispatchStage:
			got = append(got, fmt.Sprintf("dispatch %s %d", a.Stage, a.Attempt))
		}
	}
	if want := []string{"cancel build.deb 1", "dispatch build.deb 2"}; !slices.Equal(got, want) {
		t.Fatalf("retrigger: %v, want %v", got, want)
	}
	w.drain()
	if got := w.reports("check"); !slices.Equal(got, []string{"1:success:Verified=+1"}) {
		t.Fatalf("reports %v", got)
	}
	// Reported and gone: nothing happens.
	before = len(w.actions)
	w.handle(RetriggerStage{Buildset: bs, Stage: "build.deb"})
	w.handle(RetriggerStage{Buildset: "nope", Stage: "build.deb"})
	if len(w.actions) != before {
		t.Fatalf("a retrigger of a finished buildset acted: %v", w.actions[before:])
	}
}
