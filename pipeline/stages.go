package pipeline

import (
	"slices"
	"time"
)

// The stages of a project's graph: one build per package format, then
// publish into the buildset's test repository, then lint, install and
// systest in parallel. The post pipeline builds and releases, then syncs
// the release to its mirrors when the project lists mirror.
const (
	StageBuild   = "build" // build.<format>
	StagePublish = "publish"
	StageLint    = "lint"
	StageInstall = "install"
	StageSystest = "systest"
	StageRelease = "release"
	StageMirror  = "mirror" // post only: sync the release to its mirrors
)

// newRuns makes the stage graph of a project: gate and check test it,
// post (release) builds and releases it.
func newRuns(p Project, release bool) []*StageRun {
	var runs []*StageRun
	var builds []string
	for _, f := range p.Formats {
		name := StageBuild + "." + f
		builds = append(builds, name)
		runs = append(runs, &StageRun{Stage: name, State: Pending, Attempts: p.Attempts})
	}
	if release {
		runs = append(runs, &StageRun{Stage: StageRelease, State: Pending, Needs: builds, Attempts: p.Attempts})
		if slices.Contains(p.Stages, StageMirror) {
			runs = append(runs, &StageRun{Stage: StageMirror, State: Pending, Needs: []string{StageRelease}, Attempts: p.Attempts})
		}
		return runs
	}
	runs = append(runs, &StageRun{Stage: StagePublish, State: Pending, Needs: builds, Attempts: p.Attempts})
	for _, s := range []string{StageLint, StageInstall, StageSystest} {
		if slices.Contains(p.Stages, s) {
			runs = append(runs, &StageRun{Stage: s, State: Pending, Needs: []string{StagePublish}, Attempts: p.Attempts})
		}
	}
	return runs
}

func (b *Buildset) run(stage string) *StageRun {
	for _, r := range b.Runs {
		if r.Stage == stage {
			return r
		}
	}
	return nil
}

// ready returns the pending runs whose needs all passed.
func (b *Buildset) ready() []*StageRun {
	var out []*StageRun
	for _, r := range b.Runs {
		if r.State != Pending {
			continue
		}
		ok := true
		for _, n := range r.Needs {
			if d := b.run(n); d == nil || d.State != Passed {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, r)
		}
	}
	return out
}

// abortAfter applies the abort rules after run failed: the stages that
// need it (transitively) are skipped; a failed install cancels systest; a
// fail-fast project stops everything. It returns the running runs to
// cancel (already marked cancelled).
func (b *Buildset) abortAfter(failed *StageRun, failFast bool) []*StageRun {
	var cancel []*StageRun
	stop := func(r *StageRun) {
		switch r.State {
		case Pending:
			r.State = Skipped
		case Running:
			r.State = Cancelled
			cancel = append(cancel, r)
		}
	}
	if failFast {
		for _, r := range b.Runs {
			stop(r)
		}
		return cancel
	}
	if failed.Stage == StageInstall {
		if s := b.run(StageSystest); s != nil {
			stop(s)
		}
	}
	// Skip what needs a failed or skipped stage, to a fixed point.
	for changed := true; changed; {
		changed = false
		for _, r := range b.Runs {
			if r.State != Pending {
				continue
			}
			for _, n := range r.Needs {
				if d := b.run(n); d != nil && (d.State == Failed || d.State == Skipped || d.State == Cancelled) {
					r.State = Skipped
					changed = true
					break
				}
			}
		}
	}
	return cancel
}

// done says whether every stage run ended (or the merge failed).
func (b *Buildset) done() bool {
	if b.State == MergeConflict {
		return true
	}
	if b.State != Testing {
		return false
	}
	for _, r := range b.Runs {
		if !r.State.terminal() {
			return false
		}
	}
	return true
}

// failed says whether the buildset has failed already (it may still have
// runs going).
func (b *Buildset) failed() bool {
	if b.State == MergeConflict {
		return true
	}
	for _, r := range b.Runs {
		if r.State == Failed {
			return true
		}
	}
	return false
}

// running returns the dispatched runs not yet ended.
func (b *Buildset) running() []*StageRun {
	var out []*StageRun
	for _, r := range b.Runs {
		if r.State == Running {
			out = append(out, r)
		}
	}
	return out
}

func (b *Buildset) summary() []StageSummary {
	out := make([]StageSummary, 0, len(b.Runs))
	for _, r := range b.Runs {
		var d time.Duration
		if !r.Started.IsZero() && r.Ended.After(r.Started) {
			d = r.Ended.Sub(r.Started)
		}
		out = append(out, StageSummary{Stage: r.Stage, State: r.State, Attempt: r.Attempt, LogURL: r.LogURL, Duration: d})
	}
	return out
}
