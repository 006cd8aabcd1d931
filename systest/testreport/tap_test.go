package testreport

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestTAP(t *testing.T) {
	t.Parallel()
	in := `TAP version 14
1..7
# a comment
ok 1 - starts
not ok 2 - connects to db
  ---
  message: "connection refused\nsecond line"
  duration_ms: 1500
  at: client.sh:12
  ...
ok 3 - ipv6 # SKIP no ipv6 here
not ok 4 flaky thing # TODO fix the race
ok 5 - a \# in the name # todo done already
# Subtest: nested
    ok 1 - inner
    1..1
ok 6 - nested
not ok
pragma +strict
`
	rep, err := ParseTAP(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{
		{Name: "starts", Outcome: Pass},
		{Name: "connects to db", Outcome: Fail, Message: "connection refused", Duration: 1500 * time.Millisecond,
			Details: "  message: \"connection refused\\nsecond line\"\n  duration_ms: 1500\n  at: client.sh:12"},
		{Name: "ipv6", Outcome: Skip, Message: "no ipv6 here"},
		{Name: "flaky thing", Outcome: Skip, Message: "todo: fix the race"},
		{Name: "a # in the name", Outcome: Pass, Message: "todo, passed: done already"},
		{Name: "nested", Outcome: Pass},
		{Name: "test 7", Outcome: Fail},
	}
	if len(rep.Tests) != len(want) {
		t.Fatalf("%d tests: %+v", len(rep.Tests), rep.Tests)
	}
	for i := range want {
		if rep.Tests[i] != want[i] {
			t.Errorf("test %d:\n got %+v\nwant %+v", i, rep.Tests[i], want[i])
		}
	}
	if len(rep.Problems) != 0 {
		t.Errorf("problems %v", rep.Problems)
	}
}

func TestTAPProblems(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		in       string
		problems []string
		tests    int
		lastMsg  string
	}{
		{"no plan", "ok 1\n", []string{"line 1: no plan"}, 1, ""},
		{"short", "1..3\nok 1\n", []string{"line 2: 1 tests reported, plan 1..3"}, 3, "planned but not reported"},
		{"long", "1..1\nok\nok\n", []string{"line 3: 2 tests reported, plan 1..1"}, 2, ""},
		{"trailing plan", "ok\nok\n1..2\n", nil, 2, ""},
		{"after trailing plan", "ok\n1..2\nok\n", []string{"line 3: test point after a trailing plan"}, 2, ""},
		{"order", "1..2\nok 2\nok 1\n", []string{"line 2: test number 2 out of sequence (want 1)", "line 3: test number 1 out of sequence (want 2)"}, 2, ""},
		{"bail out", "1..3\nok 1\nBail out! database gone\nok 2\n", []string{"line 3: bail out: database gone"}, 3, "not run: bail out: database gone"},
		{"open yaml", "1..1\nnot ok 1\n  ---\n  a: b\n", []string{"line 4: YAML block opened at line 3 not closed"}, 1, ""},
		{"skip all", "1..0 # SKIP no docker\n", nil, 0, ""},
		{"crlf", "1..1\r\nok 1 - x\r\n", nil, 1, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rep, err := ParseTAP(strings.NewReader(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(rep.Problems, "|") != strings.Join(c.problems, "|") {
				t.Errorf("problems %q, want %q", rep.Problems, c.problems)
			}
			if len(rep.Tests) != c.tests {
				t.Fatalf("%d tests, want %d", len(rep.Tests), c.tests)
			}
			if c.lastMsg != "" && rep.Tests[len(rep.Tests)-1].Message != c.lastMsg {
				t.Errorf("last message %q", rep.Tests[len(rep.Tests)-1].Message)
			}
			if rep.Passed() != (len(c.problems) == 0) {
				t.Errorf("passed %v with problems %v", rep.Passed(), rep.Problems)
			}
		})
	}
}

func TestTAPErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, in, want string }{
		{"version", "TAP version 15\n", "line 1: unsupported"},
		{"late version", "ok\nTAP version 13\n", "line 2: version line after"},
		{"bad plan", "ok\n1..x\n", "line 2: malformed plan"},
		{"two plans", "1..1\nok\n1..1\n", "line 3: second plan"},
		{"huge plan", "1..100000000\n", "line 1: plan of 100000000 tests"},
		{"huge number", "ok 99999999999999999999\n", "line 1: test number"},
		{"long name", "ok 1 " + strings.Repeat("d", MaxName+1) + "\n", "line 1: test 1: description of 4097 bytes"},
		{"long line", "1..1\nok 1 " + strings.Repeat("x", MaxLine) + "\n", "line 2: line longer than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseTAP(strings.NewReader(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestTAPInputLimit(t *testing.T) {
	t.Parallel()
	line := "# " + strings.Repeat("c", 4094) + "\n"
	in := io.MultiReader(strings.NewReader("1..1\nok 1\n"), &repeatReader{s: line, n: MaxInput/len(line) + 1})
	_, err := ParseTAP(in)
	if err == nil || !strings.Contains(err.Error(), "tap report larger than 67108864 bytes") {
		t.Fatalf("error %v", err)
	}
	// Just under the limit is fine.
	in = io.MultiReader(strings.NewReader("1..1\nok 1\n"), &repeatReader{s: line, n: MaxInput/len(line) - 1})
	if _, err := ParseTAP(in); err != nil {
		t.Fatal(err)
	}
}

// repeatReader yields s n times.
type repeatReader struct {
	s   string
	n   int
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.s[r.off:])
	if r.off += n; r.off == len(r.s) {
		r.off, r.n = 0, r.n-1
	}
	return n, nil
}

func FuzzTAP(f *testing.F) {
	f.Add("TAP version 13\n1..2\nok 1 - a\nnot ok 2 - b # TODO x\n  ---\n  message: m\n  ...\n")
	f.Add("1..0 # skip all\n")
	f.Add("ok\nBail out!\n")
	f.Add("ok 1 - nul \x00 and \xff\n1..1\n")
	f.Add("not ok 3 \\# a \\\\ # SKIP\n    ok 1\n1..3\n")
	f.Fuzz(func(t *testing.T, in string) {
		rep, err := ParseTAP(strings.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "testreport: tap: line ") {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		checkReport(t, rep)
	})
}
