package gearman

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// Assignment is a job a worker was given (JOB_ASSIGN_UNIQ).
type Assignment struct {
	Handle   string
	Function string
	Unique   string
	Data     []byte
	c        *conn
}

// SendData sends WORK_DATA: a part of the result, to the job's clients.
func (a *Assignment) SendData(b []byte) error {
	return a.c.send(req(WorkData, []byte(a.Handle), b))
}

// SendWarning sends WORK_WARNING.
func (a *Assignment) SendWarning(b []byte) error {
	return a.c.send(req(WorkWarning, []byte(a.Handle), b))
}

// SendStatus sends WORK_STATUS: num of den done.
func (a *Assignment) SendStatus(num, den uint64) error {
	return a.c.send(req(WorkStatus, []byte(a.Handle), strconv.AppendUint(nil, num, 10), strconv.AppendUint(nil, den, 10)))
}

// Handler does a job: a result is sent as WORK_COMPLETE; an error as
// WORK_FAIL when it is a *FailError, else as WORK_EXCEPTION with the
// error's text. ctx ends when the worker stops or its connection to the
// job's server is lost (the server then gives the job to another worker).
type Handler func(ctx context.Context, a *Assignment) ([]byte, error)

// FailError makes a Handler's job end with WORK_FAIL.
type FailError struct{ Reason string }

func (e *FailError) Error() string { return "job failed: " + e.Reason }

// Worker takes jobs for its functions from a set of job servers and does
// at most Capacity at once: it keeps Capacity connections to each server
// and a connection grabs a job only while it holds one of the Capacity
// slots, so slots go to whichever server has work.
type Worker struct {
	addrs    []string
	id       string
	funcs    map[string]Handler
	slots    chan struct{}
	capacity int
	backoff  Backoff
	log      *slog.Logger
	// Wake bounds a sleep without NOOP: a worker grabs again after it in
	// case a wake-up was lost.
	wake time.Duration
}

// NewWorker returns a worker of funcs, called id, with capacity slots.
func NewWorker(addrs []string, id string, capacity int, funcs map[string]Handler, log *slog.Logger) *Worker {
	if capacity < 1 {
		capacity = 1
	}
	return &Worker{addrs: addrs, id: id, funcs: funcs, slots: make(chan struct{}, capacity), capacity: capacity,
		backoff: DefaultBackoff, log: log, wake: 10 * time.Second}
}

// Run works until ctx ends. Jobs running then are abandoned with their
// connection, so that the server hands them to another worker.
func (w *Worker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, a := range w.addrs {
		for range w.capacity {
			wg.Go(func() { keepConnected(ctx, a, w.backoff, w.log, func(c *conn) error { return w.serve(ctx, c) }) })
		}
	}
	wg.Wait()
	return nil
}

type readResult struct {
	p   Packet
	err error
}

func (w *Worker) serve(ctx context.Context, c *conn) error {
	in := make(chan readResult, 16)
	go func() {
		for {
			p, err := c.read()
			in <- readResult{p, err}
			if err != nil {
				return
			}
		}
	}()
	hello := []Packet{req(SetClientID, []byte(w.id))}
	for f := range w.funcs {
		hello = append(hello, req(CanDo, []byte(f)))
	}
	if err := c.send(hello...); err != nil {
		return err
	}
	// next waits for a packet other than a stray NOOP when noopOK is false.
	next := func(noopOK bool, timeout <-chan time.Time) (Packet, error) {
		for {
			select {
			case r := <-in:
				if r.err != nil {
					return r.p, r.err
				}
				if r.p.Type == Noop && !noopOK {
					continue
				}
				return r.p, nil
			case <-timeout:
				return Packet{Type: Noop}, nil
			case <-ctx.Done():
				return Packet{}, ctx.Err()
			}
		}
	}
	for {
		select {
		case w.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := c.send(req(GrabJobUniq)); err != nil {
			<-w.slots
			return err
		}
		p, err := next(false, nil)
		if err != nil {
			<-w.slots
			return err
		}
		switch p.Type {
		case NoJob:
			<-w.slots
			if err := c.send(req(PreSleep)); err != nil {
				return err
			}
			t := time.NewTimer(w.wake)
			_, err := next(true, t.C)
			t.Stop()
			if err != nil {
				return err
			}
		case JobAssignUniq:
			err := w.do(ctx, c, in, p)
			<-w.slots
			if err != nil {
				return err
			}
		default:
			<-w.slots
			return fmt.Errorf("gearman %s: %w: %s in answer to GRAB_JOB_UNIQ", c.addr, ErrPacket, p.Type)
		}
	}
}

// do runs an assigned job while watching the connection: a lost
// connection or a stopping worker cancels the job and sends nothing.
func (w *Worker) do(ctx context.Context, c *conn, in <-chan readResult, p Packet) error {
	a := &Assignment{Handle: string(p.Args[0]), Function: string(p.Args[1]), Unique: string(p.Args[2]), Data: p.Args[3], c: c}
	h := w.funcs[a.Function]
	if h == nil {
		return c.send(req(WorkFail, []byte(a.Handle)))
	}
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := call(jctx, h, a)
		done <- result{b, err}
	}()
	var lost error
	for {
		select {
		case r := <-in:
			if r.err == nil {
				continue // a stray NOOP: the server knows this worker is busy
			}
			lost = r.err
			cancel()
			<-done
			return lost
		case r := <-done:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if r.err == nil {
				return c.send(req(WorkComplete, []byte(a.Handle), r.b))
			}
			if _, ok := errors.AsType[*FailError](r.err); ok {
				return c.send(req(WorkFail, []byte(a.Handle)))
			}
			return c.send(req(WorkException, []byte(a.Handle), []byte(r.err.Error())))
		}
	}
}

func call(ctx context.Context, h Handler, a *Assignment) (b []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("job %s %s panicked: %v", a.Function, a.Unique, v)
		}
	}()
	return h(ctx, a)
}
