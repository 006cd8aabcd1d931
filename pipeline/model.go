package pipeline

import (
	"strconv"
	"time"

	"github.com/sluice-ci/sluice/zuul"
)

// State is everything the scheduler knows, as plain JSON-encodable data, so
// that it can be stored and restored after a crash ([Scheduler.Snapshot],
// [Restore]).
type State struct {
	// Seq numbers the items and buildsets made so far; with Salt it makes
	// their identifiers, so that a replay makes the same ones.
	Seq       uint64               `json:"seq"`
	Salt      string               `json:"salt"`
	Pipelines []*PipelineState     `json:"pipelines"`
	Buildsets map[string]*Buildset `json:"buildsets"`
}

// PipelineState is one pipeline's queues and the items waiting for their
// dependencies to enter it.
type PipelineState struct {
	Name    string   `json:"name"`
	Queues  []*Queue `json:"queues"`
	Waiting []*Item  `json:"waiting,omitempty"`
}

// Queue is a change queue: in a dependent pipeline the shared queue of a
// group of projects, with its window; in an independent pipeline one
// item's own queue; in a supercedent pipeline one project+branch.
type Queue struct {
	Name string `json:"name"`
	// Window is how many items from the head are actively tested; 0 is
	// unlimited.
	Window int     `json:"window"`
	Items  []*Item `json:"items"`
}

// Item is a change (or, in post, a ref update) in a pipeline.
type Item struct {
	ID     string      `json:"id"`
	Change zuul.Change `json:"change"`
	// Ref is set for ref-updated items (no change).
	Ref *RefUpdate `json:"ref,omitempty"`
	// Needs are the open changes this change needs (Depends-On footers and
	// git parents, transitively), dependencies first.
	Needs    []zuul.Change `json:"needs,omitempty"`
	Enqueued time.Time     `json:"enqueued"`
	// Buildset is the current buildset's ID ("" before the first and
	// right after a reset).
	Buildset string `json:"buildset,omitempty"`
	// Submitting is set while the Submit action of the head item of a
	// dependent pipeline is outstanding.
	Submitting bool `json:"submitting,omitempty"`
}

// RefUpdate is what a ref-updated or change-merged event says of a ref.
type RefUpdate struct {
	Project string `json:"project"`
	Branch  string `json:"branch,omitempty"`
	RefName string `json:"ref_name"`
	OldRev  string `json:"old_rev,omitempty"`
	NewRev  string `json:"new_rev"`
}

// Buildset is one test of an item in one speculative context: the branch
// tip merged with Changes in order, the item's own change last.
type Buildset struct {
	ID       string `json:"id"`
	Pipeline string `json:"pipeline"`
	Item     string `json:"item"`
	// Base is the buildset of the item ahead this one was built on ("" for
	// the branch tip); when it is no longer the nearest non-failing item's
	// buildset, this buildset is reset.
	Base    string        `json:"base,omitempty"`
	Changes []zuul.Change `json:"changes"`
	State   BuildsetState `json:"state"`
	// Commits are the merged commits per project, from the merger.
	Commits map[string]string `json:"commits,omitempty"`
	// Conflict names the change the merger could not merge.
	Conflict string `json:"conflict,omitempty"`
	// Runs are the stage runs, the latest attempt of each stage.
	Runs    []*StageRun `json:"runs"`
	Created time.Time   `json:"created"`
}

// BuildsetState is where a buildset is.
type BuildsetState string

// The buildset states.
const (
	Merging       BuildsetState = "merging"
	Testing       BuildsetState = "testing"
	MergeConflict BuildsetState = "merge-conflict"
)

// StageRun is one attempt at one stage of a buildset; its key is
// buildset + stage + attempt.
type StageRun struct {
	Stage    string    `json:"stage"`
	Attempt  int       `json:"attempt"` // 0 while not dispatched
	State    RunState  `json:"state"`
	Needs    []string  `json:"needs,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Ended    time.Time `json:"ended,omitzero"`
	LogURL   string    `json:"log_url,omitempty"`
	Attempts int       `json:"attempts"` // the most attempts allowed
}

// RunState is a stage run's state.
type RunState string

// The stage run states.
const (
	Pending   RunState = "pending"
	Running   RunState = "running"
	Passed    RunState = "passed"
	Failed    RunState = "failed"
	Skipped   RunState = "skipped"
	Cancelled RunState = "cancelled"
)

func (s RunState) terminal() bool {
	return s == Passed || s == Failed || s == Skipped || s == Cancelled
}

// Outcome is how a stage run ended, as its worker reports it.
type Outcome string

// The stage outcomes. Error is a failure of the infrastructure, not of the
// change: the stage is run again as a new attempt (Zuul's retry).
const (
	OutcomePassed Outcome = "PASSED"
	OutcomeFailed Outcome = "FAILED"
	OutcomeError  Outcome = "ERROR"
)

// Event is an input of [Scheduler.Handle].
type Event interface{ event() }

// TriggerEvent is a Gerrit event, with the change as queried again after
// it (current approvals and patchset) and its open dependencies.
type TriggerEvent struct {
	Event zuul.Event `json:"event"`
	// Change is the re-queried change (nil for ref-updated).
	Change *zuul.Change `json:"change,omitempty"`
	// Deps are the open changes Change needs, transitively, each with the
	// changes it needs in turn (see [ResolveDeps]).
	Deps []Dep `json:"deps,omitempty"`
	// Needs are the keys ([NumberKey]) of the changes Change needs directly.
	Needs []string `json:"needs,omitempty"`
	// JournalID is the event's id in the journal, 0 if not journalled.
	JournalID int64 `json:"-"`
}

// Dep is an open change another one needs, and the keys of the open
// changes it needs in its turn.
type Dep struct {
	Change zuul.Change `json:"change"`
	Needs  []string    `json:"needs,omitempty"`
}

// MergeDone is the merger's answer to a [RequestMerge].
type MergeDone struct {
	Buildset string `json:"buildset"`
	// Commits is the merged commit per project.
	Commits map[string]string `json:"commits,omitempty"`
	// Conflict names the change ("N,P") that did not merge; Err is any
	// other failure of the merger. Either makes the item unable to merge.
	Conflict string `json:"conflict,omitempty"`
	Err      string `json:"err,omitempty"`
}

// StageEnded is a stage run's outcome.
type StageEnded struct {
	Buildset string  `json:"buildset"`
	Stage    string  `json:"stage"`
	Attempt  int     `json:"attempt"`
	Outcome  Outcome `json:"outcome"`
	LogURL   string  `json:"log_url,omitempty"`
}

// SubmitDone is the answer to a [Submit].
type SubmitDone struct {
	Buildset string `json:"buildset"`
	Merged   bool   `json:"merged"`
	Err      string `json:"err,omitempty"`
}

// RetriggerStage runs one stage of a buildset again, as a new attempt
// (`sluice retrigger`), with the stages after it that its failure
// skipped or cancelled. A buildset that is no longer in a pipeline (it was
// reported) is not changed: recheck the change instead.
type RetriggerStage struct {
	Buildset string `json:"buildset"`
	Stage    string `json:"stage"`
	// JournalID is the request's id in the journal, 0 if not journalled.
	JournalID int64 `json:"-"`
}

// Tick is a no-op event that makes the scheduler process its queues.
type Tick struct{}

func (TriggerEvent) event()   {}
func (MergeDone) event()      {}
func (StageEnded) event()     {}
func (SubmitDone) event()     {}
func (Tick) event()           {}
func (RetriggerStage) event() {}

// Action is an output of [Scheduler.Handle].
type Action interface{ action() }

// RequestMerge asks the merger for the speculative merge of Changes, in
// order, on their branch tips, under ZUUL_REF refs/sluice/<pipeline>/<buildset>.
type RequestMerge struct {
	Pipeline string        `json:"pipeline"`
	Buildset string        `json:"buildset"`
	Changes  []zuul.Change `json:"changes"`
}

// DispatchStage asks for one stage run.
type DispatchStage struct {
	Pipeline string `json:"pipeline"`
	Buildset string `json:"buildset"`
	Stage    string `json:"stage"`
	Attempt  int    `json:"attempt"`
	Project  string `json:"project"`
	// Params are the Zuul v2 job parameters (ZUUL_*).
	Params map[string]string `json:"params"`
}

// CancelStage stops a dispatched stage run.
type CancelStage struct {
	Buildset string `json:"buildset"`
	Stage    string `json:"stage"`
	Attempt  int    `json:"attempt"`
}

// Report posts a pipeline's verdict on a change: votes and a message.
type Report struct {
	Pipeline string         `json:"pipeline"`
	Change   zuul.Change    `json:"change"`
	Buildset string         `json:"buildset,omitempty"`
	Action   string         `json:"action"` // start, success, failure, merge-failure
	Votes    map[string]int `json:"votes,omitempty"`
	Message  string         `json:"message"`
	Stages   []StageSummary `json:"stages,omitempty"`
}

// StageSummary is one stage's line in a report.
type StageSummary struct {
	Stage    string        `json:"stage"`
	State    RunState      `json:"state"`
	Attempt  int           `json:"attempt"`
	LogURL   string        `json:"log_url,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`
}

// Submit asks for the head item of a dependent pipeline to be merged: the
// success votes are posted with it, since Gerrit's submit rules need them.
type Submit struct {
	Pipeline string         `json:"pipeline"`
	Buildset string         `json:"buildset"`
	Change   zuul.Change    `json:"change"`
	Votes    map[string]int `json:"votes,omitempty"`
	Message  string         `json:"message"`
	Stages   []StageSummary `json:"stages,omitempty"`
}

// RecordBuildsetOutcome says how a buildset ended, for the store.
type RecordBuildsetOutcome struct {
	Pipeline string        `json:"pipeline"`
	Buildset string        `json:"buildset"`
	Item     zuul.Change   `json:"item"`
	Changes  []zuul.Change `json:"changes"`
	// Result is SUCCESS, FAILURE, MERGE_FAILURE, MERGED, or for a buildset
	// abandoned before its end RESET, SUPERSEDED or DEQUEUED.
	Result string `json:"result"`
	Reason string `json:"reason,omitempty"`
}

func (RequestMerge) action()          {}
func (DispatchStage) action()         {}
func (CancelStage) action()           {}
func (Report) action()                {}
func (Submit) action()                {}
func (RecordBuildsetOutcome) action() {}

// NumberKey identifies a change regardless of patchset: project~number.
func NumberKey(c *zuul.Change) string {
	return c.Project + "~" + strconv.Itoa(c.Number)
}
