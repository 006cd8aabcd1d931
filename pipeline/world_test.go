package pipeline

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/zuul"
)

// world carries out a scheduler's actions at once, in order: merges
// answer by conflictOf, stage runs end in dispatch order with outcomeOf,
// submits answer by submitOf. It is the tests' fake of every outside part.
type world struct {
	t          *testing.T
	s          *Scheduler
	now        time.Time
	outcomeOf  func(changes []zuul.Change, stage string, attempt int) Outcome
	conflictOf func(changes []zuul.Change) string
	submitOf   func(c zuul.Change) bool
	pending    []Event
	lifo       bool // stage runs end newest first
	running    map[string]bool
	actions    []Action
	handled    int
}

func newWorld(t *testing.T, cfg *Config) *world {
	t.Helper()
	w := &world{t: t, now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), running: map[string]bool{}}
	s, err := NewScheduler(cfg, func() time.Time { return w.now }, "test")
	if err != nil {
		t.Fatal(err)
	}
	w.s = s
	return w
}

func runKey(bs, stage string, attempt int) string {
	return bs + "/" + stage + "/" + strconv.Itoa(attempt)
}

func (w *world) handle(ev Event) {
	w.handled++
	w.exec(w.s.Handle(ev))
}

func (w *world) exec(acts []Action) {
	for _, a := range acts {
		w.actions = append(w.actions, a)
		switch a := a.(type) {
		case RequestMerge:
			md := MergeDone{Buildset: a.Buildset, Commits: map[string]string{}}
			if w.conflictOf != nil {
				md.Conflict = w.conflictOf(a.Changes)
			}
			for _, c := range a.Changes {
				md.Commits[c.Project] = "merge-of-" + c.String()
			}
			w.pending = append(w.pending, md)
		case DispatchStage:
			k := runKey(a.Buildset, a.Stage, a.Attempt)
			if w.running[k] {
				w.t.Fatalf("stage run %s dispatched twice", k)
			}
			w.running[k] = true
			out := OutcomePassed
			if w.outcomeOf != nil {
				out = w.outcomeOf(w.s.st.Buildsets[a.Buildset].Changes, a.Stage, a.Attempt)
			}
			w.pending = append(w.pending, StageEnded{Buildset: a.Buildset, Stage: a.Stage, Attempt: a.Attempt, Outcome: out})
		case CancelStage:
			delete(w.running, runKey(a.Buildset, a.Stage, a.Attempt))
		case Submit:
			merged := true
			if w.submitOf != nil {
				merged = w.submitOf(a.Change)
			}
			w.pending = append(w.pending, SubmitDone{Buildset: a.Buildset, Merged: merged})
		}
	}
}

// step handles the next completion; it returns false when there is none.
func (w *world) step() bool {
	for len(w.pending) > 0 {
		i := 0
		if w.lifo {
			i = len(w.pending) - 1
		}
		ev := w.pending[i]
		w.pending = slices.Delete(w.pending, i, i+1)
		if se, ok := ev.(StageEnded); ok {
			k := runKey(se.Buildset, se.Stage, se.Attempt)
			if !w.running[k] {
				continue // cancelled
			}
			delete(w.running, k)
		}
		w.now = w.now.Add(time.Minute)
		w.handle(ev)
		return true
	}
	return false
}

func (w *world) drain() {
	for n := 0; w.step(); n++ {
		if n > 10000 {
			w.t.Fatal("world does not settle")
		}
	}
}

// merges returns the change lists of the merge requests of a pipeline.
func (w *world) merges(pipeline string) []string {
	var out []string
	for _, a := range w.actions {
		if m, ok := a.(RequestMerge); ok && m.Pipeline == pipeline {
			out = append(out, changeList(m.Changes))
		}
	}
	return out
}

func changeList(cs []zuul.Change) string {
	var s []string
	for _, c := range cs {
		s = append(s, strconv.Itoa(c.Number))
	}
	return strings.Join(s, ",")
}

// submitted returns the changes submitted, in order.
func (w *world) submitted() []int {
	var out []int
	for _, a := range w.actions {
		if s, ok := a.(Submit); ok {
			out = append(out, s.Change.Number)
		}
	}
	return out
}

// reports returns "number:action:Label=vote" of the reports of a pipeline.
func (w *world) reports(pipeline string) []string {
	var out []string
	for _, a := range w.actions {
		if r, ok := a.(Report); ok && r.Pipeline == pipeline {
			out = append(out, fmt.Sprintf("%d:%s%s", r.Change.Number, r.Action, votesString(r.Votes)))
		}
	}
	return out
}

func votesString(v map[string]int) string {
	var s []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range v {
			if !yield(k) {
				return
			}
		}
	}) {
		s = append(s, fmt.Sprintf(":%s=%+d", k, v[k]))
	}
	return strings.Join(s, "")
}

// queueLen is the number of items in a pipeline.
func (w *world) queueLen(pipeline string) int {
	n := 0
	for _, ps := range w.s.st.Pipelines {
		if ps.Name == pipeline {
			for _, q := range ps.Queues {
				n += len(q.Items)
			}
			n += len(ps.Waiting)
		}
	}
	return n
}

func change(project string, n, ps int) zuul.Change {
	return zuul.Change{Project: project, Branch: "main", Number: n, Patchset: ps,
		Ref: zuul.ChangeRef(n, ps), Commit: fmt.Sprintf("%040x", n*100+ps), ChangeID: fmt.Sprintf("I%040x", n),
		Status: "NEW", Current: true}
}

func approved(c zuul.Change) zuul.Change {
	c.Approvals = []zuul.Approval{{Label: "Code-Review", Value: 2}, {Label: "Workflow", Value: 1}}
	return c
}

// approve is the comment-added event of a Workflow +1 on an approved change.
func approve(c zuul.Change) TriggerEvent {
	c = approved(c)
	return TriggerEvent{Event: zuul.Event{Type: zuul.CommentAdded, Project: c.Project, Branch: c.Branch, Change: &c,
		Approvals: []zuul.Approval{{Label: "Workflow", Value: 1}}, Comment: "Patch Set 1: Workflow+1"}, Change: &c}
}

func uploaded(c zuul.Change) TriggerEvent {
	return TriggerEvent{Event: zuul.Event{Type: zuul.PatchsetCreated, Project: c.Project, Branch: c.Branch, Change: &c}, Change: &c}
}

func commented(c zuul.Change, text string) TriggerEvent {
	return TriggerEvent{Event: zuul.Event{Type: zuul.CommentAdded, Project: c.Project, Branch: c.Branch, Change: &c, Comment: text}, Change: &c}
}

// failIf fails stage of every buildset that contains change n.
func failIf(n int, stage string) func([]zuul.Change, string, int) Outcome {
	return func(cs []zuul.Change, st string, _ int) Outcome {
		if st != stage {
			return OutcomePassed
		}
		for _, c := range cs {
			if c.Number == n {
				return OutcomeFailed
			}
		}
		return OutcomePassed
	}
}

func defaultConfig(t *testing.T) *Config {
	t.Helper()
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}
