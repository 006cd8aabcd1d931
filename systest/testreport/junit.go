package testreport

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

type junitCase struct {
	Name      string         `xml:"name,attr"`
	Classname string         `xml:"classname,attr"`
	Time      string         `xml:"time,attr"`
	Failures  []junitProblem `xml:"failure"`
	Errors    []junitProblem `xml:"error"`
	Skipped   []junitProblem `xml:"skipped"`
	SystemOut []string       `xml:"system-out"`
	SystemErr []string       `xml:"system-err"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// ParseJUnit reads a JUnit XML report whose root is <testsuites> or
// <testsuite>; test suites may nest. A testcase with an <error> is an
// error, one with a <failure> a failure, one with <skipped> skipped, any
// other passed. Elements it does not know (properties, Surefire's
// flakyFailure...) are skipped.
func ParseJUnit(r io.Reader) (*Report, error) {
	d := xml.NewDecoder(&limitedReader{r: r, n: MaxInput, name: "junit"})
	d.Strict = true
	fail := func(err error) error {
		line, _ := d.InputPos()
		return fmt.Errorf("testreport: junit: line %d: %w", line, err)
	}
	rep := &Report{Format: JUnit}
	b := newBudget()
	var suites []string
	rootSeen, rootDone := false, false
	depth := 0 // open root and testsuite elements
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fail(err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			name := tok.Name.Local
			switch {
			case rootDone:
				return nil, fail(fmt.Errorf("element <%s> after the root element", name))
			case !rootSeen:
				if name != "testsuites" && name != "testsuite" {
					return nil, fail(fmt.Errorf("root element <%s>, want <testsuites> or <testsuite>", name))
				}
				rootSeen = true
				depth++
				if name == "testsuite" {
					suites = append(suites, attr(tok, "name"))
				}
			case name == "testsuite":
				depth++
				suites = append(suites, attr(tok, "name"))
			case name == "testcase":
				line, _ := d.InputPos()
				var c junitCase
				if err := d.DecodeElement(&c, &tok); err != nil {
					return nil, fail(err)
				}
				if len(rep.Tests) == MaxTests {
					return nil, fail(fmt.Errorf("more than %d tests", MaxTests))
				}
				suite := ""
				if len(suites) > 0 {
					suite = suites[len(suites)-1]
				}
				res, err := c.result(suite, b)
				if err != nil {
					return nil, fmt.Errorf("testreport: junit: line %d: %w", line, err)
				}
				rep.Tests = append(rep.Tests, res)
			default:
				// properties, system-out of a suite, and elements of other
				// dialects carry no per-test outcome.
				if err := d.Skip(); err != nil {
					return nil, fail(err)
				}
			}
		case xml.EndElement:
			if tok.Name.Local == "testsuite" && len(suites) > 0 {
				suites = suites[:len(suites)-1]
			}
			if depth--; depth == 0 {
				rootDone = true
			}
		case xml.CharData:
			if rootDone && len(strings.TrimSpace(string(tok))) > 0 {
				return nil, fail(errors.New("text after the root element"))
			}
		}
	}
	if !rootSeen {
		return nil, errors.New("testreport: junit: no root element")
	}
	if !rootDone {
		return nil, fail(errors.New("unterminated root element"))
	}
	return rep, nil
}

func attr(e xml.StartElement, name string) string {
	for _, a := range e.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (c *junitCase) result(suite string, b *budget) (Result, error) {
	if strings.TrimSpace(c.Name) == "" {
		return Result{}, errors.New("testcase without a name")
	}
	res := Result{Name: c.Name, Suite: suite, Outcome: Pass}
	if c.Classname != "" {
		res.Name = c.Classname + "." + c.Name
	}
	if len(res.Name) > MaxName {
		return Result{}, fmt.Errorf("testcase name of %d bytes, more than %d", len(res.Name), MaxName)
	}
	res.Name, res.Suite = clean(res.Name), clean(suite)
	secs := 0.0
	if t := strings.ReplaceAll(strings.TrimSpace(c.Time), ",", ""); t != "" {
		var err error
		secs, err = strconv.ParseFloat(t, 64)
		if err != nil || math.IsNaN(secs) || secs < 0 || secs > 1e9 {
			return Result{}, fmt.Errorf("testcase %q: time %q is not a number of seconds", c.Name, c.Time)
		}
	}
	res.Duration = time.Duration(secs * float64(time.Second))
	var problem *junitProblem
	switch {
	case len(c.Errors) > 0:
		res.Outcome, problem = Error, &c.Errors[0]
	case len(c.Failures) > 0:
		res.Outcome, problem = Fail, &c.Failures[0]
	case len(c.Skipped) > 0:
		res.Outcome, problem = Skip, &c.Skipped[0]
	}
	var details strings.Builder
	if problem != nil {
		res.Message = problem.Message
		if res.Message == "" {
			res.Message = firstLine(problem.Text)
		}
		if problem.Type != "" {
			res.Message = problem.Type + ": " + res.Message
		}
		details.WriteString(strings.TrimSpace(problem.Text))
	}
	for _, s := range c.SystemOut {
		if s = strings.TrimSpace(s); s != "" {
			fmt.Fprintf(&details, "\nsystem-out:\n%s", s)
		}
	}
	for _, s := range c.SystemErr {
		if s = strings.TrimSpace(s); s != "" {
			fmt.Fprintf(&details, "\nsystem-err:\n%s", s)
		}
	}
	res.Message = b.keep(firstLine(res.Message), 1<<10)
	res.Details = b.keep(strings.TrimSpace(details.String()), MaxDetails)
	return res, nil
}
