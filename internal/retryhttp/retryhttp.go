// Package retryhttp makes the go-retryablehttp clients of sluice's HTTP
// clients (ResultsDB, Gerrit) with one policy: a time limit per attempt,
// retries of connection errors, 5xx and 429 with exponential back-off,
// a server's Retry-After held to the longest wait, the last answer turned
// into the caller's error, and logs that never show a header (and so
// never a token or a password).
package retryhttp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Config bounds a client's requests.
type Config struct {
	// Timeout bounds each attempt.
	Timeout time.Duration
	// RetryMax is how many times a request is retried; negative: never.
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the back-off between attempts
	// and a server's Retry-After.
	RetryWaitMin, RetryWaitMax time.Duration
}

// Options are what differs between clients.
type Options struct {
	// Name starts the log messages ("gerrit client") and the errors.
	Name string
	// Defaults replace the zero fields of the Config.
	Defaults Config
	// AnswerError turns the last answer of a request whose retries ran
	// out (a 5xx or a 429) into the caller's error type.
	AnswerError func(*http.Response) error
	// NoRedirects refuses redirects, which would send credentials on.
	NoRedirects bool
}

// New returns a client of cfg, zero fields taken from opts.Defaults; a nil
// log discards.
func New(cfg Config, opts Options, log *slog.Logger) (*retryablehttp.Client, error) {
	if cfg.Timeout < 0 || cfg.RetryWaitMin < 0 || cfg.RetryWaitMax < 0 {
		return nil, fmt.Errorf("%s: negative timeout or retry wait", opts.Name)
	}
	d := opts.Defaults
	if cfg.Timeout == 0 {
		cfg.Timeout = d.Timeout
	}
	switch {
	case cfg.RetryMax == 0:
		cfg.RetryMax = d.RetryMax
	case cfg.RetryMax < 0:
		cfg.RetryMax = 0
	}
	if cfg.RetryWaitMin == 0 {
		cfg.RetryWaitMin = d.RetryWaitMin
	}
	if cfg.RetryWaitMax == 0 {
		cfg.RetryWaitMax = max(d.RetryWaitMax, cfg.RetryWaitMin)
	}
	if cfg.RetryWaitMax < cfg.RetryWaitMin {
		return nil, fmt.Errorf("%s: retry wait max %v is less than min %v", opts.Name, cfg.RetryWaitMax, cfg.RetryWaitMin)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: cfg.Timeout}
	if opts.NoRedirects {
		hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	answer := opts.AnswerError
	return &retryablehttp.Client{
		HTTPClient:   hc,
		Logger:       logger{log: log, prefix: opts.Name + ": "},
		RetryWaitMin: cfg.RetryWaitMin,
		RetryWaitMax: cfg.RetryWaitMax,
		RetryMax:     cfg.RetryMax,
		CheckRetry:   retryablehttp.DefaultRetryPolicy,
		Backoff: func(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
			// A server's Retry-After too is held to the longest wait,
			// so that a server cannot stall a caller for an hour.
			return min(retryablehttp.DefaultBackoff(lo, hi, attempt, resp), hi)
		},
		ErrorHandler: func(resp *http.Response, err error, tries int) (*http.Response, error) {
			if resp != nil {
				defer resp.Body.Close()
				if err == nil && answer != nil {
					err = answer(resp)
				}
			}
			if err == nil {
				err = errors.New("no answer")
			}
			return nil, fmt.Errorf("giving up after %d attempt(s): %w", tries, err)
		},
	}, nil
}

// logger gives retryablehttp's log to a slog.Logger. Failed attempts are
// warnings: the error that ends a request is returned to the caller, who
// logs it or not.
type logger struct {
	log    *slog.Logger
	prefix string
}

var _ retryablehttp.LeveledLogger = logger{}

func (l logger) Error(msg string, kv ...any) { l.log.Warn(l.prefix+msg, Safe(kv)...) }
func (l logger) Warn(msg string, kv ...any)  { l.log.Warn(l.prefix+msg, Safe(kv)...) }
func (l logger) Info(msg string, kv ...any)  { l.log.Info(l.prefix+msg, Safe(kv)...) }
func (l logger) Debug(msg string, kv ...any) { l.log.Debug(l.prefix+msg, Safe(kv)...) }

// Safe drops the log values that would print headers, and so credentials:
// retryablehttp logs none today, and this keeps it so.
func Safe(kv []any) []any {
	out := make([]any, 0, len(kv))
	for _, v := range kv {
		switch v.(type) {
		case http.Header, *http.Request, *http.Response, *retryablehttp.Request:
			v = "[omitted]"
		}
		out = append(out, v)
	}
	return out
}
