package zuul

import (
	"bytes"
	"errors"
	"math"
)

// This file is a line diff that aligns hunks exactly as git's xdiff does
// with its default (Myers) algorithm and no options: the same line
// classification, trimming of common ends, discarding of lines without a
// match, divide-and-conquer middle-snake search with the same cost
// heuristics, and the same sliding of change groups. git merge-file (and so
// `git merge -s resolve`) builds its three-way merge on this diff, and where
// two equally short diffs exist the one chosen decides whether neighbouring
// edits overlap; so "a" Myers diff is not enough, it has to be git's.

const (
	diffMaxCostMin  = 256 // XDL_MAX_COST_MIN
	diffHeurMinCost = 256 // XDL_HEUR_MIN_COST
	diffSnakeCnt    = 20  // XDL_SNAKE_CNT
	diffKHeur       = 4   // XDL_K_HEUR
	diffMaxEqLimit  = 1024
	diffSimscanWin  = 100
	diffKpdisRun    = 4
	diffLineMax     = math.MaxInt
)

// errDiffInternal reports a broken invariant of the diff, which would be a
// bug here; it is returned, not panicked, so that a merger survives it.
var errDiffInternal = errors.New("zuul: line diff: internal inconsistency")

// diffFile is one side of a diff: its lines (records, each with its "\n"
// when it has one), their equivalence classes, and which lines changed.
type diffFile struct {
	recs  [][]byte
	class []int // per record: the index of its class of equal lines
	// chg marks changed records; chg[0] and chg[n+1] are sentinels, record
	// i is chg[i+1].
	chg    []bool
	dstart int
	dend   int
	// The records that take part in the middle-snake search (those not
	// discarded up front): their record numbers and classes.
	rindex []int
	rclass []int
}

func (f *diffFile) changed(i int) bool { return f.chg[i+1] }
func (f *diffFile) mark(i int, v bool) { f.chg[i+1] = v }

// splitLines cuts b into records: each ends after a '\n', the last one may
// have none.
func splitLines(b []byte) [][]byte {
	var recs [][]byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			recs = append(recs, b)
			break
		}
		recs = append(recs, b[:i+1])
		b = b[i+1:]
	}
	return recs
}

// diffEnv holds both sides of one diff.
type diffEnv struct {
	a, b *diffFile
}

// prepareDiff classifies the lines of a and b, trims their common head and
// tail and chooses the records the search works on.
func prepareDiff(a, b [][]byte) *diffEnv {
	classes := make(map[string]int)
	var count1, count2 []int // per class: occurrences in a, in b
	classify := func(recs [][]byte, side int) []int {
		cl := make([]int, len(recs))
		for i, r := range recs {
			c, ok := classes[string(r)]
			if !ok {
				c = len(count1)
				classes[string(r)] = c
				count1 = append(count1, 0)
				count2 = append(count2, 0)
			}
			if side == 1 {
				count1[c]++
			} else {
				count2[c]++
			}
			cl[i] = c
		}
		return cl
	}
	fa := &diffFile{recs: a, class: classify(a, 1), chg: make([]bool, len(a)+2)}
	fb := &diffFile{recs: b, class: classify(b, 2), chg: make([]bool, len(b)+2)}

	// Trim the common ends.
	n := min(len(a), len(b))
	i := 0
	for ; i < n && fa.class[i] == fb.class[i]; i++ {
	}
	fa.dstart, fb.dstart = i, i
	lim := n - i
	j := 0
	for ; j < lim && fa.class[len(a)-1-j] == fb.class[len(b)-1-j]; j++ {
	}
	fa.dend = len(a) - j - 1
	fb.dend = len(b) - j - 1

	cleanupRecords(fa, count2)
	cleanupRecords(fb, count1)
	return &diffEnv{a: fa, b: fb}
}

// bogosqrt is xdiff's rough square root: a power of two.
func bogosqrt(n int) int {
	i := 1
	for ; n > 0; n >>= 2 {
		i <<= 1
	}
	return i
}

// cleanupRecords drops from the search the lines of f that never occur in
// the other file (other counts each class there), and lines that occur
// there very often when they sit in a run of such lines: they are marked
// changed at once.
func cleanupRecords(f *diffFile, other []int) {
	mlim := min(bogosqrt(len(f.recs)), diffMaxEqLimit)
	dis := make([]byte, len(f.recs)+1)
	for i := f.dstart; i <= f.dend; i++ {
		switch nm := other[f.class[i]]; {
		case nm == 0:
			dis[i] = 0
		case nm >= mlim:
			dis[i] = 2
		default:
			dis[i] = 1
		}
	}
	for i := f.dstart; i <= f.dend; i++ {
		if dis[i] == 1 || (dis[i] == 2 && !cleanMMatch(dis, i, f.dstart, f.dend)) {
			f.rindex = append(f.rindex, i)
			f.rclass = append(f.rclass, f.class[i])
		} else {
			f.mark(i, true)
		}
	}
}

// cleanMMatch tells whether the multi-match line i sits among enough lines
// without a match to be discarded too.
func cleanMMatch(dis []byte, i, s, e int) bool {
	if i-s > diffSimscanWin {
		s = i - diffSimscanWin
	}
	if e-i > diffSimscanWin {
		e = i + diffSimscanWin
	}
	rdis0, rpdis0 := 0, 1
	for r := 1; i-r >= s; r++ {
		if dis[i-r] == 0 {
			rdis0++
		} else if dis[i-r] == 2 {
			rpdis0++
		} else {
			break
		}
	}
	if rdis0 == 0 {
		return false
	}
	rdis1, rpdis1 := 0, 1
	for r := 1; i+r <= e; r++ {
		if dis[i+r] == 0 {
			rdis1++
		} else if dis[i+r] == 2 {
			rpdis1++
		} else {
			break
		}
	}
	if rdis1 == 0 {
		return false
	}
	rdis1 += rdis0
	rpdis1 += rpdis0
	return rpdis1*diffKpdisRun < rpdis1+rdis1
}

// diffSearch is the state of the middle-snake search over the kept
// records of both files.
type diffSearch struct {
	a, b       *diffFile
	kvdf, kvdb []int // forward and backward furthest reach per diagonal
	off        int   // index of diagonal 0 in kvdf and kvdb
	mxcost     int
}

func (s *diffSearch) fwd(d int) int      { return s.kvdf[d+s.off] }
func (s *diffSearch) setFwd(d, v int)    { s.kvdf[d+s.off] = v }
func (s *diffSearch) bwd(d int) int      { return s.kvdb[d+s.off] }
func (s *diffSearch) setBwd(d, v int)    { s.kvdb[d+s.off] = v }
func (s *diffSearch) eq(i1, i2 int) bool { return s.a.rclass[i1] == s.b.rclass[i2] }

// split finds where to cut the box (off1, off2)-(lim1, lim2): the middle
// snake, or past a cost limit a good enough point. It returns the cut and
// whether each half must then be searched for a minimal diff.
func (s *diffSearch) split(off1, lim1, off2, lim2 int, needMin bool) (i1, i2 int, minLo, minHi bool) {
	dmin, dmax := off1-lim2, lim1-off2
	fmid, bmid := off1-off2, lim1-lim2
	odd := (fmid-bmid)&1 != 0
	fmin, fmax := fmid, fmid
	bmin, bmax := bmid, bmid

	s.setFwd(fmid, off1)
	s.setBwd(bmid, lim1)

	for ec := 1; ; ec++ {
		gotSnake := false

		if fmin > dmin {
			fmin--
			s.setFwd(fmin-1, -1)
		} else {
			fmin++
		}
		if fmax < dmax {
			fmax++
			s.setFwd(fmax+1, -1)
		} else {
			fmax--
		}
		for d := fmax; d >= fmin; d -= 2 {
			var x int
			if s.fwd(d-1) >= s.fwd(d+1) {
				x = s.fwd(d-1) + 1
			} else {
				x = s.fwd(d + 1)
			}
			prev := x
			y := x - d
			for x < lim1 && y < lim2 && s.eq(x, y) {
				x++
				y++
			}
			if x-prev > diffSnakeCnt {
				gotSnake = true
			}
			s.setFwd(d, x)
			if odd && bmin <= d && d <= bmax && s.bwd(d) <= x {
				return x, y, true, true
			}
		}

		if bmin > dmin {
			bmin--
			s.setBwd(bmin-1, diffLineMax)
		} else {
			bmin++
		}
		if bmax < dmax {
			bmax++
			s.setBwd(bmax+1, diffLineMax)
		} else {
			bmax--
		}
		for d := bmax; d >= bmin; d -= 2 {
			var x int
			if s.bwd(d-1) < s.bwd(d+1) {
				x = s.bwd(d - 1)
			} else {
				x = s.bwd(d+1) - 1
			}
			prev := x
			y := x - d
			for x > off1 && y > off2 && s.eq(x-1, y-1) {
				x--
				y--
			}
			if prev-x > diffSnakeCnt {
				gotSnake = true
			}
			s.setBwd(d, x)
			if !odd && fmin <= d && d <= fmax && x <= s.fwd(d) {
				return x, y, true, true
			}
		}

		if needMin {
			continue
		}

		// Past a certain cost, take a point that a long snake reaches
		// far from both corners, if there is one.
		if gotSnake && ec > diffHeurMinCost {
			best := 0
			for d := fmax; d >= fmin; d -= 2 {
				dd := d - fmid
				if dd < 0 {
					dd = -dd
				}
				x := s.fwd(d)
				y := x - d
				v := (x - off1) + (y - off2) - dd
				if v > diffKHeur*ec && v > best &&
					off1+diffSnakeCnt <= x && x < lim1 &&
					off2+diffSnakeCnt <= y && y < lim2 {
					for k := 1; s.eq(x-k, y-k); k++ {
						if k == diffSnakeCnt {
							best = v
							i1, i2 = x, y
							break
						}
					}
				}
			}
			if best > 0 {
				return i1, i2, true, false
			}
			best = 0
			for d := bmax; d >= bmin; d -= 2 {
				dd := d - bmid
				if dd < 0 {
					dd = -dd
				}
				x := s.bwd(d)
				y := x - d
				v := (lim1 - x) + (lim2 - y) - dd
				if v > diffKHeur*ec && v > best &&
					off1 < x && x <= lim1-diffSnakeCnt &&
					off2 < y && y <= lim2-diffSnakeCnt {
					for k := 0; s.eq(x+k, y+k); k++ {
						if k == diffSnakeCnt-1 {
							best = v
							i1, i2 = x, y
							break
						}
					}
				}
			}
			if best > 0 {
				return i1, i2, false, true
			}
		}

		// Too expensive: take the furthest reaching path.
		if ec >= s.mxcost {
			fbest, fbest1 := -1, -1
			for d := fmax; d >= fmin; d -= 2 {
				x := min(s.fwd(d), lim1)
				y := x - d
				if lim2 < y {
					x, y = lim2+d, lim2
				}
				if fbest < x+y {
					fbest, fbest1 = x+y, x
				}
			}
			bbest, bbest1 := diffLineMax, diffLineMax
			for d := bmax; d >= bmin; d -= 2 {
				x := max(off1, s.bwd(d))
				y := x - d
				if y < off2 {
					x, y = off2+d, off2
				}
				if x+y < bbest {
					bbest, bbest1 = x+y, x
				}
			}
			if (lim1+lim2)-bbest < fbest-(off1+off2) {
				return fbest1, fbest - fbest1, true, false
			}
			return bbest1, bbest - bbest1, false, true
		}
	}
}

// compare marks the changed records in the box, dividing it at the middle
// snake until one side is empty.
func (s *diffSearch) compare(off1, lim1, off2, lim2 int, needMin bool) {
	for off1 < lim1 && off2 < lim2 && s.eq(off1, off2) {
		off1++
		off2++
	}
	for off1 < lim1 && off2 < lim2 && s.eq(lim1-1, lim2-1) {
		lim1--
		lim2--
	}
	switch {
	case off1 == lim1:
		for ; off2 < lim2; off2++ {
			s.b.mark(s.b.rindex[off2], true)
		}
	case off2 == lim2:
		for ; off1 < lim1; off1++ {
			s.a.mark(s.a.rindex[off1], true)
		}
	default:
		i1, i2, minLo, minHi := s.split(off1, lim1, off2, lim2, needMin)
		s.compare(off1, i1, off2, i2, minLo)
		s.compare(i1, lim1, i2, lim2, minHi)
	}
}

// diffLines diffs the records a and b as xdiff does and returns the marked
// files, groups already slid into place.
func diffLines(a, b [][]byte) (*diffEnv, error) {
	env := prepareDiff(a, b)
	n1, n2 := len(env.a.rindex), len(env.b.rindex)
	ndiags := n1 + n2 + 3
	s := &diffSearch{
		a:      env.a,
		b:      env.b,
		kvdf:   make([]int, ndiags),
		kvdb:   make([]int, ndiags),
		off:    n2 + 1,
		mxcost: max(bogosqrt(ndiags), diffMaxCostMin),
	}
	s.compare(0, n1, 0, n2, false)
	if err := compactChanges(env.a, env.b); err != nil {
		return nil, err
	}
	if err := compactChanges(env.b, env.a); err != nil {
		return nil, err
	}
	return env, nil
}

// diffGroup is a run of changed records [start, end) of one file; an empty
// group stands between two unchanged records.
type diffGroup struct{ start, end int }

func groupInit(f *diffFile) diffGroup {
	g := diffGroup{}
	for f.changed(g.end) {
		g.end++
	}
	return g
}

func groupNext(f *diffFile, g *diffGroup) bool {
	if g.end == len(f.recs) {
		return false
	}
	g.start = g.end + 1
	g.end = g.start
	for f.changed(g.end) {
		g.end++
	}
	return true
}

func groupPrevious(f *diffFile, g *diffGroup) bool {
	if g.start == 0 {
		return false
	}
	g.end = g.start - 1
	g.start = g.end
	for f.changed(g.start - 1) {
		g.start--
	}
	return true
}

func groupSlideDown(f *diffFile, g *diffGroup) bool {
	if g.end < len(f.recs) && f.class[g.start] == f.class[g.end] {
		f.mark(g.start, false)
		f.mark(g.end, true)
		g.start++
		g.end++
		for f.changed(g.end) {
			g.end++
		}
		return true
	}
	return false
}

func groupSlideUp(f *diffFile, g *diffGroup) bool {
	if g.start > 0 && f.class[g.start-1] == f.class[g.end-1] {
		g.start--
		g.end--
		f.mark(g.start, true)
		f.mark(g.end, false)
		for f.changed(g.start - 1) {
			g.start--
		}
		return true
	}
	return false
}

// compactChanges slides each group of changed lines of f as far down as it
// goes, merging groups that meet, then back up to line up with a change in
// the other file o when it can (xdiff without the indent heuristic, which
// git merge-file does not turn on).
func compactChanges(f, o *diffFile) error {
	g := groupInit(f)
	og := groupInit(o)
	for {
		if g.end != g.start {
			var earliestEnd int
			endMatchingOther := -1
			for {
				size := g.end - g.start
				endMatchingOther = -1
				for groupSlideUp(f, &g) {
					if !groupPrevious(o, &og) {
						return errDiffInternal
					}
				}
				earliestEnd = g.end
				if og.end > og.start {
					endMatchingOther = g.end
				}
				for groupSlideDown(f, &g) {
					if !groupNext(o, &og) {
						return errDiffInternal
					}
					if og.end > og.start {
						endMatchingOther = g.end
					}
				}
				if size == g.end-g.start {
					break
				}
			}
			if g.end != earliestEnd && endMatchingOther != -1 {
				for og.end == og.start {
					if !groupSlideUp(f, &g) || !groupPrevious(o, &og) {
						return errDiffInternal
					}
				}
			}
		}
		if !groupNext(f, &g) {
			break
		}
		if !groupNext(o, &og) {
			return errDiffInternal
		}
	}
	if groupNext(o, &og) {
		return errDiffInternal
	}
	return nil
}

// diffHunk is one change: records [i1, i1+chg1) of the first file became
// records [i2, i2+chg2) of the second.
type diffHunk struct {
	i1, i2, chg1, chg2 int
}

// hunks lists the changes of a diffed env in file order.
func (env *diffEnv) hunks() []diffHunk {
	var out []diffHunk
	a, b := env.a, env.b
	for i1, i2 := len(a.recs), len(b.recs); i1 >= 0 && i2 >= 0; i1, i2 = i1-1, i2-1 {
		if a.chg[i1] || b.chg[i2] { // chg[i] is record i-1
			l1, l2 := i1, i2
			for a.chg[i1] {
				i1--
			}
			for b.chg[i2] {
				i2--
			}
			out = append(out, diffHunk{i1: i1, i2: i2, chg1: l1 - i1, chg2: l2 - i2})
		}
	}
	for l, r := 0, len(out)-1; l < r; l, r = l+1, r-1 {
		out[l], out[r] = out[r], out[l]
	}
	return out
}
