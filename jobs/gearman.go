package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-ci/sluice/jobs/gearman"
)

// The Gearman functions of stage runs: sluice:<stage> does a run; a
// worker registers sluice:cancel:<worker ID> on a connection of its own,
// so that a cancellation reaches it even while every slot is busy.
const (
	functionPrefix = "sluice:"
	cancelPrefix   = "sluice:cancel:"
	// startedPrefix is the first WORK_DATA of a run: the worker that
	// took it.
	startedPrefix = "started on "
)

// workResult is a run's WORK_COMPLETE body.
type workResult struct {
	Outcome  string `json:"outcome"`
	LogURL   string `json:"log_url,omitempty"`
	Error    string `json:"error,omitempty"`
	Canceled bool   `json:"canceled,omitempty"`
	Worker   string `json:"worker"`
}

// Gearman dispatches stage runs to workers through gearmand: each run is
// a job of function sluice:<stage> whose unique ID is the run's key, so a
// run submitted again while it is queued or running is not done twice.
// Gate runs go first (high priority), then check, then the rest, as
// Zuul's pipelines ask. Each outcome is reported once; a run whose job
// server went away before it ended (a restart, a lost connection) is
// submitted again, and gearmand hands a run whose worker died to another.
type Gearman struct {
	client *gearman.Client
	report func(context.Context, Outcome)
	log    *slog.Logger
	// StatusTimeout is how long a started run may go without a word from
	// its worker (workers send a status every HeartbeatInterval) before
	// it is given up as an ERROR, which the pipeline retries as a new
	// attempt; gearmand itself notices only a worker whose connection
	// ends, not one that hangs.
	StatusTimeout time.Duration

	mu      sync.Mutex
	ctx     context.Context // Run's; submissions live as long
	runs    map[string]*remoteRun
	waiting []*remoteRun // dispatched before Run
	wg      sync.WaitGroup
}

type remoteRun struct {
	run      Run
	started  time.Time
	server   string
	worker   string
	canceled bool
	done     bool
}

var _ interface {
	Dispatch(context.Context, Run) error
	Cancel(context.Context, string) error
} = (*Gearman)(nil)

// NewGearman returns a dispatcher through the job servers at addrs,
// reporting outcomes to report; Run connects it.
func NewGearman(addrs []string, clientID string, report func(context.Context, Outcome), log *slog.Logger) *Gearman {
	return &Gearman{client: gearman.NewClient(addrs, clientID, log), report: report, log: log, runs: map[string]*remoteRun{},
		StatusTimeout: 2 * time.Minute}
}

// Run keeps the connections to the job servers until ctx ends, then
// waits for the submissions under way.
func (g *Gearman) Run(ctx context.Context) error {
	g.mu.Lock()
	g.ctx = ctx
	for _, rr := range g.waiting {
		g.start(rr)
	}
	g.waiting = nil
	g.mu.Unlock()
	err := g.client.Run(ctx)
	g.wg.Wait()
	return err
}

// Dispatch submits r (once Run runs). A run whose key is under way is
// ignored.
func (g *Gearman) Dispatch(_ context.Context, r Run) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if rr, ok := g.runs[r.Key()]; ok && !rr.done {
		return nil
	}
	rr := &remoteRun{run: r, started: time.Now()}
	g.runs[r.Key()] = rr
	if g.ctx == nil {
		g.waiting = append(g.waiting, rr)
		return nil
	}
	g.start(rr)
	return nil
}

// start submits rr in a goroutine of its own; g.mu is held.
func (g *Gearman) start(rr *remoteRun) {
	ctx := g.ctx
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.submit(ctx, rr)
	}()
}

// priority is the run's pipeline's place in the queue.
func priority(pipeline string) gearman.Priority {
	switch pipeline {
	case "gate":
		return gearman.High
	case "check":
		return gearman.Normal
	}
	return gearman.Low
}

// submit submits rr until it ends: again after a lost job server.
func (g *Gearman) submit(ctx context.Context, rr *remoteRun) {
	data, err := json.Marshal(rr.run)
	if err != nil {
		g.finish(ctx, rr, Result{Outcome: Error}, "encode: "+err.Error(), false)
		return
	}
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		ended := make(chan gearman.Event, 1)
		heard := make(chan struct{}, 1)
		on := func(e gearman.Event) {
			select {
			case heard <- struct{}{}:
			default:
			}
			switch e.Type {
			case gearman.WorkData:
				if w, ok := strings.CutPrefix(string(e.Data), startedPrefix); ok {
					g.started(ctx, rr, w)
				} else {
					g.log.Debug("stage run output", "run", rr.run.Key(), "data", string(e.Data))
				}
			case gearman.WorkStatus:
				g.log.Debug("stage run status", "run", rr.run.Key(), "done", e.Numerator, "of", e.Denominator)
			default:
				if e.Final() {
					ended <- e
				}
			}
		}
		_, server, err := g.client.Submit(ctx, gearman.Job{Function: functionPrefix + rr.run.Stage, Unique: rr.run.Key(),
			Data: data, Priority: priority(rr.run.Pipeline)}, on)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			g.log.Warn("stage run not submitted", "run", rr.run.Key(), "err", err)
			if !sleepCtx(ctx, wait) {
				return
			}
			wait = min(2*wait, 5*time.Second)
			continue
		}
		g.mu.Lock()
		rr.server = server
		g.mu.Unlock()
		var e gearman.Event
		silence := time.NewTimer(g.StatusTimeout)
	wait:
		for {
			select {
			case e = <-ended:
				break wait
			case <-heard:
				silence.Reset(g.StatusTimeout)
			case <-silence.C:
				g.mu.Lock()
				started := rr.worker != ""
				g.mu.Unlock()
				if !started {
					// Still queued: waiting for a worker is not a hang.
					silence.Reset(g.StatusTimeout)
					continue
				}
				silence.Stop()
				g.finish(ctx, rr, Result{Outcome: Error}, fmt.Sprintf("no word from worker %s in %s", rr.worker, g.StatusTimeout), false)
				return
			case <-ctx.Done():
				silence.Stop()
				return
			}
		}
		silence.Stop()
		switch e.Type {
		case gearman.WorkComplete:
			var wr workResult
			if err := json.Unmarshal(e.Data, &wr); err != nil || (wr.Outcome != Passed && wr.Outcome != Failed && wr.Outcome != Error) {
				g.finish(ctx, rr, Result{Outcome: Error}, fmt.Sprintf("worker's result %.200q: not a stage outcome", e.Data), false)
				return
			}
			g.finish(ctx, rr, Result{Outcome: wr.Outcome, LogURL: wr.LogURL}, wr.Error, wr.Canceled)
			return
		case gearman.WorkFail:
			g.finish(ctx, rr, Result{Outcome: Error}, "the worker failed the job", false)
			return
		case gearman.WorkException:
			g.finish(ctx, rr, Result{Outcome: Error}, "the worker's exception: "+string(e.Data), false)
			return
		case gearman.Lost:
			// The job server went away with the job: submit it again (its
			// queue may be gone, or it is back and knows the unique ID).
			g.log.Warn("stage run lost with its job server; submitted again", "run", rr.run.Key(), "server", server)
			if !sleepCtx(ctx, wait) {
				return
			}
		}
	}
}

// started notes the worker that took rr, and cancels it there at once
// when it was cancelled before it started. It runs on the client's
// reader: it must not wait for the job server.
func (g *Gearman) started(ctx context.Context, rr *remoteRun, worker string) {
	g.mu.Lock()
	rr.worker = worker
	canceled := rr.canceled
	g.mu.Unlock()
	g.log.Info("stage run started", "run", rr.run.Key(), "worker", worker)
	if canceled {
		// Not on the client's reader, which calls this: the submit
		// waits for it.
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			if err := g.sendCancel(ctx, rr.run.Key(), worker); err != nil {
				g.log.Warn("stage run not cancelled", "run", rr.run.Key(), "err", err)
			}
		}()
	}
}

// finish reports rr's outcome unless it was reported; it tells whether
// it reported.
func (g *Gearman) finish(ctx context.Context, rr *remoteRun, res Result, why string, canceled bool) bool {
	g.mu.Lock()
	if rr.done {
		g.mu.Unlock()
		return false
	}
	rr.done = true
	canceled = canceled || rr.canceled
	g.mu.Unlock()
	g.report(ctx, Outcome{Run: rr.run, Result: res, Err: why, Started: rr.started, Ended: time.Now(), Canceled: canceled})
	return true
}

// Fail ends the run with key as failed, for why (a worker's report): its
// outcome is reported now, and what the worker says later is not. It
// tells whether the run was under way.
func (g *Gearman) Fail(ctx context.Context, key, why string) bool {
	g.mu.Lock()
	rr, ok := g.runs[key]
	g.mu.Unlock()
	if !ok {
		return false
	}
	return g.finish(ctx, rr, Result{Outcome: Failed}, why, false)
}

// Cancel stops the run with key: its worker is told (now, or when it
// starts it) and kills it; the run is reported cancelled when the worker
// says it ended.
func (g *Gearman) Cancel(ctx context.Context, key string) error {
	g.mu.Lock()
	rr, ok := g.runs[key]
	if !ok || rr.done {
		g.mu.Unlock()
		return nil
	}
	rr.canceled = true
	worker := rr.worker
	g.mu.Unlock()
	if worker != "" {
		return g.sendCancel(ctx, key, worker)
	}
	return nil
}

func (g *Gearman) sendCancel(ctx context.Context, key, worker string) error {
	_, _, err := g.client.Submit(ctx, gearman.Job{Function: cancelPrefix + worker, Unique: "cancel:" + key,
		Data: []byte(key), Priority: gearman.High, Background: true}, nil)
	if err != nil {
		return fmt.Errorf("cancel %s on %s: %w", key, worker, err)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// GearmanWorker does stage runs that a Gearman dispatcher submits, with
// the stage functions it is handed (the same as the in-process pool's),
// at most capacity at once.
type GearmanWorker struct {
	// Heartbeat is how often a running stage's worker sends a status;
	// 10 s by default, well inside the dispatcher's StatusTimeout.
	Heartbeat time.Duration

	id      string
	work    *gearman.Worker
	control *gearman.Worker
	log     *slog.Logger

	mu      sync.Mutex
	running map[string]context.CancelFunc
}

// NewGearmanWorker returns a worker called id of stages through the job
// servers at addrs. zuulJobs maps Zuul v2 job names to stages: each is
// registered as build:<job> as well, taking Zuul v2's parameters and
// answering with its result fields, so that a Zuul v2 (or any
// Jenkins-style client) can hand the worker jobs.
func NewGearmanWorker(addrs []string, id string, capacity int, stages map[string]StageFunc, zuulJobs map[string]string, log *slog.Logger) *GearmanWorker {
	w := &GearmanWorker{Heartbeat: 10 * time.Second, id: id, log: log, running: map[string]context.CancelFunc{}}
	funcs := map[string]gearman.Handler{}
	for name, f := range stages {
		funcs[functionPrefix+name] = w.handler(f)
	}
	for job, stage := range zuulJobs {
		if f, ok := stages[stage]; ok {
			funcs["build:"+job] = w.zuulHandler(stage, f)
		}
	}
	w.work = gearman.NewWorker(addrs, id, capacity, funcs, log)
	w.control = gearman.NewWorker(addrs, id+"/control", 1, map[string]gearman.Handler{cancelPrefix + id: w.cancel}, log)
	return w
}

// Run works until ctx ends; runs under way then are abandoned to the job
// server, which hands them to another worker.
func (w *GearmanWorker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { w.control.Run(ctx) })
	err := w.work.Run(ctx)
	wg.Wait()
	return err
}

func (w *GearmanWorker) handler(f StageFunc) gearman.Handler {
	return func(ctx context.Context, a *gearman.Assignment) ([]byte, error) {
		var r Run
		if err := json.Unmarshal(a.Data, &r); err != nil {
			return nil, &gearman.FailError{Reason: "the run is not JSON: " + err.Error()}
		}
		if r.Key() != a.Unique {
			return nil, &gearman.FailError{Reason: fmt.Sprintf("run %s under unique ID %q", r.Key(), a.Unique)}
		}
		parent := ctx
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		w.mu.Lock()
		w.running[r.Key()] = cancel
		w.mu.Unlock()
		defer func() {
			w.mu.Lock()
			delete(w.running, r.Key())
			w.mu.Unlock()
		}()
		if err := a.SendData([]byte(startedPrefix + w.id)); err != nil {
			return nil, err
		}
		w.log.Info("stage run started", "run", r.Key())
		// A status now and then tells the dispatcher the run is alive
		// (Gearman.StatusTimeout).
		beat := time.NewTicker(w.Heartbeat)
		stopBeat, beatDone := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(beatDone)
			start := time.Now()
			for {
				select {
				case <-beat.C:
					// WORK_STATUS: seconds so far, of an unknown total.
					if a.SendStatus(uint64(time.Since(start).Seconds()), 0) != nil {
						return
					}
				case <-stopBeat:
					return
				}
			}
		}()
		res, err := callStage(ctx, f, r)
		beat.Stop()
		close(stopBeat)
		<-beatDone
		wr := workResult{Outcome: res.Outcome, LogURL: res.LogURL, Worker: w.id}
		switch {
		case ctx.Err() != nil && parent.Err() == nil:
			// Cancelled by the dispatcher, not by a lost connection.
			wr = workResult{Outcome: Error, Error: "cancelled", Canceled: true, Worker: w.id}
		case ctx.Err() != nil:
			return nil, ctx.Err() // the job server will give it to another worker
		case err != nil:
			wr = workResult{Outcome: Error, Error: err.Error(), Worker: w.id}
		}
		w.log.Info("stage run ended", "run", r.Key(), "outcome", wr.Outcome, "canceled", wr.Canceled)
		return json.Marshal(wr)
	}
}

// callStage runs f, a panic being its error.
func callStage(ctx context.Context, f StageFunc, r Run) (res Result, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("stage %s panicked: %v", r.Stage, v)
		}
	}()
	return f(ctx, r)
}

// cancel is the worker's sluice:cancel:<id> function: it cancels the run
// whose key the job names.
func (w *GearmanWorker) cancel(_ context.Context, a *gearman.Assignment) ([]byte, error) {
	key := string(a.Data)
	w.mu.Lock()
	cancel, ok := w.running[key]
	w.mu.Unlock()
	if ok {
		w.log.Info("stage run cancelled", "run", key)
		cancel()
	}
	return nil, nil
}

// zuulResult is what Zuul v2 reads of a build: its WORK_DATA and
// WORK_COMPLETE bodies.
type zuulResult struct {
	Name   string `json:"name"`
	Number int64  `json:"number"`
	URL    string `json:"url"`
	Result string `json:"result,omitempty"` // SUCCESS or FAILURE
}

// zuulHandler runs stage for a Zuul v2 build:<job> job: its argument is
// the job's parameters (ZUUL_UUID, ZUUL_PROJECT, ZUUL_REF, ...).
func (w *GearmanWorker) zuulHandler(stage string, f StageFunc) gearman.Handler {
	var builds atomic.Int64
	return func(ctx context.Context, a *gearman.Assignment) ([]byte, error) {
		var params map[string]string
		if err := json.Unmarshal(a.Data, &params); err != nil {
			return nil, &gearman.FailError{Reason: "the parameters are not a JSON object of strings: " + err.Error()}
		}
		r := Run{Pipeline: params["ZUUL_PIPELINE"], Buildset: params["ZUUL_UUID"], Stage: stage, Attempt: 1,
			Project: params["ZUUL_PROJECT"], Params: params}
		n := builds.Add(1)
		start, err := json.Marshal(zuulResult{Name: a.Function, Number: n})
		if err != nil {
			return nil, err
		}
		if err := a.SendData(start); err != nil {
			return nil, err
		}
		res, err := callStage(ctx, f, r)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		zr := zuulResult{Name: a.Function, Number: n, URL: res.LogURL, Result: "SUCCESS"}
		if err != nil || res.Outcome != Passed {
			zr.Result = "FAILURE"
		}
		if err != nil {
			w.log.Warn("zuul build not run", "job", a.Function, "err", err)
		}
		return json.Marshal(zr)
	}
}
