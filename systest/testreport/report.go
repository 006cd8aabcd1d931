package testreport

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on what a parser keeps. A report beyond MaxInput or MaxTests, or
// a test name beyond MaxName, is an error; text beyond MaxDetails is
// truncated, and so is text past 16 MiB over a whole report.
const (
	// MaxInput is the largest JUnit or TAP report read, in bytes.
	MaxInput = 64 << 20
	// MaxTests is the largest number of tests in one report.
	MaxTests = 100_000
	// MaxDetails is the most text kept in one result's Message plus Details.
	MaxDetails = 64 << 10
	// MaxLine is the longest TAP line.
	MaxLine = 1 << 20
	// MaxName is the longest test name (a subunit test id, a TAP
	// description, a JUnit classname and name).
	MaxName = 4 << 10
	// maxOutput is the most text kept in Report.Output.
	maxOutput = 64 << 10
	// maxTotalDetails bounds the text kept over all the results of a report.
	maxTotalDetails = 16 << 20
)

// Format names a test report format.
type Format string

// The report formats a scenario step can name.
const (
	JUnit   Format = "junit"
	TAP     Format = "tap"
	Subunit Format = "subunit"
)

// ParseFormat checks that s names a known format.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case JUnit, TAP, Subunit:
		return f, nil
	}
	return "", fmt.Errorf("testreport: unknown format %q (want junit, tap or subunit)", s)
}

// Outcome is the outcome of one test.
type Outcome string

// The outcomes of a test. Error is a test that could not run to its end
// (a JUnit error, a test still in progress when a subunit stream ended, a
// TAP test planned but never reported).
const (
	Pass  Outcome = "pass"
	Fail  Outcome = "fail"
	Skip  Outcome = "skip"
	Error Outcome = "error"
)

// Result is the outcome of one test. Its JSON form is what the system
// test stage stores as a scenario's details.
type Result struct {
	// Name identifies the test in its report: the JUnit classname and name
	// joined by a dot, the TAP description, the subunit test id.
	Name string `json:"name"`
	// Suite is the enclosing JUnit testsuite, empty for other formats.
	Suite    string        `json:"suite,omitempty"`
	Outcome  Outcome       `json:"outcome"`
	Duration time.Duration `json:"duration_ns"`
	// Message is a one-line summary: the failure or skip message.
	Message string `json:"message,omitempty"`
	// Details is the longer text: a traceback, TAP YAML diagnostics,
	// subunit attachments, JUnit system-out and system-err.
	Details string `json:"details,omitempty"`
}

// Report is a parsed test report.
type Report struct {
	Format Format   `json:"format"`
	Tests  []Result `json:"tests"`
	// Problems are faults of the run as a whole that the report itself
	// records: a TAP plan not met, a bail out. A report with problems did
	// not pass even if every test did.
	Problems []string `json:"problems,omitempty"`
	// Output is text found outside any test (subunit non-packet bytes and
	// attachments without a test id), truncated to 64 KiB.
	Output string `json:"output,omitempty"`
}

// Counts is the number of tests of each outcome.
type Counts struct {
	Pass, Fail, Skip, Error int
}

// Counts counts the tests of r by outcome.
func (r *Report) Counts() Counts {
	var c Counts
	for _, t := range r.Tests {
		switch t.Outcome {
		case Pass:
			c.Pass++
		case Fail:
			c.Fail++
		case Skip:
			c.Skip++
		case Error:
			c.Error++
		}
	}
	return c
}

// Passed reports whether r has no failed or errored test and no problem.
func (r *Report) Passed() bool {
	c := r.Counts()
	return c.Fail == 0 && c.Error == 0 && len(r.Problems) == 0
}

// Parse parses a report in format f.
func Parse(f Format, r io.Reader) (*Report, error) {
	switch f {
	case JUnit:
		return ParseJUnit(r)
	case TAP:
		return ParseTAP(r)
	case Subunit:
		return ParseSubunit(r)
	}
	return nil, fmt.Errorf("testreport: unknown format %q", f)
}

// budget bounds the text kept over a whole report.
type budget struct{ left int }

func newBudget() *budget { return &budget{left: maxTotalDetails} }

// keep returns s cut to at most max bytes and to what is left of the
// budget, on a rune boundary, with a marker when it was cut.
func (b *budget) keep(s string, max int) string {
	if max > b.left {
		max = b.left
	}
	s = truncate(s, max)
	b.left -= len(s)
	return s
}

const truncated = "\n[truncated]"

// truncate cuts s to at most max bytes of valid UTF-8, with a marker when
// it was cut.
func truncate(s string, max int) string {
	s = clean(s)
	if len(s) <= max {
		return s
	}
	if max <= len(truncated) {
		return ""
	}
	cut := max - len(truncated)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + truncated
}

// clean makes s valid UTF-8 without NUL bytes, as JSON and the SQL store
// want text.
func clean(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// firstLine returns the first non-empty line of s, trimmed.
func firstLine(s string) string {
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" {
			return line
		}
	}
	return ""
}

// lastLine returns the last non-empty line of s, trimmed: the exception of
// a Python traceback.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

// limitedReader reads at most MaxInput bytes and reports an error past it.
type limitedReader struct {
	r    io.Reader
	n    int64
	name string
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("testreport: %s report larger than %d bytes", l.name, MaxInput)
		}
		return 0, err
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
