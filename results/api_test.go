package results

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-ci/sluice/internal/pgtest"
	"github.com/sluice-ci/sluice/store"
)

// Tokens of the API tests.
const (
	workerToken = "worker-secret"
	adminToken  = "admin-secret"
)

// apiServer is an API, with its event stream running, on an empty
// store.
type apiServer struct {
	t      *testing.T
	srv    *httptest.Server
	h      http.Handler
	dsn    string
	db     *store.DB
	s      *Store
	events *Events
	// stopEvents ends the event stream's Run and waits for it.
	stopEvents func()
}

// apiDatabases makes a fresh database for a test, by the dialect its name
// says (TestAPI/sqlite/... or TestAPI/postgres/...).
var apiDatabases sync.Map // "TestAPI/<dialect>" → func(*testing.T) string

// TestAPI runs every API test on SQLite and on PostgreSQL.
func TestAPI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"CreateResult", testAPICreateResult},
		{"ResultNullsAndDefaults", testAPIResultNullsAndDefaults},
		{"SubmitTime", testAPISubmitTime},
		{"GroupsInResults", testAPIGroupsInResults},
		{"DataValues", testAPIDataValues},
		{"Validation", testAPIValidation},
		{"Auth", testAPIAuth},
		{"CreateGroupsAndTestcases", testAPICreateGroupsAndTestcases},
		{"GetMissing", testAPIGetMissing},
		{"Pagination", testAPIPagination},
		{"Filters", testAPIFilters},
		{"Latest", testAPILatest},
		{"GroupAndTestcaseResults", testAPIGroupAndTestcaseResults},
		{"Healthcheck", testAPIHealthcheck},
		{"BodyTooLarge", testAPIBodyTooLarge},
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

// newAPIServer serves the API on a fresh database of the dialect of the
// test's parent (see apiDatabases); tune, when given, sets the event
// stream up before its Run starts.
func newAPIServer(t *testing.T, tune ...func(*Events)) *apiServer {
	t.Helper()
	parent := t.Name()
	if i := strings.LastIndex(parent, "/"); i >= 0 {
		parent = parent[:i]
	}
	fresh, ok := apiDatabases.Load(parent)
	if !ok {
		t.Fatalf("%s: not run from TestAPI or TestEvents", t.Name())
	}
	dsn := fresh.(func(*testing.T) string)(t)
	db, err := store.Open(t.Context(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := NewStore(db, Config{})
	events := NewEvents(s, nil)
	for _, f := range tune {
		f(events)
	}
	h := NewAPI(s, db, StaticTokens{workerToken: ScopeWorker, adminToken: ScopeAdmin}, events, nil)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	// Registered after srv.Close, so it runs first: Close waits for the
	// streams, which end with Run.
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- events.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-ran; err != nil {
				t.Errorf("events.Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &apiServer{t: t, srv: srv, h: h, dsn: dsn, db: db, s: s, events: events, stopEvents: stop}
}

// prefix is the API root as the tests' requests reach it.
func (a *apiServer) prefix() string { return a.srv.URL + apiPrefix }

// do sends a request with body (marshalled unless a string) and token,
// and returns the status and the decoded JSON answer.
func (a *apiServer) do(method, path string, body any, token string) (int, map[string]any) {
	a.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(a.t.Context(), method, a.prefix()+path, r)
	if err != nil {
		a.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.srv.Client().Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		a.t.Fatalf("%s %s: %d, not a JSON object: %q", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func (a *apiServer) get(path string) (int, map[string]any) { return a.do("GET", path, nil, "") }

// post creates a result as a worker and fails the test unless it is
// created.
func (a *apiServer) post(body map[string]any) map[string]any {
	a.t.Helper()
	code, out := a.do("POST", "/results", body, workerToken)
	if code != http.StatusCreated {
		a.t.Fatalf("POST results %v: %d %v", body, code, out)
	}
	return out
}

// ms is the submit time of the i-th test result, in milliseconds: a
// second apart, so that order never depends on the clock.
func ms(i int) int64 { return at(i).UnixMilli() }

// data returns the "data" list of an answer.
func data(t *testing.T, out map[string]any) []any {
	t.Helper()
	d, ok := out["data"].([]any)
	if !ok {
		t.Fatalf("no data list in %v", out)
	}
	return d
}

// ids returns the ids of the results of an answer's data.
func apiIDs(t *testing.T, out map[string]any) []int {
	t.Helper()
	var got []int
	for _, r := range data(t, out) {
		got = append(got, int(r.(map[string]any)["id"].(float64)))
	}
	return got
}

func wantList(t *testing.T, what string, out map[string]any, want ...int) {
	t.Helper()
	if got := apiIDs(t, out); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: ids %v, want %v", what, got, want)
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func testAPICreateResult(t *testing.T) {
	a := newAPIServer(t)
	out := a.post(map[string]any{
		"outcome":  "passed",
		"testcase": map[string]any{"name": "scratch.testing.mytestcase", "ref_url": "http://example.com/tc"},
		"groups":   []any{"3ce5f6d7-ce34-489b-ab61-325ce634eab5"},
		"note":     "Result Note",
		"ref_url":  "http://example.com/result",
		"data": map[string]any{
			"item": "perl-Specio-0.25-1.fc26", "type": "koji_build", "moo": []any{"boo", "woof"},
		},
		"submit_time": ms(0),
	})
	p := a.prefix()
	want := map[string]any{
		"id":     1.0,
		"groups": []any{"3ce5f6d7-ce34-489b-ab61-325ce634eab5"},
		"testcase": map[string]any{
			"name": "scratch.testing.mytestcase", "ref_url": "http://example.com/tc",
			"href": p + "/testcases/scratch.testing.mytestcase",
		},
		"submit_time": "2024-05-01T12:00:00",
		"outcome":     "PASSED",
		"note":        "Result Note",
		"ref_url":     "http://example.com/result",
		"data": map[string]any{
			"item": []any{"perl-Specio-0.25-1.fc26"}, "type": []any{"koji_build"}, "moo": []any{"boo", "woof"},
		},
		"href": p + "/results/1",
	}
	if jsonOf(out) != jsonOf(want) {
		t.Errorf("POST results:\n got %s\nwant %s", jsonOf(out), jsonOf(want))
	}
	code, got := a.get("/results/1")
	if code != http.StatusOK || jsonOf(got) != jsonOf(want) {
		t.Errorf("GET results/1: %d %s", code, jsonOf(got))
	}
}

func testAPIResultNullsAndDefaults(t *testing.T) {
	a := newAPIServer(t)
	out := a.post(map[string]any{"outcome": "FAILED", "testcase": "tc", "groups": nil})
	if out["note"] != nil || out["ref_url"] != nil || out["testcase"].(map[string]any)["ref_url"] != nil {
		t.Errorf("empty fields are not null: %v", out)
	}
	if jsonOf(out["groups"]) != "[]" || jsonOf(out["data"]) != "{}" {
		t.Errorf("groups %v, data %v; want [] and {}", out["groups"], out["data"])
	}
}

func testAPISubmitTime(t *testing.T) {
	a := newAPIServer(t)
	for _, tc := range []struct {
		name string
		in   any
		want string
	}{
		{"milliseconds", ms(0) + 123, "2024-05-01T12:00:00.123000"},
		{"numeric string", fmt.Sprint(ms(1)), "2024-05-01T12:00:01"},
		{"naive", "2024-05-01T12:00:02.5", "2024-05-01T12:00:02.500000"},
		{"Z", "2024-05-01T12:00:03.000001Z", "2024-05-01T12:00:03"}, // kept to the millisecond
		{"offset", "2024-05-01T14:00:04.250+02:00", "2024-05-01T12:00:04.250000"},
	} {
		out := a.post(map[string]any{"outcome": "PASSED", "testcase": "tc", "submit_time": tc.in})
		if out["submit_time"] != tc.want {
			t.Errorf("%s: submit_time %v, want %s", tc.name, out["submit_time"], tc.want)
		}
	}
	code, out := a.do("POST", "/results", map[string]any{"outcome": "PASSED", "testcase": "tc", "submit_time": "yesterday"}, workerToken)
	if code != http.StatusBadRequest || out["field"] != "submit_time" {
		t.Errorf("bad submit_time: %d %v", code, out)
	}
}

func testAPIGroupsInResults(t *testing.T) {
	a := newAPIServer(t)
	out := a.post(map[string]any{"outcome": "PASSED", "testcase": "tc", "groups": []any{
		"1c26effb-7c07-4d90-9428-86aac053288c",
		map[string]any{"uuid": "3ce5f6d7-ce34-489b-ab61-325ce634eab5", "description": "Testing Group", "ref_url": "http://example.com/g"},
		map[string]any{"description": "generated"},
	}})
	gs := out["groups"].([]any)
	if len(gs) != 3 {
		t.Fatalf("groups %v, want 3", gs)
	}
	code, g := a.get("/groups/3ce5f6d7-ce34-489b-ab61-325ce634eab5")
	p := a.prefix()
	want := map[string]any{
		"uuid": "3ce5f6d7-ce34-489b-ab61-325ce634eab5", "description": "Testing Group", "ref_url": "http://example.com/g",
		"results":       p + "/results?groups=3ce5f6d7-ce34-489b-ab61-325ce634eab5",
		"results_count": 1.0,
		"href":          p + "/groups/3ce5f6d7-ce34-489b-ab61-325ce634eab5",
	}
	if code != http.StatusOK || jsonOf(g) != jsonOf(want) {
		t.Errorf("GET group: %d\n got %s\nwant %s", code, jsonOf(g), jsonOf(want))
	}
	code, g = a.get("/groups/1c26effb-7c07-4d90-9428-86aac053288c")
	if code != http.StatusOK || g["description"] != nil || g["ref_url"] != nil {
		t.Errorf("group by uuid: %d %v", code, g)
	}
	code, list := a.get("/groups?description=generated")
	if code != http.StatusOK || len(data(t, list)) != 1 || len(data(t, list)[0].(map[string]any)["uuid"].(string)) != 36 {
		t.Errorf("generated group: %d %v", code, list)
	}
}

func testAPIDataValues(t *testing.T) {
	a := newAPIServer(t)
	out := a.post(map[string]any{"outcome": "PASSED", "testcase": "tc", "data": map[string]any{
		"s": "x", "n": 1, "f": 1.5, "l": []any{"a", 2},
	}})
	want := `{"f":["1.5"],"l":["a","2"],"n":["1"],"s":["x"]}`
	if got := jsonOf(out["data"]); got != want {
		t.Errorf("data %s, want %s", got, want)
	}
}

func testAPIValidation(t *testing.T) {
	a := newAPIServer(t)
	for _, tc := range []struct {
		name  string
		body  any
		field string
	}{
		{"bad outcome", map[string]any{"outcome": "FAKEOUTCOME", "testcase": "tc"}, "outcome"},
		{"no outcome", map[string]any{"testcase": "tc"}, "outcome"},
		{"no testcase", map[string]any{"outcome": "PASSED"}, "testcase"},
		{"empty testcase", map[string]any{"outcome": "PASSED", "testcase": ""}, "testcase.name"},
		{"testcase without name", map[string]any{"outcome": "PASSED", "testcase": map[string]any{"ref_url": "x"}}, "testcase.name"},
		{"colon in key", map[string]any{"outcome": "PASSED", "testcase": "tc", "data": map[string]any{"validkey": 1, "invalid:key": 2}}, "data"},
		{"bool value", map[string]any{"outcome": "PASSED", "testcase": "tc", "data": map[string]any{"flag": true}}, "data"},
		{"object value", map[string]any{"outcome": "PASSED", "testcase": "tc", "data": map[string]any{"o": map[string]any{}}}, "data"},
		{"outcome not a string", map[string]any{"outcome": 1, "testcase": "tc"}, "outcome"},
		{"not JSON", "{", "body"},
	} {
		code, out := a.do("POST", "/results", tc.body, workerToken)
		if code != http.StatusBadRequest || out["field"] != tc.field {
			t.Errorf("%s: %d %v, want 400 naming %s", tc.name, code, out, tc.field)
		}
	}
	_, out := a.do("POST", "/results", map[string]any{"outcome": "PASSED", "testcase": "tc", "data": map[string]any{"flag": true}}, workerToken)
	if !strings.Contains(out["message"].(string), `"flag"`) {
		t.Errorf("message %q does not name the key", out["message"])
	}
	if code, out := a.get("/results"); code != http.StatusOK || len(data(t, out)) != 0 {
		t.Errorf("invalid results were stored: %v", out)
	}
}

func testAPIAuth(t *testing.T) {
	a := newAPIServer(t)
	result := map[string]any{"outcome": "PASSED", "testcase": "tc"}
	for _, tc := range []struct {
		name, path, token string
		body              any
		want              int
	}{
		{"result without token", "/results", "", result, http.StatusUnauthorized},
		{"result with unknown token", "/results", "nope", result, http.StatusUnauthorized},
		{"result as worker", "/results", workerToken, result, http.StatusCreated},
		{"result as admin", "/results", adminToken, result, http.StatusCreated},
		{"group as worker", "/groups", workerToken, map[string]any{}, http.StatusForbidden},
		{"group without token", "/groups", "", map[string]any{}, http.StatusUnauthorized},
		{"group as admin", "/groups", adminToken, map[string]any{}, http.StatusCreated},
		{"testcase as worker", "/testcases", workerToken, map[string]any{"name": "x"}, http.StatusForbidden},
		{"testcase as admin", "/testcases", adminToken, map[string]any{"name": "x"}, http.StatusCreated},
	} {
		if code, out := a.do("POST", tc.path, tc.body, tc.token); code != tc.want {
			t.Errorf("%s: %d %v, want %d", tc.name, code, out, tc.want)
		}
	}
}

func TestStaticTokens(t *testing.T) {
	t.Parallel()
	st := StaticTokens{"a": ScopeAdmin, "w": ScopeWorker}
	for tok, want := range map[string]string{"a": ScopeAdmin, "w": ScopeWorker, "": "", "aa": ""} {
		got, ok := st.Scope(tok)
		if got != want || ok != (want != "") {
			t.Errorf("Scope(%q) = %q, %v; want %q", tok, got, ok, want)
		}
	}
}

func testAPICreateGroupsAndTestcases(t *testing.T) {
	a := newAPIServer(t)
	p := a.prefix()
	code, g := a.do("POST", "/groups", map[string]any{"uuid": "g1", "description": "Testing Group", "ref_url": "u"}, adminToken)
	if code != http.StatusCreated || g["description"] != "Testing Group" || g["results_count"] != 0.0 || g["href"] != p+"/groups/g1" {
		t.Errorf("POST groups: %d %v", code, g)
	}
	code, g = a.do("POST", "/groups", map[string]any{"uuid": "g1", "description": "Changed"}, adminToken)
	if code != http.StatusCreated || g["description"] != "Changed" || g["ref_url"] != "u" {
		t.Errorf("update group: %d %v", code, g)
	}
	code, g = a.do("POST", "/groups", map[string]any{}, adminToken)
	if code != http.StatusCreated || len(g["uuid"].(string)) != 36 || g["description"] != nil {
		t.Errorf("POST empty group: %d %v", code, g)
	}
	code, tc := a.do("POST", "/testcases", map[string]any{"name": "a.b", "ref_url": "r"}, adminToken)
	want := map[string]any{"name": "a.b", "ref_url": "r", "href": p + "/testcases/a.b"}
	if code != http.StatusCreated || jsonOf(tc) != jsonOf(want) {
		t.Errorf("POST testcases: %d %v", code, tc)
	}
	if code, out := a.do("POST", "/testcases", map[string]any{"ref_url": "r"}, adminToken); code != http.StatusBadRequest || out["field"] != "name" {
		t.Errorf("testcase without name: %d %v", code, out)
	}
	if code, out := a.get("/testcases?name:like=*.*"); code != http.StatusOK || len(data(t, out)) != 1 {
		t.Errorf("testcases name:like: %d %v", code, out)
	}
	if code, out := a.get("/groups/missing"); code != http.StatusNotFound || out["message"] == "" {
		t.Errorf("missing group: %d %v", code, out)
	}
}

func testAPIGetMissing(t *testing.T) {
	a := newAPIServer(t)
	for _, path := range []string{"/results/1", "/results/x", "/testcases/nope", "/testcases/nope/results", "/groups/nope/results", "/nowhere"} {
		if code, _ := a.get(path); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
	if code, _ := a.do("DELETE", "/results/1", nil, adminToken); code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE results/1: %d, want 405", code)
	}
}

func testAPIPagination(t *testing.T) {
	a := newAPIServer(t)
	for i := range 5 {
		a.post(map[string]any{"outcome": "PASSED", "testcase": "tc", "submit_time": ms(i)})
	}
	p := a.prefix()
	_, out := a.get("/results?limit=2")
	wantList(t, "page 0", out, 5, 4)
	if out["prev"] != nil || out["next"] != p+"/results?limit=2&page=1" {
		t.Errorf("page 0 links: %v %v", out["prev"], out["next"])
	}
	_, out = a.get("/results?page=1&limit=2&callback=x")
	wantList(t, "page 1", out, 3, 2)
	if out["prev"] != p+"/results?limit=2&page=0" || out["next"] != p+"/results?limit=2&page=2" {
		t.Errorf("page 1 links: %v %v", out["prev"], out["next"])
	}
	_, out = a.get("/results?limit=2&page=2")
	wantList(t, "page 2", out, 1)
	if out["next"] != nil {
		t.Errorf("last page next: %v", out["next"])
	}
	for _, q := range []string{"page=-1", "limit=x", "page=x"} {
		if code, _ := a.get("/results?" + q); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, code)
		}
	}
}

func testAPIFilters(t *testing.T) {
	a := newAPIServer(t)
	a.post(map[string]any{"outcome": "PASSED", "testcase": "dist.rpmlint", "groups": []any{"g1"}, "submit_time": ms(0),
		"data": map[string]any{"item": "foo-1.0", "type": "koji_build", "moo": []any{"boo", "woof"}}})
	a.post(map[string]any{"outcome": "FAILED", "testcase": "dist.depcheck", "groups": []any{"g2"}, "submit_time": ms(1),
		"data": map[string]any{"item": "bar-2.0", "type": "bodhi_update"}})
	a.post(map[string]any{"outcome": "INFO", "testcase": "other", "submit_time": ms(2),
		"data": map[string]any{"item": "foo-1.0", "type": "bodhi_update"}})
	since := url.QueryEscape(at(1).Format("2006-01-02T15:04:05"))
	until := url.QueryEscape(at(1).Format("2006-01-02T15:04:05Z07:00"))
	for _, tc := range []struct {
		query string
		want  []int
	}{
		{"outcome=PASSED", []int{1}},
		{"outcome=passed,FAILED", []int{2, 1}},
		{"since=" + since, []int{3, 2}},
		{"since=" + since + "," + until, []int{2}},
		{"groups=g1,g2", []int{2, 1}},
		{"testcases=dist.rpmlint,other", []int{3, 1}},
		{"testcases:like=dist.*", []int{2, 1}},
		{"item=foo-1.0", []int{3, 1}},
		{"type=koji_build,bodhi_update", []int{3, 2, 1}},
		{"item:like=*-1.*", []int{3, 1}},
		{"moo:like=*fake*,*oo*", []int{1}},
		{"item=foo-1.0&type=bodhi_update", []int{3}},
		{"item=foo-1.0&moo=boo,fake", []int{1}},
		{"item=nothing", nil},
		{"_sort=asc:submit_time", []int{1, 2, 3}},
		{"_sort=desc:submit_time", []int{3, 2, 1}},
		{"_distinct_on=item", []int{3, 2, 1}}, // ignored by /results, as upstream
	} {
		code, out := a.get("/results?" + tc.query)
		if code != http.StatusOK {
			t.Errorf("%s: %d %v", tc.query, code, out)
			continue
		}
		wantList(t, tc.query, out, tc.want...)
	}
	for _, q := range []string{"outcome=FAKE", "since=yesterday", "item:unlike=x"} {
		if code, _ := a.get("/results?" + q); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, code)
		}
	}
}

func testAPILatest(t *testing.T) {
	a := newAPIServer(t)
	a.post(map[string]any{"outcome": "PASSED", "testcase": "tc", "submit_time": ms(0), "data": map[string]any{"scenario": "s1"}})
	a.post(map[string]any{"outcome": "FAILED", "testcase": "tc", "submit_time": ms(1), "data": map[string]any{"scenario": "s2"}})
	a.post(map[string]any{"outcome": "PASSED", "testcase": "tc.1", "submit_time": ms(2), "groups": []any{"g"}})
	code, out := a.get("/results/latest")
	if code != http.StatusOK || out["prev"] != nil {
		t.Errorf("latest: %d %v", code, out)
	}
	wantList(t, "latest", out, 3, 2)
	_, out = a.get("/results/latest?testcases=tc")
	wantList(t, "latest of tc", out, 2)
	_, out = a.get("/results/latest?testcases=tc&_distinct_on=scenario")
	wantList(t, "distinct on scenario", out, 2, 1)
	if code, out := a.get("/results/latest?_distinct_on=scenario"); code != http.StatusBadRequest || out["field"] != "_distinct_on" {
		t.Errorf("_distinct_on alone: %d %v", code, out)
	}
}

func testAPIGroupAndTestcaseResults(t *testing.T) {
	a := newAPIServer(t)
	a.post(map[string]any{"outcome": "PASSED", "testcase": "fedora/ci/tier0", "groups": []any{"g1"}, "submit_time": ms(0)})
	a.post(map[string]any{"outcome": "PASSED", "testcase": "fedora/ci", "groups": []any{"g2"}, "submit_time": ms(1)})
	a.post(map[string]any{"outcome": "PASSED", "testcase": "x/results", "submit_time": ms(2)})
	p := a.prefix()

	code, out := a.get("/groups/g1/results")
	if code != http.StatusOK {
		t.Fatalf("group results: %d %v", code, out)
	}
	wantList(t, "groups/g1/results", out, 1)
	_, byQuery := a.get("/results?groups=g1")
	if jsonOf(byQuery["data"]) != jsonOf(out["data"]) {
		t.Errorf("groups/g1/results and results?groups=g1 differ")
	}

	code, tc := a.get("/testcases/fedora/ci/tier0")
	if code != http.StatusOK || tc["name"] != "fedora/ci/tier0" || tc["href"] != p+"/testcases/fedora/ci/tier0" {
		t.Errorf("testcase with slashes: %d %v", code, tc)
	}
	_, out = a.get("/testcases/fedora/ci/tier0/results")
	wantList(t, "fedora/ci/tier0/results", out, 1)
	_, out = a.get("/testcases/fedora/ci/results")
	wantList(t, "fedora/ci/results", out, 2)
	// A name that ends in "/results" is reached with its slash escaped.
	code, tc = a.get("/testcases/x%2Fresults")
	if code != http.StatusOK || tc["name"] != "x/results" {
		t.Errorf("testcase x/results: %d %v", code, tc)
	}
	_, out = a.get("/testcases/x%2Fresults/results")
	wantList(t, "x/results results", out, 3)
}

func testAPIHealthcheck(t *testing.T) {
	a := newAPIServer(t)
	if code, out := a.get("/healthcheck"); code != http.StatusOK || out["message"] != "Health check OK" {
		t.Errorf("healthcheck: %d %v", code, out)
	}
	if code, out := a.get("/"); code != http.StatusOK || len(out["outcomes"].([]any)) == 0 {
		t.Errorf("landing: %d %v", code, out)
	}
	a.db.Close()
	if code, _ := a.get("/healthcheck"); code != http.StatusServiceUnavailable {
		t.Errorf("healthcheck of a closed database: %d, want 503", code)
	}
}

func testAPIBodyTooLarge(t *testing.T) {
	a := newAPIServer(t)
	body := `{"outcome": "PASSED", "testcase": "tc", "note": "` + strings.Repeat("x", MaxBodyBytes) + `"}`
	if code, out := a.do("POST", "/results", body, workerToken); code != http.StatusRequestEntityTooLarge {
		t.Errorf("large body: %d %v, want 413", code, out)
	}
}
