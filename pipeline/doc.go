// Package pipeline is sluice's scheduler: the pipeline managers of Zuul
// (independent for check, dependent with a window for gate, supercedent for
// post), their queues and items, buildsets with their speculative context,
// the stage graph of a project with its abort rules, and retries.
//
// The core is a deterministic state machine, [Scheduler.Handle]: an event
// (a trigger, a merge result, a stage outcome, a submit result) goes in,
// actions (request a merge, dispatch or cancel a stage, report, submit,
// record a buildset outcome) come out, and the whole state is a plain
// JSON-encodable [State] ([Scheduler.Snapshot], [Restore]). [Runner] is the
// thin loop that owns a Scheduler in one goroutine, executes the actions
// through small interfaces declared here ([Dispatcher], [Merger],
// [Reporter], [Submitter], [ChangeQuery]) and feeds their completions back
// as events.
//
// The gate follows Zuul's dependent pipeline manager
// (zuul/manager/__init__.py _processOneItem, "nearest non-failing item"):
// each item is tested on the speculative merge of the branch tip and every
// non-failing item ahead of it; when an item fails, the items behind it are
// re-tested without it, and it is reported once it reaches the head of the
// queue. The window of actively tested items grows and shrinks like Zuul's
// ChangeQueue (linear increase, exponential decrease by default).
package pipeline
