package testreport

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// checkReport fails when a parsed report breaks what callers rely on:
// named tests with known outcomes, text that is valid UTF-8 without NUL
// (JSON, SQL), within the limits.
func checkReport(t *testing.T, rep *Report) {
	t.Helper()
	if len(rep.Tests) > MaxTests+1 || len(rep.Output) > maxOutput+len(truncated) || !cleanText(rep.Output) {
		t.Fatalf("report out of bounds: %d tests, %d bytes of output", len(rep.Tests), len(rep.Output))
	}
	for _, p := range rep.Problems {
		if !cleanText(p) {
			t.Fatalf("problem %q holds invalid UTF-8 or NUL", p)
		}
	}
	for _, r := range rep.Tests {
		switch r.Outcome {
		case Pass, Fail, Skip, Error:
		default:
			t.Fatalf("test %q: outcome %q", r.Name, r.Outcome)
		}
		if r.Name == "" || len(r.Name) > MaxName || r.Duration < 0 || len(r.Message) > 1<<10 || len(r.Details) > MaxDetails {
			t.Fatalf("result out of bounds: %q %v, %d bytes of message, %d of details", r.Name, r.Duration, len(r.Message), len(r.Details))
		}
		for _, s := range []string{r.Name, r.Suite, r.Message, r.Details} {
			if !cleanText(s) {
				t.Fatalf("test %q holds invalid UTF-8 or NUL: %q", r.Name, s)
			}
		}
	}
}

func cleanText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

func TestTruncate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"a\x00b\xff", 10, "a\uFFFDb\uFFFD"},
		{strings.Repeat("é", 20), 20, "éééé" + truncated},
		{"abcdef", 3, ""},
	}
	for _, c := range cases {
		if got := truncate(c.in, c.max); got != c.want || len(got) > c.max {
			t.Errorf("truncate(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}
