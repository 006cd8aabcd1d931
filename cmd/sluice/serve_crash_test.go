package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/pgtest"
	"github.com/sluice-ci/sluice/internal/proc"
)

// Bounds of TestServeSurvivesKill.
const (
	crashClients = 8
	// crashAcked is how many acknowledged results the burst waits for
	// before it kills the server, with every client in the middle of a
	// request.
	crashAcked = 160
	// crashLimit bounds each server process and each wait of the test.
	crashLimit = 60 * time.Second
)

// TestServeSurvivesKill POSTs results to `sluice serve` from 8 clients at
// once, kills the server with SIGKILL in the middle of the burst and
// starts it again on the same data: every result whose POST was answered
// 201 is there, answered as it was (the same JSON, byte for byte), and the
// restarted server takes new results. On SQLite in the data directory,
// and on PostgreSQL when it is installed.
func TestServeSurvivesKill(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		dbArgs func(t *testing.T) []string
	}{
		{"sqlite", func(*testing.T) []string { return nil }},
		{"postgres", func(t *testing.T) []string { return []string{"--db", pgtest.NewDatabase(t, pgtest.Start(t))} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testServeSurvivesKill(t, tc.dbArgs(t))
		})
	}
}

func testServeSurvivesKill(t *testing.T, dbArgs []string) {
	bin := sluiceBinary(t)
	dir := t.TempDir()
	var b [16]byte
	rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("ci:worker:"+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// The same address both times, so that the hrefs in the answers match.
	args := append([]string{"serve", "--listen", addr, "--data-dir", filepath.Join(dir, "data"), "--token-file", tokens}, dbArgs...)
	base := "http://" + addr + "/api/v2.0"
	client := &http.Client{Timeout: crashLimit}

	first := startServeProcess(t, bin, args, base, filepath.Join(dir, "first.log"))
	acks, err := burst(t.Context(), client, base, token, first)
	if err != nil {
		t.Fatal(err)
	}
	status := first.wait(t)
	if ws, ok := status.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the first server ended with %v, not killed by SIGKILL: the kill did not hit it while it served", status)
	}

	second := startServeProcess(t, bin, args, base, filepath.Join(dir, "second.log"))
	var maxID int64
	for _, a := range acks {
		maxID = max(maxID, a.id)
		code, got, err := do(t.Context(), client, http.MethodGet, base+"/results/"+strconv.FormatInt(a.id, 10), "", nil)
		switch {
		case err != nil:
			t.Fatal(err)
		case code != http.StatusOK:
			t.Errorf("result %d (client %d, seq %d), acknowledged before the kill: GET answers %d %s", a.id, a.client, a.seq, code, got)
		case !bytes.Equal(got, a.answer):
			t.Errorf("result %d after the restart:\n%s\nanswered to its POST:\n%s", a.id, got, a.answer)
		}
	}

	// The results whose POST the kill cut short may be there or not.
	code, page, err := do(t.Context(), client, http.MethodGet, base+"/results?testcases:like=sluice.crash.*&limit=10000", "", nil)
	var all struct {
		Data []struct {
			ID int64 `json:"id"`
		}
	}
	if err != nil || code != http.StatusOK || json.Unmarshal(page, &all) != nil {
		t.Fatalf("GET results: %d %.200s, %v", code, page, err)
	}
	if len(all.Data) < len(acks) {
		t.Errorf("%d results after the restart, fewer than the %d acknowledged", len(all.Data), len(acks))
	}
	t.Logf("%d results acknowledged before the kill, %d stored: %d committed but cut short", len(acks), len(all.Data), len(all.Data)-len(acks))
	for _, r := range all.Data {
		maxID = max(maxID, r.ID)
	}

	// The restarted server takes new results, after the old ones.
	code, answer, err := do(t.Context(), client, http.MethodPost, base+"/results", token, resultBody(99, 0))
	if err != nil || code != http.StatusCreated {
		t.Fatalf("POST after the restart: %d %s, %v", code, answer, err)
	}
	a, err := checkAnswer(answer, 99, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a.id <= maxID {
		t.Errorf("the result posted after the restart has id %d, not above the %d stored before", a.id, maxID)
	}
	code, got, err := do(t.Context(), client, http.MethodGet, base+"/results/"+strconv.FormatInt(a.id, 10), "", nil)
	if err != nil || code != http.StatusOK || !bytes.Equal(got, answer) {
		t.Errorf("GET of the result posted after the restart: %d %s, %v; want %s", code, got, err, answer)
	}

	second.stop(t)
}

// served is `sluice serve` in a process group of its own.
type served struct {
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	cancel context.CancelFunc
}

// startServeProcess starts bin with args and waits until base answers its health
// check.
func startServeProcess(t *testing.T, bin string, args []string, base, logPath string) *served {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	// Not t.Context(): it ends before the cleanups, which stop the server.
	ctx, cancel := context.WithTimeout(context.Background(), crashLimit)
	s := &served{cmd: proc.Command(ctx, bin, args...), log: logPath, exited: make(chan struct{}), cancel: cancel}
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		cancel() // kills the group if it still runs
		<-s.exited
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("%s:\n%s", filepath.Base(logPath), out)
		}
	})
	health := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if resp, err := health.Get(base + "/healthcheck"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("sluice serve exited before it answered: %v", s.cmd.ProcessState)
		case <-ctx.Done():
			t.Fatalf("sluice serve did not answer its health check within %v", crashLimit)
		case <-tick.C:
		}
	}
}

// kill kills the server's process group with SIGKILL.
func (s *served) kill() error {
	return syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
}

// wait waits for the server to end and returns how it ended.
func (s *served) wait(t *testing.T) *os.ProcessState {
	t.Helper()
	select {
	case <-s.exited:
		return s.cmd.ProcessState
	case <-time.After(crashLimit):
		t.Fatalf("sluice serve did not end within %v", crashLimit)
		return nil
	}
}

// stop asks the server to end with SIGTERM and checks that it ends well.
func (s *served) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := s.wait(t); !st.Success() {
		t.Errorf("sluice serve ended with %v after SIGTERM", st)
	}
}

// ack is a result whose POST was answered 201.
type ack struct {
	client, seq int
	id          int64
	answer      []byte
}

// burst has crashClients clients POST results one after the other; once
// crashAcked are acknowledged it kills the server. It returns the
// acknowledged results, and an error for a failure before the kill.
func burst(ctx context.Context, client *http.Client, base, token string, s *served) ([]ack, error) {
	var (
		mu      sync.Mutex
		acks    []ack
		errs    []error
		once    sync.Once
		killed  = make(chan struct{})
		killErr error
	)
	ctx, cancel := context.WithTimeout(ctx, crashLimit)
	defer cancel()
	var wg sync.WaitGroup
	for c := range crashClients {
		wg.Go(func() {
			for seq := 0; ; seq++ {
				code, answer, err := do(ctx, client, http.MethodPost, base+"/results", token, resultBody(c, seq))
				if err == nil && code != http.StatusCreated {
					err = fmt.Errorf("client %d, seq %d: POST answered %d %s", c, seq, code, answer)
				}
				if err != nil {
					select {
					case <-killed:
						// The server is gone, as it should be.
					default:
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
					return
				}
				a, err := checkAnswer(answer, c, seq)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					acks = append(acks, a)
				}
				n := len(acks)
				mu.Unlock()
				if err != nil {
					return
				}
				if n >= crashAcked {
					once.Do(func() {
						close(killed)
						killErr = s.kill()
					})
				}
			}
		})
	}
	wg.Wait()
	if killErr != nil {
		errs = append(errs, fmt.Errorf("kill: %w", killErr))
	}
	select {
	case <-killed:
	default:
		errs = append(errs, errors.New("the burst ended before the kill"))
	}
	return acks, errors.Join(errs...)
}

// resultBody is the POST body of result seq of a client: a testcase with
// a ref_url, a group, data with a list.
func resultBody(client, seq int) []byte {
	return fmt.Appendf(nil, `{"testcase": {"name": "sluice.crash.%d", "ref_url": "https://ci.example.org/tc/%[1]d"},
		"outcome": "passed", "note": "seq %[2]d", "ref_url": "https://ci.example.org/log/%[1]d/%[2]d",
		"groups": ["crash-client-%[1]d"],
		"data": {"item": "pkg-%[1]d-1.0-%[2]d", "client": "%[1]d", "seq": %[2]d, "arch": ["x86_64", "noarch"]}}`, client, seq)
}

// checkAnswer checks that answer is the result that resultBody(client,
// seq) posted and returns it as an ack.
func checkAnswer(answer []byte, client, seq int) (ack, error) {
	var r struct {
		ID       int64 `json:"id"`
		Testcase struct {
			Name string `json:"name"`
		} `json:"testcase"`
		Outcome string              `json:"outcome"`
		Groups  []string            `json:"groups"`
		Data    map[string][]string `json:"data"`
	}
	if err := json.Unmarshal(answer, &r); err != nil {
		return ack{}, fmt.Errorf("client %d, seq %d: answer %s: %w", client, seq, answer, err)
	}
	want := map[string][]string{
		"item": {fmt.Sprintf("pkg-%d-1.0-%d", client, seq)}, "client": {strconv.Itoa(client)},
		"seq": {strconv.Itoa(seq)}, "arch": {"x86_64", "noarch"},
	}
	if r.ID <= 0 || r.Testcase.Name != fmt.Sprintf("sluice.crash.%d", client) || r.Outcome != "PASSED" ||
		!slices.Equal(r.Groups, []string{fmt.Sprintf("crash-client-%d", client)}) || !equalData(r.Data, want) {
		return ack{}, fmt.Errorf("client %d, seq %d: answered %s", client, seq, answer)
	}
	return ack{client: client, seq: seq, id: r.ID, answer: answer}, nil
}

func equalData(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// do sends a request, with a bearer token when token is not empty, and
// returns the answer's status and body.
func do(ctx context.Context, client *http.Client, method, url, token string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	return resp.StatusCode, bytes.TrimRight(got, "\n"), nil
}
