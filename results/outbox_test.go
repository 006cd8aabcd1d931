package results

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/store"
)

// outboxEnv is a local store with a Recorder, and an external ResultsDB
// (NewAPI on its own store) that can be switched down.
type outboxEnv struct {
	local, remote *store.DB
	rec           *Recorder
	srv           *httptest.Server
	down          atomic.Bool
	clock         time.Time
}

func openTestDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "sluice.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newOutboxEnv starts the environment; wrap, when not nil, goes around
// the external API, inside the down switch.
func newOutboxEnv(t *testing.T, wrap func(http.Handler) http.Handler) *outboxEnv {
	t.Helper()
	e := &outboxEnv{local: openTestDB(t), remote: openTestDB(t)}
	e.rec = NewRecorder(NewStore(e.local, Config{}), e.local, true)
	h := NewAPI(NewStore(e.remote, Config{}), e.remote, StaticTokens{clientToken: ScopeWorker}, nil, nil)
	if wrap != nil {
		h = wrap(h)
	}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.down.Load() {
			writeJSON(w, http.StatusServiceUnavailable, message{Message: "down"})
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

// sender returns a Sender to e's external side, through a client that
// retries retryMax times, on e's clock.
func (e *outboxEnv) sender(t *testing.T, retryMax int) *Sender {
	cfg := testClientConfig(e.srv.URL, clientToken)
	cfg.RetryMax = retryMax
	s := NewSender(e.local, NewStore(e.local, Config{}), newTestClient(t, cfg, nil), nil)
	s.backoffMin, s.backoffMax = time.Second, 4*time.Second
	s.now = func() time.Time { return e.clock }
	return s
}

// record records n results, ten to a transaction, and sets e's clock to
// now, when they are due.
func (e *outboxEnv) record(t *testing.T, name string, n int) {
	t.Helper()
	for start := 0; start < n; start += 10 {
		err := e.local.Tx(t.Context(), func(tx *sql.Tx) error {
			for i := start; i < min(start+10, n); i++ {
				err := e.rec.Record(t.Context(), tx, &Result{Testcase: Testcase{Name: name}, Outcome: "PASSED",
					Data: map[string][]string{"item": {fmt.Sprint(i)}}})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	e.clock = time.Now()
}

func countRows(t *testing.T, db *store.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), db.Rebind(query), args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func flush(t *testing.T, s *Sender) int {
	t.Helper()
	n, err := s.Flush(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkRemote checks that the external side holds exactly the local
// results, each sluice id once.
func checkRemote(t *testing.T, e *outboxEnv) {
	t.Helper()
	local := countRows(t, e.local, `SELECT COUNT(*) FROM results`)
	if n := countRows(t, e.remote, `SELECT COUNT(*) FROM results`); n != local {
		t.Errorf("external side holds %d results, want %d", n, local)
	}
	if n := countRows(t, e.remote, `SELECT COUNT(*) FROM (SELECT value FROM result_data WHERE key = ? GROUP BY value HAVING COUNT(*) > 1) d`, SluiceIDKey); n != 0 {
		t.Errorf("external side holds %d sluice ids more than once", n)
	}
	if n := countRows(t, e.remote, `SELECT COUNT(DISTINCT value) FROM result_data WHERE key = ?`, SluiceIDKey); n != local {
		t.Errorf("external side holds %d sluice ids, want %d", n, local)
	}
}

func TestSenderOutage(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t, nil)
	s := e.sender(t, -1)
	e.down.Store(true)
	const n = 1000
	e.record(t, "outage", n)
	// A transaction that rolls back queues nothing.
	err := e.local.Tx(t.Context(), func(tx *sql.Tx) error {
		if err := e.rec.Record(t.Context(), tx, &Result{Testcase: Testcase{Name: "outage"}, Outcome: "FAILED"}); err != nil {
			return err
		}
		return errors.New("stage failed")
	})
	if err == nil {
		t.Fatal("Tx = nil, want the error of fn")
	}

	if got := flush(t, s); got != 0 {
		t.Errorf("Flush with the external side down delivered %d", got)
	}
	if got := countRows(t, e.local, `SELECT COUNT(*) FROM results_outbox WHERE delivered_at IS NULL AND attempts = 1 AND last_error <> ''`); got != n {
		t.Errorf("%d undelivered rows with one failed attempt, want %d", got, n)
	}
	// Not due yet: nothing is tried.
	e.down.Store(false)
	if got := flush(t, s); got != 0 {
		t.Errorf("Flush before the back-off ended delivered %d", got)
	}
	if got := countRows(t, e.remote, `SELECT COUNT(*) FROM results`); got != 0 {
		t.Errorf("external side holds %d results before the back-off ended", got)
	}

	total := 0
	for pass := 0; total < n && pass < 5; pass++ {
		e.clock = e.clock.Add(time.Minute)
		total += flush(t, s)
	}
	if total != n {
		t.Errorf("delivered %d, want %d", total, n)
	}
	if got := countRows(t, e.local, `SELECT COUNT(*) FROM results_outbox WHERE delivered_at IS NULL`); got != 0 {
		t.Errorf("%d rows undelivered", got)
	}
	checkRemote(t, e)
	// Delivered rows are not sent again.
	e.clock = e.clock.Add(time.Hour)
	if got := flush(t, s); got != 0 {
		t.Errorf("Flush after delivery delivered %d", got)
	}
	checkRemote(t, e)
}

// TestSenderLostResponse posts through a proxy that lands the first POST
// and answers 502: with the client's own retries on, the result is
// still created once.
func TestSenderLostResponse(t *testing.T) {
	t.Parallel()
	var lose atomic.Bool
	var posts atomic.Int32
	lose.Store(true)
	e := newOutboxEnv(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || r.URL.Path != apiPrefix+"/results" {
				h.ServeHTTP(w, r)
				return
			}
			posts.Add(1)
			if lose.CompareAndSwap(true, false) {
				h.ServeHTTP(httptest.NewRecorder(), r)
				writeJSON(w, http.StatusBadGateway, message{Message: "answer lost"})
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	s := e.sender(t, 2)
	e.record(t, "lost", 1)

	if got := flush(t, s); got != 0 {
		t.Errorf("first Flush delivered %d, want 0: its answer was lost", got)
	}
	if got := countRows(t, e.local, `SELECT COUNT(*) FROM results_outbox WHERE delivered_at IS NULL AND attempts = 1`); got != 1 {
		t.Errorf("%d rows undelivered after one attempt, want 1", got)
	}
	e.clock = e.clock.Add(time.Minute)
	if got := flush(t, s); got != 1 {
		t.Errorf("second Flush delivered %d, want 1", got)
	}
	if got := posts.Load(); got != 1 {
		t.Errorf("%d POSTs, want 1", got)
	}
	checkRemote(t, e)
}

func TestRecorder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		external bool
		data     map[string][]string
		keep     string // the sluice id that must be kept
		err      bool
		queued   int
	}{
		{name: "new id", external: true, queued: 1},
		{name: "given id", external: true, data: map[string][]string{SluiceIDKey: {"abc"}}, keep: "abc", queued: 1},
		{name: "local only", external: false, queued: 0},
		{name: "two ids", external: true, data: map[string][]string{SluiceIDKey: {"a", "b"}}, err: true},
		{name: "comma", external: true, data: map[string][]string{SluiceIDKey: {"a,b"}}, err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := openTestDB(t)
			rec := NewRecorder(NewStore(db, Config{}), db, tc.external)
			res := &Result{Testcase: Testcase{Name: "t"}, Outcome: "PASSED", Data: tc.data}
			err := db.Tx(t.Context(), func(tx *sql.Tx) error { return rec.Record(t.Context(), tx, res) })
			if tc.err {
				if _, ok := errors.AsType[*ValidationError](err); !ok {
					t.Fatalf("Record = %v, want a *ValidationError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ids := res.Data[SluiceIDKey]
			if len(ids) != 1 || ids[0] == "" || tc.keep != "" && ids[0] != tc.keep {
				t.Errorf("sluice ids %q, want one (%q)", ids, tc.keep)
			}
			got, err := NewStore(db, Config{}).Result(t.Context(), res.ID)
			if err != nil {
				t.Fatal(err)
			}
			if g := got.Data[SluiceIDKey]; len(g) != 1 || g[0] != ids[0] {
				t.Errorf("stored sluice ids %q, want %q", g, ids)
			}
			if n := countRows(t, db, `SELECT COUNT(*) FROM results_outbox WHERE sluice_id = ?`, ids[0]); n != tc.queued {
				t.Errorf("%d outbox rows, want %d", n, tc.queued)
			}
		})
	}
}

// TestSenderRun runs Run, woken by Notify, beside a Flush: between them
// every result is delivered once, and Run returns when its context ends.
// Which of the two delivers is not checked: timing would decide it.
func TestSenderRun(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t, nil)
	s := e.sender(t, 2)
	s.now = time.Now
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	e.record(t, "run", 3)
	s.Notify()
	// Flush waits for Run's pass, and delivers whatever that pass left.
	flush(t, s)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	checkRemote(t, e)
}

// TestSendersShareOutbox runs two senders on one database at once, as a
// server and a stage process do: every result is posted once, by one of
// them, and a row claimed by a sender that died is taken over when its
// lease ends.
func TestSendersShareOutbox(t *testing.T) {
	t.Parallel()
	var posts atomic.Int64
	e := newOutboxEnv(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				posts.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	const n = 300
	e.record(t, "shared", n)
	a, b := e.sender(t, 2), e.sender(t, 2)
	errc := make(chan error, 2)
	var delivered atomic.Int64
	for _, s := range []*Sender{a, b} {
		go func() {
			got, err := s.Flush(t.Context())
			delivered.Add(int64(got))
			errc <- err
		}()
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if delivered.Load() != n || posts.Load() != n {
		t.Errorf("two senders delivered %d with %d posts, want %d and %d", delivered.Load(), posts.Load(), n, n)
	}
	checkRemote(t, e)

	// A sender claims rows and dies before it delivers them.
	e.record(t, "orphaned", 5)
	if _, err := a.due(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	if got := flush(t, b); got != 0 {
		t.Errorf("rows under another sender's lease: delivered %d, want 0", got)
	}
	e.clock = e.clock.Add(outboxLease + time.Second)
	if got := flush(t, b); got != 5 {
		t.Errorf("after the lease: delivered %d, want 5", got)
	}
	checkRemote(t, e)
}
