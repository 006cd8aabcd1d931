package results

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/pgtest"
	"github.com/sluice-ci/sluice/store"
)

// eventWait bounds the wait for anything the event stream should do; it
// is generous, as only a broken stream reaches it.
const eventWait = 30 * time.Second

// TestEvents runs every event stream test on SQLite and on PostgreSQL.
func TestEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"Live", testEventsLive},
		{"OtherWriter", testEventsOtherWriter},
		{"Replay", testEventsReplay},
		{"ReplayInPieces", testEventsReplayInPieces},
		{"ReplayWhileWriting", testEventsReplayWhileWriting},
		{"OutOfOrderCommit", testEventsOutOfOrderCommit},
		{"RolledBackID", testEventsRolledBackID},
		{"Filters", testEventsFilters},
		{"SlowSubscriber", testEventsSlowSubscriber},
		{"MaxSubscribers", testEventsMaxSubscribers},
		{"Shutdown", testEventsShutdown},
		{"OutlivesServerTimeouts", testEventsOutlivesServerTimeouts},
		{"BadParams", testEventsBadParams},
	}
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			fresh := func(t *testing.T) string { return filepath.Join(t.TempDir(), "sluice.db") }
			if dialect == "postgres" {
				cluster := pgtest.Start(t)
				fresh = func(t *testing.T) string { return pgtest.NewDatabase(t, cluster) }
			}
			apiDatabases.Store(t.Name(), fresh)
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t)
				})
			}
		})
	}
}

// sseEvent is one event of a stream, or one comment line.
type sseEvent struct {
	id, event, data string
	comment         string
}

// sseStream reads an event stream as a client.
type sseStream struct {
	t      *testing.T
	resp   *http.Response
	events chan sseEvent // closed at the end of the stream
}

// subscribe opens the event stream of a with query (e.g. "?item=x") and,
// when lastID is not empty, a Last-Event-ID header.
func (a *apiServer) subscribe(query, lastID string) *sseStream {
	a.t.Helper()
	return subscribeAt(a.t, a.srv.URL, query, lastID)
}

func subscribeAt(t *testing.T, base, query, lastID string) *sseStream {
	t.Helper()
	resp := eventsGet(t, base, query, lastID)
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET events%s: %d %s", query, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q, want text/event-stream", ct)
	}
	s := &sseStream{t: t, resp: resp, events: make(chan sseEvent, 1000)}
	read := make(chan struct{})
	go func() {
		defer close(read)
		s.read()
	}()
	t.Cleanup(func() {
		resp.Body.Close()
		<-read
	})
	return s
}

// eventsGet sends GET /api/v2.0/events.
func eventsGet(t *testing.T, base, query, lastID string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", base+apiPrefix+"/events"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// read parses the stream into s.events until it ends.
func (s *sseStream) read() {
	defer close(s.events)
	br := bufio.NewReader(s.resp.Body)
	var ev sseEvent
	fields := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if fields > 0 {
				s.events <- ev
			}
			ev, fields = sseEvent{}, 0
		case strings.HasPrefix(line, ":"):
			s.events <- sseEvent{comment: strings.TrimSpace(line[1:])}
		default:
			k, v, _ := strings.Cut(line, ": ")
			switch k {
			case "id":
				ev.id = v
			case "event":
				ev.event = v
			case "data":
				ev.data = v
			default:
				s.events <- sseEvent{comment: "unknown field " + line}
			}
			fields++
		}
	}
}

// recv returns the next event or comment, and false at the end of the
// stream.
func (s *sseStream) recv() (sseEvent, bool) {
	s.t.Helper()
	return s.recvBy(time.Now().Add(eventWait))
}

func (s *sseStream) recvBy(deadline time.Time) (sseEvent, bool) {
	s.t.Helper()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case ev, ok := <-s.events:
		return ev, ok
	case <-t.C:
		s.t.Fatalf("nothing from the event stream in %v", eventWait)
	}
	panic("unreachable")
}

// next returns the next event, skipping heartbeats, and fails at the end
// of the stream.
func (s *sseStream) next() sseEvent {
	s.t.Helper()
	deadline := time.Now().Add(eventWait)
	for {
		ev, ok := s.recvBy(deadline)
		if !ok {
			s.t.Fatal("the event stream ended")
		}
		if ev.comment == "" {
			return ev
		}
		if ev.comment != "keepalive" {
			s.t.Fatalf("unexpected comment %q", ev.comment)
		}
	}
}

// ended waits for the end of the stream and fails on an event before it.
func (s *sseStream) ended() {
	s.t.Helper()
	deadline := time.Now().Add(eventWait)
	for {
		ev, ok := s.recvBy(deadline)
		if !ok {
			return
		}
		if ev.comment == "" {
			s.t.Fatalf("event %s before the end of the stream", ev.id)
		}
	}
}

// raw returns the body of GET path, without its final newline.
func (a *apiServer) raw(path string) string {
	a.t.Helper()
	resp, err := a.srv.Client().Get(a.prefix() + path)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		a.t.Fatalf("GET %s: %d %v %s", path, resp.StatusCode, err, b)
	}
	return strings.TrimSuffix(string(b), "\n")
}

// want checks that ev is the event of result id, with the very body of
// GET results/{id}.
func (a *apiServer) want(ev sseEvent, id int64) {
	a.t.Helper()
	a.wantVia(ev, id, a.srv.URL)
}

// wantVia is want for a stream read from the server at base, whose
// links point there.
func (a *apiServer) wantVia(ev sseEvent, id int64, base string) {
	a.t.Helper()
	if ev.id != strconv.FormatInt(id, 10) || ev.event != EventNew {
		a.t.Fatalf("event id %q (%q), want %d (%s)", ev.id, ev.event, id, EventNew)
	}
	want := strings.ReplaceAll(a.raw(fmt.Sprintf("/results/%d", id)), a.srv.URL+apiPrefix, base+apiPrefix)
	if ev.data != want {
		a.t.Errorf("event %d data:\n got %s\nwant %s", id, ev.data, want)
	}
}

// postID posts a result of testcase tc with data and returns its id.
func (a *apiServer) postID(tc string, data map[string]any) int64 {
	a.t.Helper()
	out := a.post(map[string]any{"outcome": "PASSED", "testcase": tc, "data": data})
	return int64(out["id"].(float64))
}

// createIn stores a result of testcase tc in a transaction of db, as
// another process would: the API's event stream is not told.
func createIn(ctx context.Context, db *store.DB, s *Store, tc string) (int64, error) {
	var id int64
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		r := Result{Testcase: Testcase{Name: tc}, Outcome: "PASSED", Data: map[string][]string{"item": {"x"}}}
		if err := s.Create(ctx, tx, &r); err != nil {
			return err
		}
		id = r.ID
		return nil
	})
	return id, err
}

func testEventsLive(t *testing.T) {
	a := newAPIServer(t)
	if _, out := a.get("/"); out["events"] != a.prefix()+"/events" {
		t.Errorf("landing lists events at %v", out["events"])
	}
	s := a.subscribe("", "")
	var ids []int64
	for _, body := range []map[string]any{
		{"outcome": "PASSED", "testcase": map[string]any{"name": "sluice.build", "ref_url": "http://e/tc"},
			"groups": []any{"g1"}, "note": "a <note> & more", "ref_url": "http://e/r",
			"data": map[string]any{"item": "foo-1.0-1", "moo": []any{"boo", 2}}},
		{"outcome": "FAILED", "testcase": "sluice.install"},
		{"outcome": "INFO", "testcase": "a/b/c", "submit_time": ms(0)},
	} {
		ids = append(ids, int64(a.post(body)["id"].(float64)))
	}
	for _, id := range ids {
		a.want(s.next(), id)
	}
}

func testEventsOtherWriter(t *testing.T) {
	a := newAPIServer(t)
	s := a.subscribe("", "")
	other, err := store.Open(t.Context(), a.dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	others := NewStore(other, Config{})
	for range 3 {
		id, err := createIn(t.Context(), other, others, "sluice.stage")
		if err != nil {
			t.Fatal(err)
		}
		a.want(s.next(), id)
	}
}

func testEventsReplay(t *testing.T) {
	a := newAPIServer(t)
	for range 3 {
		a.postID("tc", nil)
	}
	byHeader := a.subscribe("", "1")
	a.want(byHeader.next(), 2)
	a.want(byHeader.next(), 3)
	byQuery := a.subscribe("?since_id=2", "")
	a.want(byQuery.next(), 3)
	// A reconnecting EventSource sends the header, and the URL it was
	// first given: the header wins.
	both := a.subscribe("?since_id=0", "3")
	// Ahead of the newest result (another server's, say): nothing up to 5.
	ahead := a.subscribe("", "5")
	for id := int64(4); id <= 6; id++ {
		if got := a.postID("tc", nil); got != id {
			t.Fatalf("posted id %d, want %d", got, id)
		}
	}
	for _, s := range []*sseStream{byHeader, byQuery, both} {
		for id := int64(4); id <= 6; id++ {
			a.want(s.next(), id)
		}
	}
	a.want(ahead.next(), 6)
	// From the start: everything, once.
	all := a.subscribe("", "0")
	for id := int64(1); id <= 6; id++ {
		a.want(all.next(), id)
	}
}

func testEventsReplayInPieces(t *testing.T) {
	a := newAPIServer(t, func(e *Events) { e.replayPage, e.maxReplay = 2, 3 })
	for range 7 {
		a.postID("tc", nil)
	}
	// The tail has handed all seven out: what a new stream gets of them
	// is replay, not live.
	deadline := time.Now().Add(eventWait)
	for {
		a.events.mu.Lock()
		f := a.events.frontier
		a.events.mu.Unlock()
		if f >= 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tail is at %d, not 7", f)
		}
		time.Sleep(time.Millisecond)
	}
	// Each connection replays at most 4 (two pages); the client resumes
	// where the stream ended, as EventSource does.
	var got []int64
	conns := 0
	last := "0"
	deadline = time.Now().Add(eventWait)
	for len(got) < 7 {
		conns++
		s := a.subscribe("", last)
		for len(got) < 7 {
			ev, ok := s.recvBy(deadline)
			if !ok {
				break
			}
			if ev.comment != "" {
				continue
			}
			id, _ := strconv.ParseInt(ev.id, 10, 64)
			a.want(ev, id)
			got, last = append(got, id), ev.id
		}
		if conns > 7 {
			t.Fatalf("%d connections for 7 results: %v", conns, got)
		}
	}
	if want := []int64{1, 2, 3, 4, 5, 6, 7}; !slices.Equal(got, want) {
		t.Errorf("replayed %v, want %v", got, want)
	}
	if conns < 2 {
		t.Errorf("%d connection(s): the replay was not bounded", conns)
	}
}

func testEventsReplayWhileWriting(t *testing.T) {
	a := newAPIServer(t, func(e *Events) { e.replayPage = 3 })
	for range 5 {
		a.postID("tc", nil)
	}
	const n = 40
	errc := make(chan error, 1)
	go func() {
		for range n - 5 {
			if _, err := createIn(t.Context(), a.db, a.s, "tc"); err != nil {
				errc <- err
				return
			}
			a.events.Notify()
		}
		errc <- nil
	}()
	// The stream replays while results keep coming: every id once, in
	// order, across the switch from replay to live.
	s := a.subscribe("", "0")
	for id := int64(1); id <= n; id++ {
		ev := s.next()
		if ev.id != strconv.FormatInt(id, 10) {
			t.Fatalf("event %s, want %d", ev.id, id)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	id := a.postID("tc", nil)
	a.want(s.next(), id)
}

func testEventsOutOfOrderCommit(t *testing.T) {
	var target atomic.Int64
	seen := make(chan struct{})
	var once sync.Once
	a := newAPIServer(t, func(e *Events) {
		e.gapWait = time.Hour // only the commit may fill the hole
		e.polled = func(id int64) {
			if x := target.Load(); x > 0 && id >= x {
				once.Do(func() { close(seen) })
			}
		}
	})
	if a.db.Dialect() != store.Postgres {
		t.Skip("sqlite has one writer at a time: ids become visible in order")
	}
	ctx := t.Context()
	raw, err := sql.Open("pgx", a.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	s := a.subscribe("", "")

	begin := func(tc string) (*sql.Tx, int64) {
		tx, err := raw.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := Result{Testcase: Testcase{Name: tc}, Outcome: "PASSED"}
		if err := a.s.Create(ctx, tx, &r); err != nil {
			t.Fatal(err)
		}
		return tx, r.ID
	}
	txLow, low := begin("low")
	defer txLow.Rollback()
	txHigh, high := begin("high")
	if high <= low {
		t.Fatalf("ids %d then %d", low, high)
	}
	if err := txHigh.Commit(); err != nil {
		t.Fatal(err)
	}
	target.Store(high)
	a.events.Notify()
	select {
	case <-seen: // the tail has read the higher id, the lower one uncommitted
	case <-time.After(eventWait):
		t.Fatalf("the tail did not read id %d", high)
	}
	if err := txLow.Commit(); err != nil {
		t.Fatal(err)
	}
	a.events.Notify()
	a.want(s.next(), low)
	a.want(s.next(), high)
	next := a.postID("tc", nil)
	a.want(s.next(), next)
	replay := a.subscribe("", "0")
	for _, id := range []int64{low, high, next} {
		a.want(replay.next(), id)
	}
}

func testEventsRolledBackID(t *testing.T) {
	a := newAPIServer(t, func(e *Events) { e.gapWait = 50 * time.Millisecond })
	if a.db.Dialect() != store.Postgres {
		t.Skip("sqlite reuses a rolled-back id: no hole")
	}
	s := a.subscribe("", "")
	err := a.db.Tx(t.Context(), func(tx *sql.Tx) error {
		r := Result{Testcase: Testcase{Name: "tc"}, Outcome: "PASSED"}
		if err := a.s.Create(t.Context(), tx, &r); err != nil {
			return err
		}
		return errors.New("roll back")
	})
	if err == nil || err.Error() != "roll back" {
		t.Fatalf("Tx: %v", err)
	}
	id := a.postID("tc", nil)
	if id != 2 {
		t.Fatalf("id %d after a rolled-back one, want 2", id)
	}
	a.want(s.next(), id)
}

func testEventsFilters(t *testing.T) {
	a := newAPIServer(t)
	s := a.subscribe("?testcases=a,c&item=x", "")
	a.postID("a", map[string]any{"item": "x"})             // 1
	a.postID("b", map[string]any{"item": "x"})             // 2: testcase
	a.postID("a", map[string]any{"item": "y"})             // 3: item
	a.postID("c", map[string]any{"item": []any{"y", "x"}}) // 4
	a.postID("a", nil)                                     // 5: no item
	a.postID("a", map[string]any{"item": "x,y"})           // 6: values are not split
	a.postID("a", map[string]any{"item": "x"})             // 7
	want := []int64{1, 4, 7}
	for _, id := range want {
		a.want(s.next(), id)
	}
	replay := a.subscribe("?testcases=a,c&item=x", "0")
	for _, id := range want {
		a.want(replay.next(), id)
	}
}

// blockingWriter is a client that reads nothing until release is
// closed.
type blockingWriter struct {
	header  http.Header
	started chan struct{} // closed at WriteHeader
	release chan struct{}
	mu      sync.Mutex
	body    strings.Builder
}

func (b *blockingWriter) Header() http.Header { return b.header }
func (b *blockingWriter) WriteHeader(int)     { close(b.started) }
func (b *blockingWriter) Flush()              {}
func (b *blockingWriter) Write(p []byte) (int, error) {
	if len(p) > 0 {
		<-b.release
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.body.Write(p)
}

func testEventsSlowSubscriber(t *testing.T) {
	a := newAPIServer(t, func(e *Events) { e.buffer = 2 })
	fast := a.subscribe("", "")
	slow := &blockingWriter{header: http.Header{}, started: make(chan struct{}), release: make(chan struct{})}
	req := httptest.NewRequestWithContext(t.Context(), "GET", apiPrefix+"/events", nil)
	served := make(chan struct{})
	go func() {
		defer close(served)
		a.h.ServeHTTP(slow, req)
	}()
	defer func() {
		select {
		case <-slow.release:
		default:
			close(slow.release)
		}
		<-served
	}()
	select {
	case <-slow.started:
	case <-time.After(eventWait):
		t.Fatal("the slow stream did not start")
	}
	// The slow client holds at most one result in a write and two in its
	// buffer: the tail drops it and serves the other meanwhile. The other
	// gets each result before the next is posted, so it never falls
	// behind.
	const n = 6
	for id := int64(1); id <= n; id++ {
		if got := a.postID("tc", nil); got != id {
			t.Fatalf("posted id %d, want %d", got, id)
		}
		a.want(fast.next(), id)
	}
	close(slow.release)
	select {
	case <-served:
	case <-time.After(eventWait):
		t.Fatal("the slow stream did not end")
	}
	var got []string
	for line := range strings.Lines(slow.body.String()) {
		if id, ok := strings.CutPrefix(line, "id: "); ok {
			got = append(got, strings.TrimSpace(id))
		}
	}
	if len(got) == 0 || len(got) >= n {
		t.Fatalf("the slow client got ids %v; want some, then the end of its stream", got)
	}
	for i, id := range got {
		if id != strconv.Itoa(i+1) {
			t.Fatalf("the slow client got ids %v, not 1, 2, ...", got)
		}
	}
}

func testEventsMaxSubscribers(t *testing.T) {
	a := newAPIServer(t, func(e *Events) { e.maxSubs = 1 })
	first := a.subscribe("", "")
	resp := eventsGet(t, a.srv.URL, "", "")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body), `"message"`) {
		t.Fatalf("a second stream: %d %q %s, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// Once the first client goes, its place is free again.
	first.resp.Body.Close()
	deadline := time.Now().Add(eventWait)
	for {
		resp := eventsGet(t, a.srv.URL, "", "")
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stream after the first ended: %d", resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testEventsShutdown(t *testing.T) {
	a := newAPIServer(t)
	s := a.subscribe("", "")
	id := a.postID("tc", nil)
	a.want(s.next(), id)
	a.stopEvents()
	s.ended()
	resp := eventsGet(t, a.srv.URL, "", "")
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a stream after Run ended: %d, want 503", resp.StatusCode)
	}
}

func testEventsOutlivesServerTimeouts(t *testing.T) {
	a := newAPIServer(t, func(e *Events) { e.heartbeat = 20 * time.Millisecond })
	srv := httptest.NewUnstartedServer(a.h)
	srv.Config.ReadTimeout = 100 * time.Millisecond
	srv.Config.WriteTimeout = 100 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	s := subscribeAt(t, srv.URL, "", "")
	// Ten heartbeats take longer than both timeouts.
	for beats := 0; beats < 10; {
		ev, ok := s.recv()
		if !ok {
			t.Fatalf("the stream ended after %d heartbeats", beats)
		}
		if ev.comment != "keepalive" {
			t.Fatalf("got %+v, want a keepalive comment", ev)
		}
		beats++
	}
	id := a.postID("tc", nil)
	a.wantVia(s.next(), id, srv.URL)
}

func testEventsBadParams(t *testing.T) {
	a := newAPIServer(t)
	for _, tc := range []struct {
		query, lastID, field string
	}{
		{"?since_id=x", "", "since_id"},
		{"?since_id=-1", "", "since_id"},
		{"", "1.5", "Last-Event-ID"},
		{"?since_id=1", "x", "Last-Event-ID"},
		{"?outcome=PASSED", "", "outcome"},
		{"?testcases:like=a*", "", "testcases:like"},
	} {
		resp := eventsGet(t, a.srv.URL, tc.query, tc.lastID)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"field":"`+tc.field+`"`) {
			t.Errorf("%s, Last-Event-ID %q: %d %s, want 400 naming %s", tc.query, tc.lastID, resp.StatusCode, body, tc.field)
		}
	}
}

// TestEventsDeliver checks the order of the tail: in id order, a hole
// holding back what is above it until it fills or has been open for
// gapWait.
func TestEventsDeliver(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	old := now.Add(-gapWait)
	fresh := now.Add(-gapWait + time.Millisecond)
	tests := []struct {
		name         string
		frontier     int64
		pending      map[int64]time.Time // id → when fetched
		after        int64
		filter       eventFilter
		wantSent     []int64
		wantFrontier int64
	}{
		{"in order", 0, map[int64]time.Time{1: now, 2: now, 3: now}, -1, eventFilter{}, []int64{1, 2, 3}, 3},
		{"hole holds back", 0, map[int64]time.Time{2: fresh, 3: now}, -1, eventFilter{}, nil, 0},
		{"hole given up", 0, map[int64]time.Time{2: old, 3: now}, -1, eventFilter{}, []int64{2, 3}, 3},
		{"second hole holds back", 4, map[int64]time.Time{5: now, 7: fresh, 8: now}, -1, eventFilter{}, []int64{5}, 5},
		{"holes one after the other", 4, map[int64]time.Time{7: old, 9: old}, -1, eventFilter{}, []int64{7, 9}, 9},
		{"subscriber ahead", 0, map[int64]time.Time{1: now, 2: now, 3: now}, 2, eventFilter{}, []int64{3}, 3},
		{"filtered", 0, map[int64]time.Time{1: now, 2: now}, -1, eventFilter{testcases: []string{"tc2"}}, []int64{2}, 2},
		{"nothing pending", 3, nil, -1, eventFilter{}, nil, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := NewEvents(nil, nil)
			e.frontier = tc.frontier
			for id, seen := range tc.pending {
				e.pending[id] = pendingResult{res: Result{ID: id, Testcase: Testcase{Name: fmt.Sprintf("tc%d", id)}}, seen: seen}
			}
			sub := &subscriber{ch: make(chan *Result, 10), filter: tc.filter}
			sub.after = tc.after
			if _, joined, err := e.join(sub); !joined || err != nil {
				t.Fatalf("join: %v %v", joined, err)
			}
			e.deliver(now)
			var sent []int64
			for len(sub.ch) > 0 {
				sent = append(sent, (<-sub.ch).ID)
			}
			if !slices.Equal(sent, tc.wantSent) || e.frontier != tc.wantFrontier {
				t.Errorf("sent %v, frontier %d; want %v, %d", sent, e.frontier, tc.wantSent, tc.wantFrontier)
			}
			for id := range e.pending {
				if id <= e.frontier {
					t.Errorf("id %d pending at or below the frontier %d", id, e.frontier)
				}
			}
		})
	}
}

// TestEventsDropBehind checks that a subscriber whose buffer is full is
// dropped, with its buffer kept, and the others served.
func TestEventsDropBehind(t *testing.T) {
	t.Parallel()
	e := NewEvents(nil, nil)
	slow := &subscriber{ch: make(chan *Result, 1), after: -1}
	fast := &subscriber{ch: make(chan *Result, 10), after: -1}
	for _, s := range []*subscriber{slow, fast} {
		if _, joined, err := e.join(s); !joined || err != nil {
			t.Fatalf("join: %v %v", joined, err)
		}
	}
	for id := int64(1); id <= 3; id++ {
		e.pending[id] = pendingResult{res: Result{ID: id}, seen: time.Now()}
	}
	e.deliver(time.Now())
	if r, ok := <-slow.ch; !ok || r.ID != 1 {
		t.Errorf("slow subscriber: %v %v, want result 1", r.ID, ok)
	}
	if _, ok := <-slow.ch; ok || slow.reason != "behind" {
		t.Errorf("slow subscriber not dropped (reason %q)", slow.reason)
	}
	if len(fast.ch) != 3 {
		t.Errorf("fast subscriber has %d results, want 3", len(fast.ch))
	}
	if _, ok := e.subs[slow]; ok {
		t.Error("slow subscriber still subscribed")
	}
}

// FuzzEventParams feeds Last-Event-ID headers and query strings to the
// parser of an event stream's request: it must refuse them or return a
// resume point of -1 or more.
func FuzzEventParams(f *testing.F) {
	f.Add("", "")
	f.Add("12", "since_id=3")
	f.Add("", "since_id=7&testcases=a,b&item=x,y")
	f.Add(" 9 ", "item=&testcases=")
	f.Add("-1", "")
	f.Add("99999999999999999999", "outcome=PASSED")
	f.Add("", "since_id=%zz")
	f.Fuzz(func(t *testing.T, lastID, rawQuery string) {
		r := &http.Request{Method: "GET", URL: &url.URL{Path: apiPrefix + "/events", RawQuery: rawQuery}, Header: http.Header{}}
		r.Header.Set("Last-Event-ID", lastID)
		after, f, err := eventParams(r)
		if err != nil {
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error %v is not a *ValidationError", err)
			}
			return
		}
		if after < -1 {
			t.Fatalf("resume point %d from %q, %q", after, lastID, rawQuery)
		}
		// The header, when given, wins over since_id.
		if s := strings.TrimSpace(lastID); s != "" {
			if n, err := strconv.ParseInt(s, 10, 64); err != nil || n != after {
				t.Fatalf("resume point %d from Last-Event-ID %q", after, lastID)
			}
		}
		for _, tc := range f.testcases {
			if tc == "" {
				t.Fatalf("empty testcase filter from %q", rawQuery)
			}
		}
	})
}
