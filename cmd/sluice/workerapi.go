package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/sluice-ci/sluice/results"
)

// workerHosts parses the allowlist of worker hosts: CIDR prefixes or
// addresses; loopback when empty.
func workerHosts(list []string) ([]netip.Prefix, error) {
	if len(list) == 0 {
		return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}, nil
	}
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q: not an address or a CIDR prefix", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// failureReport is the body of POST /response/failure, as the RefStack
// Gearman tester's report_failure sends it.
type failureReport struct {
	Payload json.RawMessage `json:"payload"`
	TestID  *string         `json:"test_id"`
}

// runKeyRE is a stage run's key: buildset/stage/attempt.
var runKeyRE = regexp.MustCompile(`^([0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12})/([A-Za-z0-9][A-Za-z0-9._-]*)/([1-9][0-9]{0,3})$`)

// failureHandler serves POST /response/failure (and /api/v1/...): a
// worker's report that a run failed under it. Only a host on allow with a
// worker (or admin) token may report (405 otherwise, as RefStack answers);
// a body without a test_id that names a run, or with no payload, is a 400.
// An accepted report is recorded as a sluice.worker.failure result of the
// run's buildset and marks the run failed (fail), and is answered 202.
func failureHandler(tokens results.Tokens, allow []netip.Prefix, fail func(ctx context.Context, key, reason string) bool,
	record func(ctx context.Context, r *results.Result) error, log *slog.Logger) http.Handler {
	refuse := func(w http.ResponseWriter, code int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]string{"message": msg})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		addr, perr := netip.ParseAddr(host)
		allowed := false
		if err == nil && perr == nil {
			for _, p := range allow {
				if p.Contains(addr.Unmap()) {
					allowed = true
				}
			}
		}
		token, hasToken := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		scope, known := tokens.Scope(strings.TrimSpace(token))
		if !allowed || !hasToken || !known || (scope != results.ScopeWorker && scope != results.ScopeAdmin) {
			log.Warn("worker report refused", "remote", r.RemoteAddr, "allowed_host", allowed, "token", hasToken && known)
			refuse(w, http.StatusMethodNotAllowed, "reports are taken from known workers only")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, results.MaxBodyBytes))
		if err != nil {
			refuse(w, http.StatusBadRequest, "body: "+err.Error())
			return
		}
		var rep failureReport
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rep); err != nil {
			refuse(w, http.StatusBadRequest, "body: not a JSON object of payload and test_id: "+err.Error())
			return
		}
		if rep.TestID == nil || len(rep.Payload) == 0 || string(rep.Payload) == "null" {
			refuse(w, http.StatusBadRequest, "payload and test_id are required")
			return
		}
		m := runKeyRE.FindStringSubmatch(*rep.TestID)
		if m == nil {
			refuse(w, http.StatusBadRequest, "test_id: not a stage run (BUILDSET/STAGE/ATTEMPT)")
			return
		}
		payload := string(rep.Payload)
		if len(payload) > 4000 {
			payload = payload[:4000]
		}
		res := &results.Result{Testcase: results.Testcase{Name: "sluice.worker.failure"}, Outcome: "FAILED", Groups: []string{m[1]},
			Note: "a worker reported the run failed", Data: map[string][]string{
				"buildset": {m[1]}, "stage": {m[2]}, "attempt": {m[3]}, "host": {addr.String()}, "payload": {strings.ToValidUTF8(payload, "?")},
				"reported_at": {time.Now().UTC().Format(time.RFC3339)}}}
		if err := record(r.Context(), res); err != nil {
			log.Error("worker report not recorded", "run", *rep.TestID, "err", err)
			refuse(w, http.StatusServiceUnavailable, "not recorded")
			return
		}
		underWay := fail(r.Context(), *rep.TestID, "a worker reported the run failed: "+payload)
		log.Warn("worker reported a run failed", "run", *rep.TestID, "host", addr.String(), "under_way", underWay)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(map[string]string{"test_id": *rep.TestID, "run": map[bool]string{true: "failed", false: "not under way"}[underWay]})
	})
}
