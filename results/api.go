package results

// This file serves the ResultsDB v2.0 HTTP API, as upstream's
// resultsdb/controllers/api_v2.py, parsers/api_v2.py and
// serializers/api_v2.py, on a Store.
//
// Where the API differs from upstream, on purpose:
//
//   - Writes need a bearer token (see Tokens); upstream leaves that to a
//     front proxy. Reads are open.
//   - GET /api/v2.0/ answers 200, not upstream's 300 (Multiple Choices),
//     which some clients take for a redirect.
//   - A data value must be a string, a number, or a list of them; another
//     type (true, null, an object) is a 400 that names the key, where
//     upstream stores Python's str() of it ("True", "None"). A number is
//     stored as its JSON text ("1e3"), not as Python prints it ("1000.0").
//   - A query parameter key:modifier with a modifier other than "like" is
//     a 400; upstream filters on the key before the colon.
//   - since is converted to UTC when it gives an offset; upstream drops the
//     offset. A time without an offset is UTC in both.
//   - _sort other than asc:submit_time and desc:submit_time is ignored, as
//     upstream does.
//   - A group made without a uuid gets a random (version 4) UUID;
//     upstream makes a version 1 UUID, which holds the host's MAC address.
//   - Validation errors carry {"message", "field"}; upstream's messages
//     differ in wording.
//
// Testcase names may contain '/'. GET /api/v2.0/testcases/NAME/results
// answers the results of the testcase NAME, as upstream's routing does: a
// path under testcases/ whose escaped form ends in "/results" is always
// the results endpoint. A testcase whose name itself ends in "/results" is
// reached with its last slash escaped: testcases/x%2Fresults.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-ci/sluice/store"
)

// Token scopes.
const (
	// ScopeWorker may POST results.
	ScopeWorker = "worker"
	// ScopeAdmin may do everything, including POST groups and testcases.
	ScopeAdmin = "admin"
)

// MaxBodyBytes bounds the body of a POST.
const MaxBodyBytes = 1 << 20

// apiPrefix is the path under which NewAPI serves.
const apiPrefix = "/api/v2.0"

// Tokens tells the scope of a bearer token.
type Tokens interface {
	// Scope returns the scope of token, ScopeWorker or ScopeAdmin, and
	// whether token is known.
	Scope(token string) (scope string, ok bool)
}

// StaticTokens maps tokens to their scopes.
type StaticTokens map[string]string

var _ Tokens = StaticTokens(nil)

// Scope compares token with every known token in constant time, so that
// the time taken tells nothing of how much of a token matched.
func (st StaticTokens) Scope(token string) (string, bool) {
	var scope string
	found := 0
	for t, s := range st {
		if subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1 {
			scope, found = s, 1
		}
	}
	return scope, found == 1 && token != ""
}

// api serves the ResultsDB v2.0 API.
type api struct {
	s      *Store
	db     *store.DB
	tokens Tokens
	events *Events
	log    *slog.Logger
	// commits commits the POSTs of results together.
	commits *groupCommit
}

// NewAPI returns a handler of the ResultsDB v2.0 API under /api/v2.0/,
// on s, whose database is db. Writes need a bearer token that tokens
// knows. With events, whose Run the caller runs, it serves the event
// stream at /api/v2.0/events and wakes events after each result it
// stores; with nil, it has no event stream. A nil log discards.
func NewAPI(s *Store, db *store.DB, tokens Tokens, events *Events, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &api{s: s, db: db, tokens: tokens, events: events, log: log, commits: &groupCommit{db: db}}
	mux := http.NewServeMux()
	p := apiPrefix
	mux.HandleFunc("GET "+p, a.landing)
	mux.HandleFunc("GET "+p+"/{$}", a.landing)
	mux.HandleFunc("GET "+p+"/healthcheck", a.healthcheck)
	mux.HandleFunc("GET "+p+"/results", a.results)
	mux.HandleFunc("GET "+p+"/results/latest", a.latest)
	mux.HandleFunc("GET "+p+"/results/{id}", a.result)
	mux.HandleFunc("POST "+p+"/results", a.need(ScopeWorker, a.createResult))
	mux.HandleFunc("GET "+p+"/groups", a.groups)
	mux.HandleFunc("GET "+p+"/groups/{uuid}", a.group)
	mux.HandleFunc("GET "+p+"/groups/{uuid}/results", a.groupResults)
	mux.HandleFunc("POST "+p+"/groups", a.need(ScopeAdmin, a.createGroup))
	mux.HandleFunc("GET "+p+"/testcases", a.testcases)
	mux.HandleFunc("GET "+p+"/testcases/{name...}", a.testcase)
	mux.HandleFunc("POST "+p+"/testcases", a.need(ScopeAdmin, a.createTestcase))
	if events != nil {
		mux.HandleFunc("GET "+p+"/events", a.eventStream)
	}
	return jsonFallback(mux)
}

// jsonFallback answers in JSON the 404 and 405 that mux would answer in
// text.
func jsonFallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		c := &codeCatcher{header: http.Header{}}
		h.ServeHTTP(c, r)
		if allow := c.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		code := c.code
		if code < 400 {
			// A redirect of a path to its clean form: let it through.
			for k, v := range c.header {
				w.Header()[k] = v
			}
			w.WriteHeader(code)
			return
		}
		writeJSON(w, code, message{Message: http.StatusText(code)})
	})
}

// codeCatcher keeps the status and headers of a response and drops its
// body.
type codeCatcher struct {
	header http.Header
	code   int
}

func (c *codeCatcher) Header() http.Header { return c.header }
func (c *codeCatcher) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}
func (c *codeCatcher) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return len(b), nil
}

// need wraps h so that it runs only for a bearer token of scope, or of
// ScopeAdmin.
func (a *api) need(scope string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		token = strings.TrimSpace(token)
		if !ok || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="resultsdb"`)
			writeJSON(w, http.StatusUnauthorized, message{Message: "bearer token required"})
			return
		}
		got, ok := a.tokens.Scope(token)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="resultsdb", error="invalid_token"`)
			writeJSON(w, http.StatusUnauthorized, message{Message: "unknown token"})
			return
		}
		if got != scope && got != ScopeAdmin {
			writeJSON(w, http.StatusForbidden, message{Message: fmt.Sprintf("scope %q may not do this", got)})
			return
		}
		h(w, r)
	}
}

// message is the body of an error, and of the health check.
type message struct {
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"message":"cannot encode the answer"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

// fail answers err: 400 for a *ValidationError, 404 for ErrNotFound
// (saying what was not found), 413 for a body too large, and 500, logged,
// for the rest.
func (a *api) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	var verr *ValidationError
	var big *http.MaxBytesError
	switch {
	case errors.As(err, &verr):
		writeJSON(w, http.StatusBadRequest, message{
			Message: fmt.Sprintf("invalid %s: %s", verr.Field, verr.Reason), Field: verr.Field,
		})
	case errors.As(err, &big):
		writeJSON(w, http.StatusRequestEntityTooLarge, message{
			Message: fmt.Sprintf("body larger than %d bytes", big.Limit),
		})
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, message{Message: what + " not found"})
	default:
		a.log.Error("results api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusInternalServerError, message{Message: "internal error"})
	}
}

// apiBase returns the URL of the API root as the client reached it.
func apiBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + apiPrefix
}

// escapeName escapes a testcase name for a path, keeping its slashes.
func escapeName(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// pageURLs returns the URLs of the pages before and after page p of the
// request, or nil at either end, as upstream's prev_next_urls: the
// request's URL with its page parameter replaced (or added) and its
// callback parameter dropped.
func pageURLs(r *http.Request, p int, more bool) (prev, next *string) {
	var keep []string
	for part := range strings.SplitSeq(r.URL.RawQuery, "&") {
		if part == "" || strings.HasPrefix(part, "page=") || strings.HasPrefix(part, "callback=") {
			continue
		}
		keep = append(keep, part)
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	at := func(n int) *string {
		u := scheme + "://" + r.Host + r.URL.EscapedPath() + "?" +
			strings.Join(append(slices.Clone(keep), "page="+strconv.Itoa(n)), "&")
		return &u
	}
	if p > 0 {
		prev = at(p - 1)
	}
	if more {
		next = at(p + 1)
	}
	return prev, next
}

// none returns nil for "", upstream's null.
func none(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

type testcaseJSON struct {
	Name   string  `json:"name"`
	RefURL *string `json:"ref_url"`
	Href   string  `json:"href"`
}

func testcaseOut(r *http.Request, tc Testcase) testcaseJSON {
	return testcaseJSON{Name: tc.Name, RefURL: none(tc.RefURL), Href: apiBase(r) + "/testcases/" + escapeName(tc.Name)}
}

type resultJSON struct {
	ID         int64               `json:"id"`
	Groups     []string            `json:"groups"`
	Testcase   testcaseJSON        `json:"testcase"`
	SubmitTime string              `json:"submit_time"`
	Outcome    string              `json:"outcome"`
	Note       *string             `json:"note"`
	RefURL     *string             `json:"ref_url"`
	Data       map[string][]string `json:"data"`
	Href       string              `json:"href"`
}

// isoformat formats t as Python's datetime.isoformat() of a naive UTC
// time, as upstream serializes submit_time: microseconds only when there
// are any.
func isoformat(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02T15:04:05")
	}
	return t.Format("2006-01-02T15:04:05.000000")
}

func resultOut(r *http.Request, res Result) resultJSON {
	out := resultJSON{
		ID:         res.ID,
		Groups:     res.Groups,
		Testcase:   testcaseOut(r, res.Testcase),
		SubmitTime: isoformat(res.SubmitTime),
		Outcome:    res.Outcome,
		Note:       none(res.Note),
		RefURL:     none(res.RefURL),
		Data:       res.Data,
		Href:       apiBase(r) + "/results/" + strconv.FormatInt(res.ID, 10),
	}
	if out.Groups == nil {
		out.Groups = []string{}
	}
	if out.Data == nil {
		out.Data = map[string][]string{}
	}
	return out
}

func resultsOut(r *http.Request, rs []Result) []resultJSON {
	out := make([]resultJSON, len(rs))
	for i, res := range rs {
		out[i] = resultOut(r, res)
	}
	return out
}

type pageJSON struct {
	Prev *string `json:"prev"`
	Next *string `json:"next"`
	Data any     `json:"data"`
}

// --- landing and health ---

func (a *api) landing(w http.ResponseWriter, r *http.Request) {
	b := apiBase(r)
	out := map[string]any{
		"message":       "ResultsDB v2.0 API",
		"documentation": "https://github.com/release-engineering/resultsdb",
		"groups":        b + "/groups",
		"results":       b + "/results",
		"testcases":     b + "/testcases",
		"healthcheck":   b + "/healthcheck",
		"outcomes":      a.s.Outcomes(),
	}
	if a.events != nil {
		out["events"] = b + "/events"
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) healthcheck(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := a.db.Ping(ctx); err != nil {
		a.log.Warn("results api health check failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, message{Message: "Unable to communicate with database"})
		return
	}
	writeJSON(w, http.StatusOK, message{Message: "Health check OK"})
}

// --- queries ---

// queryParams parses r's query string, failing with a *ValidationError.
func queryParams(r *http.Request) (url.Values, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, invalid("query", "%v", err)
	}
	return v, nil
}

// list returns the comma-separated values of vals, trimmed, without empty
// ones, as upstream's QueryList.
func list(vals []string) []string {
	var out []string
	for _, v := range vals {
		for x := range strings.SplitSeq(v, ",") {
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		}
	}
	return out
}

func intParam(vals url.Values, key string) (int, error) {
	s := vals.Get(key)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, invalid(key, "%q is not an integer", s)
	}
	return n, nil
}

// parseSince parses since=start[,end].
func parseSince(s string) (start, end *time.Time, err error) {
	parts := strings.Split(s, ",")
	if len(parts) > 2 {
		return nil, nil, invalid("since", "%q is not start[,end]", s)
	}
	var ts []*time.Time
	for _, p := range parts {
		t, err := parseISO(strings.TrimSpace(p))
		if err != nil {
			return nil, nil, invalid("since", "%q is not in ISO 8601 format", p)
		}
		ts = append(ts, &t)
	}
	start = ts[0]
	if len(ts) == 2 {
		end = ts[1]
	}
	return start, end, nil
}

// isoLayouts are the forms of an ISO 8601 time that since accepts.
var isoLayouts = []string{
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999Z07",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02",
}

// parseISO parses an ISO 8601 time; one without an offset is UTC.
func parseISO(s string) (time.Time, error) {
	for _, l := range isoLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO 8601 time", s)
}

// reserved are the parameters of GET /results that are not data filters;
// callback and _ are JSONP's, ignored.
var reserved = []string{
	"page", "limit", "since", "outcome", "groups", "testcases", "testcases:like",
	"_sort", "_distinct_on", "callback", "_",
}

// resultQuery parses the parameters of GET /results and /results/latest.
func (a *api) resultQuery(r *http.Request) (q Query, distinctOn []string, err error) {
	vals, err := queryParams(r)
	if err != nil {
		return q, nil, err
	}
	if q.Page, err = intParam(vals, "page"); err != nil {
		return q, nil, err
	}
	if q.Limit, err = intParam(vals, "limit"); err != nil {
		return q, nil, err
	}
	if vals.Has("limit") && q.Limit == 0 {
		// Limit 0 means the default to Query; upstream returns nothing.
		return q, nil, invalid("limit", "must be positive")
	}
	if vals.Has("since") {
		if q.Since, q.Until, err = parseSince(vals.Get("since")); err != nil {
			return q, nil, err
		}
	}
	q.Outcomes = list(vals["outcome"])
	for _, o := range q.Outcomes {
		if _, err := a.s.outcome(o); err != nil {
			return q, nil, err
		}
	}
	q.Groups = list(vals["groups"])
	q.Testcases = list(vals["testcases"])
	q.TestcasesLike = list(vals["testcases:like"])
	distinctOn = list(vals["_distinct_on"])
	q.Ascending = vals.Get("_sort") == "asc:submit_time"

	var keys []string
	for k := range vals {
		if !slices.Contains(reserved, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		key, mod, hasMod := strings.Cut(k, ":")
		if hasMod && mod != "like" {
			return q, nil, invalid(k, "unknown modifier %q (want like)", mod)
		}
		// Upstream's values: each given value split on commas, untrimmed;
		// the values of a repeated key are alternatives.
		var values []string
		for _, v := range vals[k] {
			values = append(values, strings.Split(v, ",")...)
		}
		q.Data = append(q.Data, DataFilter{Key: key, Values: values, Like: hasMod})
	}
	return q, distinctOn, nil
}

func (a *api) results(w http.ResponseWriter, r *http.Request) {
	a.resultsPage(w, r, nil, nil)
}

// resultsPage answers a page of results, with the group or testcase of
// the path in place of the query's.
func (a *api) resultsPage(w http.ResponseWriter, r *http.Request, groups, testcases []string) {
	q, _, err := a.resultQuery(r)
	if err != nil {
		a.fail(w, r, "results", err)
		return
	}
	if groups != nil {
		q.Groups = groups
	}
	if testcases != nil {
		q.Testcases = testcases
	}
	rs, more, err := a.s.Results(r.Context(), q)
	if err != nil {
		a.fail(w, r, "results", err)
		return
	}
	prev, next := pageURLs(r, q.Page, more)
	writeJSON(w, http.StatusOK, pageJSON{Prev: prev, Next: next, Data: resultsOut(r, rs)})
}

func (a *api) latest(w http.ResponseWriter, r *http.Request) {
	q, distinctOn, err := a.resultQuery(r)
	if err != nil {
		a.fail(w, r, "results", err)
		return
	}
	rs, err := a.s.Latest(r.Context(), q, distinctOn)
	if err != nil {
		a.fail(w, r, "results", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": resultsOut(r, rs)})
}

func (a *api) result(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		a.fail(w, r, "Result", ErrNotFound)
		return
	}
	res, err := a.s.Result(r.Context(), id)
	if err != nil {
		a.fail(w, r, "Result", err)
		return
	}
	writeJSON(w, http.StatusOK, resultOut(r, res))
}

// --- groups ---

type groupJSON struct {
	UUID         string  `json:"uuid"`
	Description  *string `json:"description"`
	RefURL       *string `json:"ref_url"`
	Results      string  `json:"results"`
	ResultsCount int64   `json:"results_count"`
	Href         string  `json:"href"`
}

func (a *api) groupOut(ctx context.Context, r *http.Request, g Group) (groupJSON, error) {
	var n int64
	err := a.db.QueryRowContext(ctx, a.db.Rebind(`SELECT COUNT(*) FROM results_groups WHERE group_uuid = ?`), g.UUID).Scan(&n)
	if err != nil {
		return groupJSON{}, fmt.Errorf("results: group %s: count results: %w", g.UUID, err)
	}
	b := apiBase(r)
	return groupJSON{
		UUID:         g.UUID,
		Description:  none(g.Description),
		RefURL:       none(g.RefURL),
		Results:      b + "/results?groups=" + url.QueryEscape(g.UUID),
		ResultsCount: n,
		Href:         b + "/groups/" + url.PathEscape(g.UUID),
	}, nil
}

func (a *api) groups(w http.ResponseWriter, r *http.Request) {
	vals, err := queryParams(r)
	if err != nil {
		a.fail(w, r, "groups", err)
		return
	}
	var q GroupQuery
	if q.Page, err = intParam(vals, "page"); err == nil {
		q.Limit, err = intParam(vals, "limit")
	}
	if err != nil {
		a.fail(w, r, "groups", err)
		return
	}
	q.UUIDs = list(vals["uuid"])
	q.Descriptions = list(vals["description"])
	q.DescriptionsLike = list(vals["description:like"])
	gs, more, err := a.s.Groups(r.Context(), q)
	if err != nil {
		a.fail(w, r, "groups", err)
		return
	}
	out := make([]groupJSON, len(gs))
	for i, g := range gs {
		if out[i], err = a.groupOut(r.Context(), r, g); err != nil {
			a.fail(w, r, "groups", err)
			return
		}
	}
	prev, next := pageURLs(r, q.Page, more)
	writeJSON(w, http.StatusOK, pageJSON{Prev: prev, Next: next, Data: out})
}

func (a *api) group(w http.ResponseWriter, r *http.Request) {
	g, err := a.s.Group(r.Context(), r.PathValue("uuid"))
	if err != nil {
		a.fail(w, r, "Group", err)
		return
	}
	out, err := a.groupOut(r.Context(), r, g)
	if err != nil {
		a.fail(w, r, "Group", err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) groupResults(w http.ResponseWriter, r *http.Request) {
	g, err := a.s.Group(r.Context(), r.PathValue("uuid"))
	if err != nil {
		a.fail(w, r, "Group", err)
		return
	}
	a.resultsPage(w, r, []string{g.UUID}, nil)
}

// --- testcases ---

func (a *api) testcases(w http.ResponseWriter, r *http.Request) {
	vals, err := queryParams(r)
	if err != nil {
		a.fail(w, r, "testcases", err)
		return
	}
	var q TestcaseQuery
	if q.Page, err = intParam(vals, "page"); err == nil {
		q.Limit, err = intParam(vals, "limit")
	}
	if err != nil {
		a.fail(w, r, "testcases", err)
		return
	}
	q.Names = list(vals["name"])
	q.NamesLike = list(vals["name:like"])
	tcs, more, err := a.s.Testcases(r.Context(), q)
	if err != nil {
		a.fail(w, r, "testcases", err)
		return
	}
	out := make([]testcaseJSON, len(tcs))
	for i, tc := range tcs {
		out[i] = testcaseOut(r, tc)
	}
	prev, next := pageURLs(r, q.Page, more)
	writeJSON(w, http.StatusOK, pageJSON{Prev: prev, Next: next, Data: out})
}

// testcase answers GET testcases/{name...}: the testcase, or, when the
// escaped path ends in "/results", the results of the testcase before it.
func (a *api) testcase(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	escaped := strings.TrimPrefix(r.URL.EscapedPath(), apiPrefix+"/testcases/")
	if before, ok := strings.CutSuffix(escaped, "/results"); ok && before != "" {
		n, err := url.PathUnescape(before)
		if err != nil {
			a.fail(w, r, "Testcase", ErrNotFound)
			return
		}
		tc, err := a.s.Testcase(r.Context(), n)
		if err != nil {
			a.fail(w, r, "Testcase", err)
			return
		}
		a.resultsPage(w, r, nil, []string{tc.Name})
		return
	}
	if name == "" {
		a.fail(w, r, "Testcase", ErrNotFound)
		return
	}
	tc, err := a.s.Testcase(r.Context(), name)
	if err != nil {
		a.fail(w, r, "Testcase", err)
		return
	}
	writeJSON(w, http.StatusOK, testcaseOut(r, tc))
}

// --- writes ---

// decodeBody decodes r's JSON body, of at most MaxBodyBytes, into v.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var big *http.MaxBytesError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &big):
			return err
		case errors.As(err, &typ) && typ.Field != "":
			return invalid(typ.Field, "want a JSON %s, got %s", typ.Type.Kind(), typ.Value)
		case errors.Is(err, io.EOF):
			return invalid("body", "empty; want a JSON object")
		}
		return invalid("body", "not a JSON object: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var big *http.MaxBytesError
		if errors.As(err, &big) {
			return err
		}
		return invalid("body", "more than one JSON value")
	}
	return nil
}

// isNull reports whether raw is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

type resultBody struct {
	Outcome    *string         `json:"outcome"`
	Testcase   json.RawMessage `json:"testcase"`
	Groups     json.RawMessage `json:"groups"`
	Note       *string         `json:"note"`
	RefURL     *string         `json:"ref_url"`
	Data       json.RawMessage `json:"data"`
	SubmitTime json.RawMessage `json:"submit_time"`
}

// groupBody is a group of POST groups, and one given as an object in POST
// results.
type groupBody struct {
	UUID        *string `json:"uuid"`
	Description *string `json:"description"`
	RefURL      *string `json:"ref_url"`
}

// parseResult turns the body of POST results into a Result and the groups
// given as objects.
func parseResult(b resultBody) (Result, []groupBody, error) {
	var res Result
	if b.Outcome == nil || strings.TrimSpace(*b.Outcome) == "" {
		return res, nil, invalid("outcome", "required")
	}
	res.Outcome = *b.Outcome
	if b.Note != nil {
		res.Note = *b.Note
	}
	if b.RefURL != nil {
		res.RefURL = *b.RefURL
	}

	if isNull(b.Testcase) {
		return res, nil, invalid("testcase", "required")
	}
	if err := json.Unmarshal(b.Testcase, &res.Testcase.Name); err != nil {
		var tc struct {
			Name   *string `json:"name"`
			RefURL *string `json:"ref_url"`
		}
		if err := json.Unmarshal(b.Testcase, &tc); err != nil {
			return res, nil, invalid("testcase", "want a name or an object {name, ref_url}")
		}
		if tc.Name == nil {
			return res, nil, invalid("testcase.name", "required")
		}
		res.Testcase.Name = *tc.Name
		if tc.RefURL != nil {
			res.Testcase.RefURL = *tc.RefURL
		}
	}
	if res.Testcase.Name == "" {
		return res, nil, invalid("testcase.name", "empty")
	}

	var objects []groupBody
	if !isNull(b.Groups) {
		var gs []json.RawMessage
		if err := json.Unmarshal(b.Groups, &gs); err != nil {
			return res, nil, invalid("groups", "want a list")
		}
		for i, raw := range gs {
			var u string
			if err := json.Unmarshal(raw, &u); err == nil {
				res.Groups = append(res.Groups, u)
				continue
			}
			var g groupBody
			if err := json.Unmarshal(raw, &g); err != nil || isNull(raw) {
				return res, nil, invalid("groups", "item %d: want a uuid or an object {uuid, description, ref_url}", i)
			}
			if g.UUID == nil {
				u := newUUID()
				g.UUID = &u
			}
			res.Groups = append(res.Groups, *g.UUID)
			objects = append(objects, g)
		}
	}
	for _, g := range res.Groups {
		if g == "" || len(g) > maxGroupUUID {
			return res, nil, invalid("groups", "uuid %q is not 1 to %d bytes", g, maxGroupUUID)
		}
	}

	if !isNull(b.Data) {
		var data map[string]json.RawMessage
		if err := json.Unmarshal(b.Data, &data); err != nil {
			return res, nil, invalid("data", "want an object")
		}
		res.Data = make(map[string][]string, len(data))
		for k, raw := range data {
			vs, err := dataValues(raw)
			if err != nil {
				return res, nil, invalid("data", "key %q: %v", k, err)
			}
			res.Data[k] = vs
		}
	}

	if !isNull(b.SubmitTime) {
		t, err := parseSubmitTime(b.SubmitTime)
		if err != nil {
			return res, nil, invalid("submit_time", "%v", err)
		}
		res.SubmitTime = t
	}
	return res, objects, nil
}

// dataValues returns the values of a data key: a string, a number, or a
// list of them.
func dataValues(raw json.RawMessage) ([]string, error) {
	scalar := func(raw json.RawMessage) (string, bool) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return "", false
		}
		switch v := v.(type) {
		case string:
			return v, true
		case json.Number:
			return v.String(), true
		}
		return "", false
	}
	if s, ok := scalar(raw); ok {
		return []string{s}, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("value %s is not a string, a number or a list of them", raw)
	}
	vs := make([]string, 0, len(list))
	for _, item := range list {
		s, ok := scalar(item)
		if !ok {
			return nil, fmt.Errorf("list item %s is not a string or a number", item)
		}
		vs = append(vs, s)
	}
	return vs, nil
}

// submitLayouts are upstream's forms of a submit time as text
// (%Y-%m-%dT%H:%M:%S.%f followed by "Z", nothing, %z or "+00").
var submitLayouts = []string{
	"2006-01-02T15:04:05.999999Z07:00",
	"2006-01-02T15:04:05.999999Z0700",
	"2006-01-02T15:04:05.999999Z07",
	"2006-01-02T15:04:05.999999",
}

// parseSubmitTime parses milliseconds since the epoch (a number or a
// string of digits) or an ISO 8601 time with fractional seconds; one
// without an offset is UTC.
func parseSubmitTime(raw json.RawMessage) (time.Time, error) {
	var n json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return time.Time{}, err
	}
	switch v := v.(type) {
	case json.Number:
		n = v
	case string:
		if _, err := strconv.ParseInt(v, 10, 64); err == nil {
			n = json.Number(v)
			break
		}
		if date, rest, ok := strings.Cut(v, "."); ok && strings.Contains(date, "T") && rest != "" {
			for _, l := range submitLayouts {
				if t, err := time.Parse(l, v); err == nil {
					return t.UTC(), nil
				}
			}
		}
		return time.Time{}, fmt.Errorf("%q is neither milliseconds nor YYYY-MM-DDTHH:MM:SS.ffffff", v)
	default:
		return time.Time{}, fmt.Errorf("%s is neither milliseconds nor YYYY-MM-DDTHH:MM:SS.ffffff", raw)
	}
	if ms, err := n.Int64(); err == nil {
		if ms > maxTime.UnixMilli() || ms < minTime.UnixMilli() {
			return time.Time{}, fmt.Errorf("%d milliseconds is out of range", ms)
		}
		return time.UnixMilli(ms).UTC(), nil
	}
	f, err := n.Float64()
	if err != nil || f > float64(maxTime.UnixMilli()) || f < float64(minTime.UnixMilli()) {
		return time.Time{}, fmt.Errorf("%s milliseconds is out of range", n)
	}
	return time.UnixMilli(int64(f)).UTC(), nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// upsertGroup creates g in tx when missing and sets the description and
// ref_url it gives.
func (a *api) upsertGroup(ctx context.Context, tx *sql.Tx, g groupBody) error {
	if _, err := tx.ExecContext(ctx, a.db.Rebind(
		`INSERT INTO groups (uuid, created_at) VALUES (?, ?) ON CONFLICT (uuid) DO NOTHING`),
		*g.UUID, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("results: create group %s: %w", *g.UUID, err)
	}
	if g.Description != nil {
		if _, err := tx.ExecContext(ctx, a.db.Rebind(`UPDATE groups SET description = ? WHERE uuid = ?`),
			*g.Description, *g.UUID); err != nil {
			return fmt.Errorf("results: group %s: set description: %w", *g.UUID, err)
		}
	}
	if g.RefURL != nil {
		if _, err := tx.ExecContext(ctx, a.db.Rebind(`UPDATE groups SET ref_url = ? WHERE uuid = ?`),
			*g.RefURL, *g.UUID); err != nil {
			return fmt.Errorf("results: group %s: set ref_url: %w", *g.UUID, err)
		}
	}
	return nil
}

func (a *api) createResult(w http.ResponseWriter, r *http.Request) {
	var b resultBody
	if err := decodeBody(w, r, &b); err != nil {
		a.fail(w, r, "result", err)
		return
	}
	parsed, objects, err := parseResult(b)
	if err != nil {
		a.fail(w, r, "result", err)
		return
	}
	ctx := r.Context()
	var res Result
	err = a.commits.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for _, g := range objects {
			if err := a.upsertGroup(ctx, tx, g); err != nil {
				return err
			}
		}
		res = parsed // Create fills it in; a retried transaction starts afresh.
		if err := a.s.Create(ctx, tx, &res); err != nil {
			return err
		}
		// The answer is the result as GET returns it: the testcase's
		// ref_url is the stored one, which this result may not set.
		return tx.QueryRowContext(ctx, a.db.Rebind(`SELECT ref_url FROM testcases WHERE name = ?`), res.Testcase.Name).
			Scan(&res.Testcase.RefURL)
	})
	if err != nil {
		a.fail(w, r, "result", err)
		return
	}
	if a.events != nil {
		a.events.Notify()
	}
	// As stored: groups sorted once each, data keys with values.
	res.Groups = slices.Compact(slices.Sorted(slices.Values(res.Groups)))
	maps.DeleteFunc(res.Data, func(_ string, vs []string) bool { return len(vs) == 0 })
	a.log.Info("result created", "id", res.ID, "testcase", res.Testcase.Name, "outcome", res.Outcome)
	writeJSON(w, http.StatusCreated, resultOut(r, res))
}

func (a *api) createGroup(w http.ResponseWriter, r *http.Request) {
	var g groupBody
	if err := decodeBody(w, r, &g); err != nil {
		a.fail(w, r, "group", err)
		return
	}
	if g.UUID == nil || *g.UUID == "" {
		u := newUUID()
		g.UUID = &u
	}
	if len(*g.UUID) > maxGroupUUID {
		a.fail(w, r, "group", invalid("uuid", "longer than %d bytes", maxGroupUUID))
		return
	}
	// As upstream, an empty description or ref_url leaves the group's.
	if g.Description != nil && *g.Description == "" {
		g.Description = nil
	}
	if g.RefURL != nil && *g.RefURL == "" {
		g.RefURL = nil
	}
	ctx := r.Context()
	if err := a.db.Tx(ctx, func(tx *sql.Tx) error { return a.upsertGroup(ctx, tx, g) }); err != nil {
		a.fail(w, r, "group", err)
		return
	}
	got, err := a.s.Group(ctx, *g.UUID)
	if err != nil {
		a.fail(w, r, "Group", err)
		return
	}
	out, err := a.groupOut(ctx, r, got)
	if err != nil {
		a.fail(w, r, "Group", err)
		return
	}
	a.log.Info("group created", "uuid", got.UUID)
	writeJSON(w, http.StatusCreated, out)
}

func (a *api) createTestcase(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Name   *string `json:"name"`
		RefURL *string `json:"ref_url"`
	}
	if err := decodeBody(w, r, &b); err != nil {
		a.fail(w, r, "testcase", err)
		return
	}
	switch {
	case b.Name == nil || *b.Name == "":
		a.fail(w, r, "testcase", invalid("name", "required"))
		return
	case len(*b.Name) > maxTestcaseName:
		a.fail(w, r, "testcase", invalid("name", "longer than %d bytes", maxTestcaseName))
		return
	}
	ctx := r.Context()
	err := a.db.Tx(ctx, func(tx *sql.Tx) error {
		// As upstream, a ref_url given, even empty, replaces the
		// testcase's; none leaves it.
		q, args := `INSERT INTO testcases (name) VALUES (?) ON CONFLICT (name) DO NOTHING`, []any{*b.Name}
		if b.RefURL != nil {
			q = `INSERT INTO testcases (name, ref_url) VALUES (?, ?)
				ON CONFLICT (name) DO UPDATE SET ref_url = excluded.ref_url`
			args = append(args, *b.RefURL)
		}
		if _, err := tx.ExecContext(ctx, a.db.Rebind(q), args...); err != nil {
			return fmt.Errorf("results: create testcase %q: %w", *b.Name, err)
		}
		return nil
	})
	if err != nil {
		a.fail(w, r, "testcase", err)
		return
	}
	tc, err := a.s.Testcase(ctx, *b.Name)
	if err != nil {
		a.fail(w, r, "Testcase", err)
		return
	}
	a.log.Info("testcase created", "testcase", tc.Name)
	writeJSON(w, http.StatusCreated, testcaseOut(r, tc))
}
