package jobs_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/internal/proc"
	"github.com/sluice-ci/sluice/jobs"
	"github.com/sluice-ci/sluice/jobs/gearman"
	"github.com/sluice-ci/sluice/jobs/gearman/gearmantest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// outcomes collects reported outcomes by run key.
type outcomes struct {
	mu   sync.Mutex
	got  map[string][]jobs.Outcome
	wake chan struct{}
}

func newOutcomes() *outcomes {
	return &outcomes{got: map[string][]jobs.Outcome{}, wake: make(chan struct{}, 1000)}
}

func (o *outcomes) report(_ context.Context, out jobs.Outcome) {
	o.mu.Lock()
	o.got[out.Run.Key()] = append(o.got[out.Run.Key()], out)
	o.mu.Unlock()
	o.wake <- struct{}{}
}

// wait waits until n runs have an outcome.
func (o *outcomes) wait(t *testing.T, n int) map[string][]jobs.Outcome {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		o.mu.Lock()
		if len(o.got) >= n {
			got := make(map[string][]jobs.Outcome, len(o.got))
			for k, v := range o.got {
				got[k] = append([]jobs.Outcome(nil), v...)
			}
			o.mu.Unlock()
			return got
		}
		o.mu.Unlock()
		select {
		case <-o.wake:
		case <-deadline:
			t.Fatalf("%d outcomes, want %d", len(o.got), n)
		}
	}
}

// start runs r until the test ends (or stop is called).
func start(t *testing.T, r interface{ Run(context.Context) error }) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func stageRun(i int, stage string) jobs.Run {
	return jobs.Run{Pipeline: "check", Buildset: fmt.Sprintf("bs%02d", i), Stage: stage, Attempt: 1, Project: "p",
		Params: map[string]string{"ZUUL_UUID": fmt.Sprintf("bs%02d", i)}}
}

// Runs spread over two worker processes' worth of workers, each
// reported once with the stage function's outcome and log URL.
func TestGearmanRuns(t *testing.T) {
	t.Parallel()
	srv := gearmantest.New(t)
	var mu sync.Mutex
	by := map[string]int{}
	stage := func(name string) jobs.StageFunc {
		return func(ctx context.Context, r jobs.Run) (jobs.Result, error) {
			mu.Lock()
			by[name]++
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			if r.Buildset == "bs03" {
				return jobs.Result{Outcome: jobs.Failed, LogURL: "http://logs/bs03"}, nil
			}
			if r.Buildset == "bs04" {
				return jobs.Result{}, fmt.Errorf("no disk")
			}
			return jobs.Result{Outcome: jobs.Passed, LogURL: "http://logs/" + r.Buildset}, nil
		}
	}
	start(t, jobs.NewGearmanWorker([]string{srv.Addr}, "w1", 2, map[string]jobs.StageFunc{"build.deb": stage("w1")}, nil, quiet()))
	start(t, jobs.NewGearmanWorker([]string{srv.Addr}, "w2", 2, map[string]jobs.StageFunc{"build.deb": stage("w2")}, nil, quiet()))
	out := newOutcomes()
	g := jobs.NewGearman([]string{srv.Addr}, "sluice", out.report, quiet())
	start(t, g)
	for i := range 20 {
		if err := g.Dispatch(t.Context(), stageRun(i, "build.deb")); err != nil {
			t.Fatal(err)
		}
		// Delivered twice: done once.
		if err := g.Dispatch(t.Context(), stageRun(i, "build.deb")); err != nil {
			t.Fatal(err)
		}
	}
	got := out.wait(t, 20)
	time.Sleep(200 * time.Millisecond) // a second report would come now
	out.mu.Lock()
	defer out.mu.Unlock()
	for k, os := range out.got {
		if len(os) != 1 {
			t.Errorf("%s reported %d times", k, len(os))
		}
	}
	if o := got["bs03/build.deb/1"][0]; o.Result.Outcome != jobs.Failed || o.Result.LogURL != "http://logs/bs03" {
		t.Errorf("bs03: %+v", o)
	}
	if o := got["bs04/build.deb/1"][0]; o.Result.Outcome != jobs.Error || o.Err != "no disk" {
		t.Errorf("bs04: %+v", o)
	}
	if o := got["bs05/build.deb/1"][0]; o.Result.Outcome != jobs.Passed || o.Canceled {
		t.Errorf("bs05: %+v", o)
	}
	mu.Lock()
	defer mu.Unlock()
	if by["w1"] == 0 || by["w2"] == 0 || by["w1"]+by["w2"] != 20 {
		t.Errorf("runs per worker %v", by)
	}
}

// A worker that dies mid-run: gearmand gives the run to the other
// worker, and it is reported once. gearmand restarted mid-run: the run is
// submitted again and completes.
func TestGearmanFaults(t *testing.T) {
	t.Parallel()
	srv := gearmantest.New(t)
	began := make(chan string, 10)
	blocking := func(name string) jobs.StageFunc {
		return func(ctx context.Context, r jobs.Run) (jobs.Result, error) {
			began <- name
			<-ctx.Done() // until its worker dies
			return jobs.Result{}, ctx.Err()
		}
	}
	quick := func(ctx context.Context, r jobs.Run) (jobs.Result, error) {
		began <- "quick"
		return jobs.Result{Outcome: jobs.Passed}, nil
	}
	stopDying := start(t, jobs.NewGearmanWorker([]string{srv.Addr}, "dying", 1, map[string]jobs.StageFunc{"install": blocking("dying")}, nil, quiet()))
	out := newOutcomes()
	g := jobs.NewGearman([]string{srv.Addr}, "sluice", out.report, quiet())
	start(t, g)
	if err := g.Dispatch(t.Context(), stageRun(1, "install")); err != nil {
		t.Fatal(err)
	}
	if w := <-began; w != "dying" {
		t.Fatalf("began on %s", w)
	}
	start(t, jobs.NewGearmanWorker([]string{srv.Addr}, "other", 1, map[string]jobs.StageFunc{"install": quick}, nil, quiet()))
	stopDying()
	if w := <-began; w != "quick" {
		t.Fatalf("then began on %s", w)
	}
	if got := out.wait(t, 1)["bs01/install/1"]; len(got) != 1 || got[0].Result.Outcome != jobs.Passed {
		t.Fatalf("outcomes %+v", got)
	}

	// A run under way when gearmand restarts.
	hold := make(chan struct{})
	start(t, jobs.NewGearmanWorker([]string{srv.Addr}, "holder", 1, map[string]jobs.StageFunc{"systest": func(ctx context.Context, r jobs.Run) (jobs.Result, error) {
		began <- "holder"
		select {
		case <-hold:
			return jobs.Result{Outcome: jobs.Passed}, nil
		case <-ctx.Done():
			return jobs.Result{}, ctx.Err()
		}
	}}, nil, quiet()))
	if err := g.Dispatch(t.Context(), stageRun(2, "systest")); err != nil {
		t.Fatal(err)
	}
	<-began
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	<-began // submitted again to the new gearmand, taken again
	close(hold)
	if got := out.wait(t, 2)["bs02/systest/1"]; len(got) != 1 || got[0].Result.Outcome != jobs.Passed {
		t.Fatalf("outcomes after a restart %+v", got)
	}
}

// Cancel: the worker running the run kills it (its context ends) and the
// run is reported cancelled; a run cancelled before a worker took it is
// cancelled when one does.
func TestGearmanCancel(t *testing.T) {
	t.Parallel()
	srv := gearmantest.New(t)
	began := make(chan string, 10)
	stage := func(ctx context.Context, r jobs.Run) (jobs.Result, error) {
		began <- r.Buildset
		<-ctx.Done()
		return jobs.Result{}, ctx.Err()
	}
	out := newOutcomes()
	g := jobs.NewGearman([]string{srv.Addr}, "sluice", out.report, quiet())
	start(t, g)
	// Queued before any worker: cancelled as soon as one starts it.
	early := stageRun(7, "systest")
	if err := g.Dispatch(t.Context(), early); err != nil {
		t.Fatal(err)
	}
	if err := g.Cancel(t.Context(), early.Key()); err != nil {
		t.Fatal(err)
	}
	start(t, jobs.NewGearmanWorker([]string{srv.Addr}, "w", 2, map[string]jobs.StageFunc{"systest": stage}, nil, quiet()))
	if b := <-began; b != "bs07" {
		t.Fatalf("began %s", b)
	}
	r := stageRun(8, "systest")
	if err := g.Dispatch(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	if b := <-began; b != "bs08" {
		t.Fatalf("began %s", b)
	}
	if err := g.Cancel(t.Context(), r.Key()); err != nil {
		t.Fatal(err)
	}
	got := out.wait(t, 2)
	for _, k := range []string{early.Key(), r.Key()} {
		if o := got[k]; len(o) != 1 || !o[0].Canceled || o[0].Result.Outcome != jobs.Error {
			t.Errorf("%s: %+v", k, o)
		}
	}
	// A worker's failure report fails a run under way, once.
	f := stageRun(9, "systest")
	if err := g.Dispatch(t.Context(), f); err != nil {
		t.Fatal(err)
	}
	<-began
	if !g.Fail(t.Context(), f.Key(), "disk full") || g.Fail(t.Context(), f.Key(), "again") {
		t.Error("Fail: not once")
	}
	if o := out.wait(t, 3)[f.Key()]; len(o) != 1 || o[0].Result.Outcome != jobs.Failed || o[0].Err != "disk full" {
		t.Errorf("failed run: %+v", o)
	}
	if g.Fail(t.Context(), "nothing/x/1", "") {
		t.Error("Fail of an unknown run")
	}
}

// A Zuul v2-style client, Debian's gearman command-line tool, hands the
// worker a build:<job> job with Zuul's parameters; the answer has Zuul
// v2's result fields.
func TestZuulV2Job(t *testing.T) {
	t.Parallel()
	bin := pkgtest.NeedTool(t, "gearman")
	srv := gearmantest.New(t)
	var got jobs.Run
	var mu sync.Mutex
	stage := func(ctx context.Context, r jobs.Run) (jobs.Result, error) {
		mu.Lock()
		got = r
		mu.Unlock()
		if r.Params["ZUUL_CHANGE"] == "2" {
			return jobs.Result{Outcome: jobs.Failed, LogURL: "http://logs/2"}, nil
		}
		return jobs.Result{Outcome: jobs.Passed, LogURL: "http://logs/1"}, nil
	}
	start(t, jobs.NewGearmanWorker([]string{srv.Addr}, "w", 1, map[string]jobs.StageFunc{"build.deb": stage},
		map[string]string{"hello-build-deb": "build.deb"}, quiet()))
	host, port, _ := strings.Cut(srv.Addr, ":")
	for change, want := range map[string]string{"1": `"result":"SUCCESS"`, "2": `"result":"FAILURE"`} {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		out, err := proc.Command(ctx, bin, "-h", host, "-p", port, "-f", "build:hello-build-deb",
			`{"ZUUL_UUID":"0123456789abcdef0123456789abcdef","ZUUL_PROJECT":"hello","ZUUL_PIPELINE":"check","ZUUL_CHANGE":"`+change+`"}`).CombinedOutput()
		cancel()
		if err != nil || !strings.Contains(string(out), want) || !strings.Contains(string(out), `"url":"http://logs/`+change+`"`) ||
			!strings.Contains(string(out), `"number":`) {
			t.Fatalf("gearman build:hello-build-deb (change %s): %v\n%s", change, err, out)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if got.Stage != "build.deb" || got.Buildset != "0123456789abcdef0123456789abcdef" || got.Project != "hello" || got.Pipeline != "check" {
		t.Errorf("the stage ran as %+v", got)
	}
}

// A worker that hangs (took the run, says nothing more) is given up after
// the dispatcher's StatusTimeout, as an ERROR the pipeline retries; a slow
// worker that sends its heartbeat is not.
func TestGearmanStatusTimeout(t *testing.T) {
	t.Parallel()
	srv := gearmantest.New(t)
	out := newOutcomes()
	g := jobs.NewGearman([]string{srv.Addr}, "sluice", out.report, quiet())
	g.StatusTimeout = 700 * time.Millisecond
	start(t, g)
	// The hung one speaks the protocol itself: "started on", then
	// nothing, as a stopped process would.
	release := make(chan struct{})
	defer close(release)
	start(t, gearman.NewWorker([]string{srv.Addr}, "hung", 1, map[string]gearman.Handler{
		"sluice:install": func(ctx context.Context, a *gearman.Assignment) ([]byte, error) {
			a.SendData([]byte("started on hung"))
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, ctx.Err()
		}}, quiet()))
	slow := jobs.NewGearmanWorker([]string{srv.Addr}, "slow", 1, map[string]jobs.StageFunc{"systest": func(ctx context.Context, r jobs.Run) (jobs.Result, error) {
		time.Sleep(2 * time.Second)
		return jobs.Result{Outcome: jobs.Passed}, nil
	}}, nil, quiet())
	slow.Heartbeat = 200 * time.Millisecond
	start(t, slow)
	hung, slowRun := stageRun(1, "install"), stageRun(2, "systest")
	for _, r := range []jobs.Run{hung, slowRun} {
		if err := g.Dispatch(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	got := out.wait(t, 2)
	if o := got[hung.Key()]; len(o) != 1 || o[0].Result.Outcome != jobs.Error || !strings.Contains(o[0].Err, "no word from worker hung") {
		t.Errorf("hung run: %+v", o)
	}
	if o := got[slowRun.Key()]; len(o) != 1 || o[0].Result.Outcome != jobs.Passed {
		t.Errorf("slow run: %+v", o)
	}
}
