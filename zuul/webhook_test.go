package zuul

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testSecret = "s3cret-of-twenty-bytes"

func TestWebhook(t *testing.T) {
	t.Parallel()
	event, err := os.ReadFile("testdata/events/comment-added.json")
	if err != nil {
		t.Fatal(err)
	}
	unsupported, err := os.ReadFile("testdata/events/reviewer-added.json")
	if err != nil {
		t.Fatal(err)
	}
	noProject := mutate(t, "comment-added.json", func(m map[string]any) { delete(obj(m, "change"), "project") })
	huge := mutate(t, "comment-added.json", func(m map[string]any) { m["comment"] = strings.Repeat("x", MaxEventSize) })
	bearer := "Bearer " + testSecret
	tests := []struct {
		name, method, auth string
		body               []byte
		code               int
		answer             webhookAnswer
	}{
		{"queued", "POST", bearer, event, http.StatusAccepted, webhookAnswer{Status: "queued", Type: "comment-added"}},
		{"scheme in lower case", "POST", "bearer " + testSecret, event, http.StatusAccepted, webhookAnswer{Status: "queued", Type: "comment-added"}},
		{"ignored type", "POST", bearer, unsupported, http.StatusOK, webhookAnswer{Status: "ignored", Type: "reviewer-added"}},
		{"no auth", "POST", "", event, http.StatusUnauthorized, webhookAnswer{Error: "a valid bearer token is required"}},
		{"wrong secret", "POST", "Bearer " + testSecret + "x", event, http.StatusUnauthorized, webhookAnswer{Error: "a valid bearer token is required"}},
		{"secret prefix", "POST", "Bearer " + testSecret[:10], event, http.StatusUnauthorized, webhookAnswer{Error: "a valid bearer token is required"}},
		{"basic auth", "POST", "Basic " + testSecret, event, http.StatusUnauthorized, webhookAnswer{Error: "a valid bearer token is required"}},
		{"get", "GET", bearer, nil, http.StatusMethodNotAllowed, webhookAnswer{Error: "only POST"}},
		{"not json", "POST", bearer, []byte("type=comment-added"), http.StatusBadRequest, webhookAnswer{Error: "gerrit json: not a JSON object"}},
		{"missing field", "POST", bearer, noProject, http.StatusBadRequest, webhookAnswer{Error: "gerrit json: change.project: missing", Field: "change.project"}},
		{"too large", "POST", bearer, huge, http.StatusRequestEntityTooLarge, webhookAnswer{Error: "event larger than 1 MiB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wh, err := NewWebhook([]byte(testSecret), 4, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(tt.method, "/gerrit/events", strings.NewReader(string(tt.body)))
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			wh.ServeHTTP(rec, req)
			if rec.Code != tt.code {
				t.Errorf("status %d, want %d", rec.Code, tt.code)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var got webhookAnswer
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("answer %q: %v", rec.Body, err)
			}
			if got != tt.answer {
				t.Errorf("answer %+v, want %+v", got, tt.answer)
			}
			if tt.code == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			queued := len(wh.queue)
			if want := tt.code == http.StatusAccepted; (queued == 1) != want {
				t.Errorf("%d events queued", queued)
			}
		})
	}
}

func TestWebhookRun(t *testing.T) {
	t.Parallel()
	wh, err := NewWebhook([]byte(testSecret), 2, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(wh)
	defer srv.Close()
	post := func(name string) int {
		t.Helper()
		b, err := os.ReadFile("testdata/events/" + name)
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL, strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testSecret)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Run is not running yet: two events fill the queue, the third is
	// refused with 503 (Gerrit's webhooks plugin retries).
	for i, want := range []int{202, 202, 503} {
		if got := post([]string{"patchset-created.json", "comment-added.json", "change-merged.json"}[i]); got != want {
			t.Fatalf("post %d: status %d, want %d", i, got, want)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	out := make(chan Event)
	done := make(chan error)
	go func() { done <- wh.Run(ctx, out) }()
	for _, want := range []EventType{PatchsetCreated, CommentAdded} {
		if ev := <-out; ev.Type != want {
			t.Fatalf("event %s, want %s", ev.Type, want)
		}
	}
	if got := post("change-merged.json"); got != 202 {
		t.Fatalf("post after Run started: %d", got)
	}
	if ev := <-out; ev.Type != ChangeMerged || ev.NewRev == "" {
		t.Fatalf("event %+v", ev)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestNewWebhookSecret(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "short"} {
		if _, err := NewWebhook([]byte(s), 0, nil, nil); err == nil {
			t.Errorf("secret %q accepted", s)
		}
	}
}

// TestWebhookSink: with a sink (the journal), an event is answered 202
// only once the sink took it, and 503 when it could not.
func TestWebhookSink(t *testing.T) {
	t.Parallel()
	var got []Event
	fail := false
	wh, err := NewWebhook([]byte(testSecret), 0, func(_ context.Context, ev Event) error {
		if fail {
			return errors.New("store down")
		}
		got = append(got, ev)
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(filepath.Join("testdata", "events", "patchset-created.json"))
	if err != nil {
		t.Fatal(err)
	}
	post := func() int {
		req := httptest.NewRequest("POST", "/webhooks/gerrit", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+testSecret)
		rec := httptest.NewRecorder()
		wh.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := post(); code != http.StatusAccepted || len(got) != 1 || got[0].Type != PatchsetCreated {
		t.Fatalf("stored: %d, %d events", code, len(got))
	}
	fail = true
	if code := post(); code != http.StatusServiceUnavailable || len(got) != 1 {
		t.Fatalf("sink down: %d, %d events", code, len(got))
	}
	if len(wh.queue) != 0 {
		t.Fatal("an event went to the queue too")
	}
}
