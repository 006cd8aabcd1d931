package pipeline

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-ci/sluice/zuul"
)

// Scheduler is the state machine of every pipeline: [Scheduler.Handle]
// applies one event and returns the actions it calls for. It does no I/O
// and reads the time only from its clock, so that the same events give the
// same actions. It is not safe for concurrent use: one goroutine owns it
// ([Runner]).
type Scheduler struct {
	cfg *Config
	now func() time.Time
	st  State
	out []Action
}

// NewScheduler returns a scheduler with empty queues. now is its clock;
// salt makes its identifiers (a random one when empty).
func NewScheduler(cfg *Config, now func() time.Time, salt string) (*Scheduler, error) {
	// The scheduler keeps its own copy: Validate compiles into it.
	c := *cfg
	c.Pipelines = slices.Clone(cfg.Pipelines)
	c.Projects = slices.Clone(cfg.Projects)
	cfg = &c
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if salt == "" {
		salt = rand.Text()
	}
	s := &Scheduler{cfg: cfg, now: now, st: State{Salt: salt, Buildsets: map[string]*Buildset{}}}
	for _, p := range cfg.Pipelines {
		s.st.Pipelines = append(s.st.Pipelines, &PipelineState{Name: p.Name})
	}
	return s, nil
}

// State returns the scheduler's state; the caller must not change it.
func (s *Scheduler) State() *State { return &s.st }

// Handle applies ev and returns the actions to carry out, in order.
func (s *Scheduler) Handle(ev Event) []Action {
	s.out = nil
	switch e := ev.(type) {
	case TriggerEvent:
		s.trigger(e)
	case MergeDone:
		s.mergeDone(e)
	case StageEnded:
		s.stageEnded(e)
	case SubmitDone:
		s.submitDone(e)
	case RetriggerStage:
		s.retrigger(e)
	case Tick:
	}
	s.process()
	out := s.out
	s.out = nil
	return out
}

func (s *Scheduler) emit(a Action) { s.out = append(s.out, a) }

// newID returns a UUID-shaped identifier (32 hex digits, as Zuul's
// uuid4().hex) made from the salt and a counter.
func (s *Scheduler) newID() string {
	s.st.Seq++
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], s.st.Seq)
	h := sha256.Sum256(append([]byte(s.st.Salt), b[:]...))
	h[6] = h[6]&0x0f | 0x40 // version 4
	h[8] = h[8]&0x3f | 0x80 // variant
	return hex.EncodeToString(h[:16])
}

// ---- triggers

func (s *Scheduler) trigger(e TriggerEvent) {
	ev := e.Event
	change := e.Change
	if change == nil {
		change = ev.Change
	}
	switch ev.Type {
	case zuul.PatchsetCreated:
		if change != nil {
			s.removeOlderPatchsets(change)
		}
	case zuul.ChangeAbandoned:
		if change != nil {
			s.removeChange(change, -1, "SUPERSEDED", "change abandoned")
		}
	case zuul.ChangeMerged:
		if change != nil {
			s.changeMerged(change)
		}
	}
	for i := range s.cfg.Pipelines {
		p := &s.cfg.Pipelines[i]
		if !p.matches(ev) {
			continue
		}
		ps := s.st.Pipelines[i]
		if p.Manager == Supercedent {
			s.enqueueRef(p, ps, ev)
			continue
		}
		if change == nil || !p.requirementsMet(change) {
			continue
		}
		s.enqueueChange(p, ps, *change, e)
	}
}

func (p *Pipeline) matches(ev zuul.Event) bool {
	for _, f := range p.filters {
		if f.match(ev) {
			return true
		}
	}
	return false
}

func (f compiledFilter) match(ev zuul.Event) bool {
	if !slices.Contains(f.events, ev.Type) {
		return false
	}
	if len(f.branches) > 0 {
		ok := false
		for _, re := range f.branches {
			ok = ok || re.MatchString(ev.Branch)
		}
		if !ok {
			return false
		}
	}
	if len(f.comments) > 0 {
		ok := false
		for _, re := range f.comments {
			ok = ok || re.MatchString(ev.Comment)
		}
		if !ok {
			return false
		}
	}
	for _, want := range f.approval {
		for label, value := range want {
			ok := false
			for _, a := range ev.Approvals {
				// A vote repeated unchanged (old == new) is not a new approval.
				if a.Label == label && a.Value == value && (a.Old == nil || *a.Old != a.Value) {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
	}
	return true
}

func (p *Pipeline) requirementsMet(c *zuul.Change) bool {
	r := p.Require.Gerrit
	if r.Open && c.Status != "" && c.Status != "NEW" {
		return false
	}
	if r.CurrentPatchset && !c.Current {
		return false
	}
	return hasApprovals(c, r.Approval)
}

func hasApprovals(c *zuul.Change, want []map[string]int) bool {
	for _, w := range want {
		for label, value := range w {
			ok := false
			for _, a := range c.Approvals {
				if a.Label == label && a.Value == value {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
	}
	return true
}

func sameChange(a, b *zuul.Change) bool {
	return a.Project == b.Project && a.Number == b.Number && a.Number != 0
}

// removeOlderPatchsets drops the items of older patchsets of c from every
// pipeline: a new patchset supersedes them.
func (s *Scheduler) removeOlderPatchsets(c *zuul.Change) {
	s.removeChange(c, c.Patchset, "SUPERSEDED", fmt.Sprintf("superseded by patchset %d", c.Patchset))
}

// removeChange dequeues the items of change c with a patchset below
// below (every patchset when below < 0), without reporting.
func (s *Scheduler) removeChange(c *zuul.Change, below int, result, reason string) {
	for _, ps := range s.st.Pipelines {
		ps.Waiting = slices.DeleteFunc(ps.Waiting, func(it *Item) bool {
			return sameChange(&it.Change, c) && (below < 0 || it.Change.Patchset < below)
		})
		for _, q := range slices.Clone(ps.Queues) {
			for i := 0; i < len(q.Items); i++ {
				it := q.Items[i]
				if it.Ref == nil && sameChange(&it.Change, c) && (below < 0 || it.Change.Patchset < below) {
					s.dequeue(ps, q, i, result, reason)
					i--
				}
			}
		}
	}
}

// changeMerged notes that c merged: the items needing it no longer wait
// for it, and every check item of the same project and branch is tested
// again on the new tip.
func (s *Scheduler) changeMerged(c *zuul.Change) {
	s.markMerged(c)
	for i, ps := range s.st.Pipelines {
		if s.cfg.Pipelines[i].Manager != Independent {
			continue
		}
		for _, q := range ps.Queues {
			for _, it := range q.Items {
				if it.Ref != nil || it.Change.Project != c.Project || it.Change.Branch != c.Branch || sameChange(&it.Change, c) {
					continue
				}
				if bs := s.st.Buildsets[it.Buildset]; bs != nil {
					s.discard(bs, "RESET", "branch tip moved: "+c.String()+" merged")
					it.Buildset = ""
				}
			}
		}
	}
}

func (s *Scheduler) markMerged(c *zuul.Change) {
	mark := func(it *Item) {
		for j := range it.Needs {
			if sameChange(&it.Needs[j], c) {
				it.Needs[j].Status = "MERGED"
			}
		}
	}
	for _, ps := range s.st.Pipelines {
		for _, it := range ps.Waiting {
			mark(it)
		}
		for _, q := range ps.Queues {
			for _, it := range q.Items {
				mark(it)
			}
		}
	}
}

// find returns where the item of change c (any patchset if ps < 0) is in
// a pipeline.
func find(ps *PipelineState, c *zuul.Change, patchset int) (*Queue, int) {
	for _, q := range ps.Queues {
		for i, it := range q.Items {
			if it.Ref == nil && sameChange(&it.Change, c) && (patchset < 0 || it.Change.Patchset == patchset) {
				return q, i
			}
		}
	}
	return nil, -1
}

func (s *Scheduler) enqueueChange(p *Pipeline, ps *PipelineState, c zuul.Change, e TriggerEvent) {
	if q, _ := find(ps, &c, c.Patchset); q != nil {
		return // already in the pipeline (Zuul ignores it too)
	}
	for _, w := range ps.Waiting {
		if sameChange(&w.Change, &c) && w.Change.Patchset == c.Patchset {
			return
		}
	}
	s.removeChange(&c, c.Patchset, "SUPERSEDED", fmt.Sprintf("superseded by patchset %d", c.Patchset))
	needs, err := orderDeps(NumberKey(&c), e.Needs, e.Deps)
	if err != nil {
		s.emit(Report{Pipeline: p.Name, Change: c, Action: "failure", Votes: votesOf(p.Failure),
			Message: fmt.Sprintf("Change %s could not be enqueued in %s: %v.", c.String(), p.Name, err)})
		return
	}
	it := &Item{ID: s.newID(), Change: c, Needs: needs, Enqueued: s.now()}
	switch p.Manager {
	case Independent:
		ps.Queues = append(ps.Queues, &Queue{Name: it.ID, Items: []*Item{it}})
		s.reportStart(p, it)
	case Dependent:
		q := s.sharedQueue(p, ps, c.Project)
		// Needed changes that are approved too enter the queue ahead of it
		// (Zuul's enqueueChangesAhead); otherwise the change waits.
		for _, d := range needs {
			if d.Status == "MERGED" {
				continue
			}
			if dq, _ := find(ps, &d, -1); dq != nil {
				if dq != q {
					s.emit(Report{Pipeline: p.Name, Change: c, Action: "failure", Votes: votesOf(p.Failure),
						Message: fmt.Sprintf("Change %s depends on %s (%s), which is in another queue of %s.", c.String(), d.String(), d.Project, p.Name)})
					return
				}
				continue
			}
			if p.requirementsMet(&d) {
				dn, _ := orderDeps(NumberKey(&d), depNeeds(e.Deps, &d), e.Deps)
				dit := &Item{ID: s.newID(), Change: d, Needs: dn, Enqueued: s.now()}
				if !s.needsReady(ps, q, dit) {
					ps.Waiting = append(ps.Waiting, it)
					return
				}
				q.Items = append(q.Items, dit)
				s.reportStart(p, dit)
				continue
			}
			ps.Waiting = append(ps.Waiting, it)
			return
		}
		q.Items = append(q.Items, it)
		s.reportStart(p, it)
	}
}

func depNeeds(deps []Dep, c *zuul.Change) []string {
	for _, d := range deps {
		if sameChange(&d.Change, c) {
			return d.Needs
		}
	}
	return nil
}

func (s *Scheduler) reportStart(p *Pipeline, it *Item) {
	if p.Start.Empty() {
		return
	}
	s.emit(Report{Pipeline: p.Name, Change: it.Change, Action: "start", Votes: votesOf(p.Start),
		Message: fmt.Sprintf("Starting %s jobs.", p.Name)})
}

func votesOf(r ReporterConfig) map[string]int {
	v, _ := r.Votes()
	return v
}

// sharedQueue returns the dependent pipeline's queue for a project, made
// with the pipeline's initial window when new.
func (s *Scheduler) sharedQueue(p *Pipeline, ps *PipelineState, project string) *Queue {
	name := s.cfg.project(project).Queue
	for _, q := range ps.Queues {
		if q.Name == name {
			return q
		}
	}
	q := &Queue{Name: name, Window: *p.Window}
	ps.Queues = append(ps.Queues, q)
	return q
}

// needsReady says whether every open change it needs is in q already.
func (s *Scheduler) needsReady(ps *PipelineState, q *Queue, it *Item) bool {
	for _, d := range it.Needs {
		if d.Status == "MERGED" {
			continue
		}
		if dq, _ := find(ps, &d, -1); dq != q {
			return false
		}
	}
	return true
}

// promoteWaiting moves the waiting items whose dependencies are all merged
// or queued into their queue.
func (s *Scheduler) promoteWaiting(p *Pipeline, ps *PipelineState) {
	for moved := true; moved; {
		moved = false
		for i, it := range ps.Waiting {
			q := s.sharedQueue(p, ps, it.Change.Project)
			if s.needsReady(ps, q, it) {
				ps.Waiting = slices.Delete(ps.Waiting, i, i+1)
				q.Items = append(q.Items, it)
				s.reportStart(p, it)
				moved = true
				break
			}
		}
	}
}

// enqueueRef puts a ref update in a supercedent pipeline: one item runs
// per project and branch, and a newer one replaces the one waiting.
func (s *Scheduler) enqueueRef(p *Pipeline, ps *PipelineState, ev zuul.Event) {
	ref := &RefUpdate{Project: ev.Project, Branch: ev.Branch, RefName: ev.RefName, OldRev: ev.OldRev, NewRev: ev.NewRev}
	if ev.Type == zuul.ChangeMerged {
		ref.RefName = "refs/heads/" + ev.Branch
		ref.OldRev = ""
	}
	if ref.Branch == "" {
		ref.Branch = strings.TrimPrefix(ref.RefName, "refs/heads/")
	}
	if ref.Project == "" || ref.NewRev == "" || strings.Trim(ref.NewRev, "0") == "" {
		return // a deleted ref or an event without a revision
	}
	name := ref.Project + "@" + ref.RefName
	var q *Queue
	for _, x := range ps.Queues {
		if x.Name == name {
			q = x
		}
	}
	if q == nil {
		q = &Queue{Name: name}
		ps.Queues = append(ps.Queues, q)
	}
	it := &Item{ID: s.newID(), Ref: ref, Change: zuul.Change{Project: ref.Project, Branch: ref.Branch}, Enqueued: s.now()}
	if ev.Change != nil {
		it.Change = *ev.Change
	}
	if len(q.Items) >= 2 {
		s.dequeue(ps, q, len(q.Items)-1, "SUPERSEDED", "superseded by "+ref.NewRev)
	}
	q.Items = append(q.Items, it)
}

// ---- completions

func (s *Scheduler) mergeDone(e MergeDone) {
	bs := s.st.Buildsets[e.Buildset]
	if bs == nil || bs.State != Merging {
		return // a buildset reset since, or a repeat
	}
	if e.Conflict != "" || e.Err != "" {
		bs.State = MergeConflict
		bs.Conflict = e.Conflict
		if bs.Conflict == "" {
			bs.Conflict = e.Err
		}
		return
	}
	bs.State = Testing
	bs.Commits = e.Commits
}

func (s *Scheduler) stageEnded(e StageEnded) {
	bs := s.st.Buildsets[e.Buildset]
	if bs == nil {
		return
	}
	r := bs.run(e.Stage)
	if r == nil || r.Attempt != e.Attempt || r.State != Running {
		return // an old attempt, a cancelled run, or a repeat
	}
	r.Ended = s.now()
	r.LogURL = e.LogURL
	switch e.Outcome {
	case OutcomePassed:
		r.State = Passed
	case OutcomeError:
		if r.Attempt < r.Attempts {
			r.State = Pending // run again as a new attempt
			return
		}
		r.State = Failed
	default:
		r.State = Failed
	}
	if r.State == Failed {
		for _, c := range bs.abortAfter(r, s.cfg.project(s.itemProject(bs)).FailFast) {
			s.emit(CancelStage{Buildset: bs.ID, Stage: c.Stage, Attempt: c.Attempt})
		}
	}
}

// retrigger makes a stage of a buildset still under test pending again,
// with the stages its end skipped or cancelled; process dispatches them.
func (s *Scheduler) retrigger(e RetriggerStage) {
	bs := s.st.Buildsets[e.Buildset]
	if bs == nil || bs.State != Testing {
		return
	}
	r := bs.run(e.Stage)
	if r == nil {
		return
	}
	if r.State == Running {
		s.emit(CancelStage{Buildset: bs.ID, Stage: r.Stage, Attempt: r.Attempt})
	}
	r.State = Pending
	r.Attempts = max(r.Attempts, r.Attempt+s.cfg.project(s.itemProject(bs)).Attempts)
	// What its failure stopped runs again too.
	for changed := true; changed; {
		changed = false
		for _, o := range bs.Runs {
			if o.State != Skipped && o.State != Cancelled {
				continue
			}
			for _, n := range o.Needs {
				if d := bs.run(n); d != nil && d.State == Pending {
					o.State = Pending
					changed = true
					break
				}
			}
		}
	}
	if r.Stage == StageInstall {
		if st := bs.run(StageSystest); st != nil && (st.State == Skipped || st.State == Cancelled) {
			st.State = Pending
		}
	}
}

func (s *Scheduler) itemProject(bs *Buildset) string {
	if len(bs.Changes) > 0 {
		return bs.Changes[len(bs.Changes)-1].Project
	}
	if _, _, it := s.locate(bs.Item); it != nil {
		return it.Change.Project
	}
	return ""
}

// locate finds an item by its ID.
func (s *Scheduler) locate(id string) (*PipelineState, *Queue, *Item) {
	for _, ps := range s.st.Pipelines {
		for _, q := range ps.Queues {
			for _, it := range q.Items {
				if it.ID == id {
					return ps, q, it
				}
			}
		}
	}
	return nil, nil, nil
}

func (s *Scheduler) submitDone(e SubmitDone) {
	bs := s.st.Buildsets[e.Buildset]
	if bs == nil {
		return
	}
	ps, q, it := s.locate(bs.Item)
	if it == nil || !it.Submitting || q.Items[0] != it {
		return
	}
	p := s.cfg.pipeline(ps.Name)
	it.Submitting = false
	if e.Merged {
		// The items built on it now have it in their branch tip.
		for _, b := range s.st.Buildsets {
			if b.Base == bs.ID {
				b.Base = ""
			}
		}
		s.emit(RecordBuildsetOutcome{Pipeline: ps.Name, Buildset: bs.ID, Item: it.Change, Changes: bs.Changes, Result: "MERGED"})
		delete(s.st.Buildsets, bs.ID)
		it.Buildset = ""
		q.Items = q.Items[1:]
		s.increaseWindow(p, q)
		s.markMerged(&it.Change)
		return
	}
	msg := "This change was not merged by the code review system."
	if e.Err != "" {
		msg += " " + e.Err
	}
	s.emit(Report{Pipeline: ps.Name, Change: it.Change, Buildset: bs.ID, Action: "merge-failure",
		Votes: votesOf(p.MergeFailure), Message: msg, Stages: bs.summary()})
	s.dequeue(ps, q, 0, "MERGE_FAILURE", "submit refused")
}

// ---- queue processing

// process brings every queue to the state its items call for, as Zuul's
// processQueue: until nothing changes.
func (s *Scheduler) process() {
	for i := range s.cfg.Pipelines {
		p := &s.cfg.Pipelines[i]
		ps := s.st.Pipelines[i]
		if p.Manager == Dependent {
			s.promoteWaiting(p, ps)
		}
		for _, q := range slices.Clone(ps.Queues) {
			for n := 0; n < len(q.Items)+8; n++ {
				var changed bool
				switch p.Manager {
				case Dependent:
					changed = s.processDependent(p, ps, q)
				default:
					changed = s.processIndependent(p, ps, q)
				}
				if !changed {
					break
				}
			}
		}
		if p.Manager != Dependent {
			ps.Queues = slices.DeleteFunc(ps.Queues, func(q *Queue) bool { return len(q.Items) == 0 })
		}
	}
}

// processDependent is Zuul's dependent manager over one shared queue: each
// item is tested on the nearest non-failing item ahead of it (nnfi);
// an item whose base is no longer that is reset; the head item is
// submitted when it passed, reported and removed when it failed.
func (s *Scheduler) processDependent(p *Pipeline, ps *PipelineState, q *Queue) bool {
	changed := false
	var nnfi *Item
	failing := map[string]bool{}
	for i := 0; i < len(q.Items); i++ {
		it := q.Items[i]
		actionable := q.Window == 0 || i < q.Window
		bs := s.st.Buildsets[it.Buildset]

		needFailing, missing := false, ""
		for _, d := range it.Needs {
			if d.Status == "MERGED" {
				continue
			}
			ahead := -1
			for j := range i {
				if sameChange(&q.Items[j].Change, &d) {
					ahead = j
				}
			}
			if ahead < 0 {
				missing = d.String()
				break
			}
			if failing[q.Items[ahead].ID] {
				needFailing = true
			}
		}
		if missing != "" {
			s.emit(Report{Pipeline: p.Name, Change: it.Change, Action: "failure", Votes: votesOf(p.Failure),
				Message: fmt.Sprintf("This change depends on a change that failed to merge (%s).", missing)})
			s.dequeue(ps, q, i, "DEQUEUED", "needed change "+missing+" left the queue")
			i--
			changed = true
			continue
		}

		if needFailing {
			if bs != nil && !it.Submitting {
				s.discard(bs, "RESET", "a needed change is failing")
				it.Buildset, bs = "", nil
				changed = true
			}
		} else {
			base := ""
			if nnfi != nil {
				base = nnfi.Buildset
			}
			if bs != nil && bs.Base != base && !it.Submitting {
				s.discard(bs, "RESET", "the item ahead is not the nearest non-failing item")
				it.Buildset, bs = "", nil
				changed = true
			}
			if actionable && bs == nil && (nnfi == nil || nnfi.Buildset != "") {
				var changes []zuul.Change
				if nnfi != nil {
					changes = slices.Clone(s.st.Buildsets[nnfi.Buildset].Changes)
				}
				changes = append(changes, it.Change)
				bs = s.newBuildset(p, it, base, changes)
				changed = true
			}
			if actionable && bs != nil && bs.State == Testing && s.dispatchReady(p, it, bs) {
				changed = true
			}
		}
		isFailing := needFailing || (bs != nil && bs.failed() && (!p.ConfirmFailures || s.failureConfirmed(q, i, bs, failing)))
		if i == 0 && bs != nil && bs.done() && !it.Submitting {
			if !bs.failed() {
				_, submit := p.Success.Votes()
				msg := fmt.Sprintf("Build succeeded (%s pipeline).", p.Name)
				if submit {
					it.Submitting = true
					s.emit(Submit{Pipeline: p.Name, Buildset: bs.ID, Change: it.Change, Votes: votesOf(p.Success),
						Message: msg, Stages: bs.summary()})
				} else {
					s.emit(Report{Pipeline: p.Name, Change: it.Change, Buildset: bs.ID, Action: "success",
						Votes: votesOf(p.Success), Message: msg, Stages: bs.summary()})
					s.dequeue(ps, q, 0, "SUCCESS", "")
					i--
				}
				changed = true
				if it.Submitting {
					nnfi = it
				}
				continue
			}
			s.reportFailure(p, it, bs)
			s.dequeue(ps, q, 0, resultOf(bs), "")
			s.decreaseWindow(p, q)
			i--
			changed = true
			continue
		}
		if isFailing {
			failing[it.ID] = true
		} else {
			nnfi = it
		}
	}
	return changed
}

// failureConfirmed says whether the failure of q.Items[i]'s buildset is
// its own: every non-failing item ahead passed the stage that failed.
func (s *Scheduler) failureConfirmed(q *Queue, i int, bs *Buildset, failing map[string]bool) bool {
	if bs.State == MergeConflict {
		return true
	}
	stage := ""
	for _, r := range bs.Runs {
		if r.State == Failed {
			stage = r.Stage
			break
		}
	}
	for _, ahead := range q.Items[:i] {
		if failing[ahead.ID] || ahead.Submitting {
			continue
		}
		abs := s.st.Buildsets[ahead.Buildset]
		if abs == nil {
			return false
		}
		if r := abs.run(stage); r != nil && r.State != Passed {
			return false
		}
	}
	return true
}

func resultOf(bs *Buildset) string {
	switch {
	case bs.State == MergeConflict:
		return "MERGE_FAILURE"
	case bs.failed():
		return "FAILURE"
	}
	return "SUCCESS"
}

func (s *Scheduler) reportFailure(p *Pipeline, it *Item, bs *Buildset) {
	if bs.State == MergeConflict {
		s.emit(Report{Pipeline: p.Name, Change: it.Change, Buildset: bs.ID, Action: "merge-failure", Votes: votesOf(p.MergeFailure),
			Message: fmt.Sprintf("Merge failed: change %s could not be merged (%s pipeline).", bs.Conflict, p.Name)})
		return
	}
	s.emit(Report{Pipeline: p.Name, Change: it.Change, Buildset: bs.ID, Action: "failure", Votes: votesOf(p.Failure),
		Message: fmt.Sprintf("Build failed (%s pipeline).", p.Name), Stages: bs.summary()})
}

// processIndependent runs one item per queue: test it on the branch tip
// with the open changes it needs, report, remove. A supercedent queue's
// head item runs the same way, without a merge.
func (s *Scheduler) processIndependent(p *Pipeline, ps *PipelineState, q *Queue) bool {
	if len(q.Items) == 0 {
		return false
	}
	it := q.Items[0]
	bs := s.st.Buildsets[it.Buildset]
	changed := false
	if bs == nil {
		var changes []zuul.Change
		if it.Ref == nil {
			for _, d := range it.Needs {
				if d.Status != "MERGED" {
					changes = append(changes, d)
				}
			}
			changes = append(changes, it.Change)
		}
		bs = s.newBuildset(p, it, "", changes)
		changed = true
	}
	if bs.State == Testing && s.dispatchReady(p, it, bs) {
		changed = true
	}
	if !bs.done() {
		return changed
	}
	switch {
	case it.Ref != nil:
	case !bs.failed():
		if !p.Success.Empty() {
			s.emit(Report{Pipeline: p.Name, Change: it.Change, Buildset: bs.ID, Action: "success", Votes: votesOf(p.Success),
				Message: fmt.Sprintf("Build succeeded (%s pipeline).", p.Name), Stages: bs.summary()})
		}
	default:
		s.reportFailure(p, it, bs)
	}
	s.dequeue(ps, q, 0, resultOf(bs), "")
	return true
}

// newBuildset starts testing an item in a new speculative context; a
// change item first needs its merge, a ref item is tested as it is.
func (s *Scheduler) newBuildset(p *Pipeline, it *Item, base string, changes []zuul.Change) *Buildset {
	bs := &Buildset{ID: s.newID(), Pipeline: p.Name, Item: it.ID, Base: base, Changes: changes,
		State: Merging, Created: s.now(), Runs: newRuns(s.cfg.project(it.Change.Project), it.Ref != nil)}
	s.st.Buildsets[bs.ID] = bs
	it.Buildset = bs.ID
	if it.Ref != nil {
		bs.State = Testing
		bs.Commits = map[string]string{it.Ref.Project: it.Ref.NewRev}
		return bs
	}
	s.emit(RequestMerge{Pipeline: p.Name, Buildset: bs.ID, Changes: slices.Clone(changes)})
	return bs
}

// dispatchReady dispatches the stage runs whose needs passed.
func (s *Scheduler) dispatchReady(p *Pipeline, it *Item, bs *Buildset) bool {
	ready := bs.ready()
	for _, r := range ready {
		r.State = Running
		r.Attempt++
		r.Started = s.now()
		s.emit(DispatchStage{Pipeline: p.Name, Buildset: bs.ID, Stage: r.Stage, Attempt: r.Attempt,
			Project: it.Change.Project, Params: s.params(p, it, bs)})
	}
	return len(ready) > 0
}

// params are the Zuul v2 job parameters of a stage run.
func (s *Scheduler) params(p *Pipeline, it *Item, bs *Buildset) map[string]string {
	m := map[string]string{
		"ZUUL_PIPELINE": p.Name,
		"ZUUL_UUID":     bs.ID,
		"ZUUL_URL":      s.cfg.ZuulURL,
		"ZUUL_PROJECT":  it.Change.Project,
		"ZUUL_BRANCH":   it.Change.Branch,
	}
	if it.Ref != nil {
		m["ZUUL_REF"] = it.Ref.RefName
		m["ZUUL_REFNAME"] = it.Ref.RefName
		m["ZUUL_OLDREV"] = it.Ref.OldRev
		m["ZUUL_NEWREV"] = it.Ref.NewRev
		m["ZUUL_COMMIT"] = it.Ref.NewRev
		return m
	}
	ids := make([]string, 0, len(bs.Changes))
	changes := make([]string, 0, len(bs.Changes))
	for _, c := range bs.Changes {
		ids = append(ids, strconv.Itoa(c.Number)+","+strconv.Itoa(c.Patchset))
		changes = append(changes, c.Project+":"+c.Branch+":"+c.Ref)
	}
	m["ZUUL_REF"] = "refs/sluice/" + p.Name + "/" + bs.ID
	m["ZUUL_CHANGE"] = strconv.Itoa(it.Change.Number)
	m["ZUUL_PATCHSET"] = strconv.Itoa(it.Change.Patchset)
	m["ZUUL_CHANGE_IDS"] = strings.Join(ids, " ") // space-separated, as Zuul v2's launcher writes it
	// Zuul v2's ZUUL_CHANGES: project:branch:ref of each change, in order.
	m["ZUUL_CHANGES"] = strings.Join(changes, "^")
	m["ZUUL_COMMIT"] = bs.Commits[it.Change.Project]
	return m
}

// discard drops a buildset before its end: its running stages are
// cancelled.
func (s *Scheduler) discard(bs *Buildset, result, reason string) {
	for _, r := range bs.running() {
		r.State = Cancelled
		s.emit(CancelStage{Buildset: bs.ID, Stage: r.Stage, Attempt: r.Attempt})
	}
	_, _, it := s.locate(bs.Item)
	var c zuul.Change
	if it != nil {
		c = it.Change
		if it.Ref != nil {
			// A ref item has no change: name its project and commit.
			c.Project, c.Commit = it.Ref.Project, it.Ref.NewRev
		}
	}
	s.emit(RecordBuildsetOutcome{Pipeline: bs.Pipeline, Buildset: bs.ID, Item: c, Changes: bs.Changes, Result: result, Reason: reason})
	delete(s.st.Buildsets, bs.ID)
}

// dequeue removes q.Items[i]; its buildset ends with result.
func (s *Scheduler) dequeue(ps *PipelineState, q *Queue, i int, result, reason string) {
	it := q.Items[i]
	if bs := s.st.Buildsets[it.Buildset]; bs != nil {
		s.discard(bs, result, reason)
	}
	it.Buildset = ""
	q.Items = slices.Delete(q.Items, i, i+1)
}

// increaseWindow and decreaseWindow are Zuul's ChangeQueue rules.
func (s *Scheduler) increaseWindow(p *Pipeline, q *Queue) {
	if q.Window == 0 {
		return
	}
	switch *p.WindowIncreaseType {
	case Linear:
		q.Window += *p.WindowIncreaseFactor
	case Exponential:
		q.Window *= *p.WindowIncreaseFactor
	}
	if c := *p.WindowCeiling; c > 0 && q.Window > c {
		q.Window = c
	}
}

func (s *Scheduler) decreaseWindow(p *Pipeline, q *Queue) {
	if q.Window == 0 {
		return
	}
	switch *p.WindowDecreaseType {
	case Linear:
		q.Window -= *p.WindowDecreaseFactor
	case Exponential:
		q.Window /= *p.WindowDecreaseFactor
	}
	q.Window = max(q.Window, *p.WindowFloor)
}
