package retryhttp

import (
	"net/http"
	"testing"
	"time"
)

func TestNewConfig(t *testing.T) {
	t.Parallel()
	def := Config{Timeout: time.Second, RetryMax: 4, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Second}
	c, err := New(Config{RetryMax: -1}, Options{Name: "x", Defaults: def}, nil)
	if err != nil || c.RetryMax != 0 || c.HTTPClient.Timeout != time.Second || c.RetryWaitMax != time.Second {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	if c.HTTPClient.CheckRedirect != nil {
		t.Error("redirects refused without NoRedirects")
	}
	if c, _ := New(Config{}, Options{Name: "x", Defaults: def, NoRedirects: true}, nil); c.HTTPClient.CheckRedirect == nil {
		t.Error("NoRedirects ignored")
	}
	for _, bad := range []Config{{Timeout: -1}, {RetryWaitMin: 2 * time.Second, RetryWaitMax: time.Second}} {
		if _, err := New(bad, Options{Name: "x", Defaults: def}, nil); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	// Retry-After is held to the longest wait.
	resp := &http.Response{StatusCode: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"3600"}}}
	if d := c.Backoff(time.Millisecond, time.Second, 1, resp); d != time.Second {
		t.Errorf("back-off %v, want the cap", d)
	}
}

func TestSafe(t *testing.T) {
	t.Parallel()
	got := Safe([]any{"url", "http://x", "header", http.Header{"Authorization": {"Bearer s3cret"}}, "req", &http.Request{}})
	if got[1] != "http://x" || got[3] != "[omitted]" || got[5] != "[omitted]" {
		t.Fatalf("Safe = %v", got)
	}
}
