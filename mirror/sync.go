package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/sluice-ci/sluice/repo"
	"github.com/sluice-ci/sluice/results"
)

// Testcase is the ResultsDB testcase of a target's sync.
const Testcase = "sluice.mirror.sync"

// ItemType is the ResultsDB item type of a sync's result: the item is
// <repo>/<format>@<snapshot>.
const ItemType = "sluice_release_snapshot"

// Outcomes of a target's sync.
const (
	Passed = "PASSED"
	Failed = "FAILED"
)

// Recorder keeps a result (the caller's store, or a ResultsDB).
type Recorder interface {
	Record(ctx context.Context, res *results.Result) error
}

// Artifacts keeps a file and returns how to find it again (a
// content-addressed store gives its SHA-256).
type Artifacts interface {
	Put(ctx context.Context, r io.Reader) (ref string, err error)
}

// Snapshots finds a snapshot of a release repository by ID; [Release]
// does.
type Snapshots interface {
	Snapshot(id string) (Snapshot, error)
}

// Options configure a [Syncer].
type Options struct {
	// StateDir holds the state (NAME/FORMAT/state.json), the lock and the
	// manifests of each repository's syncs (NAME/FORMAT/manifests/).
	StateDir string
	// Keyring holds the keys that must sign the snapshots.
	Keyring openpgp.EntityList
	// Retries is how many times a target that fails its check is synced
	// again, comparing every file by content (default 1; -1 for none).
	Retries int
	// Recorder, when set, records a sluice.mirror.sync result per target.
	Recorder Recorder
	// ResultData is added to the data of every result recorded (the
	// buildset, pipeline, ... of the run that syncs), and ResultGroups are
	// their groups; neither overrides what the Syncer sets.
	ResultData   map[string][]string
	ResultGroups []string
	// Artifacts, when set, keeps each manifest.
	Artifacts Artifacts
	// Progress, when set, is told how far each step is.
	Progress Progress
	// Log receives a line per step; nil discards.
	Log *slog.Logger
	// TrustVerified skips reading again a snapshot that passed repo.Verify
	// in an earlier sync when its file list (paths, sizes, mtimes,
	// inodes) is the same: snapshots are immutable, and a file rewritten
	// or replaced changes it. Damage that keeps all four (bit rot) then
	// goes unseen until a full verification.
	TrustVerified bool
}

// Syncer syncs release snapshots to their targets, one repository and
// format at a time.
type Syncer struct {
	o Options
}

// NewSyncer returns a Syncer with o.
func NewSyncer(o Options) (*Syncer, error) {
	if o.StateDir == "" || !filepath.IsAbs(o.StateDir) {
		return nil, fmt.Errorf("mirror: state directory %q is not absolute", o.StateDir)
	}
	if len(o.Keyring) == 0 {
		return nil, errors.New("mirror: no keyring to verify targets with")
	}
	switch {
	case o.Retries == 0:
		o.Retries = 1
	case o.Retries < 0:
		o.Retries = 0
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Syncer{o: o}, nil
}

// Manifest is the record of one sync: kept as a file beside the state,
// and as an artifact when the Syncer has a store for them.
type Manifest struct {
	Repo     string           `json:"repo"`
	Format   string           `json:"format"`
	Kind     string           `json:"kind"` // "sync" or "rollback"
	Snapshot string           `json:"snapshot"`
	From     string           `json:"from,omitempty"` // what the targets served before (most of them)
	Started  time.Time        `json:"started"`
	Ended    time.Time        `json:"ended"`
	Targets  []TargetManifest `json:"targets"`
	// Added and Removed are the package files (paths in the tree) the
	// snapshot has and From had not, and the reverse.
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	// Path is where the manifest file is; Artifact what the artifact
	// store gave for it.
	Path     string `json:"-"`
	Artifact string `json:"-"`
}

// TargetManifest is one target's part of a sync.
type TargetManifest struct {
	Name     string   `json:"name"`
	Kind     string   `json:"kind"`
	Before   string   `json:"before,omitempty"` // the snapshot it served before
	Serves   string   `json:"serves,omitempty"` // the snapshot it serves after
	Outcome  string   `json:"outcome"`          // PASSED or FAILED
	Attempts int      `json:"attempts"`
	Restored bool     `json:"restored,omitempty"` // put back on Before, checked
	Problems []string `json:"problems,omitempty"`
	Error    string   `json:"error,omitempty"`
	Transfer Transfer `json:"transfer"`
	Seconds  float64  `json:"seconds"`
}

// SyncError is returned by [Syncer.Sync] when a target does not serve the
// snapshot at the end; each such target serves what it served before, or
// says so.
type SyncError struct {
	Repo, Format, Snapshot string
	Failed                 []TargetManifest
}

func (e *SyncError) Error() string {
	var parts []string
	for _, f := range e.Failed {
		msg := f.Error
		if msg == "" && len(f.Problems) > 0 {
			msg = fmt.Sprintf("%d problems, first %s", len(f.Problems), f.Problems[0])
		}
		parts = append(parts, fmt.Sprintf("%s (serves %q): %s", f.Name, f.Serves, msg))
	}
	return fmt.Sprintf("mirror %s/%s: snapshot %s: %d targets failed: %s", e.Repo, e.Format, e.Snapshot, len(e.Failed), strings.Join(parts, "; "))
}

// Sync puts snap on every target, a transaction per target: snap itself
// is verified with repo.Verify (in the background, while the first
// target is staged); each target is staged, checked against snap (and
// staged again by content if the check fails, up to Retries times) and
// switched to snap only when both pass; otherwise it is put back on the
// snapshot it served before, checked, and reported. A target that serves
// snap already is only checked.
// src finds those previous snapshots. kind is "sync" or "rollback". It
// returns the manifest, and a *SyncError if a target failed.
func (s *Syncer) Sync(ctx context.Context, src Snapshots, snap Snapshot, kind string, targets []Target) (*Manifest, error) {
	if err := snap.check(); err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("mirror %s/%s: no targets", snap.Repo, snap.Format)
	}
	dir := repoDir(s.o.StateDir, snap.Repo, snap.Format)
	unlock, err := flock(ctx, filepath.Join(dir, "lock"))
	if err != nil {
		return nil, fmt.Errorf("mirror %s/%s: %w", snap.Repo, snap.Format, err)
	}
	defer unlock()
	state, err := LoadState(s.o.StateDir, snap.Repo, snap.Format)
	if err != nil {
		return nil, err
	}
	m := &Manifest{Repo: snap.Repo, Format: snap.Format, Kind: kind, Snapshot: snap.ID, Started: time.Now().UTC()}
	s.o.Log.Info("mirror sync started", "repo", snap.Repo, "format", snap.Format, "snapshot", snap.ID, "targets", len(targets))
	ts := &trees{}
	ready, wait := s.verifySnapshot(ctx, snap, ts)
	defer wait()
	befores := map[string]Snapshot{}
	for _, t := range targets {
		tm, before := s.syncTarget(ctx, src, snap, t, ready)
		if before != nil {
			befores[before.ID] = *before
		}
		m.Targets = append(m.Targets, tm)
		ts := state.target(t)
		ts.SyncedAt, ts.Outcome, ts.Error = time.Now().UTC(), tm.Outcome, tm.Error
		if tm.Outcome != Passed && ts.Error == "" && len(tm.Problems) > 0 {
			ts.Error = tm.Problems[0]
		}
		ts.Served = tm.Serves
		ts.VerifiedAt = time.Time{}
		if tm.Outcome == Passed || tm.Restored {
			ts.VerifiedAt = time.Now().UTC()
		}
		if ctx.Err() != nil {
			break
		}
	}
	m.From = mostServed(m.Targets)
	if from, ok := befores[m.From]; ok {
		if m.Added, m.Removed, err = packageDiff(ts, from, snap); err != nil {
			return nil, err
		}
	} else if m.Added, _, err = packageDiff(ts, Snapshot{}, snap); err != nil {
		return nil, err
	}
	m.Ended = time.Now().UTC()
	if err := s.keepManifest(ctx, m); err != nil {
		return nil, err
	}
	for name := range state.Targets {
		if i := slices.IndexFunc(m.Targets, func(t TargetManifest) bool { return t.Name == name }); i >= 0 {
			state.Targets[name].Manifest = m.Path
		}
	}
	if err := state.save(s.o.StateDir); err != nil {
		return nil, fmt.Errorf("mirror %s/%s: save state: %w", snap.Repo, snap.Format, err)
	}
	if err := s.record(ctx, m); err != nil {
		return m, err
	}
	var failed []TargetManifest
	for _, t := range m.Targets {
		if t.Outcome != Passed {
			failed = append(failed, t)
		}
	}
	if len(failed) > 0 || len(m.Targets) < len(targets) {
		if err := ctx.Err(); err != nil {
			return m, fmt.Errorf("mirror %s/%s: %w", snap.Repo, snap.Format, err)
		}
		return m, &SyncError{Repo: snap.Repo, Format: snap.Format, Snapshot: snap.ID, Failed: failed}
	}
	s.o.Log.Info("mirror sync done", "repo", snap.Repo, "format", snap.Format, "snapshot", snap.ID, "targets", len(targets))
	return m, nil
}

// SnapshotError is a snapshot that does not pass repo.Verify: no target
// is switched to it.
type SnapshotError struct {
	ID       string
	Problems []repo.Problem
}

func (e *SnapshotError) Error() string {
	return fmt.Sprintf("snapshot %s does not verify: %d problems, first %s", e.ID, len(e.Problems), e.Problems[0])
}

// verifySnapshot checks snap with repo.Verify in the background; the
// returned function waits for the outcome (the function that returns it
// must call wait before it returns).
func (s *Syncer) verifySnapshot(ctx context.Context, snap Snapshot, ts *trees) (ready func() error, wait func()) {
	done := make(chan struct{})
	var verr error
	go func() {
		defer close(done)
		mark := filepath.Join(repoDir(s.o.StateDir, snap.Repo, snap.Format), "verified", snap.ID)
		var fp string
		if s.o.TrustVerified {
			files, err := ts.list(snap.Dir)
			if err != nil {
				verr = err
				return
			}
			fp = fingerprint(files)
			if data, err := os.ReadFile(mark); err == nil && string(data) == fp {
				return
			}
		}
		probs, err := repo.Verify(ctx, snap.Dir, s.o.Keyring)
		switch {
		case err != nil:
			verr = fmt.Errorf("snapshot %s: %w", snap.ID, err)
		case len(probs) > 0:
			verr = &SnapshotError{ID: snap.ID, Problems: probs}
		case s.o.TrustVerified:
			if err := writeAtomic(mark, []byte(fp), 0o644); err != nil {
				s.o.Log.Warn("mirror snapshot verification not noted", "snapshot", snap.ID, "err", err)
			}
		}
	}()
	ready = func() error {
		select {
		case <-done:
			return verr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return ready, func() { <-done }
}

// syncTarget is one target's transaction. ready waits for the snapshot's
// own verification.
func (s *Syncer) syncTarget(ctx context.Context, src Snapshots, snap Snapshot, t Target, ready func() error) (tm TargetManifest, before *Snapshot) {
	start := time.Now()
	tm = TargetManifest{Name: t.Name(), Kind: t.Kind(), Outcome: Failed}
	log := s.o.Log.With("target", t.Name(), "snapshot", snap.ID)
	defer func() { tm.Seconds = time.Since(start).Seconds() }()
	fail := func(err error) (TargetManifest, *Snapshot) {
		tm.Error = err.Error()
		log.Warn("mirror target failed", "err", err)
		return tm, before
	}
	end, err := t.Begin(ctx, snap)
	if err != nil {
		return fail(err)
	}
	defer func() {
		// The lock goes even when the sync is cancelled.
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := end(ectx); err != nil && tm.Error == "" {
			tm.Error = "unlock: " + err.Error()
			tm.Outcome = Failed
		}
	}()
	served, err := t.Served(ctx)
	if err != nil {
		return fail(err)
	}
	tm.Before, tm.Serves = served, served
	if served != "" && served != snap.ID {
		prev, err := src.Snapshot(served)
		switch {
		case err == nil:
			before = &prev
		case errors.Is(err, ErrNoSnapshot):
			log.Warn("mirror target serves a snapshot the release no longer has", "served", served)
		default:
			return fail(err)
		}
	}
	// A target that serves snap already is checked first, and staged
	// only if it fails.
	already := served == snap.ID
	var probs []repo.Problem
	for attempt := 0; attempt <= s.o.Retries; attempt++ {
		tm.Attempts = attempt + 1
		thorough := attempt > 0
		probs, err = nil, nil
		if !already || thorough {
			var tr Transfer
			tr, err = t.Stage(ctx, snap, before, thorough, ready, s.o.Progress)
			tm.Transfer.add(tr)
		}
		if err == nil {
			var ctr Transfer
			probs, ctr, err = t.Check(ctx, snap, thorough)
			tm.Transfer.add(ctr)
		}
		if err == nil && len(probs) == 0 {
			err = ready()
		}
		if err == nil && len(probs) == 0 {
			break
		}
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
		if _, bad := errors.AsType[*SnapshotError](ready()); bad {
			err = ready()
			break // no retry makes a bad snapshot good
		}
		log.Warn("mirror target check failed", "attempt", attempt+1, "problems", len(probs), "err", err)
	}
	if err == nil && len(probs) == 0 {
		if !already {
			tr, err := t.Switch(ctx, snap, before)
			tm.Transfer.add(tr)
			if err != nil {
				return fail(fmt.Errorf("switch: %w", err))
			}
		}
		tm.Serves, tm.Outcome = snap.ID, Passed
		log.Info("mirror target synced", "attempts", tm.Attempts, "files", tm.Transfer.Files, "bytes_sent", tm.Transfer.BytesSent)
		return tm, before
	}
	for _, p := range probs {
		tm.Problems = append(tm.Problems, p.String())
	}
	if se, ok := errors.AsType[*SnapshotError](err); ok {
		for _, p := range se.Problems {
			tm.Problems = append(tm.Problems, "snapshot "+se.ID+": "+p.String())
		}
	}
	if err != nil {
		tm.Error = err.Error()
	}
	if before == nil {
		// Nothing to go back to: the target served nothing before (or
		// snap itself, and cannot be repaired).
		log.Warn("mirror target left failing: no previous snapshot", "problems", len(probs), "err", err)
		if served == "" {
			tm.Serves = ""
		}
		return tm, before
	}
	rprobs, rtr, rerr := t.Restore(ctx, *before, snap, s.o.Progress)
	tm.Transfer.add(rtr)
	if rerr == nil && len(rprobs) == 0 {
		// The target holds prev's bytes; prev itself must still verify.
		if vprobs, verr := repo.Verify(ctx, before.Dir, s.o.Keyring); verr != nil {
			rerr = verr
		} else {
			rprobs = vprobs
		}
	}
	if rerr != nil || len(rprobs) > 0 {
		tm.Serves = ""
		msg := fmt.Sprintf("restore %s: %d problems", before.ID, len(rprobs))
		if len(rprobs) > 0 {
			msg += ", first " + rprobs[0].String()
		}
		if rerr != nil {
			msg = fmt.Sprintf("restore %s: %v", before.ID, rerr)
		}
		tm.Error = strings.TrimPrefix(tm.Error+"; "+msg, "; ")
		log.Error("mirror target restore failed", "previous", before.ID, "problems", len(rprobs), "err", rerr)
		return tm, before
	}
	tm.Serves, tm.Restored = before.ID, true
	log.Warn("mirror target restored", "previous", before.ID)
	return tm, before
}

// mostServed returns the snapshot most targets served before ("" first).
func mostServed(ts []TargetManifest) string {
	n := map[string]int{}
	for _, t := range ts {
		n[t.Before]++
	}
	best := ""
	for _, k := range slices.Sorted(maps.Keys(n)) {
		if n[k] > n[best] {
			best = k
		}
	}
	return best
}

// packageDiff returns the package files b has and a has not, and the
// reverse; a may be the zero Snapshot (none).
func packageDiff(ts *trees, a, b Snapshot) (added, removed []string, err error) {
	fb, err := ts.list(b.Dir)
	if err != nil {
		return nil, nil, err
	}
	fa := map[string]fileInfo{}
	if a.Dir != "" {
		if fa, err = ts.list(a.Dir); err != nil {
			return nil, nil, err
		}
	}
	added, removed = []string{}, []string{}
	for _, n := range sortedNames(fb) {
		if _, ok := fa[n]; !ok && isPackage(b.Format, n) {
			added = append(added, n)
		}
	}
	for _, n := range sortedNames(fa) {
		if _, ok := fb[n]; !ok && isPackage(a.Format, n) {
			removed = append(removed, n)
		}
	}
	return added, removed, nil
}

// keepManifest writes the manifest under the state directory and gives
// it to the artifact store.
func (s *Syncer) keepManifest(ctx context.Context, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	name := m.Started.Format("20060102T150405.000000000Z") + "-" + m.Kind + "-" + m.Snapshot + ".json"
	m.Path = filepath.Join(repoDir(s.o.StateDir, m.Repo, m.Format), "manifests", name)
	if err := writeAtomic(m.Path, data, 0o644); err != nil {
		return fmt.Errorf("mirror %s/%s: manifest: %w", m.Repo, m.Format, err)
	}
	if s.o.Artifacts != nil {
		ref, err := s.o.Artifacts.Put(ctx, bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("mirror %s/%s: manifest artifact: %w", m.Repo, m.Format, err)
		}
		m.Artifact = ref
	}
	return nil
}

// record records a sluice.mirror.sync result per target.
func (s *Syncer) record(ctx context.Context, m *Manifest) error {
	if s.o.Recorder == nil {
		return nil
	}
	for _, t := range m.Targets {
		note := fmt.Sprintf("%s serves %s", t.Name, t.Serves)
		if t.Serves == "" {
			note = t.Name + " serves no verified snapshot"
		}
		if t.Error != "" {
			note += "; " + t.Error
		} else if len(t.Problems) > 0 {
			note += fmt.Sprintf("; %d problems, first %s", len(t.Problems), t.Problems[0])
		}
		if len(note) > 4000 {
			note = note[:4000]
		}
		data := map[string][]string{
			"item": {m.Repo + "/" + m.Format + "@" + m.Snapshot}, "type": {ItemType},
			"repo": {m.Repo}, "format": {m.Format}, "snapshot": {m.Snapshot}, "kind": {m.Kind},
			"target": {t.Name}, "target_kind": {t.Kind}, "attempts": {strconv.Itoa(t.Attempts)},
			"files": {strconv.FormatInt(t.Transfer.Files, 10)}, "bytes_sent": {strconv.FormatInt(t.Transfer.BytesSent, 10)},
			"duration": {strconv.FormatFloat(t.Seconds, 'f', 3, 64)},
			"added":    {strconv.Itoa(len(m.Added))}, "removed": {strconv.Itoa(len(m.Removed))},
		}
		if t.Before != "" {
			data["previous"] = []string{t.Before}
		}
		if t.Serves != "" {
			data["serves"] = []string{t.Serves}
		}
		if m.Artifact != "" {
			data["manifest_sha256"] = []string{m.Artifact}
		}
		for k, v := range s.o.ResultData {
			if _, ok := data[k]; !ok {
				data[k] = slices.Clone(v)
			}
		}
		res := &results.Result{Testcase: results.Testcase{Name: Testcase}, Outcome: t.Outcome, Note: note, Data: data,
			Groups: slices.Clone(s.o.ResultGroups)}
		if err := s.o.Recorder.Record(ctx, res); err != nil {
			return fmt.Errorf("mirror %s/%s: record result of %s: %w", m.Repo, m.Format, t.Name, err)
		}
	}
	return nil
}

// Verify reads target back now and checks it; on success it notes in the
// state of the repository and format when target was verified serving
// what.
func (s *Syncer) Verify(ctx context.Context, repoName, format string, t Target) (served string, probs []repo.Problem, err error) {
	unlock, err := flock(ctx, filepath.Join(repoDir(s.o.StateDir, repoName, format), "lock"))
	if err != nil {
		return "", nil, err
	}
	defer unlock()
	served, probs, err = t.Verify(ctx, s.o.Keyring)
	if err != nil {
		return served, probs, err
	}
	state, err := LoadState(s.o.StateDir, repoName, format)
	if err != nil {
		return served, probs, err
	}
	ts := state.target(t)
	ts.Served = served
	if len(probs) == 0 {
		ts.VerifiedAt = time.Now().UTC()
	} else {
		ts.VerifiedAt = time.Time{}
	}
	return served, probs, state.save(s.o.StateDir)
}
