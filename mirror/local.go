package mirror

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/sluice-ci/sluice/repo"
)

// Local is a target directory on this host or a mounted share:
//
//	DIR/snapshots/ID/   a copy of each snapshot (hard links where the file system allows)
//	DIR/current         a symbolic link to snapshots/ID, switched by rename
//	DIR/project/trace/  the trace file
//	DIR/.lock           held while a sync runs
//
// Serve DIR/current. A new snapshot is copied beside the served one and
// checked there (every file the snapshot's own, or with its bytes); only
// then is current switched, in one rename, so a
// reader that resolves current once sees the old snapshot or the new one.
type Local struct {
	name, dir string
	keep      int
	log       *slog.Logger
}

var _ Target = (*Local)(nil)

// DefaultKeep is how many snapshots a local target keeps by default: the
// served one and the two before it, for readers still on them and for
// rollbacks without a copy.
const DefaultKeep = 3

// NewLocal returns the local target name in dir, which keeps keep
// snapshots (at least 2; 0 means [DefaultKeep]).
func NewLocal(name, dir string, keep int, log *slog.Logger) (*Local, error) {
	if err := CheckName("target", name); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("target %s: directory %q is not absolute", name, dir)
	}
	if keep == 0 {
		keep = DefaultKeep
	}
	if keep < 2 {
		return nil, fmt.Errorf("target %s: keep %d: at least 2 (the served snapshot and the one before)", name, keep)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Local{name: name, dir: filepath.Clean(dir), keep: keep, log: log}, nil
}

// Name implements [Target].
func (l *Local) Name() string { return l.name }

// Kind implements [Target].
func (l *Local) Kind() string { return "local" }

// Dir is the target's directory.
func (l *Local) Dir() string { return l.dir }

func (l *Local) snapDir(id string) string { return filepath.Join(l.dir, "snapshots", id) }

// Begin implements [Target]: a lock file in the directory.
func (l *Local) Begin(ctx context.Context, snap Snapshot) (func(context.Context) error, error) {
	unlock, err := flock(ctx, filepath.Join(l.dir, ".lock"))
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", l.name, err)
	}
	return func(context.Context) error { unlock(); return nil }, nil
}

// Served implements [Target]: where current points.
func (l *Local) Served(ctx context.Context) (string, error) {
	link, err := os.Readlink(filepath.Join(l.dir, "current"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("target %s: %w", l.name, err)
	}
	id, ok := strings.CutPrefix(path.Clean(filepath.ToSlash(link)), "snapshots/")
	if !ok || CheckName("snapshot", id) != nil {
		return "", fmt.Errorf("target %s: current points at %q, not snapshots/ID", l.name, link)
	}
	return id, nil
}

// Stage implements [Target]: snap is copied to snapshots/.ID.partial, hard
// links first, and renamed to snapshots/ID once complete. A snapshot
// already there is left as it is, or with thorough repaired file by file
// (each file replaced by rename).
func (l *Local) Stage(ctx context.Context, snap Snapshot, keep *Snapshot, thorough bool, _ func() error, p Progress) (Transfer, error) {
	final := l.snapDir(snap.ID)
	files, err := listTree(snap.Dir)
	if err != nil {
		return Transfer{}, err
	}
	if _, err := os.Stat(final); err == nil {
		if !thorough {
			return Transfer{}, nil
		}
		t, err := l.repair(ctx, snap, files, p)
		if err != nil {
			return t, fmt.Errorf("target %s: repair snapshot %s: %w", l.name, snap.ID, err)
		}
		return t, nil
	}
	tmp := filepath.Join(l.dir, "snapshots", "."+snap.ID+".partial")
	if err := os.RemoveAll(tmp); err != nil {
		return Transfer{}, err
	}
	var alt string
	if keep != nil {
		alt = l.snapDir(keep.ID)
	}
	t, err := l.copyTree(ctx, snap, files, tmp, alt, p)
	if err != nil {
		return t, fmt.Errorf("target %s: copy snapshot %s: %w", l.name, snap.ID, err)
	}
	if err := syncFS(tmp); err != nil {
		return t, fmt.Errorf("target %s: %w", l.name, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return t, fmt.Errorf("target %s: %w", l.name, err)
	}
	return t, syncDir(filepath.Dir(final))
}

// copyTree copies the files of snap into dst: a hard link of the
// snapshot's file, else (for immutable files) of alt's file of the same
// path, size and mtime, else a copy.
func (l *Local) copyTree(ctx context.Context, snap Snapshot, files map[string]fileInfo, dst, alt string, p Progress) (Transfer, error) {
	var t Transfer
	names := sortedNames(files)
	made := map[string]bool{}
	for i, rel := range names {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return t, err
			}
			p.report(l.name, "copy", int64(i), int64(len(names)))
		}
		to := filepath.Join(dst, filepath.FromSlash(rel))
		if d := filepath.Dir(to); !made[d] {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return t, err
			}
			made[d] = true
		}
		from := filepath.Join(snap.Dir, filepath.FromSlash(rel))
		err := os.Link(from, to)
		if err == nil {
			t.Files++
			continue
		}
		if alt != "" && stepOf(snap.Format, rel) == stepContent {
			if fi, err := os.Stat(filepath.Join(alt, filepath.FromSlash(rel))); err == nil &&
				fi.Size() == files[rel].size && fi.ModTime().Equal(files[rel].mtime) {
				if os.Link(filepath.Join(alt, filepath.FromSlash(rel)), to) == nil {
					continue
				}
			}
		}
		copied, err := linkOrCopy(from, to)
		if err != nil {
			return t, err
		}
		t.Files++
		if copied {
			t.BytesSent += files[rel].size
		}
	}
	p.report(l.name, "copy", int64(len(names)), int64(len(names)))
	return t, nil
}

// repair replaces every file of the copy of snap by a fresh link or copy,
// one rename each, and removes what snap does not hold.
func (l *Local) repair(ctx context.Context, snap Snapshot, files map[string]fileInfo, p Progress) (Transfer, error) {
	var t Transfer
	final := l.snapDir(snap.ID)
	names := sortedNames(files)
	for i, rel := range names {
		if err := ctx.Err(); err != nil {
			return t, err
		}
		p.report(l.name, "repair", int64(i), int64(len(names)))
		from := filepath.Join(snap.Dir, filepath.FromSlash(rel))
		to := filepath.Join(final, filepath.FromSlash(rel))
		if same, err := sameFile(from, to); err == nil && same {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return t, err
		}
		tmp := to + ".sluice-repair"
		os.Remove(tmp)
		copied, err := linkOrCopy(from, tmp)
		if err != nil {
			return t, err
		}
		if err := os.Rename(tmp, to); err != nil {
			return t, err
		}
		t.Files++
		if copied {
			t.BytesSent += files[rel].size
		}
	}
	have, err := listTree(final)
	if err != nil {
		return t, err
	}
	for rel := range have {
		if _, ok := files[rel]; !ok {
			if err := os.Remove(filepath.Join(final, filepath.FromSlash(rel))); err != nil {
				return t, err
			}
		}
	}
	return t, syncFS(final)
}

// Check implements [Target]: every file of snapshots/ID is the
// snapshot's own (a hard link of it) or has its bytes.
func (l *Local) Check(ctx context.Context, snap Snapshot, thorough bool) ([]repo.Problem, Transfer, error) {
	dir := l.snapDir(snap.ID)
	files, err := listTree(snap.Dir)
	if err != nil {
		return nil, Transfer{}, err
	}
	var probs []repo.Problem
	var t Transfer
	for i, rel := range sortedNames(files) {
		if i%256 == 0 && ctx.Err() != nil {
			return nil, t, ctx.Err()
		}
		a, b := filepath.Join(snap.Dir, filepath.FromSlash(rel)), filepath.Join(dir, filepath.FromSlash(rel))
		fa, erra := os.Stat(a)
		fb, errb := os.Stat(b)
		if erra == nil && errb == nil && os.SameFile(fa, fb) {
			continue
		}
		same := false
		if errb == nil {
			t.BytesReceived += fb.Size()
			if same, err = sameFile(a, b); err != nil {
				return nil, t, fmt.Errorf("target %s: %w", l.name, err)
			}
		}
		if !same {
			probs = append(probs, repo.Problem{Path: "snapshots/" + snap.ID + "/" + rel, Err: errDiffers})
		}
	}
	return probs, t, nil
}

// Switch implements [Target]: current is pointed at snapshots/ID by
// renaming a new link over it; then the trace file is written and
// snapshots beyond the kept ones are removed.
func (l *Local) Switch(ctx context.Context, snap Snapshot, keep *Snapshot) (Transfer, error) {
	if err := l.point(snap.ID); err != nil {
		return Transfer{}, err
	}
	if err := writeAtomic(l.tracePath(), newTrace(snap, time.Now()).Marshal(), 0o644); err != nil {
		return Transfer{}, fmt.Errorf("target %s: trace: %w", l.name, err)
	}
	keepIDs := []string{snap.ID}
	if keep != nil {
		keepIDs = append(keepIDs, keep.ID)
	}
	return Transfer{}, l.prune(keepIDs)
}

func (l *Local) tracePath() string {
	host, _ := os.Hostname()
	if CheckName("host", host) != nil {
		host = "sluice"
	}
	return filepath.Join(l.dir, traceDir, host)
}

// point switches current to snapshots/id.
func (l *Local) point(id string) error {
	tmp := filepath.Join(l.dir, ".current.new")
	os.Remove(tmp)
	if err := os.Symlink("snapshots/"+id, tmp); err != nil {
		return fmt.Errorf("target %s: %w", l.name, err)
	}
	if err := os.Rename(tmp, filepath.Join(l.dir, "current")); err != nil {
		return fmt.Errorf("target %s: switch current: %w", l.name, err)
	}
	if err := syncDir(l.dir); err != nil {
		return fmt.Errorf("target %s: %w", l.name, err)
	}
	l.log.Info("mirror target switched", "target", l.name, "snapshot", id)
	return nil
}

// prune removes partial copies and the snapshots beyond the newest keep
// (by ID), never one of keepIDs. A snapshot is renamed away before it is
// removed, so that no half-removed tree is ever named as one.
func (l *Local) prune(keepIDs []string) error {
	base := filepath.Join(l.dir, "snapshots")
	ents, err := os.ReadDir(base)
	if err != nil {
		return fmt.Errorf("target %s: %w", l.name, err)
	}
	var ids []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") {
			if err := os.RemoveAll(filepath.Join(base, n)); err != nil {
				return fmt.Errorf("target %s: %w", l.name, err)
			}
			continue
		}
		if !slices.Contains(keepIDs, n) {
			ids = append(ids, n)
		}
	}
	slices.Sort(ids)
	if extra := len(ids) + len(keepIDs) - l.keep; extra > 0 {
		for _, id := range ids[:min(extra, len(ids))] {
			gone := filepath.Join(base, "."+id+".removed")
			if err := os.Rename(filepath.Join(base, id), gone); err != nil {
				return fmt.Errorf("target %s: %w", l.name, err)
			}
			if err := os.RemoveAll(gone); err != nil {
				return fmt.Errorf("target %s: %w", l.name, err)
			}
		}
	}
	return nil
}

// Restore implements [Target]. current was never switched away from
// prev, which is checked again; the failed copy is removed.
func (l *Local) Restore(ctx context.Context, prev, failed Snapshot, p Progress) ([]repo.Problem, Transfer, error) {
	served, err := l.Served(ctx)
	if err != nil {
		return nil, Transfer{}, err
	}
	var t Transfer
	if served != prev.ID {
		// A rollback to prev whose copy failed, or a target someone else
		// switched: stage prev again and switch to it once it checks.
		st, err := l.Stage(ctx, prev, nil, true, nil, p)
		t.add(st)
		if err != nil {
			return nil, t, err
		}
	}
	probs, _, err := l.Check(ctx, prev, true)
	if err != nil || len(probs) > 0 {
		return probs, t, err
	}
	if served != prev.ID {
		if err := l.point(prev.ID); err != nil {
			return nil, t, err
		}
	}
	if failed.ID != prev.ID {
		if err := os.RemoveAll(l.snapDir(failed.ID)); err != nil {
			return nil, t, fmt.Errorf("target %s: %w", l.name, err)
		}
	}
	return nil, t, nil
}

// Verify implements [Target]: repo.Verify of the snapshot current points at.
func (l *Local) Verify(ctx context.Context, keyring openpgp.EntityList) (string, []repo.Problem, error) {
	id, err := l.Served(ctx)
	if err != nil {
		return "", nil, err
	}
	if id == "" {
		return "", nil, fmt.Errorf("target %s: serves nothing yet (no %s)", l.name, filepath.Join(l.dir, "current"))
	}
	probs, err := repo.Verify(ctx, l.snapDir(id), keyring)
	if err != nil {
		return id, nil, fmt.Errorf("target %s: %w", l.name, err)
	}
	return id, probs, nil
}
