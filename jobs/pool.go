// Package jobs moves stage runs to workers and their outcomes back,
// without knowing what a stage does: the in-process pool of the embedded
// default runs the stage functions it is handed; Gearman, a dispatcher
// through gearmand (jobs/gearman speaks its protocol), hands the same runs
// to GearmanWorkers on any number of hosts, which run them with the same
// stage functions.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"time"
)

// Run is one stage run: the key DESIGN.md gives it (buildset, stage,
// attempt) and the Zuul v2 job parameters the stage reads.
type Run struct {
	Pipeline string            `json:"pipeline"`
	Buildset string            `json:"buildset"`
	Stage    string            `json:"stage"`
	Attempt  int               `json:"attempt"`
	Project  string            `json:"project"`
	Params   map[string]string `json:"params"`
}

// Key identifies the run: a run is done once per key.
func (r Run) Key() string { return r.Buildset + "/" + r.Stage + "/" + strconv.Itoa(r.Attempt) }

// The outcomes of a stage run. Error is a failure of the infrastructure
// (the stage could not run), not of the change.
const (
	Passed = "PASSED"
	Failed = "FAILED"
	Error  = "ERROR"
)

// Result is what a stage function says of its run.
type Result struct {
	Outcome string // Passed or Failed; an error returned makes it Error
	LogURL  string
}

// Outcome is a finished run, as reported back.
type Outcome struct {
	Run      Run
	Result   Result
	Err      string // why the outcome is Error
	Started  time.Time
	Ended    time.Time
	Canceled bool
}

// StageFunc runs one stage. It returns an error only when the stage could
// not run; a change that fails the stage is a Result with Outcome Failed.
// It must stop when ctx ends.
type StageFunc func(ctx context.Context, r Run) (Result, error)

// ErrUnknownStage is returned by Dispatch for a stage the pool has no
// function for.
var ErrUnknownStage = errors.New("jobs: unknown stage")

// Pool runs stage runs in this process, at most Workers at once, and
// reports each outcome once. Runs are taken in the order they were
// dispatched.
type Pool struct {
	stages  map[string]StageFunc
	workers int
	report  func(context.Context, Outcome)
	log     *slog.Logger

	mu      sync.Mutex
	queue   []Run
	known   map[string]bool               // keys dispatched, not yet reported
	running map[string]context.CancelFunc // keys running
	wake    chan struct{}
}

// NewPool returns a pool running stages on workers goroutines; report is
// called once per dispatched run, from a worker, when it ends (also when
// it was cancelled).
func NewPool(stages map[string]StageFunc, workers int, report func(context.Context, Outcome), log *slog.Logger) *Pool {
	if workers < 1 {
		workers = 1
	}
	return &Pool{stages: stages, workers: workers, report: report, log: log,
		known: map[string]bool{}, running: map[string]context.CancelFunc{}, wake: make(chan struct{}, 1)}
}

// Dispatch queues r. A run whose key is already queued or running is
// ignored: delivery may repeat, a run happens once.
func (p *Pool) Dispatch(_ context.Context, r Run) error {
	if _, ok := p.stages[r.Stage]; !ok {
		return fmt.Errorf("dispatch %s: %w %q", r.Key(), ErrUnknownStage, r.Stage)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.known[r.Key()] {
		return nil
	}
	p.known[r.Key()] = true
	p.queue = append(p.queue, r)
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return nil
}

// Cancel stops the run with key: a queued run is reported cancelled
// without running, a running one has its context cancelled. An unknown
// key is not an error (the run ended meanwhile).
func (p *Pool) Cancel(ctx context.Context, key string) error {
	p.mu.Lock()
	if cancel, ok := p.running[key]; ok {
		p.mu.Unlock()
		cancel()
		return nil
	}
	for i, r := range p.queue {
		if r.Key() == key {
			p.queue = append(p.queue[:i], p.queue[i+1:]...)
			delete(p.known, key)
			p.mu.Unlock()
			now := time.Now()
			p.report(ctx, Outcome{Run: r, Result: Result{Outcome: Error}, Err: "cancelled before it started",
				Started: now, Ended: now, Canceled: true})
			return nil
		}
	}
	p.mu.Unlock()
	return nil
}

// Run runs the workers until ctx ends; runs still going are cancelled and
// waited for (they are reported cancelled).
func (p *Pool) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range p.workers {
		wg.Go(func() { p.work(ctx) })
	}
	wg.Wait()
	return nil
}

func (p *Pool) work(ctx context.Context) {
	for {
		r, ok := p.next()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-p.wake:
				continue
			}
		}
		// Pass the wake-up on: another run may be queued.
		select {
		case p.wake <- struct{}{}:
		default:
		}
		p.runOne(ctx, r)
		if ctx.Err() != nil {
			return
		}
	}
}

func (p *Pool) next() (Run, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) == 0 {
		return Run{}, false
	}
	r := p.queue[0]
	p.queue = p.queue[1:]
	return r, true
}

func (p *Pool) runOne(ctx context.Context, r Run) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.mu.Lock()
	p.running[r.Key()] = cancel
	p.mu.Unlock()
	out := Outcome{Run: r, Started: time.Now()}
	res, err := p.call(rctx, r)
	out.Ended, out.Result = time.Now(), res
	switch {
	case rctx.Err() != nil:
		out.Result.Outcome, out.Err, out.Canceled = Error, "cancelled", true
	case err != nil:
		out.Result.Outcome, out.Err = Error, err.Error()
	case res.Outcome != Passed && res.Outcome != Failed:
		out.Result.Outcome, out.Err = Error, fmt.Sprintf("stage %s said %q, not PASSED or FAILED", r.Stage, res.Outcome)
	}
	p.mu.Lock()
	delete(p.running, r.Key())
	delete(p.known, r.Key())
	p.mu.Unlock()
	p.log.Info("stage run ended", "buildset", r.Buildset, "stage", r.Stage, "attempt", r.Attempt,
		"outcome", out.Result.Outcome, "seconds", out.Ended.Sub(out.Started).Seconds())
	// Report with the pool's context: a cancelled run is reported too,
	// unless the pool itself is stopping.
	p.report(ctx, out)
}

// call runs the stage function; a panic is the stage's error, not the
// server's end.
func (p *Pool) call(ctx context.Context, r Run) (res Result, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("stage %s panicked: %v\n%s", r.Stage, v, debug.Stack())
		}
	}()
	return p.stages[r.Stage](ctx, r)
}
