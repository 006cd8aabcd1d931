package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-ci/sluice/results"
)

// TestFailureReports: POST /response/failure takes a worker's report from
// an allowed host with a worker token (202, recorded, the run failed);
// a body without its fields is a 400; an unknown host or token a 405.
func TestFailureReports(t *testing.T) {
	t.Parallel()
	tokens := results.StaticTokens{"worker-token-0123456789": results.ScopeWorker, "admin-token-0123456789ab": results.ScopeAdmin}
	allow, err := workerHosts([]string{"10.1.0.0/16", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var recorded []*results.Result
	var failed []string
	h := failureHandler(tokens, allow,
		func(_ context.Context, key, reason string) bool {
			mu.Lock()
			defer mu.Unlock()
			failed = append(failed, key)
			return key == "0123456789abcdef0123456789abcdef/install/1"
		},
		func(_ context.Context, r *results.Result) error {
			mu.Lock()
			defer mu.Unlock()
			recorded = append(recorded, r)
			return nil
		}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	mux := http.NewServeMux()
	mux.Handle("POST /response/failure", h)
	mux.Handle("POST /api/v1/response/failure", h)
	const run = "0123456789abcdef0123456789abcdef/install/1"
	cases := []struct {
		name, path, remote, token, body string
		want                            int
	}{
		{"accepted", "/response/failure", "10.1.2.3:4000", "worker-token-0123456789", `{"payload": {"log": "disk full"}, "test_id": "` + run + `"}`, 202},
		{"accepted v1", "/api/v1/response/failure", "127.0.0.1:4000", "admin-token-0123456789ab", `{"payload": "oom", "test_id": "` + run + `"}`, 202},
		{"not under way", "/response/failure", "10.1.2.3:4000", "worker-token-0123456789", `{"payload": "x", "test_id": "0123456789abcdef0123456789abcdef/systest/2"}`, 202},
		{"no test_id", "/response/failure", "10.1.2.3:4000", "worker-token-0123456789", `{"payload": "x"}`, 400},
		{"no payload", "/response/failure", "10.1.2.3:4000", "worker-token-0123456789", `{"test_id": "` + run + `"}`, 400},
		{"null payload", "/response/failure", "10.1.2.3:4000", "worker-token-0123456789", `{"payload": null, "test_id": "` + run + `"}`, 400},
		{"test_id not a run", "/response/failure", "10.1.2.3:4000", "worker-token-0123456789", `{"payload": "x", "test_id": "../../etc"}`, 400},
		{"test_id a number", "/response/failure", "10.1.2.3:4000", "worker-token-0123456789", `{"payload": "x", "test_id": 7}`, 400},
		{"not JSON", "/response/failure", "10.1.2.3:4000", "worker-token-0123456789", `payload=x`, 400},
		{"unknown field", "/response/failure", "10.1.2.3:4000", "worker-token-0123456789", `{"payload": "x", "test_id": "` + run + `", "x": 1}`, 400},
		{"host not allowed", "/response/failure", "10.2.0.1:4000", "worker-token-0123456789", `{"payload": "x", "test_id": "` + run + `"}`, 405},
		{"no token", "/response/failure", "10.1.2.3:4000", "", `{"payload": "x", "test_id": "` + run + `"}`, 405},
		{"bad token", "/response/failure", "10.1.2.3:4000", "worker-token-0123456788", `{"payload": "x", "test_id": "` + run + `"}`, 405},
	}
	for _, tc := range cases {
		req := httptest.NewRequest("POST", tc.path, strings.NewReader(tc.body))
		req.RemoteAddr = tc.remote
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, rec.Code, rec.Body, tc.want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(recorded) != 3 || len(failed) != 3 || failed[0] != run {
		t.Fatalf("recorded %d, failed %v; want the 3 accepted", len(recorded), failed)
	}
	r := recorded[0]
	if r.Testcase.Name != "sluice.worker.failure" || r.Outcome != "FAILED" || r.Groups[0] != "0123456789abcdef0123456789abcdef" ||
		r.Data["stage"][0] != "install" || r.Data["host"][0] != "10.1.2.3" || !strings.Contains(r.Data["payload"][0], "disk full") {
		t.Errorf("result %+v", r)
	}
	if _, err := workerHosts([]string{"10.0.0.0/33"}); err == nil {
		t.Error("a bad prefix was accepted")
	}
}
