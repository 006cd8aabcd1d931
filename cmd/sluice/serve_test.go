package main

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/builder"
	"github.com/sluice-ci/sluice/results"
	"github.com/sluice-ci/sluice/store"
)

func TestParseTokens(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		n        int
		ok       bool
	}{
		{"good", "# comment\nci:worker:0123456789abcdef0123\n\nme:admin:fedcba9876543210fedc\n", 2, true},
		{"short-token", "ci:worker:short\n", 0, false},
		{"bad-scope", "ci:root:0123456789abcdef0123\n", 0, false},
		{"dup-name", "a:worker:0123456789abcdef0123\na:admin:0123456789abcdef9999\n", 0, false},
		{"dup-token", "a:worker:0123456789abcdef0123\nb:admin:0123456789abcdef0123\n", 0, false},
		{"no-colons", "just a line\n", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			toks, err := parseTokens(strings.NewReader(tc.in))
			if (err == nil) != tc.ok || len(toks) != tc.n {
				t.Fatalf("parseTokens: %d tokens, err %v; want %d, ok=%v", len(toks), err, tc.n, tc.ok)
			}
			if err != nil && strings.Contains(err.Error(), "0123456789abcdef") {
				t.Fatalf("an error shows a token: %v", err)
			}
		})
	}
}

func FuzzParseTokens(f *testing.F) {
	f.Add("ci:worker:0123456789abcdef0123\n")
	f.Add("# x\n\na:admin:" + strings.Repeat("z", 40) + "\n")
	f.Fuzz(func(t *testing.T, in string) {
		toks, err := parseTokens(strings.NewReader(in))
		if err != nil {
			return
		}
		for tok, scope := range toks {
			if len(tok) < 16 || (scope != "worker" && scope != "admin") {
				t.Fatalf("accepted %q:%q", tok, scope)
			}
		}
	})
}

// TestServe runs `sluice serve` on a free loopback port: the generated
// admin token writes a result, reads are open, and the server stops with
// its context.
func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	data := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		root := newRoot(slog.New(slog.NewTextHandler(io.Discard, nil)))
		root.SetArgs([]string{"serve", "--listen", addr, "--data-dir", data})
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		done <- root.ExecuteContext(ctx)
	}()
	base := "http://" + addr + "/api/v2.0/"
	var up bool
	for range 200 {
		if resp, err := http.Get(base + "healthcheck"); err == nil {
			resp.Body.Close()
			up = resp.StatusCode == http.StatusOK
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if !up {
		t.Fatal("sluice serve did not come up")
	}
	token, err := os.ReadFile(filepath.Join(data, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	post := func(tok string) int {
		req, _ := http.NewRequest("POST", base+"results", strings.NewReader(`{"outcome": "passed", "testcase": "sluice.build", "data": {"item": "hello-1.0-1"}}`))
		req.Header.Set("Content-Type", "application/json")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(""); code != http.StatusUnauthorized {
		t.Fatalf("POST without a token: %d", code)
	}
	if code := post(strings.TrimSpace(string(token))); code != http.StatusCreated {
		t.Fatalf("POST with the admin token: %d", code)
	}
	resp, err := http.Get(base + "results?item=hello-1.0-1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"PASSED"`) {
		t.Fatalf("GET results: %d %s", resp.StatusCode, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve stopped with %v", err)
	}

	// The CLI reads the same store.
	out, err := sluice(t, "results", "list", "--data-dir", data, "--item", "hello-1.0-1")
	if err != nil || !strings.Contains(out, "PASSED") || !strings.Contains(out, "sluice.build") {
		t.Fatalf("results list: %v\n%s", err, out)
	}
	out, err = sluice(t, "results", "show", "--data-dir", data, "1")
	if err != nil || !strings.Contains(out, "data item: hello-1.0-1") {
		t.Fatalf("results show: %v\n%s", err, out)
	}
	if _, err := sluice(t, "results", "show", "--data-dir", data, "99"); err == nil {
		t.Fatal("results show of a missing id succeeded")
	}
}

// startServe runs `sluice serve` with args on a free loopback port until
// the test ends, and returns its base URL once it answers.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		root := newRoot(slog.New(slog.NewTextHandler(io.Discard, nil)))
		root.SetArgs(append([]string{"serve", "--listen", addr}, args...))
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		done <- root.ExecuteContext(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve stopped with %v", err)
		}
	})
	base := "http://" + addr
	for range 400 {
		if resp, err := http.Get(base + "/api/v2.0/healthcheck"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatal("sluice serve did not come up")
	return ""
}

// TestServeDeliversAndServesArtifacts runs a server configured with an
// external ResultsDB: a result that another process (a stage) records in
// the server's database reaches the external side, and the artifact its
// log_url names is served.
func TestServeDeliversAndServesArtifacts(t *testing.T) {
	ext := newExternalResultsDB(t)
	data := t.TempDir()
	conf := filepath.Join(t.TempDir(), "sluice.yaml")
	writeTestFile(t, conf, "results:\n  external:\n    url: "+ext.url+"\n    token_file: "+ext.tokenFile+"\n")
	base := startServe(t, "--config", conf, "--data-dir", data)

	// A stage process: its own handle on the database, its own
	// artifact store handle.
	db, err := store.Open(t.Context(), "sqlite://"+filepath.Join(data, "sluice.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	arts, err := builder.NewArtifacts(filepath.Join(data, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	defer arts.Close()
	logText := "dpkg-buildpackage: info: binary-only upload\n<script>alert(1)</script>\n"
	a, err := arts.Put(t.Context(), strings.NewReader(logText))
	if err != nil {
		t.Fatal(err)
	}
	rec := results.NewRecorder(results.NewStore(db, results.Config{}), db, true)
	err = db.Tx(t.Context(), func(tx *sql.Tx) error {
		return rec.Record(t.Context(), tx, &results.Result{Testcase: results.Testcase{Name: "sluice.build"}, Outcome: "PASSED",
			RefURL: base + "/artifacts/" + a.SHA256, Data: map[string][]string{"item": {"hello-sh~1~1"}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(ext.items(t)) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := ext.items(t); !slices.Equal(got, []string{"hello-sh~1~1"}) {
		t.Fatalf("external ResultsDB holds %q", got)
	}

	for _, tc := range []struct {
		path, body, ctype string
		code              int
	}{
		{"/artifacts/" + a.SHA256, logText, "text/plain; charset=utf-8", 200},
		{"/artifacts/" + strings.Repeat("0", 64), "", "", 404},
		{"/artifacts/..%2f..%2fsluice.db", "", "", 400},
		{"/artifacts/" + strings.ToUpper(a.SHA256), "", "", 400},
	} {
		resp, err := http.Get(base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || tc.code == 200 && (string(body) != tc.body || resp.Header.Get("Content-Type") != tc.ctype) {
			t.Errorf("GET %s: %d %q %q", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
}
