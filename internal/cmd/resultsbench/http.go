package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-ci/sluice/results"
	"github.com/sluice-ci/sluice/store"
)

// workerToken is the bearer token the clients POST with.
const workerToken = "resultsbench-worker-0123456789abcdef"

// server is the ResultsDB API on a loopback port, as `sluice serve` runs
// it.
type server struct {
	base string // http://127.0.0.1:PORT/api/v2.0
	srv  *http.Server
	done chan error
}

func startServer(db *store.DB, log *slog.Logger) (*server, error) {
	api := results.NewAPI(results.NewStore(db, results.Config{}), db, results.StaticTokens{workerToken: results.ScopeWorker}, nil, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &server{
		base: "http://" + ln.Addr().String() + "/api/v2.0",
		// The timeouts of cmd/sluice's serve.
		srv: &http.Server{
			Handler:           api,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       time.Minute,
			WriteTimeout:      time.Minute,
			IdleTimeout:       2 * time.Minute,
		},
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

func (s *server) stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// newClient returns an HTTP client that keeps a connection per concurrent
// caller.
func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: time.Minute,
		Transport: &http.Transport{
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     time.Minute,
		},
	}
}

// postBody is a POST /results body, as a ResultsDB client sends it.
type postBody struct {
	Testcase struct {
		Name   string `json:"name"`
		RefURL string `json:"ref_url"`
	} `json:"testcase"`
	Outcome string            `json:"outcome"`
	RefURL  string            `json:"ref_url"`
	Groups  []string          `json:"groups"`
	Data    map[string]string `json:"data"`
}

func body(r result) ([]byte, error) {
	var b postBody
	b.Testcase.Name, b.Testcase.RefURL = r.testcase, r.testcaseURL
	b.Outcome, b.RefURL, b.Groups = r.outcome, r.refURL, []string{r.group}
	b.Data = make(map[string]string, len(r.data))
	for _, kv := range r.data {
		b.Data[kv[0]] = kv[1]
	}
	return json.Marshal(b)
}

// ingestStats is what the timed part of an ingest measured.
type ingestStats struct {
	posted  int // answered 201 Created
	failed  int // answered another status: refused, not stored
	elapsed time.Duration
	latency []time.Duration // of the POSTs answered 201
	// firstFailure is the first answer that was not 201.
	firstFailure string
}

// errRefused says that the server answered a POST with a status other
// than 201 Created.
var errRefused = errors.New("refused")

// ingest has clients POST the results of new buildsets, from buildset
// firstBuildset on, each client a buildset at a time, until d has passed;
// a client finishes the request it is in. A POST answered with another
// status than 201 Created is counted as failed; one that gets no answer
// ends the ingest with an error. It returns the stats and the next unused
// buildset.
func ingest(ctx context.Context, base string, clients int, d time.Duration, items, firstBuildset int, seed uint64) (ingestStats, int, error) {
	hc := newClient(clients)
	defer hc.CloseIdleConnections()
	next := atomic.Int64{}
	next.Store(int64(firstBuildset))
	var mu sync.Mutex
	var st ingestStats
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, clients)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			g := newGen(items, seed+uint64(c))
			var lat []time.Duration
			var failed int
			var failure string
			defer func() {
				mu.Lock()
				st.posted += len(lat)
				st.latency = append(st.latency, lat...)
				st.failed += failed
				if st.firstFailure == "" {
					st.firstFailure = failure
				}
				mu.Unlock()
			}()
			for time.Now().Before(deadline) {
				b := int(next.Add(1) - 1)
				for _, r := range g.buildset(b, time.Time{}) {
					if !time.Now().Before(deadline) {
						return
					}
					payload, err := body(r)
					if err != nil {
						errs <- err
						cancel()
						return
					}
					t0 := time.Now()
					err = post(ctx, hc, base+"/results", payload)
					switch {
					case errors.Is(err, errRefused):
						failed++
						if failure == "" {
							failure = err.Error()
						}
					case err != nil:
						errs <- err
						cancel()
						return
					default:
						lat = append(lat, time.Since(t0))
					}
				}
			}
		})
	}
	wg.Wait()
	st.elapsed = time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return st, 0, err
	}
	return st, int(next.Load()), nil
}

func post(ctx context.Context, hc *http.Client, u string, payload []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+workerToken)
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("POST results: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("POST results: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST results: %w: %s: %s", errRefused, resp.Status, bytes.TrimSpace(answer))
	}
	return nil
}

// latestQuery is one kind of GET /results/latest request.
type latestQuery struct {
	name string
	// next returns the query string of a request and a check of its
	// answer.
	next func() (query string, check func(rs []answer) error)
}

// answer is the part of a result in a GET answer that the checks read.
type answer struct {
	ID       int64 `json:"id"`
	Testcase struct {
		Name string `json:"name"`
	} `json:"testcase"`
	Data map[string][]string `json:"data"`
}

// queryStats is what the timed requests of a query measured.
type queryStats struct {
	name     string
	latency  []time.Duration
	returned int // results in all answers
}

// timeQueries sends warm untimed requests of q, then n timed ones, one at
// a time, and checks every answer.
func timeQueries(ctx context.Context, base string, q latestQuery, warm, n int) (queryStats, error) {
	hc := newClient(1)
	defer hc.CloseIdleConnections()
	st := queryStats{name: q.name}
	for i := range warm + n {
		query, check := q.next()
		t0 := time.Now()
		resp, err := get(ctx, hc, base+"/results/latest?"+query)
		d := time.Since(t0)
		if err != nil {
			return st, err
		}
		var out struct {
			Data []answer `json:"data"`
		}
		if err := json.Unmarshal(resp, &out); err != nil {
			return st, fmt.Errorf("GET results/latest?%s: %w", query, err)
		}
		if err := check(out.Data); err != nil {
			return st, fmt.Errorf("GET results/latest?%s: %w", query, err)
		}
		if i >= warm {
			st.latency = append(st.latency, d)
			st.returned += len(out.Data)
		}
	}
	return st, nil
}

func get(ctx context.Context, hc *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// itemQuery asks for the latest results of a random item: one per
// testcase, as every item has results of every stage.
func itemQuery(g *gen) latestQuery {
	return latestQuery{name: "latest?item=X", next: func() (string, func([]answer) error) {
		k := g.rng.IntN(g.items)
		x := item(k)
		return "item=" + url.QueryEscape(x), func(rs []answer) error {
			seen := map[string]bool{}
			for _, r := range rs {
				if !slices.Equal(r.Data["item"], []string{x}) {
					return fmt.Errorf("result %d is of item %q", r.ID, r.Data["item"])
				}
				if seen[r.Testcase.Name] {
					return fmt.Errorf("two results of testcase %s", r.Testcase.Name)
				}
				seen[r.Testcase.Name] = true
			}
			for _, s := range stages {
				if !seen[s] {
					return fmt.Errorf("no result of %s for %s", s, x)
				}
			}
			return nil
		}
	}}
}

// greenwaveTypes and greenwaveDistinct are what Greenwave asks with.
var (
	greenwaveTypes    = []string{"koji_build", "brew-build"}
	greenwaveDistinct = []string{"scenario", "system_architecture", "system_variant"}
)

// greenwaveQuery asks what Greenwave asks for one required testcase of a
// decision about a build: a random Koji or Brew build, and a stage (always
// there) or a system test (there when one of the build's buildsets ran it)
// with even odds.
func greenwaveQuery(g *gen) latestQuery {
	return latestQuery{name: "greenwave latest", next: func() (string, func([]answer) error) {
		k := g.rng.IntN(g.items)
		for !slices.Contains(greenwaveTypes, itemType(k)) {
			k = g.rng.IntN(g.items)
		}
		x := item(k)
		tc := stages[g.rng.IntN(len(stages))]
		if g.rng.IntN(2) == 1 {
			tc = "sluice.systest." + scenarios[g.rng.IntN(len(scenarios))]
		}
		q := url.Values{
			"item":         {x},
			"type":         {strings.Join(greenwaveTypes, ",")},
			"_distinct_on": {strings.Join(greenwaveDistinct, ",")},
			"testcases":    {tc},
		}
		return q.Encode(), func(rs []answer) error {
			if len(rs) > 1 {
				return fmt.Errorf("%d results, want at most one (no result has the distinct-on keys but scenario, and that is fixed by the testcase)", len(rs))
			}
			if len(rs) == 0 && slices.Contains(stages, tc) {
				return fmt.Errorf("no result of %s for %s", tc, x)
			}
			for _, r := range rs {
				if r.Testcase.Name != tc || !slices.Equal(r.Data["item"], []string{x}) || !slices.Equal(r.Data["type"], []string{itemType(k)}) {
					return fmt.Errorf("result %d is of %s, item %q, type %q", r.ID, r.Testcase.Name, r.Data["item"], r.Data["type"])
				}
			}
			return nil
		}
	}}
}
