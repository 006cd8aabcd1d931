package main

import (
	"fmt"
	"io"
	"time"
)

// role says how a row is compared: the others are divided into sluice's
// time.
type role int

const (
	sluiceRole role = iota
	competitorRole
	floorRole
	// infoRole rows explain a cost (the pool layout); no target uses them.
	infoRole
)

// row is one tool's best time in a measurement.
type row struct {
	tool    string
	role    role
	skipped string // why the tool did not run; empty when it did
	runs    int
	best    time.Duration
}

// Kinds of measurement, for the targets.
const (
	fullKind = "full"
	addKind  = "add"
	noopKind = "noop"
)

// section is one measurement: every tool on the same input.
type section struct {
	kind  string
	title string
	pkgs  int   // packages each run takes in
	bytes int64 // their size
	rows  []row
}

func (s *section) sluice() (row, bool) {
	for _, r := range s.rows {
		if r.role == sluiceRole && r.skipped == "" {
			return r, true
		}
	}
	return row{}, false
}

// fastest returns the quickest row of a role that ran.
func (s *section) fastest(ro role) (row, bool) {
	var best row
	found := false
	for _, r := range s.rows {
		if r.role == ro && r.skipped == "" && (!found || r.best < best.best) {
			best, found = r, true
		}
	}
	return best, found
}

// report is what one format's run measured.
type report struct {
	format   string
	n        int
	sections []section
}

func printTable(w io.Writer, rep *report) {
	fmt.Fprintf(w, "\n%s\n", rep.format)
	const layout = "%-30s %-42s %-9s %8s %9s %8s %11s\n"
	fmt.Fprintf(w, layout, "measurement", "tool", "runs", "seconds", "pkg/s", "MB/s", "sluice/tool")
	for _, s := range rep.sections {
		sl, haveSluice := s.sluice()
		title := s.title
		for _, r := range s.rows {
			if r.skipped != "" {
				fmt.Fprintf(w, "%-30s %-42s %s\n", title, r.tool, r.skipped)
				title = ""
				continue
			}
			sec := r.best.Seconds()
			runs := "1 run"
			if r.runs > 1 {
				runs = fmt.Sprintf("best of %d", r.runs)
			}
			ratio := ""
			if r.role != sluiceRole && haveSluice {
				ratio = fmt.Sprintf("%.2f", sl.best.Seconds()/sec)
			}
			fmt.Fprintf(w, layout, title, r.tool, runs,
				fmt.Sprintf("%.4f", sec),
				fmt.Sprintf("%.0f", float64(s.pkgs)/sec),
				fmt.Sprintf("%.1f", float64(s.bytes)/1e6/sec),
				ratio)
			title = ""
		}
	}
}

// printTargets prints the targets with the measured values.
func printTargets(w io.Writer, reps []*report) {
	fmt.Fprintf(w, "\ntargets\n")
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "not met"
	}
	compare := func(target string, ro role, limit float64) {
		fmt.Fprintf(w, "%s\n", target)
		for _, rep := range reps {
			for _, s := range rep.sections {
				if s.kind != fullKind {
					continue
				}
				sl, ok1 := s.sluice()
				other, ok2 := s.fastest(ro)
				if !ok1 || !ok2 {
					fmt.Fprintf(w, "  %-40s not measured\n", rep.format+", "+s.title+":")
					continue
				}
				ratio := sl.best.Seconds() / other.best.Seconds()
				fmt.Fprintf(w, "  %-40s sluice %.4f s, %s %.4f s: %.2fx  %s\n",
					rep.format+", "+s.title+":", sl.best.Seconds(), other.tool, other.best.Seconds(), ratio, verdict(ratio <= limit))
			}
		}
	}
	compare("full index no slower than createrepo_c and apt-ftparchive (sluice / fastest setting of the tool)", competitorRole, 1)
	compare("within 2x of the sha256 floor (sluice / the faster floor)", floorRole, 2)

	fmt.Fprintf(w, "adding one package to 2,000 in under 0.5 s\n")
	for _, rep := range reps {
		for _, s := range rep.sections {
			if s.kind != addKind {
				continue
			}
			sl, ok := s.sluice()
			if !ok {
				fmt.Fprintf(w, "  %-40s not measured\n", rep.format+", "+s.title+":")
				continue
			}
			note := ""
			if rep.n != 2000 {
				note = fmt.Sprintf(" (measured on %d, not 2,000)", rep.n)
			}
			fmt.Fprintf(w, "  %-40s sluice %.4f s%s  %s\n", rep.format+", "+s.title+":", sl.best.Seconds(), note, verdict(sl.best < 500*time.Millisecond))
		}
	}
}

// size1024 formats a size in bytes with binary units.
func size1024(b float64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}
