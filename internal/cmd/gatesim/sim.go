package main

import (
	"container/heap"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-ci/sluice/pipeline"
	"github.com/sluice-ci/sluice/zuul"
)

// world is the simulated outside of the scheduler: Gerrit (the branch
// tip, submits), the merger and the workers, all answering from hashes.
type world struct {
	seed     uint64
	q, flake float64
	conflict float64
}

// u is a uniform number in [0,1) drawn from the hash of the seed and parts.
func (w world) u(parts ...any) float64 {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], w.seed)
	h.Write(b[:])
	for _, p := range parts {
		fmt.Fprint(h, p, "|")
	}
	sum := h.Sum(nil)
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
}

// bad says whether change n fails deterministically, and at which stage.
func (w world) bad(n int) (string, bool) {
	if w.u("bad", n) >= w.q {
		return "", false
	}
	switch v := w.u("bad-stage", n); {
	case v < 0.3:
		return "build.deb", true
	case v < 0.6:
		return pipeline.StageInstall, true
	default:
		return pipeline.StageSystest, true
	}
}

// conflicts says whether two changes conflict textually.
func (w world) conflicts(a, b int) bool {
	if a > b {
		a, b = b, a
	}
	return a != b && b-a <= 20 && w.u("conflict", a, b) < w.conflict
}

// set names the set of changes tested together.
func set(cs []zuul.Change) string {
	ns := make([]int, 0, len(cs))
	for _, c := range cs {
		ns = append(ns, c.Number)
	}
	slices.Sort(ns)
	var s []string
	for _, n := range ns {
		s = append(s, strconv.Itoa(n))
	}
	return strings.Join(s, ",")
}

var stageMedian = map[string]struct {
	median time.Duration
	sigma  float64
}{
	"build.deb":           {8 * time.Minute, 0.35},
	"build.rpm":           {8 * time.Minute, 0.35},
	pipeline.StagePublish: {2 * time.Minute, 0.3},
	pipeline.StageInstall: {4 * time.Minute, 0.35},
	pipeline.StageSystest: {15 * time.Minute, 0.4},
}

// duration is a lognormal stage duration for one run.
func (w world) duration(item int, tested, stage string, attempt int) time.Duration {
	m := stageMedian[stage]
	u1 := max(w.u("dur1", item, tested, stage, attempt), 1e-12)
	u2 := w.u("dur2", item, tested, stage, attempt)
	z := math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
	return time.Duration(float64(m.median) * math.Exp(m.sigma*z))
}

// outcome of a stage run of item's buildset that tests changes.
func (w world) outcome(item int, changes []zuul.Change, stage string, attempt int) pipeline.Outcome {
	for _, c := range changes {
		if st, bad := w.bad(c.Number); bad && st == stage {
			return pipeline.OutcomeFailed
		}
	}
	if w.flake > 0 && w.u("flake", item, set(changes), stage, attempt) < w.flake {
		return pipeline.OutcomeFailed
	}
	return pipeline.OutcomePassed
}

// meanTestTime estimates T, the mean time of a buildset on an idle
// system: merge, then the longest path of the stage graph.
func meanTestTime(seed uint64) time.Duration {
	w := world{seed: seed}
	const n = 20000
	var sum time.Duration
	for i := range n {
		d := func(st string) time.Duration { return w.duration(-i-1, "T", st, 1) }
		path := 30*time.Second + max(d("build.deb"), d("build.rpm")) + d(pipeline.StagePublish) +
			max(d(pipeline.StageInstall), d(pipeline.StageSystest))
		sum += path
	}
	return sum / n
}

// ---- discrete events

type simEvent struct {
	at  time.Duration
	seq int
	ev  pipeline.Event
	// arrival of change n when ev is nil
	arrival int
	// run is the stage run a StageEnded ends
	run string
}

type eventHeap []simEvent

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(simEvent)) }
func (h *eventHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type result struct {
	merged, buildsets, stageRuns, resets int
	wrongRejects, badMerged, conflicts   int
	untested                             int
	ttm, reject                          samples
	first, last                          time.Duration
}

// throughput is merged changes per hour, from the first approval to the
// last merge.
func (r result) throughput() float64 {
	return float64(r.merged) / (r.last - r.first).Hours()
}

type simulation struct {
	o      options
	w      world
	s      *pipeline.Scheduler
	now    time.Duration
	seq    int
	events eventHeap

	// workers: FIFO of dispatched runs waiting for a slot, and the
	// runs holding one.
	waiting []pipeline.DispatchStage
	running map[string]bool
	// Gerrit: the changes merged, in order; where the tip was when each
	// buildset's merge was made.
	merged   []int
	baseOf   map[string]int
	changes  map[string][]zuul.Change
	arrived  map[int]time.Duration
	rejected map[int]bool
	r        result
}

func runID(bs, stage string, attempt int) string {
	return bs + "/" + stage + "/" + strconv.Itoa(attempt)
}

func (m *simulation) at(d time.Duration, e simEvent) {
	m.seq++
	e.at, e.seq = m.now+d, m.seq
	heap.Push(&m.events, e)
}

func simulate(o options, p policy, q, flake float64) (result, error) {
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := &simulation{o: o, w: world{seed: o.seed, q: q, flake: flake, conflict: o.conflict},
		running: map[string]bool{}, baseOf: map[string]int{}, changes: map[string][]zuul.Change{},
		arrived: map[int]time.Duration{}, rejected: map[int]bool{}}
	s, err := pipeline.NewScheduler(simConfig(p), func() time.Time { return epoch.Add(m.now) }, fmt.Sprint("sim", o.seed))
	if err != nil {
		return result{}, err
	}
	m.s = s
	for n := 1; n <= o.changes; n++ {
		m.at(time.Duration(n-1)*o.arrival, simEvent{arrival: n})
	}
	for steps := 0; m.events.Len() > 0; steps++ {
		if steps > 10_000_000 {
			return result{}, fmt.Errorf("no end after %d events", steps)
		}
		e := heap.Pop(&m.events).(simEvent)
		m.now = e.at
		var ev pipeline.Event
		switch {
		case e.ev == nil:
			m.arrived[e.arrival] = m.now
			ev = approval(e.arrival)
		case e.run != "":
			if !m.running[e.run] {
				continue // cancelled
			}
			delete(m.running, e.run)
			ev = e.ev
		default:
			ev = e.ev
		}
		if err := m.exec(s.Handle(ev)); err != nil {
			return result{}, err
		}
		m.startRuns()
	}
	if left := len(m.merged) + len(m.rejected); left != o.changes {
		return result{}, fmt.Errorf("%d changes merged or rejected of %d", left, o.changes)
	}
	m.r.first = 0
	return m.r, nil
}

// startRuns gives free worker slots to waiting runs, in order.
func (m *simulation) startRuns() {
	for len(m.running) < m.o.capacity && len(m.waiting) > 0 {
		d := m.waiting[0]
		m.waiting = m.waiting[1:]
		id := runID(d.Buildset, d.Stage, d.Attempt)
		m.running[id] = true
		m.r.stageRuns++
		cs := m.changes[d.Buildset]
		item := cs[len(cs)-1].Number
		out := m.w.outcome(item, cs, d.Stage, d.Attempt)
		m.at(m.w.duration(item, set(cs), d.Stage, d.Attempt), simEvent{run: id,
			ev: pipeline.StageEnded{Buildset: d.Buildset, Stage: d.Stage, Attempt: d.Attempt, Outcome: out}})
	}
}

func (m *simulation) exec(actions []pipeline.Action) error {
	for _, a := range actions {
		switch a := a.(type) {
		case pipeline.RequestMerge:
			m.r.buildsets++
			m.changes[a.Buildset] = a.Changes
			m.baseOf[a.Buildset] = len(m.merged)
			md := pipeline.MergeDone{Buildset: a.Buildset, Commits: map[string]string{"pkgs": "c" + a.Buildset[:8]}}
			// Each change merges on the tip and the changes before it.
			onto := slices.Clone(m.merged)
			for _, c := range a.Changes {
				if slices.ContainsFunc(onto, func(x int) bool { return m.w.conflicts(x, c.Number) }) {
					md.Conflict = c.String()
					break
				}
				onto = append(onto, c.Number)
			}
			m.at(30*time.Second, simEvent{ev: md})
		case pipeline.DispatchStage:
			m.waiting = append(m.waiting, a)
		case pipeline.CancelStage:
			id := runID(a.Buildset, a.Stage, a.Attempt)
			if m.running[id] {
				delete(m.running, id)
			} else {
				m.waiting = slices.DeleteFunc(m.waiting, func(d pipeline.DispatchStage) bool {
					return d.Buildset == a.Buildset && d.Stage == a.Stage && d.Attempt == a.Attempt
				})
			}
		case pipeline.Submit:
			n := a.Change.Number
			cs := m.changes[a.Buildset]
			// Tested exactly as merged: the changes merged since the
			// buildset's merge are exactly those it had ahead of the item.
			// (An item ahead merged while the merge was made is a no-op
			// in it.)
			base := m.baseOf[a.Buildset]
			since := m.merged[base:]
			var ahead []int
			for _, c := range cs[:len(cs)-1] {
				if !slices.Contains(m.merged[:base], c.Number) {
					ahead = append(ahead, c.Number)
				}
			}
			if !slices.Equal(since, ahead) {
				m.r.untested++
			}
			ok := !slices.ContainsFunc(m.merged, func(x int) bool { return m.w.conflicts(x, n) })
			if ok {
				m.merged = append(m.merged, n)
				m.r.merged++
				m.r.ttm = append(m.r.ttm, m.now+10*time.Second-m.arrived[n])
				m.r.last = m.now + 10*time.Second
				if _, bad := m.w.bad(n); bad {
					m.r.badMerged++
				}
			}
			m.at(10*time.Second, simEvent{ev: pipeline.SubmitDone{Buildset: a.Buildset, Merged: ok}})
		case pipeline.Report:
			if a.Action != "failure" && a.Action != "merge-failure" {
				continue
			}
			n := a.Change.Number
			m.rejected[n] = true
			_, bad := m.w.bad(n)
			switch {
			case a.Action == "merge-failure":
				m.r.conflicts++
			case bad:
				m.r.reject = append(m.r.reject, m.now-m.arrived[n])
			default:
				m.r.wrongRejects++
			}
		case pipeline.RecordBuildsetOutcome:
			if a.Result == "RESET" {
				m.r.resets++
			}
			delete(m.changes, a.Buildset)
			delete(m.baseOf, a.Buildset)
		}
	}
	return nil
}
