package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage"
)

// srcCommitTime is the fixed time of every commit the tests make.
var srcCommitTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// srcEntry is a file of a test tree.
type srcEntry struct {
	mode filemode.FileMode
	data string // contents, or a symlink's target
}

// srcRepo is a repository the tests build object by object with go-git's
// plumbing, so that they can also build trees git itself would refuse.
type srcRepo struct {
	t   *testing.T
	dir string
	sto storage.Storer
}

func newSrcRepo(t *testing.T, bare bool) *srcRepo {
	t.Helper()
	dir := t.TempDir()
	repo, err := git.PlainInit(dir, bare)
	if err != nil {
		t.Fatal(err)
	}
	return &srcRepo{t: t, dir: dir, sto: repo.Storer}
}

func (u *srcRepo) object(typ plumbing.ObjectType, data []byte) plumbing.Hash {
	u.t.Helper()
	o := u.sto.NewEncodedObject()
	o.SetType(typ)
	w, err := o.Writer()
	if err != nil {
		u.t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		u.t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		u.t.Fatal(err)
	}
	h, err := u.sto.SetEncodedObject(o)
	if err != nil {
		u.t.Fatal(err)
	}
	return h
}

func (u *srcRepo) blob(data string) plumbing.Hash {
	return u.object(plumbing.BlobObject, []byte(data))
}

// tree writes files, keyed by slash-separated path, as nested trees.
func (u *srcRepo) tree(files map[string]srcEntry) plumbing.Hash {
	var ents []object.TreeEntry
	subs := make(map[string]map[string]srcEntry)
	for p, e := range files {
		if first, rest, ok := strings.Cut(p, "/"); ok {
			if subs[first] == nil {
				subs[first] = make(map[string]srcEntry)
			}
			subs[first][rest] = e
			continue
		}
		ents = append(ents, object.TreeEntry{Name: p, Mode: e.mode, Hash: u.blob(e.data)})
	}
	for name, sub := range subs {
		ents = append(ents, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: u.tree(sub)})
	}
	sort.Sort(object.TreeEntrySorter(ents))
	return u.rawTree(ents...)
}

// rawTree writes the entries as they are: any name, any order, duplicates.
func (u *srcRepo) rawTree(ents ...object.TreeEntry) plumbing.Hash {
	var b bytes.Buffer
	for _, e := range ents {
		fmt.Fprintf(&b, "%o %s\x00", uint32(e.Mode), e.Name)
		b.Write(e.Hash[:])
	}
	return u.object(plumbing.TreeObject, b.Bytes())
}

func (u *srcRepo) encode(o interface {
	Encode(plumbing.EncodedObject) error
}) plumbing.Hash {
	u.t.Helper()
	obj := u.sto.NewEncodedObject()
	if err := o.Encode(obj); err != nil {
		u.t.Fatal(err)
	}
	h, err := u.sto.SetEncodedObject(obj)
	if err != nil {
		u.t.Fatal(err)
	}
	return h
}

func (u *srcRepo) commit(msg string, tree plumbing.Hash, parents ...plumbing.Hash) plumbing.Hash {
	sig := object.Signature{Name: "Tester", Email: "tester@example.org", When: srcCommitTime}
	return u.encode(&object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: tree, ParentHashes: parents})
}

func (u *srcRepo) tag(name string, target plumbing.Hash) plumbing.Hash {
	sig := object.Signature{Name: "Tester", Email: "tester@example.org", When: srcCommitTime}
	return u.encode(&object.Tag{Name: name, Tagger: sig, Message: "release\n", TargetType: plumbing.CommitObject, Target: target})
}

func (u *srcRepo) setRef(name string, h plumbing.Hash) {
	u.t.Helper()
	if err := u.sto.SetReference(plumbing.NewHashReference(plumbing.ReferenceName(name), h)); err != nil {
		u.t.Fatal(err)
	}
}

// srcCommit is a commit of the package fixture, with what it holds.
type srcCommit struct {
	hash, tree plumbing.Hash
	files      map[string]srcEntry
}

// srcPackage is a Debian-style package repository: master at c2 (on c1),
// stable at c1, an annotated tag v1.0 on c1, a lightweight tag light on c2,
// and a Gerrit change refs/changes/34/1234/2 at c3, a child of c2 on no
// branch.
type srcPackage struct {
	*srcRepo
	c1, c2, c3 srcCommit
}

func newSrcPackage(t *testing.T, bare bool) *srcPackage {
	t.Helper()
	u := newSrcRepo(t, bare)
	f := &srcPackage{srcRepo: u}
	mk := func(msg string, files map[string]srcEntry, parents ...plumbing.Hash) srcCommit {
		tree := u.tree(files)
		return srcCommit{hash: u.commit(msg, tree, parents...), tree: tree, files: files}
	}
	files := map[string]srcEntry{
		"debian/control":       {filemode.Regular, "Source: hello\nMaintainer: Tester <tester@example.org>\n"},
		"debian/rules":         {filemode.Executable, "#!/usr/bin/make -f\n%:\n\tdh $@\n"},
		"debian/source/format": {filemode.Regular, "3.0 (native)\n"},
		"hello.sh":             {filemode.Executable, "#!/bin/sh\necho hello\n"},
		"control":              {filemode.Symlink, "debian/control"},
	}
	f.c1 = mk("first\n", files)
	files = maps.Clone(files)
	files["README"] = srcEntry{filemode.Regular, "hello\n"}
	f.c2 = mk("second\n", files, f.c1.hash)
	files = maps.Clone(files)
	files["debian/patches/series"] = srcEntry{filemode.Regular, "fix.patch\n"}
	files["debian/patches/fix.patch"] = srcEntry{filemode.Regular, "--- a\n+++ b\n"}
	f.c3 = mk("change\n", files, f.c2.hash)

	u.setRef("refs/heads/master", f.c2.hash)
	u.setRef("refs/heads/stable", f.c1.hash)
	u.setRef("refs/tags/v1.0", u.tag("v1.0", f.c1.hash))
	u.setRef("refs/tags/light", f.c2.hash)
	u.setRef("refs/changes/34/1234/2", f.c3.hash)
	return f
}

// readWorkspace reads a workspace back as entries.
func readWorkspace(t *testing.T, dir string) map[string]srcEntry {
	t.Helper()
	got := make(map[string]srcEntry)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			got[filepath.ToSlash(rel)] = srcEntry{filemode.Symlink, target}
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			mode := filemode.Regular
			if info.Mode()&0o100 != 0 {
				mode = filemode.Executable
			}
			got[filepath.ToSlash(rel)] = srcEntry{mode, string(data)}
			if !info.ModTime().Equal(srcCommitTime) {
				t.Errorf("%s: mtime %v, want %v", rel, info.ModTime(), srcCommitTime)
			}
		default:
			t.Errorf("%s: unexpected mode %v", rel, info.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func checkCheckout(t *testing.T, co *Checkout, want srcCommit) {
	t.Helper()
	if co.Commit != want.hash.String() {
		t.Errorf("Commit = %s, want %s", co.Commit, want.hash)
	}
	if co.Tree != want.tree.String() {
		t.Errorf("Tree = %s, want %s", co.Tree, want.tree)
	}
	got := readWorkspace(t, co.Dir)
	for _, p := range slices.Sorted(maps.Keys(want.files)) {
		if got[p] != want.files[p] {
			t.Errorf("%s = %+v, want %+v", p, got[p], want.files[p])
		}
	}
	for _, p := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want.files[p]; !ok {
			t.Errorf("unexpected file %s", p)
		}
	}
}

func srcFileURL(dir string) string { return "file://" + filepath.ToSlash(dir) }

func TestCheckoutRefs(t *testing.T) {
	t.Parallel()
	f := newSrcPackage(t, false)
	bare := newSrcPackage(t, true)
	tests := []struct {
		name       string
		bare       bool
		viaFileURL bool
		ref        func(f *srcPackage) string
		want       func(f *srcPackage) srcCommit
		wantRef    func(f *srcPackage) string
	}{
		{"branch short name, file URL", false, true,
			func(*srcPackage) string { return "master" },
			func(f *srcPackage) srcCommit { return f.c2 },
			func(*srcPackage) string { return "refs/heads/master" }},
		{"branch full name, path", false, false,
			func(*srcPackage) string { return "refs/heads/stable" },
			func(f *srcPackage) srcCommit { return f.c1 },
			func(*srcPackage) string { return "refs/heads/stable" }},
		{"annotated tag short name, bare path", true, false,
			func(*srcPackage) string { return "v1.0" },
			func(f *srcPackage) srcCommit { return f.c1 },
			func(*srcPackage) string { return "refs/tags/v1.0" }},
		{"lightweight tag full name, file URL", false, true,
			func(*srcPackage) string { return "refs/tags/light" },
			func(f *srcPackage) srcCommit { return f.c2 },
			func(*srcPackage) string { return "refs/tags/light" }},
		{"change ref, file URL", false, true,
			func(*srcPackage) string { return "refs/changes/34/1234/2" },
			func(f *srcPackage) srcCommit { return f.c3 },
			func(*srcPackage) string { return "refs/changes/34/1234/2" }},
		{"change ref, bare file URL", true, true,
			func(*srcPackage) string { return "refs/changes/34/1234/2" },
			func(f *srcPackage) srcCommit { return f.c3 },
			func(*srcPackage) string { return "refs/changes/34/1234/2" }},
		{"sha on a branch, file URL", false, true,
			func(f *srcPackage) string { return f.c2.hash.String() },
			func(f *srcPackage) srcCommit { return f.c2 },
			func(f *srcPackage) string { return f.c2.hash.String() }},
		{"sha on a branch, upper case, path", false, false,
			func(f *srcPackage) string { return strings.ToUpper(f.c1.hash.String()) },
			func(f *srcPackage) srcCommit { return f.c1 },
			func(f *srcPackage) string { return f.c1.hash.String() }},
		{"sha only on a change, path", false, false,
			func(f *srcPackage) string { return f.c3.hash.String() },
			func(f *srcPackage) srcCommit { return f.c3 },
			func(f *srcPackage) string { return f.c3.hash.String() }},
		{"sha only on a change, bare file URL", true, true,
			func(f *srcPackage) string { return f.c3.hash.String() },
			func(f *srcPackage) srcCommit { return f.c3 },
			func(f *srcPackage) string { return f.c3.hash.String() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := f
			if tt.bare {
				up = bare
			}
			url := up.dir
			if tt.viaFileURL {
				url = srcFileURL(up.dir)
			}
			s := NewSources(t.TempDir(), nil)
			work := t.TempDir()
			co, err := s.Checkout(t.Context(), "pkg/hello", url, tt.ref(up), work)
			if err != nil {
				t.Fatal(err)
			}
			checkCheckout(t, co, tt.want(up))
			if co.Ref != tt.wantRef(up) {
				t.Errorf("Ref = %s, want %s", co.Ref, tt.wantRef(up))
			}
			if !co.Fetched {
				t.Error("Fetched = false on an empty cache")
			}
			if co.Project != "pkg/hello" || co.URL != url {
				t.Errorf("Project, URL = %s, %s", co.Project, co.URL)
			}
			if filepath.Dir(co.Dir) != work {
				t.Errorf("Dir = %s, not directly under %s", co.Dir, work)
			}
			if _, err := os.Lstat(filepath.Join(co.Dir, ".git")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("workspace has a .git: %v", err)
			}
			if _, err := os.Stat(filepath.Join(s.dir, "pkg+hello.git", "HEAD")); err != nil {
				t.Errorf("cache: %v", err)
			}
		})
	}
}

func TestCheckoutCache(t *testing.T) {
	t.Parallel()
	f := newSrcPackage(t, false)
	s := NewSources(t.TempDir(), nil)
	url := srcFileURL(f.dir)
	work := t.TempDir()
	cacheDir := filepath.Join(s.dir, "hello.git")

	type counts struct{ sessions, packs, objects int64 }
	now := func() counts { return counts{s.sessions.Load(), s.packs.Load(), s.objects.Load()} }
	var c4 srcCommit
	steps := []struct {
		name    string
		before  func()
		ref     func() string
		want    func() srcCommit
		fetched bool
		delta   counts // sessions opened, packs and objects fetched
	}{
		// c1, c2: two commits, two root trees, one debian and one
		// debian/source tree, six blobs.
		{"first checkout clones", nil,
			func() string { return "master" }, func() srcCommit { return f.c2 }, true, counts{1, 1, 12}},
		{"sha in cache: no contact", nil,
			func() string { return f.c2.hash.String() }, func() srcCommit { return f.c2 }, false, counts{0, 0, 0}},
		{"branch unchanged: no fetch", nil,
			func() string { return "master" }, func() srcCommit { return f.c2 }, false, counts{1, 0, 0}},
		{"branch at a cached commit: no fetch", nil,
			func() string { return "stable" }, func() srcCommit { return f.c1 }, false, counts{1, 0, 0}},
		{"annotated tag: the tag object only", nil,
			func() string { return "v1.0" }, func() srcCommit { return f.c1 }, true, counts{1, 1, 1}},
		{"new srcRepo commit: commit, root tree and README only",
			func() {
				files := maps.Clone(f.c2.files)
				files["README"] = srcEntry{filemode.Regular, "hello again\n"}
				tree := f.tree(files)
				c4 = srcCommit{hash: f.commit("fourth\n", tree, f.c2.hash), tree: tree, files: files}
				f.setRef("refs/heads/master", c4.hash)
			},
			func() string { return "master" }, func() srcCommit { return c4 }, true, counts{1, 1, 3}},
		{"new commit now cached", nil,
			func() string { return c4.hash.String() }, func() srcCommit { return c4 }, false, counts{0, 0, 0}},
	}
	var cacheInfo fs.FileInfo
	for i, st := range steps {
		if st.before != nil {
			st.before()
		}
		before := now()
		co, err := s.Checkout(t.Context(), "hello", url, st.ref(), work)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		checkCheckout(t, co, st.want())
		if co.Fetched != st.fetched {
			t.Errorf("%s: Fetched = %v, want %v", st.name, co.Fetched, st.fetched)
		}
		after := now()
		if d := (counts{after.sessions - before.sessions, after.packs - before.packs, after.objects - before.objects}); d != st.delta {
			t.Errorf("%s: sessions, packs, objects = %+v, want %+v", st.name, d, st.delta)
		}
		info, err := os.Stat(cacheDir)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			cacheInfo = info
		} else if !os.SameFile(info, cacheInfo) {
			t.Errorf("%s: the cache was made anew", st.name)
		}
	}
	packs, err := filepath.Glob(filepath.Join(cacheDir, "objects", "pack", "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(packs)) != s.packs.Load() {
		t.Errorf("%d packs in the cache, %d fetched", len(packs), s.packs.Load())
	}
	dirs, err := os.ReadDir(work)
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != len(steps) {
		t.Errorf("%d workspaces for %d checkouts", len(dirs), len(steps))
	}
}

func TestCheckoutRefNotFound(t *testing.T) {
	t.Parallel()
	f := newSrcPackage(t, false)
	s := NewSources(t.TempDir(), nil)
	url := srcFileURL(f.dir)
	work := t.TempDir()

	// Warm the cache, so that the failures below meet a cache with refs.
	if _, err := s.Checkout(t.Context(), "hello", url, "stable", work); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{
		"nope",
		"refs/heads/nope",
		"refs/tags/v9.9",
		"refs/changes/35/1235/1",
		"refs/changes/34/1234/3",
		"0123456789abcdef0123456789abcdef01234567",
	} {
		_, err := s.Checkout(t.Context(), "hello", url, ref, work)
		if !errors.Is(err, ErrRefNotFound) {
			t.Errorf("%s: err = %v, want ErrRefNotFound", ref, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, ref) || !strings.Contains(msg, url) {
			t.Errorf("%s: %q does not name the ref and the URL", ref, msg)
		}
	}
	// The cache still serves, from what it has and from the remote.
	for _, ref := range []string{f.c1.hash.String(), "master", "refs/changes/34/1234/2"} {
		if _, err := s.Checkout(t.Context(), "hello", url, ref, work); err != nil {
			t.Errorf("%s after failures: %v", ref, err)
		}
	}
	if dirs, _ := os.ReadDir(work); len(dirs) != 4 {
		t.Errorf("%d workspaces, want 4: failures left some behind", len(dirs))
	}
}

func TestCheckoutRemoteErrors(t *testing.T) {
	t.Parallel()
	empty := newSrcRepo(t, true)
	f := newSrcPackage(t, false)
	f.setRef("refs/tags/master", f.c1.hash) // also a branch
	f.setRef("refs/tags/blob", f.blob("not a commit\n"))
	tests := []struct {
		name, url, ref string
		is             error // nil: any error but ErrRefNotFound
	}{
		{"no repository", filepath.Join(t.TempDir(), "nothing"), "master", transport.ErrRepositoryNotFound},
		{"empty repository", empty.dir, "master", ErrRefNotFound},
		{"branch and tag of one name", f.dir, "master", nil},
		{"ref to a blob", f.dir, "blob", nil},
		{"sha of a tree", f.dir, f.c2.tree.String(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := NewSources(t.TempDir(), nil)
			work := t.TempDir()
			_, err := s.Checkout(t.Context(), "hello", tt.url, tt.ref, work)
			switch {
			case err == nil:
				t.Fatal("no error")
			case tt.is != nil && !errors.Is(err, tt.is):
				t.Errorf("err = %v, want %v", err, tt.is)
			case tt.is == nil && errors.Is(err, ErrRefNotFound):
				t.Errorf("err = %v, want something else than ErrRefNotFound", err)
			}
			if dirs, _ := os.ReadDir(work); len(dirs) != 0 {
				t.Errorf("%d workspaces left behind", len(dirs))
			}
		})
	}
}

func TestCheckoutInvalidInput(t *testing.T) {
	t.Parallel()
	f := newSrcPackage(t, false)
	good := srcFileURL(f.dir)
	tests := []struct{ name, project, url, ref string }{
		{"empty project", "", good, "master"},
		{"absolute project", "/etc", good, "master"},
		{"project with ..", "a/../b", good, "master"},
		{"project with ..name", "a/..b", good, "master"},
		{"project with empty element", "a//b", good, "master"},
		{"project with trailing slash", "a/", good, "master"},
		{"hidden project", "a/.git", good, "master"},
		{"project with space", "a b", good, "master"},
		{"project with shell", "a;rm -rf", good, "master"},
		{"project with plus", "a+b", good, "master"},
		{"empty ref", "p", good, ""},
		{"ref with ..", "p", good, "refs/heads/a..b"},
		{"ref with space", "p", good, "refs/heads/a b"},
		{"ref with ~", "p", good, "master~1"},
		{"ref with ^", "p", good, "master^"},
		{"ref with colon", "p", good, "a:b"},
		{"ref with @{", "p", good, "master@{1}"},
		{"ref @", "p", good, "@"},
		{"ref ending in .lock", "p", good, "refs/heads/x.lock"},
		{"ref element starting with .", "p", good, "refs/heads/.x"},
		{"ref ending in /", "p", good, "refs/heads/x/"},
		{"ref ending in .", "p", good, "refs/heads/x."},
		{"ref with control character", "p", good, "refs/heads/x\n"},
		{"change ref too short", "p", good, "refs/changes/34/1234"},
		{"change ref wrong shard", "p", good, "refs/changes/35/1234/2"},
		{"change ref padded change", "p", good, "refs/changes/34/01234/2"},
		{"change ref patchset 0", "p", good, "refs/changes/34/1234/0"},
		{"change ref meta", "p", good, "refs/changes/34/1234/meta"},
		{"sha-256 name", "p", good, strings.Repeat("ab", 32)},
		{"relative path", "p", "some/dir", "master"},
		{"http URL", "p", "http://example.org/p", "master"},
		{"scp-like URL", "p", "git@example.org:p", "master"},
		{"ext URL", "p", "ext::sh -c touch% /tmp/pwned", "master"},
		{"https URL with password", "p", "https://u:secret@example.org/p", "master"},
		{"https URL with user", "p", "https://u@example.org/p", "master"},
		{"file URL with host", "p", "file://example.org/p", "master"},
		{"file URL relative", "p", "file://p", "master"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := NewSources(filepath.Join(t.TempDir(), "cache"), nil)
			work := filepath.Join(t.TempDir(), "work")
			_, err := s.Checkout(t.Context(), tt.project, tt.url, tt.ref, work)
			if err == nil || errors.Is(err, ErrRefNotFound) {
				t.Fatalf("err = %v, want a validation error", err)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error shows a password: %v", err)
			}
			for _, d := range []string{s.dir, work} {
				if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s was created", d)
				}
			}
		})
	}
}

func TestSourceNames(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"hello", "pkg/hello", "deb/python-foo_2.0", "A.b-C_d/e"} {
		if err := validSourceProject(p); err != nil {
			t.Errorf("project %q: %v", p, err)
		}
	}
	if a, b := sourceCacheName("a/b"), sourceCacheName("a+b"); a != "a+b" || validSourceProject(b) == nil {
		t.Errorf("sourceCacheName(a/b) = %s; a+b must not be a project", a)
	}
	for _, r := range []string{"master", "feature/x", "refs/heads/a-b", "refs/tags/v1.0", "refs/changes/34/1234/2",
		"refs/changes/01/1/1", "refs/changes/00/100/12", "refs/zuul/master/Z0123", "-x"} {
		w, err := parseSourceRef(r)
		if err != nil || w.name != r {
			t.Errorf("ref %q: %+v, %v", r, w, err)
		}
	}
	sha := "ABCDEF0123456789abcdef0123456789ABCDEF01"
	if w, err := parseSourceRef(sha); err != nil || w.name != "" || w.sha.String() != strings.ToLower(sha) {
		t.Errorf("ref %s: %+v, %v", sha, w, err)
	}
	// Not 40 hex digits: a name, as git would take it.
	if w, err := parseSourceRef("abcdef0"); err != nil || w.name != "abcdef0" {
		t.Errorf("ref abcdef0: %+v, %v", w, err)
	}
}

func TestCheckoutHostileTree(t *testing.T) {
	t.Parallel()
	u := newSrcRepo(t, true)
	outside := t.TempDir()
	file := func(name string) object.TreeEntry {
		return object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: u.blob("pwned\n")}
	}
	dir := func(name string, ents ...object.TreeEntry) object.TreeEntry {
		return object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: u.rawTree(ents...)}
	}
	symlink := func(name, target string) object.TreeEntry {
		return object.TreeEntry{Name: name, Mode: filemode.Symlink, Hash: u.blob(target)}
	}
	ok := file("ok")
	tests := []struct {
		name string
		tree plumbing.Hash
	}{
		{"name ../escape", u.rawTree(file("../escape"), ok)},
		{"name with a slash", u.rawTree(file("a/b"), ok)},
		{"name ..", u.rawTree(dir("..", file("escape")), ok)},
		{"name .", u.rawTree(dir(".", file("x")), ok)},
		{"nested ../../escape", u.rawTree(dir("debian", file("control"), file("../../escape")))},
		{"symlink out, then a dir through it", u.rawTree(ok, symlink("x", outside), dir("x", file("evil")))},
		{"symlink out, then a file through it", u.rawTree(ok, symlink("x", outside), file("x/evil"))},
		{"symlink up, then a dir through it", u.rawTree(ok, symlink("x", ".."), dir("x", file("evil")))},
		{"duplicate files", u.rawTree(file("x"), file("x"))},
		{".git directory", u.rawTree(dir(".git", file("config")), ok)},
		{".GIT directory", u.rawTree(ok, dir("sub", dir(".GIT", file("config"))))},
		{"empty symlink", u.rawTree(ok, symlink("x", ""))},
	}
	for i, tt := range tests {
		u.setRef(fmt.Sprintf("refs/heads/evil%d", i), u.commit(tt.name+"\n", tt.tree))
	}
	u.setRef("refs/heads/out", u.commit("out\n", u.rawTree(ok, symlink("x", outside), symlink("y", "../.."))))
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			work := filepath.Join(base, "work")
			s := NewSources(filepath.Join(base, "cache"), nil)
			_, err := s.Checkout(t.Context(), "evil", u.dir, fmt.Sprintf("evil%d", i), work)
			if !errors.Is(err, ErrUnsafeTree) {
				t.Errorf("err = %v, want ErrUnsafeTree", err)
			}
			if dirs, _ := os.ReadDir(work); len(dirs) != 0 {
				t.Errorf("%d entries left in %s", len(dirs), work)
			}
			if dirs, _ := os.ReadDir(base); len(dirs) != 2 {
				t.Errorf("%d entries in %s, want work and cache", len(dirs), base)
			}
			if dirs, _ := os.ReadDir(outside); len(dirs) != 0 {
				t.Errorf("%d entries written outside", len(dirs))
			}
		})
	}

	// A symlink that points out is still written, as a symlink, and nothing
	// goes through it.
	t.Run("symlink out alone", func(t *testing.T) {
		t.Parallel()
		s := NewSources(t.TempDir(), nil)
		co, err := s.Checkout(t.Context(), "evil", u.dir, "out", t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		got := readWorkspace(t, co.Dir)
		want := map[string]srcEntry{"ok": {filemode.Regular, "pwned\n"}, "x": {filemode.Symlink, outside}, "y": {filemode.Symlink, "../.."}}
		if !maps.Equal(got, want) {
			t.Errorf("tree = %+v, want %+v", got, want)
		}
		if dirs, _ := os.ReadDir(outside); len(dirs) != 0 {
			t.Errorf("%d entries written outside", len(dirs))
		}
	})
}

func TestCheckoutConcurrent(t *testing.T) {
	t.Parallel()
	f := newSrcPackage(t, false)
	data := t.TempDir()
	work := t.TempDir()
	// Two Sources on one directory stand for two processes: only the lock
	// file keeps them apart.
	sources := []*Sources{NewSources(data, nil), NewSources(data, nil)}
	const n = 10
	cos := make([]*Checkout, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			cos[i], errs[i] = sources[i%2].Checkout(t.Context(), "pkg/hello", srcFileURL(f.dir), "refs/changes/34/1234/2", work)
		})
	}
	wg.Wait()
	fetched := 0
	dirs := make(map[string]bool)
	for i := range n {
		if errs[i] != nil {
			t.Errorf("checkout %d: %v", i, errs[i])
			continue
		}
		checkCheckout(t, cos[i], f.c3)
		if cos[i].Fetched {
			fetched++
		}
		dirs[cos[i].Dir] = true
	}
	if fetched != 1 {
		t.Errorf("%d checkouts fetched, want 1", fetched)
	}
	if len(dirs) != n {
		t.Errorf("%d workspaces for %d checkouts", len(dirs), n)
	}
}

func TestCheckoutCanceled(t *testing.T) {
	t.Parallel()
	f := newSrcPackage(t, false)
	s := NewSources(t.TempDir(), nil)
	work := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Checkout(ctx, "hello", f.dir, "master", work); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	co, err := s.Checkout(t.Context(), "hello", f.dir, "master", work)
	if err != nil {
		t.Fatal(err)
	}
	checkCheckout(t, co, f.c2)
}

func TestCheckoutLockFile(t *testing.T) {
	t.Parallel()
	f := newSrcPackage(t, false)
	data, work := t.TempDir(), t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		// Two Sources on one directory stand for two processes.
		a, b := NewSources(data, nil), NewSources(data, nil)
		unlock, err := a.lock(t.Context(), "hello")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if _, err := b.Checkout(ctx, "hello", f.dir, "master", work); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("checkout while another holds the lock file: err = %v, want context.DeadlineExceeded", err)
		}
		unlock()
		co, err := b.Checkout(t.Context(), "hello", f.dir, "master", work)
		if err != nil {
			t.Fatal(err)
		}
		checkCheckout(t, co, f.c2)
	})
}

// TestSourceTreeWriterConfined checks the second line of defence: were a
// hostile name to pass the name checks, os.Root would still not write through
// a symlink out of the workspace.
func TestSourceTreeWriterConfined(t *testing.T) {
	t.Parallel()
	u := newSrcRepo(t, true)
	outside := t.TempDir()
	ws := t.TempDir()
	for name, target := range map[string]string{"abs": outside, "up": "../" + filepath.Base(outside)} {
		if err := os.Symlink(target, filepath.Join(ws, name)); err != nil {
			t.Fatal(err)
		}
	}
	root, err := os.OpenRoot(ws)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	w := &sourceTreeWriter{ctx: t.Context(), sto: u.sto, root: root, mtime: srcCommitTime}
	file := object.TreeEntry{Name: "evil", Mode: filemode.Regular, Hash: u.blob("pwned\n")}
	dir := object.TreeEntry{Name: "evil", Mode: filemode.Dir, Hash: u.rawTree(file)}
	link := object.TreeEntry{Name: "evil", Mode: filemode.Symlink, Hash: u.blob("/")}
	for _, p := range []string{"abs/evil", "up/evil", "abs/../evil", "../evil"} {
		if err := w.file(file, p, 0o644); err == nil {
			t.Errorf("file %s written", p)
		}
		if err := w.dir(dir, p, 0); err == nil {
			t.Errorf("dir %s written", p)
		}
		if err := w.symlink(link, p); err == nil {
			t.Errorf("symlink %s written", p)
		}
	}
	if dirs, _ := os.ReadDir(outside); len(dirs) != 0 {
		t.Errorf("%d entries written outside", len(dirs))
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(ws), "evil")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("evil written next to the workspace: %v", err)
	}
}
