package zuul

import "bytes"

// mergeMaxSize is git's MAX_XDIFF_SIZE: larger files are not merged by line.
const mergeMaxSize = 1024 * 1024 * 1023

// mergeBinaryScan is how many leading bytes git looks at for a NUL to call
// a file binary (FIRST_FEW_BYTES).
const mergeBinaryScan = 8000

// isBinary tells whether git would treat b as binary content: a NUL among
// its first 8000 bytes.
func isBinary(b []byte) bool {
	return bytes.IndexByte(b[:min(len(b), mergeBinaryScan)], 0) >= 0
}

// mergeOutcome says whether a three-way content merge resolved.
type mergeOutcome int

const (
	mergeClean    mergeOutcome = iota
	mergeConflict              // overlapping changes that differ
	mergeBinary                // one of the three is binary or too large: not merged by line
)

// mergeHunk is one entry of the merge script, as xdiff's xdmerge_t: a
// change of side 1 (ours), of side 2 (theirs), or a conflict. i1/chg1 are
// in ours' lines, i2/chg2 in theirs', i0/chg0 in the base's.
type mergeHunk struct {
	mode     int // 0 conflict, 1 take ours, 2 take theirs, 4 resolved: both sides identical
	i0, chg0 int
	i1, chg1 int
	i2, chg2 int
}

// merge3 merges the changes from base to ours and from base to theirs, line
// by line, as `git merge-file ours base theirs` does with its defaults
// (merge style, zealous-alnum level, Myers diff, no configuration):
// changes that do not touch merge, identical changes merge, and changes
// that overlap or are adjacent (no unchanged line between them) conflict,
// unless both sides turn the region into the same lines. It returns the
// merged content when clean; like git, it gives mergeBinary when any of
// the three is binary (a NUL in its first 8000 bytes) or over 1023 MiB.
func merge3(base, ours, theirs []byte) ([]byte, mergeOutcome, error) {
	for _, b := range [][]byte{ours, base, theirs} {
		if len(b) > mergeMaxSize || isBinary(b) {
			return nil, mergeBinary, nil
		}
	}
	lb, l1, l2 := splitLines(base), splitLines(ours), splitLines(theirs)
	e1, err := diffLines(lb, l1)
	if err != nil {
		return nil, mergeConflict, err
	}
	e2, err := diffLines(lb, l2)
	if err != nil {
		return nil, mergeConflict, err
	}
	x1, x2 := e1.hunks(), e2.hunks()
	switch {
	case len(x1) == 0:
		return bytes.Clone(theirs), mergeClean, nil
	case len(x2) == 0:
		return bytes.Clone(ours), mergeClean, nil
	}

	script := mergeScript(x1, x2, l1, l2, len(l1)-len(lb), len(l2)-len(lb))
	for i := range script {
		m := &script[i]
		if m.mode != 0 {
			continue
		}
		// xdiff re-diffs the two sides of a conflict (unless one is
		// empty) and drops it when they are the same lines; otherwise
		// pieces of it stay conflicts.
		if m.chg1 == 0 || m.chg2 == 0 || !equalLines(l1[m.i1:m.i1+m.chg1], l2[m.i2:m.i2+m.chg2]) {
			return nil, mergeConflict, nil
		}
		m.mode = 4
	}

	var out bytes.Buffer
	out.Grow(max(len(ours), len(theirs)))
	i := 0
	for _, m := range script {
		if m.mode&3 == 0 {
			continue
		}
		writeLines(&out, l1[i:m.i1])
		if m.mode&1 != 0 {
			writeLines(&out, l1[m.i1:m.i1+m.chg1])
		}
		if m.mode&2 != 0 {
			writeLines(&out, l2[m.i2:m.i2+m.chg2])
		}
		i = m.i1 + m.chg1
	}
	writeLines(&out, l1[i:])
	return out.Bytes(), mergeClean, nil
}

// mergeScript walks the two change lists in base order and pairs them as
// xdiff's xdl_do_merge does. grow1 and grow2 are how many lines each side
// has more than the base.
func mergeScript(x1, x2 []diffHunk, l1, l2 [][]byte, grow1, grow2 int) []mergeHunk {
	var out []mergeHunk
	add := func(mode, i0, chg0, i1, chg1, i2, chg2 int) {
		if n := len(out); n > 0 {
			m := &out[n-1]
			if i1 <= m.i1+m.chg1 || i2 <= m.i2+m.chg2 {
				if mode != m.mode {
					m.mode = 0
				}
				m.chg0 = i0 + chg0 - m.i0
				m.chg1 = i1 + chg1 - m.i1
				m.chg2 = i2 + chg2 - m.i2
				return
			}
		}
		out = append(out, mergeHunk{mode: mode, i0: i0, chg0: chg0, i1: i1, chg1: chg1, i2: i2, chg2: chg2})
	}
	a, b := 0, 0
	for a < len(x1) && b < len(x2) {
		h1, h2 := x1[a], x2[b]
		if h1.i1+h1.chg1 < h2.i1 {
			add(1, h1.i1, h1.chg1, h1.i2, h1.chg2, h2.i2-h2.i1+h1.i1, h1.chg1)
			a++
			continue
		}
		if h2.i1+h2.chg1 < h1.i1 {
			add(2, h2.i1, h2.chg1, h1.i2-h1.i1+h2.i1, h2.chg1, h2.i2, h2.chg2)
			b++
			continue
		}
		if h1.i1 != h2.i1 || h1.chg1 != h2.chg1 || h1.chg2 != h2.chg2 ||
			!equalLines(l1[h1.i2:h1.i2+h1.chg2], l2[h2.i2:h2.i2+h2.chg2]) {
			off := h1.i1 - h2.i1
			ffo := off + h1.chg1 - h2.chg1
			i0, i1, i2 := h1.i1, h1.i2, h2.i2
			if off > 0 {
				i0 -= off
				i1 -= off
			} else {
				i2 += off
			}
			chg0 := h1.i1 + h1.chg1 - i0
			chg1 := h1.i2 + h1.chg2 - i1
			chg2 := h2.i2 + h2.chg2 - i2
			if ffo < 0 {
				chg0 -= ffo
				chg1 -= ffo
			} else {
				chg2 += ffo
			}
			add(0, i0, chg0, i1, chg1, i2, chg2)
		}
		e1 := h1.i1 + h1.chg1
		e2 := h2.i1 + h2.chg1
		if e1 >= e2 {
			b++
		}
		if e2 >= e1 {
			a++
		}
	}
	for ; a < len(x1); a++ {
		h1 := x1[a]
		add(1, h1.i1, h1.chg1, h1.i2, h1.chg2, h1.i1+grow2, h1.chg1)
	}
	for ; b < len(x2); b++ {
		h2 := x2[b]
		add(2, h2.i1, h2.chg1, h2.i1+grow1, h2.chg1, h2.i2, h2.chg2)
	}
	return out
}

func equalLines(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func writeLines(w *bytes.Buffer, lines [][]byte) {
	for _, l := range lines {
		w.Write(l)
	}
}
