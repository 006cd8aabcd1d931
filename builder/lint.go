package builder

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/sluice-ci/sluice/internal/proc"
)

// LintReport is what a package linter said of a set of packages.
type LintReport struct {
	Tool             string // lintian or rpmlint
	Errors, Warnings int
	// Output is the linter's whole output, bounded by maxLintOutput.
	Output []byte
}

// maxLintOutput bounds the output kept of a linter.
const maxLintOutput = 4 << 20

var (
	// lintian: "E: package: tag [context]", "W: ...".
	lintianLine = regexp.MustCompile(`^([EWIPXNO]): [^:\s]+(?: [a-z]+)?: \S`)
	// rpmlint 2: "N packages and M specfiles checked; E errors, W warnings..."
	rpmlintSummary = regexp.MustCompile(`(?m)^\s*\d+ packages? and \d+ specfiles? checked; (\d+) errors?, (\d+) warnings?`)
)

// ParseLintian counts the errors and warnings in lintian's output.
func ParseLintian(out []byte) (errs, warnings int) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := lintianLine.FindSubmatch(sc.Bytes())
		if m == nil {
			continue
		}
		switch m[1][0] {
		case 'E':
			errs++
		case 'W':
			warnings++
		}
	}
	return errs, warnings
}

// ParseRPMLint reads the counts of rpmlint's summary line; ok is false
// when the output has none (rpmlint did not get to the end).
func ParseRPMLint(out []byte) (errs, warnings int, ok bool) {
	m := rpmlintSummary.FindSubmatch(out)
	if m == nil {
		return 0, 0, false
	}
	e, err1 := strconv.Atoi(string(m[1]))
	w, err2 := strconv.Atoi(string(m[2]))
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return e, w, true
}

// Lint runs tool (lintian for .deb files, rpmlint for .rpm files) on
// files, with env as its whole environment, for at most timeout, and
// counts what it found. Finding errors is no error of Lint's: it is in
// the report; err is for a linter that could not run or did not finish.
func Lint(ctx context.Context, tool string, files []string, env []string, timeout time.Duration) (LintReport, error) {
	var args []string
	switch tool {
	case "lintian":
		// Exit status 0 whatever the tags: a non-zero one is then
		// lintian's own failure.
		args = []string{"--tag-display-limit", "0", "--fail-on", "none", "--"}
	case "rpmlint":
		args = []string{"--"}
	default:
		return LintReport{}, fmt.Errorf("lint: unknown linter %q", tool)
	}
	if len(files) == 0 {
		return LintReport{Tool: tool}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := proc.Command(ctx, tool, append(args, files...)...)
	cmd.Env = env
	var out bytes.Buffer
	lw := &limited{w: &out, n: maxLintOutput} // one writer: exec then reads both through one pipe
	cmd.Stdout, cmd.Stderr = lw, lw
	runErr := cmd.Run()
	rep := LintReport{Tool: tool, Output: out.Bytes()}
	if ctx.Err() != nil {
		return rep, fmt.Errorf("lint: %s: %w", tool, ctx.Err())
	}
	switch tool {
	case "lintian":
		rep.Errors, rep.Warnings = ParseLintian(rep.Output)
		if runErr != nil {
			return rep, fmt.Errorf("lint: lintian: %w", runErr)
		}
	case "rpmlint":
		var ok bool
		rep.Errors, rep.Warnings, ok = ParseRPMLint(rep.Output)
		if !ok {
			return rep, fmt.Errorf("lint: rpmlint printed no summary: %v", runErr)
		}
	}
	return rep, nil
}

// limited writes at most n bytes to w and drops the rest.
type limited struct {
	w *bytes.Buffer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
