package gearman_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/jobs/gearman"
	"github.com/sluice-ci/sluice/jobs/gearman/gearmantest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// run starts c (a Client or Worker) until the test ends.
func run(t *testing.T, r interface{ Run(context.Context) error }) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// collect gathers a foreground job's events until its final one.
type collect struct {
	mu     sync.Mutex
	events []gearman.Event
	done   chan struct{}
}

func newCollect() *collect { return &collect{done: make(chan struct{})} }

func (c *collect) on(e gearman.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, e)
	if e.Final() {
		close(c.done)
	}
}

func (c *collect) wait(t *testing.T) []gearman.Event {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the job never ended")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

// TestClientWorker: through a real gearmand, a worker's data, status and
// result reach the client in order; a FailError is WORK_FAIL, another
// error WORK_EXCEPTION (the client asked for exceptions); the admin
// commands see the worker and its functions.
func TestClientWorker(t *testing.T) {
	t.Parallel()
	srv := gearmantest.New(t)
	w := gearman.NewWorker([]string{srv.Addr}, "worker-1", 2, map[string]gearman.Handler{
		"reverse": func(ctx context.Context, a *gearman.Assignment) ([]byte, error) {
			if err := a.SendData([]byte("half")); err != nil {
				return nil, err
			}
			if err := a.SendStatus(1, 2); err != nil {
				return nil, err
			}
			b := slices.Clone(a.Data)
			slices.Reverse(b)
			return b, nil
		},
		"fail": func(ctx context.Context, a *gearman.Assignment) ([]byte, error) {
			return nil, &gearman.FailError{Reason: "no"}
		},
		"throw": func(ctx context.Context, a *gearman.Assignment) ([]byte, error) {
			return nil, errors.New("it broke")
		},
	}, quiet())
	run(t, w)
	c := gearman.NewClient([]string{srv.Addr}, "client-1", quiet())
	run(t, c)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	col := newCollect()
	handle, server, err := c.Submit(ctx, gearman.Job{Function: "reverse", Unique: "r1", Data: []byte("a\x00bc"), Priority: gearman.High}, col.on)
	if err != nil || handle == "" || server != srv.Addr {
		t.Fatalf("submit: %q %q %v", handle, server, err)
	}
	ev := col.wait(t)
	var types []gearman.Type
	for _, e := range ev {
		types = append(types, e.Type)
		if e.Handle != handle {
			t.Errorf("event of handle %q, want %q", e.Handle, handle)
		}
	}
	if !slices.Equal(types, []gearman.Type{gearman.WorkData, gearman.WorkStatus, gearman.WorkComplete}) ||
		string(ev[0].Data) != "half" || ev[1].Numerator != 1 || ev[1].Denominator != 2 || !bytes.Equal(ev[2].Data, []byte("cb\x00a")) {
		t.Fatalf("events %+v", ev)
	}
	for fn, want := range map[string]gearman.Type{"fail": gearman.WorkFail, "throw": gearman.WorkException} {
		col := newCollect()
		if _, _, err := c.Submit(ctx, gearman.Job{Function: fn, Unique: fn}, col.on); err != nil {
			t.Fatal(err)
		}
		ev := col.wait(t)
		if last := ev[len(ev)-1]; last.Type != want || (want == gearman.WorkException && string(last.Data) != "it broke") {
			t.Errorf("%s: events %+v", fn, ev)
		}
	}
	ws, err := gearman.AdminWorkers(ctx, srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, wi := range ws {
		if wi.ClientID == "worker-1" {
			found++
			if !slices.Contains(wi.Functions, "reverse") || !slices.Contains(wi.Functions, "throw") {
				t.Errorf("worker functions %v", wi.Functions)
			}
		}
	}
	if found != 2 { // capacity 2: a connection per slot
		t.Errorf("workers: %d connections of worker-1: %+v", found, ws)
	}
	st, err := gearman.AdminStatus(ctx, srv.Addr)
	if err != nil || !slices.ContainsFunc(st, func(s gearman.FunctionStatus) bool { return s.Function == "reverse" && s.Workers == 2 }) {
		t.Errorf("status %+v %v", st, err)
	}
}

// A job submitted again with the same unique ID while the first runs is
// the same job: one run, both clients told. GET_STATUS sees it running.
func TestUniqueCoalesces(t *testing.T) {
	t.Parallel()
	srv := gearmantest.New(t)
	var runs atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	w := gearman.NewWorker([]string{srv.Addr}, "w", 1, map[string]gearman.Handler{
		"slow": func(ctx context.Context, a *gearman.Assignment) ([]byte, error) {
			runs.Add(1)
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return []byte("done"), nil
		},
	}, quiet())
	run(t, w)
	c := gearman.NewClient([]string{srv.Addr}, "c", quiet())
	run(t, c)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	a, b := newCollect(), newCollect()
	h1, server, err := c.Submit(ctx, gearman.Job{Function: "slow", Unique: "bs/stage/1"}, a.on)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	h2, _, err := c.Submit(ctx, gearman.Job{Function: "slow", Unique: "bs/stage/1"}, b.on)
	if err != nil {
		t.Fatal(err)
	}
	if h1 != h2 {
		t.Errorf("handles %q and %q for one unique ID", h1, h2)
	}
	st, err := c.Status(ctx, server, h1)
	if err != nil || !st.Known || !st.Running {
		t.Errorf("status of a running job: %+v %v", st, err)
	}
	close(release)
	for _, col := range []*collect{a, b} {
		if ev := col.wait(t); ev[len(ev)-1].Type != gearman.WorkComplete {
			t.Errorf("events %+v", ev)
		}
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("%d runs of one unique ID", n)
	}
	if st, err := c.Status(ctx, server, h1); err != nil || st.Known {
		t.Errorf("status of an ended job: %+v %v", st, err)
	}
}

// Two job servers: jobs go to both in turn, and a worker on both does
// them all. gearmand restarted: the client reports its jobs there Lost,
// both reconnect, and the next job runs.
func TestServersAndRestart(t *testing.T) {
	t.Parallel()
	s1, s2 := gearmantest.New(t), gearmantest.New(t)
	hold := make(chan struct{})
	w := gearman.NewWorker([]string{s1.Addr, s2.Addr}, "w", 2, map[string]gearman.Handler{
		"echo": func(ctx context.Context, a *gearman.Assignment) ([]byte, error) {
			if string(a.Data) == "hold" {
				select {
				case <-hold:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return a.Data, nil
		},
	}, quiet())
	run(t, w)
	c := gearman.NewClient([]string{s1.Addr, s2.Addr}, "c", quiet())
	run(t, c)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for c.Connected() < 2 {
		select {
		case <-ctx.Done():
			t.Fatal("the client never connected to both servers")
		case <-time.After(10 * time.Millisecond):
		}
	}
	servers := map[string]int{}
	for i := range 6 {
		col := newCollect()
		_, server, err := c.Submit(ctx, gearman.Job{Function: "echo", Unique: fmt.Sprint("u", i), Data: []byte(fmt.Sprint(i))}, col.on)
		if err != nil {
			t.Fatal(err)
		}
		servers[server]++
		if ev := col.wait(t); ev[len(ev)-1].Type != gearman.WorkComplete || string(ev[len(ev)-1].Data) != fmt.Sprint(i) {
			t.Fatalf("job %d: %+v", i, ev)
		}
	}
	if servers[s1.Addr] != 3 || servers[s2.Addr] != 3 {
		t.Errorf("jobs per server %v, want 3 each", servers)
	}

	// A job held by the worker on the server that restarts is lost.
	held := newCollect()
	_, heldOn, err := c.Submit(ctx, gearman.Job{Function: "echo", Unique: "held", Data: []byte("hold")}, held.on)
	if err != nil {
		t.Fatal(err)
	}
	restarted := s1
	if heldOn == s2.Addr {
		restarted = s2
	}
	if err := restarted.Restart(); err != nil {
		t.Fatal(err)
	}
	if ev := held.wait(t); ev[len(ev)-1].Type != gearman.Lost {
		t.Fatalf("events of a job on a restarted server: %+v", ev)
	}
	close(hold)
	// Both sides reconnect to the restarted server; jobs run there again.
	deadline := time.Now().Add(30 * time.Second)
	for {
		col := newCollect()
		_, server, err := c.Submit(ctx, gearman.Job{Function: "echo", Unique: "after", Data: []byte("after")}, col.on)
		if err != nil {
			t.Fatal(err)
		}
		if ev := col.wait(t); ev[len(ev)-1].Type != gearman.WorkComplete {
			t.Fatalf("after the restart: %+v", ev)
		}
		if server == restarted.Addr {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no job ran on the restarted server")
		}
	}
}
