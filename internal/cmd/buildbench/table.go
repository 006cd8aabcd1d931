package main

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// role says how a row is compared.
type role int

const (
	sluiceRole role = iota
	// byHandRole is the row sluice's rows of a section are compared with.
	byHandRole
	// contextRole rows give scale or explain a cost; no target uses them.
	contextRole
)

// part is a share of one run, timed within it.
type part struct {
	name string
	d    time.Duration
}

// measured is one run of a row.
type measured struct {
	total time.Duration
	parts []part
}

// contender is a way to do a section's work, run by section.measure.
type contender struct {
	tool    string
	role    role
	missing string // a program it needs that is not installed; then it is skipped
	run     func(k int) (measured, error)
}

// row is one contender's best run.
type row struct {
	tool    string
	role    role
	skipped string // why it did not run; empty when it did
	runs    int
	best    time.Duration
	parts   []part // of the best run
}

// Kinds of section.
const (
	fetchKind = "fetch"
	buildKind = "build"
)

// section is one measurement: every contender on the same input.
type section struct {
	kind           string
	title          string
	sample, format string
	rows           []row
}

// measure runs the contenders in rounds, one run each per round, so that
// a drift of the machine's speed hits them all alike. A contender whose
// first run takes slowRun or more runs once; the others three times. Each
// row keeps its best run.
func (s *section) measure(cs []contender) error {
	rows := make([]row, len(cs))
	for i, c := range cs {
		rows[i] = row{tool: c.tool, role: c.role}
		if c.missing != "" {
			rows[i].skipped = "skipped: " + c.missing + " not found"
		}
	}
	for k := range 3 {
		for i, c := range cs {
			r := &rows[i]
			if r.skipped != "" || (k > 0 && r.best >= slowRun) {
				continue
			}
			m, err := c.run(k)
			if err != nil {
				return fmt.Errorf("%s: %w", c.tool, err)
			}
			if r.runs == 0 || m.total < r.best {
				r.best, r.parts = m.total, m.parts
			}
			r.runs++
		}
	}
	s.rows = rows
	return nil
}

// first returns the first row of a role that ran.
func (s *section) first(ro role) (row, bool) {
	i := slices.IndexFunc(s.rows, func(r row) bool { return r.role == ro && r.skipped == "" })
	if i < 0 {
		return row{}, false
	}
	return s.rows[i], true
}

func printTable(w io.Writer, secs []*section) {
	const layout = "%-32s %-52s %-9s %8s %11s %9s\n"
	fmt.Fprintf(w, "\n"+layout, "measurement", "tool", "runs", "seconds", "sluice/hand", "overhead")
	for _, s := range secs {
		hand, haveHand := s.first(byHandRole)
		title := s.title
		for _, r := range s.rows {
			if r.skipped != "" {
				fmt.Fprintf(w, "%-32s %-52s %s\n", title, r.tool, r.skipped)
				title = ""
				continue
			}
			runs := "1 run"
			if r.runs > 1 {
				runs = fmt.Sprintf("best of %d", r.runs)
			}
			ratio, over := "", ""
			if r.role == sluiceRole && haveHand {
				ratio = fmt.Sprintf("%.2f", r.best.Seconds()/hand.best.Seconds())
				over = fmt.Sprintf("%+.1f%%", overhead(r.best, hand.best))
			}
			fmt.Fprintf(w, layout, title, r.tool, runs, fmt.Sprintf("%.4f", r.best.Seconds()), ratio, over)
			title = ""
			for _, p := range r.parts {
				fmt.Fprintf(w, layout, "", "  of it: "+p.name, "", fmt.Sprintf("%.4f", p.d.Seconds()), "", "")
			}
		}
		fmt.Fprintln(w)
	}
}

// overhead is (sluice − by hand) / by hand, in percent.
func overhead(sluice, hand time.Duration) float64 {
	return 100 * (sluice.Seconds() - hand.Seconds()) / hand.Seconds()
}

// targetOverhead is the issue's: sluice's overhead on top of the build
// tools should stay under 10%.
const targetOverhead = 10.0

func printTargets(w io.Writer, secs []*section) {
	fmt.Fprintf(w, "targets\n")
	fmt.Fprintf(w, "sluice's overhead on top of the build tools under %.0f%% (checkout + build: (sluice - by hand) / by hand)\n", targetOverhead)
	for _, s := range secs {
		if s.kind != buildKind {
			continue
		}
		label := s.sample + ", " + s.format + ":"
		sl, ok1 := s.first(sluiceRole)
		hand, ok2 := s.first(byHandRole)
		if !ok1 || !ok2 {
			fmt.Fprintf(w, "  %-18s not measured\n", label)
			continue
		}
		o := overhead(sl.best, hand.best)
		verdict := "not met"
		if o < targetOverhead {
			verdict = "met"
		}
		fmt.Fprintf(w, "  %-18s sluice %.3f s, by hand %.3f s: %+.1f%%  %s\n", label, sl.best.Seconds(), hand.best.Seconds(), o, verdict)
	}
}

// printOverhead splits each build's overhead into the side of the
// checkout and that of the back-end, from the parts of the best runs.
func printOverhead(w io.Writer, secs []*section) {
	fmt.Fprintf(w, "\nwhere the overhead goes (parts of each side's best run)\n")
	shown := false
	defer func() {
		if !shown {
			fmt.Fprintf(w, "  not measured\n")
		}
	}()
	for _, s := range secs {
		if s.kind != buildKind {
			continue
		}
		sl, ok1 := s.first(sluiceRole)
		hand, ok2 := s.first(byHandRole)
		if !ok1 || !ok2 || len(sl.parts) != 2 || len(hand.parts) != 3 {
			continue
		}
		shown = true
		span, rest := sl.parts[0].d, sl.parts[1].d
		clone, tarball, tool := hand.parts[0], hand.parts[1], hand.parts[2]
		fmt.Fprintf(w, "  %s, %s: sluice %+.3f s\n", s.sample, s.format, (sl.best - hand.best).Seconds())
		fmt.Fprintf(w, "    checkout side %+.3f s: sluice's checkout, log and record %.3f s; %s %.3f s\n",
			(rest - clone.d).Seconds(), rest.Seconds(), clone.name, clone.d.Seconds())
		fmt.Fprintf(w, "    back-end side %+.3f s: sluice's back-end %.3f s; %s + %s %.3f s\n",
			(span - tarball.d - tool.d).Seconds(), span.Seconds(), tarball.name, tool.name, (tarball.d + tool.d).Seconds())
		if extra, ok := s.first(contextRole); ok {
			fmt.Fprintf(w, "    in the back-end side: sluice's extra commands, timed alone, %.3f s\n", extra.best.Seconds())
		}
	}
}

func printNotes(w io.Writer, formats []string) {
	notes := []string{
		"wall-clock times, warm page cache; best of 3 runs when a run takes under 10 s, else 1 run; the rows of a measurement run in turns (one run of each, three times) so that a drift of the machine hits them alike",
		fmt.Sprintf("both sides get the same environment: PATH, LC_ALL=C.UTF-8, SOURCE_DATE_EPOCH=%d and a fresh empty HOME per build; nothing else", epoch),
		"the remote is a git repository made with go-git from the sample (one commit, on its branch and on refs/changes/45/12345/2), given as a file:// URL: sluice serves it with go-git's upload-pack in process, git with git-upload-pack in a subprocess (a plain path would make git clone hard-link the objects instead)",
		"no-op fetch: the cache (sluice) and the clone (git) already have the commit; by SHA sluice does not ask the remote, by branch it asks once and fetches nothing (Fetched false, checked); sluice's Checkout also writes the commit's tree into a new directory, which git fetch does not",
		"checkout + build: sluice Build of change 12345 patchset 2 as a test build, one format per Build, from a new source cache and artifact store each run (so it clones, as git clone does); by hand: git clone, git fetch origin REF, git checkout --detach FETCH_HEAD, then the tarball and the build tool; each side's output to a log file",
		"the by-hand side knows the package's name and version (read from the sample before the clock starts) and builds the release version; sluice reads them itself and builds the test version (one more changelog entry, a rewritten Release line)",
		"sluice's parts: \"back-end\" is its record's start to end (build-dependency check, copy of the tree, the tarball written in Go, the build tool, storing and inspecting the outputs); \"the rest\" is the go-git checkout before it and the log, record and clean-up after it (from the record's wall-clock times)",
		"sluice stores every output and the log in its artifact store and writes the record, each with an fsync; the by-hand side leaves its outputs where the tool wrote them",
	}
	if slices.Contains(formats, "deb") {
		notes = append(notes, "deb: sluice runs dpkg-checkbuilddeps before dpkg-buildpackage, which runs it again itself; both sides run dpkg-buildpackage -us -uc (source and binary packages)")
	}
	if slices.Contains(formats, "rpm") {
		notes = append(notes, fmt.Sprintf("rpm: both sides run rpmbuild --nodeps -ba (sluice also sets _tmppath); sluice first asks rpmspec for the build dependencies (%v assumed installed), the name and version, and the expanded spec", assumeInstalled))
	}
	fmt.Fprintf(w, "\nnotes\n")
	for _, n := range notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
}
