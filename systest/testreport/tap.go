package testreport

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ParseTAP reads a TAP stream (testanything.org, versions 12, 13 and 14):
// an optional version line, a plan (1..N, first or last, 1..0 # SKIP for a
// skipped file), test points (ok/not ok, an optional number, a
// description, # SKIP and # TODO directives), YAML diagnostics blocks after
// a test point (kept as Details; their message and duration_ms are used),
// and Bail out!. Indented subtest lines and other lines are ignored, as the
// specification asks.
//
// A "not ok # TODO" test is reported skipped, an "ok # TODO" passed. Faults
// of the stream as a whole (no plan, a plan not met, tests out of order, a
// bail out, an unterminated YAML block) are Problems; tests planned but not
// reported are added as errors.
func ParseTAP(r io.Reader) (*Report, error) {
	sc := bufio.NewScanner(&limitedReader{r: r, n: MaxInput, name: "tap"})
	sc.Buffer(make([]byte, 0, 64<<10), MaxLine)
	p := tapParser{rep: &Report{Format: TAP}, budget: newBudget(), planned: -1}
	for sc.Scan() {
		p.line++
		if err := p.parseLine(strings.TrimSuffix(sc.Text(), "\r")); err != nil {
			return nil, fmt.Errorf("testreport: tap: line %d: %w", p.line, err)
		}
		if p.bailed {
			break
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line longer than %d bytes", MaxLine)
		}
		return nil, fmt.Errorf("testreport: tap: line %d: %w", p.line+1, err)
	}
	p.finish()
	return p.rep, nil
}

type tapParser struct {
	rep     *Report
	budget  *budget
	line    int
	seen    bool // a non-empty line was seen (the version line must be first)
	planned int  // -1: no plan yet
	planAt  int  // tests reported when the plan was read
	skipAll string
	bailed  bool
	bailMsg string

	yaml      *strings.Builder // the open YAML block, nil when none
	yamlStart int
	yamlFull  bool
	yamlOpen  bool // the last line was a test point: a YAML block may follow
}

func (p *tapParser) problem(format string, args ...any) {
	if len(p.rep.Problems) < 100 {
		p.rep.Problems = append(p.rep.Problems, truncate(fmt.Sprintf("line %d: ", p.line)+fmt.Sprintf(format, args...), 1<<10))
	}
}

func (p *tapParser) parseLine(line string) error {
	if p.yaml != nil {
		if trimmed := strings.TrimSpace(line); trimmed == "..." && strings.HasPrefix(line, " ") {
			p.closeYAML()
			return nil
		}
		if !p.yamlFull {
			if p.yaml.Len()+len(line)+1 > MaxDetails {
				p.yamlFull = true
			} else {
				p.yaml.WriteString(line)
				p.yaml.WriteByte('\n')
			}
		}
		return nil
	}
	afterTest := p.yamlOpen
	p.yamlOpen = false
	trimmed := strings.TrimSpace(line)
	switch {
	case trimmed == "":
		return nil
	case strings.HasPrefix(line, "TAP version "):
		if p.seen {
			return errors.New("version line after the start of the stream")
		}
		v, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "TAP version ")))
		if err != nil || v < 13 || v > 14 {
			return fmt.Errorf("unsupported %q (want 13 or 14)", line)
		}
	case afterTest && trimmed == "---" && strings.HasPrefix(line, " "):
		p.yaml, p.yamlStart, p.yamlFull = &strings.Builder{}, p.line, false
	case strings.HasPrefix(line, " "), strings.HasPrefix(line, "\t"):
		// A subtest's lines: its parent test point sums them up.
	case strings.HasPrefix(line, "1.."):
		if err := p.plan(line); err != nil {
			return err
		}
	case line == "ok" || line == "not ok" || strings.HasPrefix(line, "ok ") || strings.HasPrefix(line, "not ok "):
		if err := p.testPoint(line); err != nil {
			return err
		}
		p.yamlOpen = true
	case strings.HasPrefix(line, "Bail out!"):
		p.bailed = true
		p.bailMsg = strings.TrimSpace(strings.TrimPrefix(line, "Bail out!"))
		p.problem("bail out: %s", p.bailMsg)
	}
	p.seen = true
	return nil
}

func (p *tapParser) plan(line string) error {
	spec, directive, _ := strings.Cut(line, "#")
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(spec, "1..")))
	if err != nil || n < 0 {
		return fmt.Errorf("malformed plan %q", line)
	}
	if n > MaxTests {
		return fmt.Errorf("plan of %d tests, more than %d", n, MaxTests)
	}
	if p.planned >= 0 {
		return errors.New("second plan")
	}
	p.planned, p.planAt = n, len(p.rep.Tests)
	if n == 0 {
		if kind, reason := directiveOf(directive); kind == "skip" {
			p.skipAll = reason
		}
	}
	return nil
}

// directiveOf parses the text after '#': SKIP or TODO (any case, any
// suffix such as SKIPPED) and the reason after the word.
func directiveOf(s string) (kind, reason string) {
	s = strings.TrimSpace(s)
	word, rest, _ := strings.Cut(s, " ")
	lower := strings.ToLower(word)
	switch {
	case strings.HasPrefix(lower, "skip"):
		return "skip", strings.TrimSpace(rest)
	case strings.HasPrefix(lower, "todo"):
		return "todo", strings.TrimSpace(rest)
	}
	return "", ""
}

func (p *tapParser) testPoint(line string) error {
	if len(p.rep.Tests) == MaxTests {
		return fmt.Errorf("more than %d tests", MaxTests)
	}
	if p.planned >= 0 && p.planAt > 0 {
		p.problem("test point after a trailing plan")
	}
	ok := strings.HasPrefix(line, "ok")
	rest := strings.TrimPrefix(strings.TrimPrefix(line, "not "), "ok")
	rest = strings.TrimLeft(rest, " ")
	want := len(p.rep.Tests) + 1
	num := want
	if end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' }); end != 0 && rest != "" {
		if end < 0 {
			end = len(rest)
		}
		n, err := strconv.Atoi(rest[:end])
		if err != nil {
			return fmt.Errorf("test number %q: %w", rest[:end], err)
		}
		num, rest = n, rest[end:]
		if num != want {
			p.problem("test number %d out of sequence (want %d)", num, want)
		}
	}
	rest = strings.TrimPrefix(strings.TrimLeft(rest, " "), "- ")
	desc, directive := splitDirective(rest)
	kind, reason := directiveOf(directive)
	if len(desc) > MaxName {
		return fmt.Errorf("test %d: description of %d bytes, more than %d", num, len(desc), MaxName)
	}
	res := Result{Name: clean(strings.TrimSpace(desc))}
	if res.Name == "" {
		res.Name = "test " + strconv.Itoa(num)
	}
	switch {
	case kind == "skip":
		res.Outcome, res.Message = Skip, reason
	case kind == "todo" && !ok:
		res.Outcome, res.Message = Skip, "todo: "+reason
	case kind == "todo":
		res.Outcome, res.Message = Pass, "todo, passed: "+reason
	case ok:
		res.Outcome = Pass
	default:
		res.Outcome = Fail
	}
	res.Message = p.budget.keep(strings.TrimSuffix(res.Message, ": "), 1<<10)
	p.rep.Tests = append(p.rep.Tests, res)
	return nil
}

// splitDirective splits a description at its first unescaped '#' and
// undoes TAP 14's \# and \\ escapes in the description.
func splitDirective(s string) (desc, directive string) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s) && (s[i+1] == '#' || s[i+1] == '\\'):
			b.WriteByte(s[i+1])
			i++
		case c == '#':
			return b.String(), s[i+1:]
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), ""
}

func (p *tapParser) closeYAML() {
	text := p.yaml.String()
	if p.yamlFull {
		text += truncated[1:]
	}
	p.yaml = nil
	t := &p.rep.Tests[len(p.rep.Tests)-1]
	t.Details = p.budget.keep(strings.TrimRight(text, "\n"), MaxDetails)
	var diag map[string]any
	if p.yamlFull || yaml.Unmarshal([]byte(text), &diag) != nil {
		return // diagnostics are free-form; unparsable ones stay as text
	}
	if msg, ok := diag["message"].(string); ok && t.Message == "" {
		t.Message = p.budget.keep(firstLine(msg), 1<<10)
	}
	switch ms := diag["duration_ms"].(type) {
	case int:
		if ms >= 0 {
			t.Duration = time.Duration(ms) * time.Millisecond
		}
	case float64:
		if ms >= 0 && ms < 1e12 {
			t.Duration = time.Duration(ms * float64(time.Millisecond))
		}
	}
}

func (p *tapParser) finish() {
	if p.yaml != nil {
		p.problem("YAML block opened at line %d not closed", p.yamlStart)
		p.closeYAML()
	}
	n := len(p.rep.Tests)
	switch {
	case p.planned < 0 && !p.bailed:
		p.problem("no plan")
	case p.planned >= 0 && n > p.planned:
		p.problem("%d tests reported, plan 1..%d", n, p.planned)
	case p.planned > n:
		why := "planned but not reported"
		if p.bailed {
			why = "not run: bail out: " + p.bailMsg
		} else {
			p.problem("%d tests reported, plan 1..%d", n, p.planned)
		}
		for i := n + 1; i <= p.planned; i++ {
			p.rep.Tests = append(p.rep.Tests, Result{Name: "test " + strconv.Itoa(i), Outcome: Error, Message: truncate(why, 1<<10)})
		}
	}
	if p.planned == 0 && n == 0 && p.skipAll != "" {
		p.rep.Output = truncate("skipped: "+p.skipAll, maxOutput)
	}
}
