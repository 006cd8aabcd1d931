package results

// This file is a client of the ResultsDB v2.0 HTTP API: of NewAPI, and of
// upstream's resultsdb (resultsdb/controllers/api_v2.py), so it reads
// answers as upstream writes them (a submit_time without an offset, with
// microseconds) and takes its errors in either form.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/sluice-ci/sluice/internal/retryhttp"
)

// Defaults of a ClientConfig.
const (
	DefaultClientTimeout = 30 * time.Second
	DefaultRetryMax      = 4
	DefaultRetryWaitMin  = 1 * time.Second
	DefaultRetryWaitMax  = 30 * time.Second
)

// SluiceIDKey is the data key that carries a result's stable sluice id,
// the key of [Client.FindBySluiceID].
const SluiceIDKey = "sluice_id"

// Bounds of the answers read: a page of results, and an error.
const (
	maxAnswerBytes = 64 << 20
	maxErrorBytes  = 64 << 10
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// BaseURL is the root of the API, such as
	// http://127.0.0.1:5001/api/v2.0/; "/api/v2.0/" is added when the
	// path does not end with it. It may not hold credentials.
	BaseURL string
	// Token is sent as a bearer token; writes need one, reads do not.
	Token string
	// Timeout bounds each attempt of a request; 0 means
	// DefaultClientTimeout. The context bounds the request as a whole.
	Timeout time.Duration
	// RetryMax is how many times a request is retried: 0 means
	// DefaultRetryMax, a negative number never.
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the exponential back-off
	// between attempts, and a server's Retry-After; 0 means
	// DefaultRetryWaitMin and DefaultRetryWaitMax.
	RetryWaitMin, RetryWaitMax time.Duration
}

// ClientQuery is a query of GET results.
type ClientQuery struct {
	// Params are the API's query parameters, passed as they are:
	// testcases, testcases:like, outcome, groups, since, _sort, and data
	// filters (item=foo, scenario:like=x*).
	Params url.Values
	// Page (from 0) and Limit, when positive, replace Params' page and
	// limit.
	Page, Limit int
}

// APIError is an answer of a ResultsDB that is not a success: a 4xx,
// which is never retried, or the last answer of a request whose retries
// ran out.
type APIError struct {
	Status int
	// Message is the server's message, or the start of its body when that
	// is not JSON.
	Message string
	// Field names the offending field of a 400, when the server says.
	Field string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "resultsdb: status %d", e.Status)
	if t := http.StatusText(e.Status); t != "" {
		b.WriteString(" " + t)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Field != "" {
		b.WriteString(" (field " + e.Field + ")")
	}
	return b.String()
}

// Client speaks the ResultsDB v2.0 API to a ResultsDB, sluice's or
// upstream's.
//
// A request is retried, with exponential back-off, after a connection
// error, a 5xx other than 501, or a 429; a 4xx is not, and comes back as
// an *[APIError]. POST is retried too, so a POST whose answer was lost
// (the connection dropped, a proxy timed out) may create the result
// twice. Callers that must not duplicate give each result a stable
// [SluiceIDKey] data value and, before posting again, ask
// [Client.FindBySluiceID] whether the earlier attempt landed.
//
// The results it returns carry the submit time the server gives, in UTC:
// to the millisecond from sluice's, to the microsecond from upstream's.
type Client struct {
	base  *url.URL
	name  string // base, for errors
	token string
	http  *retryablehttp.Client
}

// NewClient returns a Client of cfg; a nil log discards. The log gets the
// client's attempts and retries, never its headers, and so never the
// token.
func NewClient(cfg ClientConfig, log *slog.Logger) (*Client, error) {
	base, err := clientBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if strings.ContainsAny(cfg.Token, " \t\r\n") {
		return nil, errors.New("results: client: token contains white space")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rc, err := retryhttp.New(retryhttp.Config{Timeout: cfg.Timeout, RetryMax: cfg.RetryMax, RetryWaitMin: cfg.RetryWaitMin, RetryWaitMax: cfg.RetryWaitMax},
		retryhttp.Options{
			Name:        "results: client",
			Defaults:    retryhttp.Config{Timeout: DefaultClientTimeout, RetryMax: DefaultRetryMax, RetryWaitMin: DefaultRetryWaitMin, RetryWaitMax: DefaultRetryWaitMax},
			AnswerError: func(resp *http.Response) error { return answerError(resp) },
		}, log.With("resultsdb", base.String()))
	if err != nil {
		return nil, err
	}
	return &Client{base: base, name: base.String(), token: cfg.Token, http: rc}, nil
}

// clientBaseURL checks s and returns it ending in /api/v2.0/.
func clientBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("results: client: base URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("results: client: base URL %q: scheme is not http or https", s)
	case u.Host == "":
		return nil, fmt.Errorf("results: client: base URL %q: no host", s)
	case u.User != nil:
		// Said without the URL, which holds a secret.
		return nil, errors.New("results: client: base URL holds credentials; give a token instead")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("results: client: base URL %q: has a query or fragment", s)
	}
	p := strings.TrimRight(u.Path, "/")
	if !strings.HasSuffix(p, apiPrefix) {
		p += apiPrefix
	}
	u.Path, u.RawPath = p+"/", ""
	return u, nil
}

// answerError reads the error that resp, not a success, carries: sluice's
// {"message", "field"}, upstream's {"message"} or flask-pydantic's
// {"validation_error": {...}}, or text.
func answerError(resp *http.Response) *APIError {
	e := &APIError{Status: resp.StatusCode}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	var body struct {
		Message         json.RawMessage `json:"message"`
		Field           string          `json:"field"`
		ValidationError map[string][]struct {
			Loc []any  `json:"loc"`
			Msg string `json:"msg"`
		} `json:"validation_error"`
	}
	if json.Unmarshal(raw, &body) != nil {
		e.Message = strings.ToValidUTF8(strings.TrimSpace(string(raw[:min(len(raw), 200)])), "?")
		return e
	}
	e.Field = body.Field
	if err := json.Unmarshal(body.Message, &e.Message); err != nil && len(body.Message) > 0 {
		e.Message = string(body.Message)
	}
	for _, items := range body.ValidationError {
		if len(items) == 0 || e.Message != "" {
			continue
		}
		loc := make([]string, len(items[0].Loc))
		for i, l := range items[0].Loc {
			loc[i] = fmt.Sprint(l)
		}
		e.Message, e.Field = items[0].Msg, strings.Join(loc, ".")
	}
	return e
}

// do sends a request to the endpoint under the base URL and decodes a
// 2xx answer into out.
func (c *Client) do(ctx context.Context, method, endpoint string, query url.Values, body []byte, out any) error {
	u := c.base.JoinPath(endpoint)
	u.RawQuery = query.Encode()
	var raw any // a nil []byte would be a body
	if body != nil {
		raw = body
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, u.String(), raw)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "sluice")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return answerError(resp)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswerBytes)).Decode(out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// wireResult is a result as the API answers it.
type wireResult struct {
	ID       int64    `json:"id"`
	Groups   []string `json:"groups"`
	Testcase struct {
		Name   string  `json:"name"`
		RefURL *string `json:"ref_url"`
	} `json:"testcase"`
	SubmitTime string              `json:"submit_time"`
	Outcome    string              `json:"outcome"`
	Note       *string             `json:"note"`
	RefURL     *string             `json:"ref_url"`
	Data       map[string][]string `json:"data"`
}

func (w wireResult) result() (Result, error) {
	t, err := parseAnswerTime(w.SubmitTime)
	if err != nil {
		return Result{}, fmt.Errorf("result %d: submit_time: %w", w.ID, err)
	}
	r := Result{
		ID:         w.ID,
		Testcase:   Testcase{Name: w.Testcase.Name, RefURL: deref(w.Testcase.RefURL)},
		SubmitTime: t,
		Outcome:    w.Outcome,
		Note:       deref(w.Note),
		RefURL:     deref(w.RefURL),
		Data:       w.Data,
	}
	if len(w.Groups) > 0 {
		r.Groups = w.Groups
	}
	if r.Data == nil {
		r.Data = map[string][]string{}
	}
	return r, nil
}

func wireResults(ws []wireResult) ([]Result, error) {
	rs := make([]Result, len(ws))
	for i, w := range ws {
		var err error
		if rs[i], err = w.result(); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// parseAnswerTime parses a submit_time as upstream writes it, Python's
// isoformat() of a naive UTC time ("2024-05-01T10:00:00.123456", the
// fraction only when not zero), or with an offset.
func parseAnswerTime(s string) (time.Time, error) {
	// A fraction after the seconds is parsed though the layouts lack it.
	for _, l := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04:05Z07:00"} {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO 8601 time", s)
}

// createBody is the body of POST results.
type createBody struct {
	Testcase   createTestcase      `json:"testcase"`
	Groups     []string            `json:"groups,omitempty"`
	Outcome    string              `json:"outcome"`
	Note       string              `json:"note,omitempty"`
	RefURL     string              `json:"ref_url,omitempty"`
	Data       map[string][]string `json:"data,omitempty"`
	SubmitTime *int64              `json:"submit_time,omitempty"`
}

type createTestcase struct {
	Name string `json:"name"`
	// Left out when empty: a ref_url given replaces the testcase's.
	RefURL string `json:"ref_url,omitempty"`
}

// Create posts r, with its testcase, groups (by UUID, made when missing),
// data and, when set, submit time, and returns the result created. See
// [Client] on retries and duplicates.
func (c *Client) Create(ctx context.Context, r *Result) (*Result, error) {
	b := createBody{
		Testcase: createTestcase{Name: r.Testcase.Name, RefURL: r.Testcase.RefURL},
		Groups:   r.Groups,
		Outcome:  r.Outcome,
		Note:     r.Note,
		RefURL:   r.RefURL,
		Data:     r.Data,
	}
	if !r.SubmitTime.IsZero() {
		ms := r.SubmitTime.UnixMilli()
		b.SubmitTime = &ms
	}
	body, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("resultsdb %s: create result of %q: %w", c.name, r.Testcase.Name, err)
	}
	var w wireResult
	if err := c.do(ctx, http.MethodPost, "results", nil, body, &w); err != nil {
		return nil, fmt.Errorf("resultsdb %s: create result of %q: %w", c.name, r.Testcase.Name, err)
	}
	got, err := w.result()
	if err != nil {
		return nil, fmt.Errorf("resultsdb %s: create result of %q: %w", c.name, r.Testcase.Name, err)
	}
	return &got, nil
}

// Result returns the result id; an error wrapping [ErrNotFound], and an
// *[APIError], when the server answers 404.
func (c *Client) Result(ctx context.Context, id int64) (*Result, error) {
	var w wireResult
	err := c.do(ctx, http.MethodGet, "results/"+strconv.FormatInt(id, 10), nil, nil, &w)
	if e, ok := errors.AsType[*APIError](err); ok && e.Status == http.StatusNotFound {
		return nil, fmt.Errorf("resultsdb %s: result %d: %w (%w)", c.name, id, ErrNotFound, err)
	}
	if err != nil {
		return nil, fmt.Errorf("resultsdb %s: result %d: %w", c.name, id, err)
	}
	r, err := w.result()
	if err != nil {
		return nil, fmt.Errorf("resultsdb %s: result %d: %w", c.name, id, err)
	}
	return &r, nil
}

// Results returns a page of the results that q selects, newest first
// unless q says otherwise, and the URL of the next page, "" on the last.
// [Client.NextResults] follows it.
func (c *Client) Results(ctx context.Context, q ClientQuery) ([]Result, string, error) {
	v := url.Values{}
	for k, vs := range q.Params {
		v[k] = append([]string(nil), vs...)
	}
	if q.Page > 0 {
		v.Set("page", strconv.Itoa(q.Page))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return c.resultsPage(ctx, v)
}

// NextResults returns the page of results at next, a URL that Results
// or NextResults returned, and the URL of the page after it. Only the
// query of next is used, on c's base URL: a server behind a proxy may
// give its own address, and the token goes to c's server alone.
func (c *Client) NextResults(ctx context.Context, next string) ([]Result, string, error) {
	u, err := url.Parse(next)
	if err != nil || next == "" {
		return nil, "", fmt.Errorf("resultsdb %s: results: next page %q is not a URL", c.name, next)
	}
	v, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, "", fmt.Errorf("resultsdb %s: results: next page %q: %w", c.name, next, err)
	}
	return c.resultsPage(ctx, v)
}

func (c *Client) resultsPage(ctx context.Context, v url.Values) ([]Result, string, error) {
	var page struct {
		Next *string      `json:"next"`
		Data []wireResult `json:"data"`
	}
	if err := c.do(ctx, http.MethodGet, "results", v, nil, &page); err != nil {
		return nil, "", fmt.Errorf("resultsdb %s: results: %w", c.name, err)
	}
	rs, err := wireResults(page.Data)
	if err != nil {
		return nil, "", fmt.Errorf("resultsdb %s: results: %w", c.name, err)
	}
	return rs, deref(page.Next), nil
}

// Latest returns the newest result of each testcase (and of each
// combination of the values of the distinctOn data keys) among those
// that params select, as GET results/latest.
func (c *Client) Latest(ctx context.Context, params url.Values, distinctOn []string) ([]Result, error) {
	v := url.Values{}
	for k, vs := range params {
		v[k] = append([]string(nil), vs...)
	}
	if len(distinctOn) > 0 {
		v.Set("_distinct_on", strings.Join(distinctOn, ","))
	}
	var answer struct {
		Data []wireResult `json:"data"`
	}
	if err := c.do(ctx, http.MethodGet, "results/latest", v, nil, &answer); err != nil {
		return nil, fmt.Errorf("resultsdb %s: latest results: %w", c.name, err)
	}
	rs, err := wireResults(answer.Data)
	if err != nil {
		return nil, fmt.Errorf("resultsdb %s: latest results: %w", c.name, err)
	}
	return rs, nil
}

// FindBySluiceID returns the newest result whose [SluiceIDKey] data value
// is id, or an error wrapping [ErrNotFound] when there is none. An id may
// not contain a comma, which the API reads as "or".
func (c *Client) FindBySluiceID(ctx context.Context, id string) (*Result, error) {
	if id == "" || strings.Contains(id, ",") {
		return nil, fmt.Errorf("resultsdb %s: find %s %q: empty or has a comma", c.name, SluiceIDKey, id)
	}
	rs, _, err := c.Results(ctx, ClientQuery{Params: url.Values{SluiceIDKey: {id}}, Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("resultsdb %s: find %s %q: %w", c.name, SluiceIDKey, id, err)
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("resultsdb %s: find %s %q: %w", c.name, SluiceIDKey, id, ErrNotFound)
	}
	return &rs[0], nil
}
