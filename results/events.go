package results

// This file streams new results as Server-Sent Events: GET
// /api/v2.0/events sends, for every new result, the message that upstream
// ResultsDB publishes on its message bus (topic resultsdb.result.new, body
// the serialized result), as
//
//	id: <result id>
//	event: resultsdb.result.new
//	data: <the result, as GET /api/v2.0/results/<id> answers it, on one line>
//
// A client that sends Last-Event-ID: N (or ?since_id=N when it cannot set
// headers) gets the results with an id above N, in id order, then the new
// ones live, without a gap or a repeat.
//
// Results may be written by other processes into the same database (a
// stage on the same SQLite file, several servers on one PostgreSQL), so
// the stream does not rely on the POSTs it serves: one goroutine,
// (*Events).Run, tails the results table by id, woken by Notify after an
// in-process commit and polling otherwise. Events go out strictly in id
// order, so that "every id up to N" is what Last-Event-ID N means. In
// PostgreSQL an id is taken at insert and its transaction may commit after
// one that took a higher id, or never (a rollback leaves a hole): a hole in
// the ids holds back the results above it until it fills or until it has
// been open for a while (gapWait, 10 s), after which it is taken for a
// rolled-back id. So a rolled-back insert delays the stream by up to 10 s,
// and a transaction that commits a result more than 10 s after a
// higher id became visible is not streamed (it is in the API).
//
// Limits: the tail starts at the highest id committed when Run starts; a
// transaction in flight at that moment with a lower id is not streamed.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// EventNew is the event name of a new result, upstream's message topic.
const EventNew = "resultsdb.result.new"

// MaxSubscribers bounds the event streams served at once; beyond it,
// GET /api/v2.0/events answers 503.
const MaxSubscribers = 256

// MaxReplay bounds the results that one connection replays after its
// Last-Event-ID. A client further behind gets that many, then the end of
// the stream, and resumes from the last one it got.
const MaxReplay = 1000

// Defaults of an Events.
const (
	pollEvery      = 250 * time.Millisecond
	gapWait        = 10 * time.Second
	heartbeatEvery = 15 * time.Second
	// subscriberBuffer is the results a subscriber may fall behind the
	// tail before it is disconnected: more than one poll hands out, so
	// that a burst does not drop a client that keeps up.
	subscriberBuffer = 1024
	// maxPending bounds the results that one poll fetches, and that the
	// tail holds back behind a hole in the ids; the rest waits in the
	// database.
	maxPending = 500
	replayPage = 100
	// writeWait bounds one write to a client.
	writeWait = 30 * time.Second
)

// errEventsStopped says that Run has ended.
var errEventsStopped = errors.New("results: event stream stopped")

// Events tails the results table and hands every new result, in id
// order, to the subscribers of the event stream. Run must be running for
// the stream to deliver anything.
type Events struct {
	s   *Store
	log *slog.Logger

	wake        chan struct{} // Notify's; holds one wake-up
	ready, done chan struct{} // closed when Run has found where to start, and when it has ended
	started     atomic.Bool

	// Settings: the defaults above, changed by tests only, before Run.
	pollEvery, gapWait, heartbeat          time.Duration
	buffer, maxSubs, maxReplay, replayPage int
	maxPending                             int
	polled                                 func(seen int64) // called by Run after each poll, when set

	// pending holds the results fetched above frontier, held back by a
	// hole below them. Run's alone.
	pending map[int64]pendingResult

	mu sync.Mutex
	// frontier is the id up to which every result has been handed out or
	// given up on as rolled back. Run writes it under mu.
	frontier int64
	subs     map[*subscriber]struct{}
	conns    int // streams being served
	stopped  bool
}

type pendingResult struct {
	res Result
	// seen is when the tail fetched it, and thus noticed any hole just
	// below it.
	seen time.Time
}

// subscriber is one event stream.
type subscriber struct {
	ch     chan *Result // closed by the tail when it drops the subscriber, or by Run's end
	after  int64        // ids up to after are not sent
	filter eventFilter
	reason string // why ch was closed; written before the close
}

// NewEvents returns an Events on s; a nil log discards.
func NewEvents(s *Store, log *slog.Logger) *Events {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Events{
		s: s, log: log,
		wake:  make(chan struct{}, 1),
		ready: make(chan struct{}), done: make(chan struct{}),
		pollEvery: pollEvery, gapWait: gapWait, heartbeat: heartbeatEvery,
		buffer: subscriberBuffer, maxSubs: MaxSubscribers, maxReplay: MaxReplay, replayPage: replayPage,
		maxPending: maxPending,
		pending:    map[int64]pendingResult{},
		subs:       map[*subscriber]struct{}{},
	}
}

// Notify wakes the tail at once, after a result has been committed in
// this process. It never blocks.
func (e *Events) Notify() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run tails the results table until ctx ends, then ends every stream
// and returns nil. A failing database is logged and tried again at each
// poll. Run may be called once.
func (e *Events) Run(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return errors.New("results: event stream: Run called twice")
	}
	defer e.stop()
	t := time.NewTicker(e.pollEvery)
	defer t.Stop()
	started, failing := false, false
	for {
		var err error
		if !started {
			err = e.start(ctx)
			started = err == nil
		} else {
			err = e.poll(ctx)
		}
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			e.log.Warn("results event stream cannot read the database", "err", err)
			failing = true
		case err == nil && failing:
			e.log.Info("results event stream reads the database again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-e.wake:
		case <-t.C:
		}
	}
}

// start sets the frontier to the highest id committed.
func (e *Events) start(ctx context.Context) error {
	var id int64
	if err := e.s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM results`).Scan(&id); err != nil {
		return fmt.Errorf("results: event stream: newest result id: %w", err)
	}
	e.mu.Lock()
	e.frontier = id
	e.mu.Unlock()
	close(e.ready)
	e.log.Debug("results event stream started", "after", id)
	return nil
}

// stop ends every stream.
func (e *Events) stop() {
	e.mu.Lock()
	e.stopped = true
	for sub := range e.subs {
		e.drop(sub, "shutdown")
	}
	e.mu.Unlock()
	close(e.done)
}

// poll fetches the results above the frontier that it does not hold yet,
// and hands out those that no hole holds back.
func (e *Events) poll(ctx context.Context) error {
	ids, err := e.s.idsAfter(ctx, e.frontier, e.maxPending)
	if err != nil {
		return err
	}
	var fresh []int64
	for _, id := range ids {
		if _, ok := e.pending[id]; !ok {
			fresh = append(fresh, id)
		}
	}
	if len(fresh) > 0 {
		rs, err := e.s.resultsByID(ctx, fresh)
		if err != nil {
			return err
		}
		now := time.Now()
		for _, r := range rs {
			e.pending[r.ID] = pendingResult{res: r, seen: now}
		}
	}
	e.deliver(time.Now())
	if e.polled != nil {
		seen := e.frontier
		for id := range e.pending {
			seen = max(seen, id)
		}
		e.polled(seen)
	}
	return nil
}

// deliver hands out the pending results that follow the frontier without
// a hole, and gives up on a hole open for gapWait.
func (e *Events) deliver(now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for len(e.pending) > 0 {
		next := e.frontier + 1
		if p, ok := e.pending[next]; ok {
			delete(e.pending, next)
			e.frontier = next
			e.broadcast(&p.res)
			continue
		}
		// A hole from next up to the lowest pending id: it opened when
		// that result was fetched.
		low := slices.Min(slices.Collect(maps.Keys(e.pending)))
		if now.Sub(e.pending[low].seen) < e.gapWait {
			return
		}
		e.log.Debug("results event stream skips rolled-back ids", "from", next, "to", low-1)
		e.frontier = low - 1
	}
}

// broadcast hands r, which no one changes, to every subscriber that
// wants it, and drops those whose buffer is full. e.mu is held.
func (e *Events) broadcast(r *Result) {
	for sub := range e.subs {
		if r.ID <= sub.after || !sub.filter.match(r) {
			continue
		}
		select {
		case sub.ch <- r:
		default:
			e.drop(sub, "behind")
			e.log.Info("results event subscriber dropped", "reason", "behind", "id", r.ID)
		}
	}
}

// drop ends sub's stream. e.mu is held.
func (e *Events) drop(sub *subscriber, reason string) {
	delete(e.subs, sub)
	sub.reason = reason
	close(sub.ch)
}

// acquire counts a stream in, or says there are too many.
func (e *Events) acquire() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conns >= e.maxSubs {
		return false
	}
	e.conns++
	return true
}

// release counts a stream out and unsubscribes it.
func (e *Events) release(sub *subscriber) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.conns--
	if _, ok := e.subs[sub]; ok {
		delete(e.subs, sub)
	}
}

// join subscribes sub if it has nothing left to replay, that is when
// sub.after is at or past the frontier (or negative: from now on);
// otherwise it returns the frontier, up to which sub must replay from the
// database first.
func (e *Events) join(sub *subscriber) (upTo int64, joined bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return 0, false, errEventsStopped
	}
	if sub.after >= e.frontier || sub.after < 0 {
		sub.after = max(sub.after, e.frontier)
		e.subs[sub] = struct{}{}
		return 0, true, nil
	}
	return e.frontier, false, nil
}

// eventFilter selects the results of a stream; an empty list selects
// all.
type eventFilter struct {
	testcases []string
	items     []string // values of the data key "item"
}

func (f eventFilter) match(r *Result) bool {
	if len(f.testcases) > 0 && !slices.Contains(f.testcases, r.Testcase.Name) {
		return false
	}
	if len(f.items) > 0 && !slices.ContainsFunc(r.Data["item"], func(v string) bool { return slices.Contains(f.items, v) }) {
		return false
	}
	return true
}

// query returns f as the filters of a Query, which select the same
// results as match.
func (f eventFilter) query() Query {
	q := Query{Testcases: f.testcases}
	if len(f.items) > 0 {
		q.Data = []DataFilter{{Key: "item", Values: f.items}}
	}
	return q
}

// idsAfter returns the ids above after, lowest first, at most limit.
func (s *Store) idsAfter(ctx context.Context, after int64, limit int) ([]int64, error) {
	var ids []int64
	err := s.each(ctx, `SELECT id FROM results WHERE id > ? ORDER BY id LIMIT ?`, []any{after, limit},
		func(rows *sql.Rows) error {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("results: ids after %d: %w", after, err)
	}
	return ids, nil
}

// resultsByID returns the results of ids that exist, in id order.
func (s *Store) resultsByID(ctx context.Context, ids []int64) ([]Result, error) {
	var rs []Result
	for chunk := range slices.Chunk(ids, idsPerQuery) {
		got, err := s.queryResults(ctx, `SELECT `+resultColumns+` FROM results r JOIN testcases t ON t.name = r.testcase_name
			WHERE r.id IN (`+marks(len(chunk))+`) ORDER BY r.id`, anys(chunk)...)
		if err != nil {
			return nil, fmt.Errorf("results: results by id: %w", err)
		}
		rs = append(rs, got...)
	}
	if err := s.loadDetails(ctx, rs); err != nil {
		return nil, err
	}
	return rs, nil
}

// resultsBetween returns the results with an id in (after, upTo] that q's
// filters select, lowest id first, at most limit.
func (s *Store) resultsBetween(ctx context.Context, after, upTo int64, q Query, limit int) ([]Result, error) {
	var w where
	if err := s.filter(&w, q); err != nil {
		return nil, err
	}
	w.add(`r.id > ?`, after)
	w.add(`r.id <= ?`, upTo)
	rs, err := s.queryResults(ctx, `SELECT `+resultColumns+` FROM results r JOIN testcases t ON t.name = r.testcase_name`+
		w.clause()+` ORDER BY r.id LIMIT ?`, append(w.args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("results: results after %d: %w", after, err)
	}
	if err := s.loadDetails(ctx, rs); err != nil {
		return nil, err
	}
	return rs, nil
}

// eventParams parses the request of an event stream: where it resumes
// (Last-Event-ID, else since_id; -1 for none) and its filters.
func eventParams(r *http.Request) (after int64, f eventFilter, err error) {
	vals, err := queryParams(r)
	if err != nil {
		return 0, f, err
	}
	for k := range vals {
		switch k {
		case "since_id", "testcases", "item", "_":
		default:
			return 0, f, invalid(k, "not a parameter of the event stream (since_id, testcases, item)")
		}
	}
	after = -1
	field, s := "Last-Event-ID", strings.TrimSpace(r.Header.Get("Last-Event-ID"))
	if s == "" {
		field, s = "since_id", strings.TrimSpace(vals.Get("since_id"))
	}
	if s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, f, invalid(field, "%q is not a result id", s)
		}
		after = n
	}
	f.testcases = list(vals["testcases"])
	// As the data filters of GET /results: values split on commas,
	// untrimmed.
	for _, v := range vals["item"] {
		f.items = append(f.items, strings.Split(v, ",")...)
	}
	return after, f, nil
}

// eventWriter writes events to a client.
type eventWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	r   *http.Request
	buf bytes.Buffer
}

// result adds the event of res.
func (ew *eventWriter) result(res *Result) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // as writeJSON, so that data is GET results/{id}'s body
	if err := enc.Encode(resultOut(ew.r, *res)); err != nil {
		return fmt.Errorf("results: event of result %d: %w", res.ID, err)
	}
	// The encoder ends the value with a newline and escapes any other.
	fmt.Fprintf(&ew.buf, "id: %d\nevent: %s\ndata: %s\n", res.ID, EventNew, b.Bytes())
	return nil
}

// flush sends what was added, within writeWait.
func (ew *eventWriter) flush() error {
	if err := ew.rc.SetWriteDeadline(time.Now().Add(writeWait)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	_, err := ew.w.Write(ew.buf.Bytes())
	ew.buf.Reset()
	if err != nil {
		return err
	}
	return ew.rc.Flush()
}

// eventStream serves GET /api/v2.0/events.
func (a *api) eventStream(w http.ResponseWriter, r *http.Request) {
	e := a.events
	after, f, err := eventParams(r)
	if err != nil {
		a.fail(w, r, "events", err)
		return
	}
	unavailable := func(msg string) {
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, message{Message: msg})
	}
	if !e.acquire() {
		unavailable(fmt.Sprintf("more than %d event streams", e.maxSubs))
		return
	}
	sub := &subscriber{ch: make(chan *Result, e.buffer), after: after, filter: f}
	defer e.release(sub)
	select {
	case <-e.ready:
	case <-e.done:
		unavailable("event stream stopped")
		return
	case <-r.Context().Done():
		return
	}
	upTo, joined, err := e.join(sub)
	if err != nil {
		unavailable("event stream stopped")
		return
	}

	ew := &eventWriter{w: w, rc: http.NewResponseController(w), r: r}
	// The stream outlives the server's read and write timeouts: a read
	// deadline would cancel the request, and each write sets its own.
	if err := ew.rc.SetReadDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	if err := ew.flush(); err != nil {
		return
	}

	// Replay from the database until caught up with the tail.
	cursor, replayed := sub.after, 0
	for !joined {
		if replayed >= e.maxReplay {
			a.log.Debug("results event stream ends its replay", "after", cursor)
			return
		}
		rs, err := e.s.resultsBetween(r.Context(), cursor, upTo, f.query(), e.replayPage)
		if err != nil {
			if r.Context().Err() == nil {
				a.log.Error("results event stream cannot replay", "after", cursor, "err", err)
			}
			return
		}
		for i := range rs {
			if err := ew.result(&rs[i]); err != nil {
				a.log.Error("results event stream cannot encode", "id", rs[i].ID, "err", err)
				return
			}
		}
		if err := ew.flush(); err != nil {
			return
		}
		replayed += len(rs)
		cursor = upTo
		if len(rs) == e.replayPage {
			cursor = rs[len(rs)-1].ID
		}
		sub.after = cursor
		if upTo, joined, err = e.join(sub); err != nil {
			return
		}
	}

	hb := time.NewTicker(e.heartbeat)
	defer hb.Stop()
	for {
		select {
		case res, ok := <-sub.ch:
			if !ok {
				a.log.Debug("results event stream ended", "reason", sub.reason)
				return
			}
			if err := ew.result(res); err != nil {
				a.log.Error("results event stream cannot encode", "id", res.ID, "err", err)
				return
			}
			// Send what else is waiting in one write.
			for more := len(sub.ch); more > 0; more-- {
				res, ok := <-sub.ch
				if !ok {
					break
				}
				if err := ew.result(res); err != nil {
					a.log.Error("results event stream cannot encode", "id", res.ID, "err", err)
					return
				}
			}
		case <-hb.C:
			ew.buf.WriteString(": keepalive\n\n")
		case <-r.Context().Done():
			return
		}
		if err := ew.flush(); err != nil {
			return
		}
	}
}
