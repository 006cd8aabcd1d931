package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// trashPrefix names, in snapshots/, a snapshot a prune is removing: it is
// renamed there first, so that it leaves the list of snapshots in one
// step, then deleted. What a crash leaves under this name the next prune
// or publish deletes.
const trashPrefix = ".trash-"

// PruneSummary says what a prune did.
type PruneSummary struct {
	// Removed are the snapshots removed and Kept those left, oldest first.
	Removed, Kept []string
	// PoolFiles and PoolBytes count the files removed from the pool: those
	// no snapshot left names.
	PoolFiles int
	PoolBytes int64
}

// Prune removes the snapshots older than the newest keep, except the
// current one and those in protect (a snapshot a mirror target serves,
// which a mirror may need again to restore or roll back a target; IDs the
// repository does not hold are ignored), then removes from the pool every
// file that no remaining snapshot's manifest names. keep is at least 1, so
// the newest snapshot stays and its ID is never given again.
//
// It holds the repository's lock, so it runs between publishes and
// rollbacks, never during one. A crash leaves a consistent repository:
// each snapshot is renamed out of snapshots/ (to .trash-*) before it is
// deleted, so it is listed whole or not at all, and pool files are removed
// only once no listed snapshot names them; the next prune or publish
// finishes the deletion. Current is never touched: a client reading it
// sees no change.
//
// The manifests decide which pool files stay, not the files' link counts:
// a mirror target on the same filesystem may hold links to a pool file no
// snapshot names any more, and a snapshot's package is a copy, not a link,
// where the filesystem refused a link.
func (d ReleaseDir) Prune(ctx context.Context, keep int, protect []string, log *slog.Logger) (PruneSummary, error) {
	var sum PruneSummary
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if keep < 1 {
		return sum, fmt.Errorf("release %s: prune: keep %d: at least the newest snapshot is kept", d, keep)
	}
	protected := map[string]bool{}
	for _, id := range protect {
		if !ValidSnapshotID(id) {
			return sum, fmt.Errorf("release %s: prune: protect %q: not a snapshot ID", d, id)
		}
		protected[id] = true
	}
	// Never make the directory (the lock would): nothing to prune.
	if !d.Published() {
		return sum, fmt.Errorf("release %s: prune: nothing published: %w", d, ErrNoSnapshot)
	}
	unlock, err := lockDir(string(d))
	if err != nil {
		return sum, err
	}
	defer unlock()
	d.removeLeftovers()

	ids, err := d.snapshotIDs()
	if err != nil {
		return sum, err
	}
	cur, err := d.CurrentID()
	if err != nil && !errors.Is(err, ErrNoSnapshot) {
		return sum, err
	}
	for i, id := range ids {
		if i >= len(ids)-keep || id == cur || protected[id] {
			sum.Kept = append(sum.Kept, id)
		} else {
			sum.Removed = append(sum.Removed, id)
		}
	}
	// Every snapshot that stays must be read before anything is removed:
	// the pool files they name are the ones that stay.
	used := map[string]bool{}
	for _, id := range sum.Kept {
		m, err := d.manifest(id)
		if err != nil {
			return sum, fmt.Errorf("release %s: prune: %w", d, err)
		}
		for _, e := range m.Packages {
			used[e.SHA256] = true
		}
	}

	snapDir := filepath.Join(string(d), ReleaseSnapshots)
	var trash []string
	for _, id := range sum.Removed {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		t := filepath.Join(snapDir, trashPrefix+id+"-"+randomHex())
		if err := os.Rename(d.SnapshotDir(id), t); err != nil {
			return sum, fmt.Errorf("release %s: prune: snapshot %s: %w", d, id, err)
		}
		trash = append(trash, t)
	}
	if len(trash) > 0 {
		if err := syncDir(snapDir); err != nil {
			return sum, fmt.Errorf("release %s: prune: %w", d, err)
		}
	}
	for _, t := range trash {
		if err := os.RemoveAll(t); err != nil {
			return sum, fmt.Errorf("release %s: prune: %w", d, err)
		}
	}
	files, bytes, err := d.prunePool(ctx, used)
	sum.PoolFiles, sum.PoolBytes = files, bytes
	if err != nil {
		return sum, err
	}
	log.Info("release pruned", "dir", string(d), "removed", len(sum.Removed), "kept", len(sum.Kept),
		"pool_files", sum.PoolFiles, "pool_bytes", sum.PoolBytes)
	return sum, nil
}

// snapshotIDs lists the IDs of the snapshots, oldest first.
func (d ReleaseDir) snapshotIDs() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(string(d), ReleaseSnapshots))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", d, err)
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() && ValidSnapshotID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// prunePool removes the pool files whose SHA-256 is not in used, and the
// fan-out directories it empties. Anything in the pool that is not a file
// named by its SHA-256 is left alone.
func (d ReleaseDir) prunePool(ctx context.Context, used map[string]bool) (files int, size int64, err error) {
	base := filepath.Join(string(d), ReleasePool, "sha256")
	fans, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("release %s: prune pool: %w", d, err)
	}
	for _, fan := range fans {
		if !fan.IsDir() || len(fan.Name()) != 2 {
			continue
		}
		dir := filepath.Join(base, fan.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			return files, size, fmt.Errorf("release %s: prune pool: %w", d, err)
		}
		left := len(ents)
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return files, size, err
			}
			name := e.Name()
			if !e.Type().IsRegular() || !hex64RE.MatchString(name) || !strings.HasPrefix(name, fan.Name()) || used[name] {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				return files, size, fmt.Errorf("release %s: prune pool: %w", d, err)
			}
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return files, size, fmt.Errorf("release %s: prune pool: %w", d, err)
			}
			files++
			size += fi.Size()
			left--
		}
		if left == 0 {
			os.Remove(dir)
		}
	}
	return files, size, nil
}

// pruned tells, for a snapshot ID the repository does not hold, whether it
// was pruned: IDs are given in sequence and a newer one is there.
func (d ReleaseDir) pruned(id string) bool {
	ids, err := d.snapshotIDs()
	if err != nil || len(ids) == 0 {
		return false
	}
	n, err := strconv.Atoi(id)
	return err == nil && n > 0 && id < ids[len(ids)-1] && !slices.Contains(ids, id)
}
