package mirror

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Snapshot is one immutable, signed release snapshot: what a sync puts on
// its targets.
type Snapshot struct {
	Repo   string // the release repository's name
	Format string // "deb" or "rpm"
	ID     string // one safe path component; IDs sort in publication order
	Dir    string // the snapshot's repository tree
}

// Formats are the repository formats a snapshot can have.
var Formats = []string{"deb", "rpm"}

// idRE is what an ID or a repository name may be: one path component that
// no shell, rsync pattern or URL treats specially.
var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}$`)

// CheckName reports whether s is a valid snapshot ID, repository or target
// name: one path component of letters, digits and ._+~- that starts with a
// letter or digit.
func CheckName(what, s string) error {
	if !idRE.MatchString(s) || strings.Contains(s, "..") {
		return fmt.Errorf("%s %q: not a safe name (letters, digits, ._+~-)", what, s)
	}
	return nil
}

func (s Snapshot) check() error {
	if err := CheckName("repository", s.Repo); err != nil {
		return err
	}
	if !slices.Contains(Formats, s.Format) {
		return fmt.Errorf("repository %s: format %q (want deb or rpm)", s.Repo, s.Format)
	}
	if err := CheckName("snapshot", s.ID); err != nil {
		return err
	}
	if s.Dir == "" {
		return fmt.Errorf("snapshot %s/%s/%s: no directory", s.Repo, s.Format, s.ID)
	}
	return nil
}

// ErrNoSnapshot is returned for a snapshot that a release root does not
// hold.
var ErrNoSnapshot = errors.New("mirror: no such snapshot")

// Release is a release repository on disk as package repo publishes it:
// Root/snapshots/ID/ the immutable snapshots, Root/current a symbolic link
// to snapshots/ID, the one being served.
type Release struct {
	Name, Format, Root string
}

// Snapshot returns the snapshot id of r, or an error wrapping
// [ErrNoSnapshot].
func (r Release) Snapshot(id string) (Snapshot, error) {
	if err := CheckName("snapshot", id); err != nil {
		return Snapshot{}, err
	}
	dir := filepath.Join(r.Root, "snapshots", id)
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return Snapshot{}, fmt.Errorf("release %s/%s: snapshot %s: %w", r.Name, r.Format, id, ErrNoSnapshot)
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("release %s/%s: snapshot %s: %w", r.Name, r.Format, id, err)
	}
	if !fi.IsDir() {
		return Snapshot{}, fmt.Errorf("release %s/%s: snapshot %s: not a directory", r.Name, r.Format, id)
	}
	s := Snapshot{Repo: r.Name, Format: r.Format, ID: id, Dir: dir}
	return s, s.check()
}

// Current returns the snapshot Root/current points at.
func (r Release) Current() (Snapshot, error) {
	link, err := os.Readlink(filepath.Join(r.Root, "current"))
	if errors.Is(err, fs.ErrNotExist) {
		return Snapshot{}, fmt.Errorf("release %s/%s: nothing published (no current): %w", r.Name, r.Format, ErrNoSnapshot)
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("release %s/%s: current: %w", r.Name, r.Format, err)
	}
	id, ok := strings.CutPrefix(path.Clean(filepath.ToSlash(link)), "snapshots/")
	if !ok {
		return Snapshot{}, fmt.Errorf("release %s/%s: current points at %q, not snapshots/ID", r.Name, r.Format, link)
	}
	return r.Snapshot(id)
}

// fileInfo is what a sync knows of one file of a tree.
type fileInfo struct {
	size  int64
	mtime time.Time
	ino   uint64
}

// stateDirName is package repo's own state directory in a published tree:
// no metadata names it and it is not served.
const stateDirName = ".sluice"

// listTree returns the regular files under dir by slash-separated relative
// path, leaving out repo's state directory. Other than regular files and
// directories, only nothing is accepted: a snapshot is plain files.
func listTree(dir string) (map[string]fileInfo, error) {
	files := map[string]fileInfo{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case rel == ".":
			return nil
		case d.IsDir():
			if rel == stateDirName {
				return filepath.SkipDir
			}
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%s: not a regular file or directory", p)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var ino uint64
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino = st.Ino
		}
		files[rel] = fileInfo{size: fi.Size(), mtime: fi.ModTime(), ino: ino}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	return files, nil
}

// sortedNames returns the keys of files in order.
func sortedNames(files map[string]fileInfo) []string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// fingerprint sums the file list of a tree (paths, sizes, mtimes, inodes):
// a tree whose files are rewritten or replaced gets another.
func fingerprint(files map[string]fileInfo) string {
	h := sha256.New()
	for _, n := range sortedNames(files) {
		fi := files[n]
		fmt.Fprintf(h, "%s\x00%d %d %d\n", n, fi.size, fi.mtime.UnixNano(), fi.ino)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// trees lists snapshot trees once each (they are immutable), for the
// goroutines of one sync.
type trees struct {
	mu sync.Mutex
	m  map[string]map[string]fileInfo
}

func (t *trees) list(dir string) (map[string]fileInfo, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l, ok := t.m[dir]; ok {
		return l, nil
	}
	l, err := listTree(dir)
	if err != nil {
		return nil, err
	}
	if t.m == nil {
		t.m = map[string]map[string]fileInfo{}
	}
	t.m[dir] = l
	return l, nil
}
