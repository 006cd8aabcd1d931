package gearman

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
)

// Priority is a job's place in the server's queue.
type Priority int

// Priorities, highest first.
const (
	High Priority = iota
	Normal
	Low
)

// Lost is not a packet type: it is the Event a client gives a job whose
// connection to its server ended before the job did.
const Lost Type = 0

// Event is what the server says of a submitted job: a WorkData,
// WorkWarning, WorkStatus (Numerator, Denominator), WorkComplete,
// WorkFail, WorkException, or Lost.
type Event struct {
	Type                   Type
	Handle                 string
	Data                   []byte
	Numerator, Denominator uint64
}

// Final says whether the event ends the job.
func (e Event) Final() bool {
	switch e.Type {
	case WorkComplete, WorkFail, WorkException, Lost:
		return true
	}
	return false
}

// Job is a job to submit.
type Job struct {
	Function   string
	Unique     string // jobs with the same unique ID are coalesced by the server
	Data       []byte
	Priority   Priority
	Background bool // no events come back; Submit returns after JOB_CREATED
}

func (j Job) packetType() Type {
	switch {
	case j.Priority == High && j.Background:
		return SubmitJobHighBG
	case j.Priority == High:
		return SubmitJobHigh
	case j.Priority == Low && j.Background:
		return SubmitJobLowBG
	case j.Priority == Low:
		return SubmitJobLow
	case j.Background:
		return SubmitJobBG
	}
	return SubmitJob
}

// JobStatus is the server's STATUS_RES for a job handle.
type JobStatus struct {
	Known, Running         bool
	Numerator, Denominator uint64
}

// ErrServer is wrapped by an ERROR packet's error.
var ErrServer = errors.New("gearman: server error")

// ErrNoServer is returned when no job server is connected when the
// caller's context ends.
var ErrNoServer = errors.New("gearman: no job server connected")

// Client submits jobs to a set of job servers, keeping one connection to
// each, reconnecting with back-off; a job goes to a connected server, in
// turn. Each connection sets the client ID and the exceptions option.
type Client struct {
	addrs   []string
	id      string
	backoff Backoff
	log     *slog.Logger

	mu   sync.Mutex
	live []*clientConn
	next int
	up   chan struct{} // closed when a connection comes up
}

// NewClient returns a client of the servers at addrs (host:port) that
// calls itself id; Run connects it.
func NewClient(addrs []string, id string, log *slog.Logger) *Client {
	return &Client{addrs: addrs, id: id, backoff: DefaultBackoff, log: log, up: make(chan struct{})}
}

// Run keeps the connections until ctx ends.
func (c *Client) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, a := range c.addrs {
		wg.Go(func() { keepConnected(ctx, a, c.backoff, c.log, c.serve) })
	}
	wg.Wait()
	return nil
}

type waiter struct {
	want   Type
	job    func(Event) // for JOB_CREATED of a foreground job
	result chan Packet // gets the response (or an ERROR packet)
}

type clientConn struct {
	*conn
	mu      sync.Mutex
	closed  bool
	pending []waiter
	// handles are the jobs' event receivers: a job submitted again with
	// its unique ID gets the same handle, and both submitters its events.
	handles map[string][]func(Event)
}

func (c *Client) serve(nc *conn) error {
	cc := &clientConn{conn: nc, handles: map[string][]func(Event){}}
	errc := make(chan error, 1)
	go func() { errc <- cc.readLoop() }()
	err := func() error {
		if err := cc.send(req(SetClientID, []byte(c.id))); err != nil {
			return err
		}
		if _, err := cc.call(context.Background(), req(OptionReq, []byte("exceptions")), OptionRes, nil); err != nil {
			return err
		}
		return nil
	}()
	if err == nil {
		c.mu.Lock()
		c.live = append(c.live, cc)
		close(c.up)
		c.up = make(chan struct{})
		c.mu.Unlock()
		c.log.Info("gearman server connected", "server", nc.addr)
		err = <-errc
		c.mu.Lock()
		for i, x := range c.live {
			if x == cc {
				c.live = append(c.live[:i], c.live[i+1:]...)
				break
			}
		}
		c.mu.Unlock()
	}
	cc.close()
	cc.fail()
	return err
}

// readLoop dispatches responses until the connection ends.
func (cc *clientConn) readLoop() error {
	for {
		p, err := cc.read()
		if err != nil {
			cc.close()
			return err
		}
		switch p.Type {
		case JobCreated, StatusRes, OptionRes, EchoRes, Error:
			cc.mu.Lock()
			if len(cc.pending) == 0 {
				cc.mu.Unlock()
				if p.Type == Error {
					return fmt.Errorf("gearman %s: %w: %s %s", cc.addr, ErrServer, p.Args[0], p.Args[1])
				}
				return fmt.Errorf("gearman %s: %w: %s with no request waiting", cc.addr, ErrPacket, p.Type)
			}
			w := cc.pending[0]
			cc.pending = cc.pending[1:]
			if p.Type == JobCreated && w.job != nil {
				cc.handles[string(p.Args[0])] = append(cc.handles[string(p.Args[0])], w.job)
			}
			cc.mu.Unlock()
			w.result <- p
		case WorkData, WorkWarning, WorkStatus, WorkComplete, WorkFail, WorkException:
			e, err := event(p)
			if err != nil {
				return fmt.Errorf("gearman %s: %w", cc.addr, err)
			}
			cc.mu.Lock()
			fs := cc.handles[e.Handle]
			if e.Final() {
				delete(cc.handles, e.Handle)
			}
			cc.mu.Unlock()
			for _, f := range fs {
				f(e)
			}
		case Noop:
		default:
			return fmt.Errorf("gearman %s: %w: unexpected %s", cc.addr, ErrPacket, p.Type)
		}
	}
}

func event(p Packet) (Event, error) {
	e := Event{Type: p.Type, Handle: string(p.Args[0])}
	switch p.Type {
	case WorkStatus:
		var err1, err2 error
		e.Numerator, err1 = strconv.ParseUint(string(p.Args[1]), 10, 64)
		e.Denominator, err2 = strconv.ParseUint(string(p.Args[2]), 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return e, fmt.Errorf("%s %s: %w: %w", p.Type, e.Handle, ErrPacket, err)
		}
	case WorkFail:
	default:
		e.Data = p.Args[1]
	}
	return e, nil
}

// fail ends what waits on a closed connection: requests get no answer,
// jobs are Lost.
func (cc *clientConn) fail() {
	cc.mu.Lock()
	cc.closed = true
	pending, handles := cc.pending, cc.handles
	cc.pending, cc.handles = nil, map[string][]func(Event){}
	cc.mu.Unlock()
	for _, w := range pending {
		close(w.result)
	}
	for h, fs := range handles {
		for _, f := range fs {
			f(Event{Type: Lost, Handle: h})
		}
	}
}

// call sends p and waits for its response of type want.
func (cc *clientConn) call(ctx context.Context, p Packet, want Type, job func(Event)) (Packet, error) {
	w := waiter{want: want, job: job, result: make(chan Packet, 1)}
	cc.mu.Lock()
	if cc.closed {
		cc.mu.Unlock()
		return Packet{}, fmt.Errorf("gearman %s: %s: %w", cc.addr, p.Type, errClosed)
	}
	// Queue and send under the lock: responses come in request order.
	cc.pending = append(cc.pending, w)
	err := cc.send(p)
	cc.mu.Unlock()
	if err != nil {
		cc.close()
		return Packet{}, err
	}
	select {
	case r, ok := <-w.result:
		if !ok {
			return r, fmt.Errorf("gearman %s: %s: %w", cc.addr, p.Type, errClosed)
		}
		if r.Type == Error {
			return r, fmt.Errorf("gearman %s: %s: %w: %s %s", cc.addr, p.Type, ErrServer, r.Args[0], r.Args[1])
		}
		if r.Type != want {
			cc.close()
			return r, fmt.Errorf("gearman %s: %s: %w: answered %s", cc.addr, p.Type, ErrPacket, r.Type)
		}
		return r, nil
	case <-ctx.Done():
		// The answer will come to nobody; the connection stays in order.
		return Packet{}, ctx.Err()
	}
}

var errClosed = errors.New("connection closed")

// Submit sends j to a connected server, waiting for one until ctx ends,
// and returns the job handle and the server. Events of a foreground job
// go to on, from the connection's reader: on must not block. A
// connection lost before JOB_CREATED makes Submit try another one.
func (c *Client) Submit(ctx context.Context, j Job, on func(Event)) (handle, server string, err error) {
	if j.Background {
		on = nil
	} else if on == nil {
		on = func(Event) {}
	}
	p := req(j.packetType(), []byte(j.Function), []byte(j.Unique), j.Data)
	for {
		cc, err := c.pick(ctx)
		if err != nil {
			return "", "", fmt.Errorf("gearman: submit %s %s: %w", j.Function, j.Unique, err)
		}
		r, err := cc.call(ctx, p, JobCreated, on)
		if errors.Is(err, errClosed) {
			continue
		}
		if err != nil {
			return "", "", fmt.Errorf("gearman: submit %s %s: %w", j.Function, j.Unique, err)
		}
		return string(r.Args[0]), cc.addr, nil
	}
}

// pick returns a connected server's connection, in turn.
func (c *Client) pick(ctx context.Context) (*clientConn, error) {
	for {
		c.mu.Lock()
		if n := len(c.live); n > 0 {
			cc := c.live[c.next%n]
			c.next++
			c.mu.Unlock()
			return cc, nil
		}
		up := c.up
		c.mu.Unlock()
		select {
		case <-up:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrNoServer, ctx.Err())
		}
	}
}

// Status asks server (as Submit returned it) about handle.
func (c *Client) Status(ctx context.Context, server, handle string) (JobStatus, error) {
	c.mu.Lock()
	var cc *clientConn
	for _, x := range c.live {
		if x.addr == server {
			cc = x
		}
	}
	c.mu.Unlock()
	if cc == nil {
		return JobStatus{}, fmt.Errorf("gearman %s: status %s: %w", server, handle, errClosed)
	}
	r, err := cc.call(ctx, req(GetStatus, []byte(handle)), StatusRes, nil)
	if err != nil {
		return JobStatus{}, fmt.Errorf("gearman %s: status %s: %w", server, handle, err)
	}
	return parseStatusRes(r)
}

func parseStatusRes(r Packet) (JobStatus, error) {
	s := JobStatus{Known: string(r.Args[1]) == "1", Running: string(r.Args[2]) == "1"}
	var err1, err2 error
	s.Numerator, err1 = strconv.ParseUint(string(r.Args[3]), 10, 64)
	s.Denominator, err2 = strconv.ParseUint(string(r.Args[4]), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return s, fmt.Errorf("STATUS_RES %s: %w: %w", r.Args[0], ErrPacket, err)
	}
	return s, nil
}

// Connected says how many servers are connected.
func (c *Client) Connected() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.live)
}
