package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sluice-ci/sluice/zuul"
)

// Dispatcher hands stage runs to workers; their outcomes come back through
// [Runner.Deliver] as [StageEnded]. Dispatch must not wait for the run.
type Dispatcher interface {
	Dispatch(ctx context.Context, d DispatchStage) error
	Cancel(ctx context.Context, c CancelStage) error
}

// Merger makes the speculative merge of changes, in order, on their branch
// tips, under ref, and returns the merged commit per project. A change that
// does not merge is named in conflict ("N,P"); err is any other failure.
type Merger interface {
	Merge(ctx context.Context, ref string, changes []zuul.Change) (commits map[string]string, conflict string, err error)
}

// Reporter posts a report (votes and message) on a change.
type Reporter interface {
	Report(ctx context.Context, r Report) error
}

// Submitter posts the success votes and submits a change; merged says
// whether the change is merged afterwards (also when it already was).
type Submitter interface {
	Submit(ctx context.Context, s Submit) (merged bool, err error)
}

// Recorder keeps how buildsets ended (the store); it may be nil.
type Recorder interface {
	RecordBuildset(ctx context.Context, r RecordBuildsetOutcome) error
}

// Parts are what a [Runner] acts through.
type Parts struct {
	Dispatcher Dispatcher
	Merger     Merger
	Reporter   Reporter
	Submitter  Submitter
	Query      ChangeQuery
	Recorder   Recorder // optional
	// Persist, when set, saves the state after every event, and the
	// reports and buildset outcomes go out from it (Recorder is then
	// not used: Persist records them).
	Persist Persister
}

// Runner owns a [Scheduler] in one goroutine (Run): it feeds it events,
// carries out its actions through [Parts] and feeds their completions back
// as events.
type Runner struct {
	s      *Scheduler
	parts  Parts
	log    *slog.Logger
	events chan Event
	done   chan struct{}
	// pending actions from Restore, carried out when Run starts
	initial []Action

	// posting is held by a report's post and by a submit (its votes and
	// the submit itself), which must not interleave on Gerrit.
	posting sync.Mutex

	// reports and records go out in order through one goroutine.
	mu      sync.Mutex
	outbox  []Action
	wake    chan struct{}
	workers sync.WaitGroup
}

// NewRunner returns a runner of s; initial are actions to carry out first
// (those [Restore] returns).
func NewRunner(s *Scheduler, parts Parts, log *slog.Logger, initial []Action) *Runner {
	return &Runner{s: s, parts: parts, log: log, events: make(chan Event, 1024),
		done: make(chan struct{}), initial: initial, wake: make(chan struct{}, 1)}
}

// ErrStopped is returned by Deliver and Trigger once Run has returned.
var ErrStopped = errors.New("pipeline: runner stopped")

// Deliver hands an event to the scheduler (a stage outcome from a worker,
// for one). It waits while the event queue is full.
func (r *Runner) Deliver(ctx context.Context, ev Event) error {
	select {
	case r.events <- ev:
		return nil
	case <-r.done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Trigger queries the change of a Gerrit event again (approvals and
// current patchset) with its open dependencies, and delivers the result.
// It runs in the caller's goroutine (the event source's).
//
// journalID is the event's id in the journal (0: not journalled); with a
// Persister, it is marked done in the transaction that saves the state
// the event made.
func (r *Runner) Trigger(ctx context.Context, ev zuul.Event, journalID int64) error {
	te := TriggerEvent{Event: ev, JournalID: journalID}
	if ev.Change != nil && ev.Change.Number > 0 {
		found, err := r.parts.Query.Query(ctx, fmt.Sprintf("change:%d", ev.Change.Number))
		if err != nil {
			return fmt.Errorf("trigger %s %s: query: %w", ev.Type, ev.Change.String(), err)
		}
		c := *ev.Change
		for _, f := range found {
			if f.Project == ev.Change.Project {
				// The query names the current patchset; the event's may be older.
				f.Current = f.Patchset == ev.Change.Patchset
				if !f.Current {
					f.Patchset, f.Ref, f.Commit = ev.Change.Patchset, ev.Change.Ref, ev.Change.Commit
				}
				c = f
			}
		}
		te.Change = &c
		needs, deps, err := ResolveDeps(ctx, r.parts.Query, c)
		if err != nil {
			return fmt.Errorf("trigger %s %s: %w", ev.Type, c.String(), err)
		}
		te.Needs, te.Deps = needs, deps
	}
	return r.Deliver(ctx, te)
}

// Run handles events until ctx ends, then waits for the work it started.
func (r *Runner) Run(ctx context.Context) error {
	defer close(r.done)
	r.workers.Add(1)
	go r.sendOutbox(ctx)
	defer r.workers.Wait()
	if r.parts.Persist != nil && len(r.initial) > 0 {
		// The restored state, with its new attempts and any report it
		// made, is saved before anything is carried out, as after an
		// event.
		if err := r.save(ctx, Tick{}, r.initial); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	r.carryOut(ctx, r.initial)
	r.initial = nil
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-r.events:
			actions := r.s.Handle(ev)
			if r.parts.Persist != nil {
				if err := r.save(ctx, ev, actions); err != nil {
					if ctx.Err() != nil {
						return nil // stopping: the event is handled again after the restart
					}
					// What was not saved did not happen: stop, and a
					// restart restores the last saved state.
					return err
				}
			}
			r.carryOut(ctx, actions)
		}
	}
}

func (r *Runner) save(ctx context.Context, ev Event, actions []Action) error {
	snap, err := r.s.Snapshot()
	if err != nil {
		return err
	}
	var journalID int64
	switch e := ev.(type) {
	case TriggerEvent:
		journalID = e.JournalID
	case RetriggerStage:
		journalID = e.JournalID
	}
	return r.parts.Persist.Save(ctx, snap, journalID, actions)
}

// carryOut starts each action; what finishes later comes back as an event.
func (r *Runner) carryOut(ctx context.Context, actions []Action) {
	for _, a := range actions {
		switch a := a.(type) {
		case DispatchStage:
			if err := r.parts.Dispatcher.Dispatch(ctx, a); err != nil {
				r.log.Error("stage dispatch", "buildset", a.Buildset, "stage", a.Stage, "attempt", a.Attempt, "err", err)
				r.later(ctx, func() Event {
					return StageEnded{Buildset: a.Buildset, Stage: a.Stage, Attempt: a.Attempt, Outcome: OutcomeError}
				})
			}
		case CancelStage:
			if err := r.parts.Dispatcher.Cancel(ctx, a); err != nil {
				r.log.Warn("stage cancel", "buildset", a.Buildset, "stage", a.Stage, "attempt", a.Attempt, "err", err)
			}
		case RequestMerge:
			r.later(ctx, func() Event {
				commits, conflict, err := r.parts.Merger.Merge(ctx, "refs/sluice/"+a.Pipeline+"/"+a.Buildset, a.Changes)
				md := MergeDone{Buildset: a.Buildset, Commits: commits, Conflict: conflict}
				if err != nil {
					md.Err = err.Error()
				}
				return md
			})
		case Submit:
			r.later(ctx, func() Event {
				if err := r.reportsSent(ctx, a.Change.Number); err != nil {
					return SubmitDone{Buildset: a.Buildset, Err: err.Error()}
				}
				// No report lands between the submit's votes and the
				// submit itself.
				r.posting.Lock()
				merged, err := r.parts.Submitter.Submit(ctx, a)
				r.posting.Unlock()
				sd := SubmitDone{Buildset: a.Buildset, Merged: merged}
				if err != nil {
					r.log.Warn("submit", "change", a.Change.String(), "err", err)
					sd.Err = err.Error()
				}
				return sd
			})
		case Report, RecordBuildsetOutcome:
			if r.parts.Persist != nil {
				// Saved with the state; the sender takes them from there.
				select {
				case r.wake <- struct{}{}:
				default:
				}
				continue
			}
			r.mu.Lock()
			r.outbox = append(r.outbox, a)
			r.mu.Unlock()
			select {
			case r.wake <- struct{}{}:
			default:
			}
		}
	}
}

// reportsSent waits until no report on change number waits in the
// Persister: the submit posts its votes itself, and an older report (a
// check vote) posted after them would undo them.
func (r *Runner) reportsSent(ctx context.Context, number int) error {
	if r.parts.Persist == nil {
		return nil
	}
	for {
		qs, err := r.parts.Persist.Unsent(ctx, 1000)
		if err != nil {
			return err
		}
		waiting := false
		for _, q := range qs {
			waiting = waiting || q.Report.Change.Number == number
		}
		if !waiting {
			return nil
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// later runs f in a goroutine the runner waits for and delivers its event.
func (r *Runner) later(ctx context.Context, f func() Event) {
	r.workers.Add(1)
	go func() {
		defer r.workers.Done()
		ev := f()
		if ctx.Err() != nil {
			return
		}
		select {
		case r.events <- ev:
		case <-ctx.Done():
		}
	}()
}

// Bounds of the durable report sender: the wait after a failed post,
// doubling up to the cap, and the attempts after which a report is given
// up (logged), so that one change Gerrit refuses does not stop every
// report behind it.
const (
	reportBackoffMin = 2 * time.Second
	reportBackoffMax = 5 * time.Minute
	reportAttempts   = 20
)

// sendOutbox posts reports and records in the order they were made.
func (r *Runner) sendOutbox(ctx context.Context) {
	defer r.workers.Done()
	if r.parts.Persist != nil {
		r.sendDurable(ctx)
		return
	}
	for {
		r.mu.Lock()
		batch := r.outbox
		r.outbox = nil
		r.mu.Unlock()
		for _, a := range batch {
			switch a := a.(type) {
			case Report:
				r.posting.Lock()
				err := r.parts.Reporter.Report(ctx, a)
				r.posting.Unlock()
				if err != nil {
					r.log.Error("report", "pipeline", a.Pipeline, "change", a.Change.String(), "action", a.Action, "err", err)
				}
			case RecordBuildsetOutcome:
				if r.parts.Recorder != nil {
					if err := r.parts.Recorder.RecordBuildset(ctx, a); err != nil {
						r.log.Error("record buildset", "buildset", a.Buildset, "err", err)
					}
				}
			}
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
	}
}

// sendDurable posts the reports the Persister holds, in order, each until
// the source takes it (at least once: a crash between the post and its
// mark posts it again).
func (r *Runner) sendDurable(ctx context.Context) {
	wait := reportBackoffMin
	for {
		qs, err := r.parts.Persist.Unsent(ctx, 100)
		if err != nil && ctx.Err() == nil {
			r.log.Error("unsent reports", "err", err)
		}
		failed := false
		for _, q := range qs {
			if !q.Posting.IsZero() {
				// An earlier post began, by a process that stopped: it
				// may have landed.
				if pc, ok := r.parts.Reporter.(PostedChecker); ok {
					if done, err := pc.Posted(ctx, q.Report, q.Posting); err == nil && done {
						r.log.Info("report posted before a restart", "pipeline", q.Report.Pipeline, "change", q.Report.Change.String())
						if err := r.parts.Persist.Sent(ctx, q.ID, nil); err != nil {
							r.log.Error("report", "err", err)
							failed = true
							break
						}
						continue
					}
				}
			} else if err := r.parts.Persist.Posting(ctx, q.ID); err != nil {
				r.log.Error("report", "err", err)
				failed = true
				break
			}
			r.posting.Lock()
			err := r.parts.Reporter.Report(ctx, q.Report)
			r.posting.Unlock()
			if ctx.Err() != nil {
				return
			}
			if err != nil && q.Attempts+1 < reportAttempts && !errors.Is(err, ErrReportRefused) {
				r.log.Warn("report", "pipeline", q.Report.Pipeline, "change", q.Report.Change.String(), "attempts", q.Attempts+1, "err", err)
				if err := r.parts.Persist.Sent(ctx, q.ID, err); err != nil {
					r.log.Error("report", "err", err)
				}
				failed = true
				break // in order: the next waits for this one
			}
			if err != nil {
				r.log.Error("report given up", "pipeline", q.Report.Pipeline, "change", q.Report.Change.String(), "attempts", q.Attempts+1, "err", err)
			}
			if err := r.parts.Persist.Sent(ctx, q.ID, nil); err != nil {
				r.log.Error("report", "err", err)
				failed = true
				break
			}
		}
		if failed {
			// New reports wait behind the failed one anyway.
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			wait = min(2*wait, reportBackoffMax)
			continue
		}
		wait = reportBackoffMin
		if len(qs) > 0 {
			continue
		}
		t := time.NewTimer(time.Minute) // a safety net; new reports wake the sender
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.wake:
			t.Stop()
		case <-t.C:
		}
	}
}
