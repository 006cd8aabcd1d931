package mirror

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// flipInPlace changes one byte of path, keeping its size, inode and
// mtime: damage rsync's quick check cannot see.
func flipInPlace(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	off := fi.Size() - 10
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}

// replaceFlipped replaces path by a copy with one byte changed (a new
// inode: the original may be a hard link of the release's own file).
func replaceFlipped(t *testing.T, path string) {
	t.Helper()
	tmp := path + ".flip"
	if err := copyFile(path, tmp); err != nil {
		t.Fatal(err)
	}
	flipInPlace(t, tmp)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func firstPackage(t *testing.T, format, dir string) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := listTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range sortedNames(files) {
		if isPackage(format, n) {
			return filepath.Join(dir, n)
		}
	}
	t.Fatalf("no package in %s", dir)
	return ""
}

// TestDamagedTargetRepaired damages a package on a target that serves the
// snapshot (same size and mtime; torn for a quick check); a sync of the
// same snapshot finds it and repairs it on its retry.
func TestDamagedTargetRepaired(t *testing.T) {
	t.Parallel()
	for _, tk := range targetKinds {
		t.Run(tk.kind, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			rel := newRelease(t, "deb", mustKey(t))
			s1 := rel.add(t, pkgs(t, "deb", "hello", 3, 3000)...)
			target, serve := tk.make(t)
			syncer, _ := newSyncer(t, keyringOf(t, mustKey(t)), nil, nil)
			if _, err := syncer.Sync(ctx, rel, s1, "sync", []Target{target}); err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(tk.kind, "quick") {
				// A quick check compares sizes and mtimes of what the sync
				// did not write: a torn file.
				p := firstPackage(t, "deb", serve)
				replaceFlipped(t, p)
				if err := os.Truncate(p, 100); err != nil {
					t.Fatal(err)
				}
			} else {
				replaceFlipped(t, firstPackage(t, "deb", serve))
			}
			if _, probs, err := syncer.Verify(ctx, "hello", "deb", target); err != nil || len(probs) == 0 {
				t.Fatalf("verify of a damaged target: %v %v", probs, err)
			}
			m, err := syncer.Sync(ctx, rel, s1, "sync", []Target{target})
			if err != nil {
				t.Fatal(err)
			}
			if tm := m.Targets[0]; tm.Attempts != 2 || tm.Outcome != Passed {
				t.Errorf("repair: %+v", tm)
			}
			mustVerify(t, serve)
			mustVerify(t, s1.Dir)
		})
	}
}

// TestBadSnapshotRestored syncs a snapshot whose package is damaged: it
// fails its own verification, so no target switches to it; every target
// is put back on the snapshot it served, checked, and the sync reports it.
func TestBadSnapshotRestored(t *testing.T) {
	t.Parallel()
	for _, format := range Formats {
		for _, tk := range targetKinds {
			t.Run(format+"/"+tk.kind, func(t *testing.T) {
				t.Parallel()
				ctx := t.Context()
				rel := newRelease(t, format, mustKey(t))
				s1 := rel.add(t, pkgs(t, format, "hello", 2, 3000)...)
				s2 := rel.add(t, pkgs(t, format, "extra", 1, 3000)...)
				var extra string
				files, _ := listTree(s2.Dir)
				for n := range files {
					if isPackage(format, n) && strings.Contains(n, "extra") {
						extra = filepath.Join(s2.Dir, n)
					}
				}
				replaceFlipped(t, extra)
				target, serve := tk.make(t)
				rec := &recorded{}
				syncer, state := newSyncer(t, keyringOf(t, mustKey(t)), rec, nil)
				if _, err := syncer.Sync(ctx, rel, s1, "sync", []Target{target}); err != nil {
					t.Fatal(err)
				}
				before := time.Now()
				m, err := syncer.Sync(ctx, rel, s2, "sync", []Target{target})
				se, ok := errors.AsType[*SyncError](err)
				if !ok || len(se.Failed) != 1 {
					t.Fatalf("sync of a damaged snapshot: %v", err)
				}
				tm := m.Targets[0]
				if tm.Outcome != Failed || !tm.Restored || tm.Serves != s1.ID || tm.Attempts != 1 || len(tm.Problems) == 0 || !strings.Contains(tm.Error, "does not verify") {
					t.Fatalf("target: %+v", tm)
				}
				if got, _ := target.Served(ctx); got != s1.ID {
					t.Fatalf("serves %q, want %s", got, s1.ID)
				}
				mustVerify(t, serve)
				clientReads(t, format, serve, []string{"hello-0", "hello-1"})
				if r := rec.res[1]; r.Outcome != Failed || r.Data["serves"][0] != s1.ID {
					t.Errorf("result: %+v", r)
				}
				st, err := LoadState(state, "hello", format)
				if err != nil {
					t.Fatal(err)
				}
				if ts := st.Targets[target.Name()]; ts.Served != s1.ID || ts.VerifiedAt.Before(before) || ts.Outcome != Failed || ts.Error == "" {
					t.Errorf("state: %+v", ts)
				}
			})
		}
	}
}
