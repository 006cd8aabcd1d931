package results

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluice-ci/sluice/store"
)

// clientToken is the worker token of clientTestServer.
const clientToken = "client-secret"

// clientTestServer serves NewAPI on a fresh SQLite store, behind wrap
// when it is not nil.
func clientTestServer(t *testing.T, wrap func(http.Handler) http.Handler) *httptest.Server {
	t.Helper()
	db, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "sluice.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := NewAPI(NewStore(db, Config{}), db, StaticTokens{clientToken: ScopeWorker}, nil, nil)
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// testClientConfig is a config for base with tiny retry waits.
func testClientConfig(base, token string) ClientConfig {
	return ClientConfig{
		BaseURL: base, Token: token, Timeout: 5 * time.Second,
		RetryMax: 2, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond,
	}
}

func newTestClient(t *testing.T, cfg ClientConfig, log *slog.Logger) *Client {
	t.Helper()
	c, err := NewClient(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// counting counts the requests of method to path (under the API prefix),
// and answers the first fail of them with 503.
func counting(n *atomic.Int32, method, path string, fail int32) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == method && r.URL.Path == apiPrefix+path {
				if n.Add(1) <= fail {
					writeJSON(w, http.StatusServiceUnavailable, message{Message: "try later"})
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	}
}

func mustCreate(t *testing.T, c *Client, r Result) *Result {
	t.Helper()
	got, err := c.Create(t.Context(), &r)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func resultIDs(rs []Result) []int64 {
	out := make([]int64, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func TestClientCreateAndGet(t *testing.T) {
	t.Parallel()
	srv := clientTestServer(t, nil)
	c := newTestClient(t, testClientConfig(srv.URL, clientToken), nil)

	in := Result{
		Testcase:   Testcase{Name: "dist.rpmdeplint/x", RefURL: "https://example.com/tc"},
		Groups:     []string{"3ce5f6d7-ce34-489b-ab61-325ce634eab5", "g2"},
		SubmitTime: time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.FixedZone("CEST", 7200)),
		Outcome:    "PASSED",
		Note:       "a note",
		RefURL:     "https://example.com/r",
		Data:       map[string][]string{"item": {"foo-1.0-1.fc40"}, "moo": {"boo", "woof"}},
	}
	created := mustCreate(t, c, in)
	want := in
	want.ID = created.ID
	want.SubmitTime = time.Date(2024, 5, 1, 10, 0, 0, 123000000, time.UTC)
	slices.Sort(created.Groups)
	slices.Sort(want.Groups)
	if created.ID == 0 || !reflect.DeepEqual(*created, want) {
		t.Errorf("Create =\n%+v\nwant\n%+v", *created, want)
	}
	if created.SubmitTime.Location() != time.UTC {
		t.Errorf("SubmitTime location = %v, want UTC", created.SubmitTime.Location())
	}

	got, err := c.Result(t.Context(), created.ID)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got.Groups)
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("Result(%d) =\n%+v\nwant\n%+v", created.ID, *got, want)
	}

	// Without a submit time, the server's now; without groups nor data,
	// none.
	before := time.Now().Add(-time.Second)
	bare := mustCreate(t, c, Result{Testcase: Testcase{Name: "bare"}, Outcome: "INFO"})
	if bare.SubmitTime.Before(before) || len(bare.Groups) != 0 || len(bare.Data) != 0 || bare.Note != "" {
		t.Errorf("bare result = %+v, want now, no groups, data nor note", *bare)
	}
}

func TestClientErrors(t *testing.T) {
	t.Parallel()
	var posts atomic.Int32
	srv := clientTestServer(t, counting(&posts, "POST", "/results", 0))
	c := newTestClient(t, testClientConfig(srv.URL, clientToken), nil)
	anon := newTestClient(t, testClientConfig(srv.URL, ""), nil)

	tests := []struct {
		name     string
		call     func() error
		status   int
		field    string
		notFound bool
	}{
		{"missing result", func() error { _, err := c.Result(t.Context(), 999); return err }, 404, "", true},
		{"bad outcome", func() error {
			_, err := c.Create(t.Context(), &Result{Testcase: Testcase{Name: "t"}, Outcome: "BOGUS"})
			return err
		}, 400, "outcome", false},
		{"empty testcase", func() error {
			_, err := c.Create(t.Context(), &Result{Outcome: "PASSED"})
			return err
		}, 400, "testcase.name", false},
		{"no token", func() error {
			_, err := anon.Create(t.Context(), &Result{Testcase: Testcase{Name: "t"}, Outcome: "PASSED"})
			return err
		}, 401, "", false},
		{"bad query", func() error {
			_, _, err := c.Results(t.Context(), ClientQuery{Params: url.Values{"item:regex": {"x"}}})
			return err
		}, 400, "item:regex", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			e, ok := errors.AsType[*APIError](err)
			if !ok {
				t.Fatalf("error %v is not an *APIError", err)
			}
			if e.Status != tc.status || e.Field != tc.field || e.Message == "" {
				t.Errorf("APIError = %+v, want status %d, field %q, a message", *e, tc.status, tc.field)
			}
			if errors.Is(err, ErrNotFound) != tc.notFound {
				t.Errorf("errors.Is(%v, ErrNotFound) = %v, want %v", err, !tc.notFound, tc.notFound)
			}
		})
	}
	if n := posts.Load(); n != 3 {
		t.Errorf("%d POSTs reached the server, want 3: a 4xx is not retried", n)
	}
}

func TestClientResultsPages(t *testing.T) {
	t.Parallel()
	srv := clientTestServer(t, nil)
	c := newTestClient(t, testClientConfig(srv.URL, clientToken), nil)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var want []int64
	for i := range 7 {
		item := "x"
		if i%3 == 2 {
			item = "y"
		}
		r := mustCreate(t, c, Result{
			Testcase: Testcase{Name: "t"}, Outcome: "PASSED", SubmitTime: base.Add(time.Duration(i) * time.Minute),
			Data: map[string][]string{"item": {item}},
		})
		if item == "x" {
			want = append([]int64{r.ID}, want...) // newest first
		}
	}

	rs, next, err := c.Results(t.Context(), ClientQuery{Params: url.Values{"item": {"x"}}, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	got := resultIDs(rs)
	pages := 1
	for next != "" {
		if u, err := url.Parse(next); err != nil || u.Query().Get("item") != "x" {
			t.Fatalf("next = %q, want a URL with item=x", next)
		}
		if rs, next, err = c.NextResults(t.Context(), next); err != nil {
			t.Fatal(err)
		}
		got = append(got, resultIDs(rs)...)
		pages++
	}
	if !slices.Equal(got, want) || pages != 3 {
		t.Errorf("results of item=x in pages of 2 = %v in %d pages, want %v in 3", got, pages, want)
	}

	rs, next, err = c.Results(t.Context(), ClientQuery{Params: url.Values{"item": {"y"}}, Page: 1, Limit: 1})
	if err != nil || len(rs) != 1 || next != "" || rs[0].Data["item"][0] != "y" {
		t.Errorf("second page of item=y = %+v, next %q, %v; want one result, the last page", rs, next, err)
	}
}

func TestClientLatest(t *testing.T) {
	t.Parallel()
	srv := clientTestServer(t, nil)
	c := newTestClient(t, testClientConfig(srv.URL, clientToken), nil)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	add := func(i int, tc, scenario, outcome string) *Result {
		return mustCreate(t, c, Result{
			Testcase: Testcase{Name: tc}, Outcome: outcome, SubmitTime: base.Add(time.Duration(i) * time.Minute),
			Data: map[string][]string{"item": {"foo-1"}, "scenario": {scenario}},
		})
	}
	add(0, "t", "a", "FAILED")
	a := add(1, "t", "a", "PASSED")
	b := add(2, "t", "b", "FAILED")
	add(0, "t", "b", "PASSED")
	other := add(3, "u", "a", "PASSED")

	tests := []struct {
		name       string
		params     url.Values
		distinctOn []string
		want       []int64
	}{
		{"per testcase", url.Values{"item": {"foo-1"}}, nil, []int64{other.ID, b.ID}},
		{"per scenario", url.Values{"item": {"foo-1"}, "testcases": {"t"}}, []string{"scenario"}, []int64{b.ID, a.ID}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := c.Latest(t.Context(), tc.params, tc.distinctOn)
			if err != nil {
				t.Fatal(err)
			}
			got := resultIDs(rs)
			slices.Sort(got)
			slices.Sort(tc.want)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Latest = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestClientRetries(t *testing.T) {
	t.Parallel()
	var posts atomic.Int32
	srv := clientTestServer(t, counting(&posts, "POST", "/results", 2))
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := newTestClient(t, testClientConfig(srv.URL, clientToken), log)

	r := mustCreate(t, c, Result{Testcase: Testcase{Name: "t"}, Outcome: "PASSED"})
	if n := posts.Load(); n != 3 {
		t.Errorf("%d POSTs, want 3: two answered 503, then one created", n)
	}
	rs, _, err := c.Results(t.Context(), ClientQuery{})
	if err != nil || len(rs) != 1 || rs[0].ID != r.ID {
		t.Errorf("Results = %v, %v; want only result %d", resultIDs(rs), err, r.ID)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "retrying") {
		t.Errorf("log has no retry:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), clientToken) {
		t.Errorf("log holds the token:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestClientGivesUp(t *testing.T) {
	t.Parallel()
	var gets atomic.Int32
	srv := clientTestServer(t, counting(&gets, "GET", "/results/1", 1<<30))
	cfg := testClientConfig(srv.URL, "")
	cfg.RetryMax = 3
	c := newTestClient(t, cfg, nil)

	_, err := c.Result(t.Context(), 1)
	e, ok := errors.AsType[*APIError](err)
	if !ok || e.Status != http.StatusServiceUnavailable || e.Message != "try later" {
		t.Fatalf("Result on a server that always answers 503: %v, want an *APIError 503 \"try later\"", err)
	}
	if !strings.Contains(err.Error(), "after 4 attempt") || errors.Is(err, ErrNotFound) {
		t.Errorf("error %q does not say 4 attempts, or is ErrNotFound", err)
	}
	if n := gets.Load(); n != 4 {
		t.Errorf("%d GETs, want 4: RetryMax 3", n)
	}
}

// handlerTransport answers requests with a handler, in memory.
type handlerTransport struct{ h http.Handler }

func (ht handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	ht.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// TestClientBackoff checks, on a fake clock, that the waits between
// attempts follow the back-off and that a Retry-After does not stretch
// them past RetryWaitMax.
func TestClientBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		retryAfter string
		want       time.Duration
	}{
		{"exponential", "", (100 + 200 + 400) * time.Millisecond},
		{"retry-after capped", "3600", 3 * 400 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				attempts := 0
				c := newTestClient(t, ClientConfig{
					BaseURL: "http://resultsdb.test", RetryMax: 3,
					RetryWaitMin: 100 * time.Millisecond, RetryWaitMax: 400 * time.Millisecond,
				}, nil)
				c.http.HTTPClient.Transport = handlerTransport{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					attempts++
					if tc.retryAfter != "" {
						w.Header().Set("Retry-After", tc.retryAfter)
					}
					writeJSON(w, http.StatusServiceUnavailable, message{Message: "down"})
				})}
				start := time.Now()
				_, _, err := c.Results(t.Context(), ClientQuery{})
				if e, ok := errors.AsType[*APIError](err); !ok || e.Status != http.StatusServiceUnavailable {
					t.Errorf("Results = %v, want an *APIError 503", err)
				}
				if took := time.Since(start); took != tc.want || attempts != 4 {
					t.Errorf("%d attempts in %v, want 4 in %v", attempts, took, tc.want)
				}
			})
		})
	}
}

func TestClientFindBySluiceID(t *testing.T) {
	t.Parallel()
	srv := clientTestServer(t, nil)
	c := newTestClient(t, testClientConfig(srv.URL, clientToken), nil)
	r := mustCreate(t, c, Result{
		Testcase: Testcase{Name: "t"}, Outcome: "PASSED",
		Data: map[string][]string{SluiceIDKey: {"stage-42/1"}},
	})
	mustCreate(t, c, Result{
		Testcase: Testcase{Name: "t"}, Outcome: "PASSED",
		Data: map[string][]string{SluiceIDKey: {"stage-42/2"}},
	})

	got, err := c.FindBySluiceID(t.Context(), "stage-42/1")
	if err != nil || got.ID != r.ID {
		t.Errorf("FindBySluiceID(stage-42/1) = %+v, %v; want result %d", got, err, r.ID)
	}
	if _, err := c.FindBySluiceID(t.Context(), "stage-42"); !errors.Is(err, ErrNotFound) {
		t.Errorf("FindBySluiceID(stage-42) = %v, want ErrNotFound", err)
	}
	for _, id := range []string{"", "a,b"} {
		if _, err := c.FindBySluiceID(t.Context(), id); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("FindBySluiceID(%q) = %v, want an error other than ErrNotFound", id, err)
		}
	}
}

func TestNewClient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     ClientConfig
		want    string // the base URL, or "" for an error
		noLeaks string // must not be in the error
	}{
		{"host only", ClientConfig{BaseURL: "http://127.0.0.1:5001"}, "http://127.0.0.1:5001/api/v2.0/", ""},
		{"api path", ClientConfig{BaseURL: "https://rdb.example.com/api/v2.0"}, "https://rdb.example.com/api/v2.0/", ""},
		{"api path slash", ClientConfig{BaseURL: "https://rdb.example.com/api/v2.0/"}, "https://rdb.example.com/api/v2.0/", ""},
		{"mount point", ClientConfig{BaseURL: "http://h/resultsdb/"}, "http://h/resultsdb/api/v2.0/", ""},
		{"ftp", ClientConfig{BaseURL: "ftp://h/"}, "", ""},
		{"no scheme", ClientConfig{BaseURL: "rdb.example.com:5001"}, "", ""},
		{"no host", ClientConfig{BaseURL: "http:///api/v2.0/"}, "", ""},
		{"query", ClientConfig{BaseURL: "http://h/?a=b"}, "", ""},
		{"credentials", ClientConfig{BaseURL: "http://u:hunter2@h/"}, "", "hunter2"},
		{"token with space", ClientConfig{BaseURL: "http://h/", Token: "abc def"}, "", "abc def"},
		{"waits reversed", ClientConfig{BaseURL: "http://h/", RetryWaitMin: time.Second, RetryWaitMax: time.Millisecond}, "", ""},
		{"negative timeout", ClientConfig{BaseURL: "http://h/", Timeout: -1}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := NewClient(tc.cfg, nil)
			switch {
			case tc.want == "" && err == nil:
				t.Fatalf("NewClient(%+v) = %s, want an error", tc.cfg, c.base)
			case tc.want == "":
				if tc.noLeaks != "" && strings.Contains(err.Error(), tc.noLeaks) {
					t.Errorf("error %q holds the secret", err)
				}
			case err != nil:
				t.Fatal(err)
			case c.base.String() != tc.want:
				t.Errorf("base URL = %s, want %s", c.base, tc.want)
			}
		})
	}
}

func TestClientParseAnswerTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Time // zero for an error
	}{
		{"2024-05-01T10:00:00", time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)},
		{"2024-05-01T10:00:00.123000", time.Date(2024, 5, 1, 10, 0, 0, 123000000, time.UTC)},
		{"2024-05-01T10:00:00.123456", time.Date(2024, 5, 1, 10, 0, 0, 123456000, time.UTC)},
		{"2024-05-01T12:00:00.5+02:00", time.Date(2024, 5, 1, 10, 0, 0, 500000000, time.UTC)},
		{"2024-05-01T10:00:00Z", time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)},
		{"2024-05-01", time.Time{}},
		{"", time.Time{}},
	}
	for _, tc := range tests {
		got, err := parseAnswerTime(tc.in)
		if tc.want.IsZero() != (err != nil) || !got.Equal(tc.want) || (err == nil && got.Location() != time.UTC) {
			t.Errorf("parseAnswerTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// TestClientErrorBodies checks the error bodies of other servers:
// upstream's, flask-pydantic's, and a proxy's text.
func TestClientErrorBodies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		status  int
		body    string
		message string
		field   string
	}{
		{"sluice", 400, `{"message":"invalid outcome: required","field":"outcome"}`, "invalid outcome: required", "outcome"},
		{"upstream", 404, `{"message":"Result not found"}`, "Result not found", ""},
		{"pydantic", 400, `{"validation_error":{"body_params":[{"loc":["testcase","name"],"msg":"field required","type":"value_error.missing"}]}}`,
			"field required", "testcase.name"},
		{"object message", 400, `{"message":{"outcome":"bad"}}`, `{"outcome":"bad"}`, ""},
		{"text", 403, "<html>Forbidden</html>\n", "<html>Forbidden</html>", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			t.Cleanup(srv.Close)
			c := newTestClient(t, testClientConfig(srv.URL, ""), nil)
			_, err := c.Latest(t.Context(), nil, nil)
			e, ok := errors.AsType[*APIError](err)
			if !ok || e.Status != tc.status || e.Message != tc.message || e.Field != tc.field {
				t.Errorf("error = %#v, want status %d, message %q, field %q", err, tc.status, tc.message, tc.field)
			}
		})
	}
}
