package zuul

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/sluice-ci/sluice/internal/gitremote"
	"github.com/sluice-ci/sluice/internal/pkgtest"
)

// upstream is a bare repository standing for a project on Gerrit.
type upstream struct {
	t    *testing.T
	dir  string
	repo *git.Repository
	sec  int
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "upstream.git")
	repo, err := git.PlainInit(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	return &upstream{t: t, dir: dir, repo: repo}
}

// commit makes a commit of tree on parents, one second after the previous.
func (u *upstream) commit(tree ctree, parents ...plumbing.Hash) plumbing.Hash {
	u.t.Helper()
	u.sec++
	return writeCommit(u.t, u.repo.Storer, "commit", writeCTree(u.t, u.repo.Storer, tree), u.sec, parents...)
}

func (u *upstream) setRef(name string, h plumbing.Hash) {
	u.t.Helper()
	if err := u.repo.Storer.SetReference(plumbing.NewHashReference(plumbing.ReferenceName(name), h)); err != nil {
		u.t.Fatal(err)
	}
}

// change makes a change's patchset: a commit of tree on parent, at its
// Gerrit ref, and the item naming it.
func (u *upstream) change(project string, number int, tree ctree, parent plumbing.Hash) MergeItem {
	u.t.Helper()
	h := u.commit(tree, parent)
	ref := ChangeRef(number, 1)
	u.setRef(ref, h)
	return MergeItem{Project: project, Branch: "master", URL: "file://" + u.dir, Change: number, Patchset: 1, Ref: ref, Commit: h.String()}
}

func newTestMerger(t *testing.T) *Merger {
	t.Helper()
	m, err := NewMerger(filepath.Join(t.TempDir(), "merger"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// mergerCommit reads a commit from the Merger's repository of project.
func mergerCommit(t *testing.T, m *Merger, project, sha string) *object.Commit {
	t.Helper()
	sto := filesystem.NewStorage(osfs.New(filepath.Join(m.dir, project+".git")), cache.NewObjectLRUDefault())
	t.Cleanup(func() { sto.Close() })
	c, err := object.GetCommit(sto, plumbing.NewHash(sha))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// files lists path: contents of a commit's tree.
func files(t *testing.T, c *object.Commit) map[string]string {
	t.Helper()
	tree, err := c.Tree()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	err = tree.Files().ForEach(func(f *object.File) error {
		s, err := f.Contents()
		out[f.Name] = s
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mergerRef(t *testing.T, m *Merger, project, ref string) string {
	t.Helper()
	sto := filesystem.NewStorage(osfs.New(filepath.Join(m.dir, project+".git")), cache.NewObjectLRUDefault())
	defer sto.Close()
	r, err := sto.Reference(plumbing.ReferenceName(ref))
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return r.Hash().String()
}

// threeFiles is the tip of the branch in most tests.
var threeFiles = ctree{"a": reg(lines(9)), "b": reg(lines(9)), "c": reg("c\n")}

func TestMergerChain(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	tip := u.commit(threeFiles)
	u.setRef("refs/heads/master", tip)
	a := u.change("proj", 101, edit(threeFiles, "a", reg(lines(9, 1, "A1"))), tip)
	b := u.change("proj", 102, edit(threeFiles, "a", reg(lines(9, 9, "A9")), "b", reg(lines(9, 5, "B5"))), tip)
	c := u.change("proj", 103, edit(threeFiles, "c", reg("C\n"), "new", exe("#!/bin/sh\n")), tip)

	m := newTestMerger(t)
	res, err := m.Merge(t.Context(), MergeRequest{Pipeline: "gate", Buildset: "0123abcd", Items: []MergeItem{a, b, c}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ref != "refs/sluice/gate/0123abcd" || res.URL != m.URL() || res.Commits["proj"] != res.Commit {
		t.Fatalf("result %+v", res)
	}
	if got := mergerRef(t, m, "proj", res.Ref); got != res.Commit {
		t.Fatalf("ref at %s, want %s", got, res.Commit)
	}
	head := mergerCommit(t, m, "proj", res.Commit)
	want := map[string]string{"a": lines(9, 1, "A1", 9, "A9"), "b": lines(9, 5, "B5"), "c": "C\n", "new": "#!/bin/sh\n"}
	if got := files(t, head); !mapsEqual(got, want) {
		t.Fatalf("merged tree %v, want %v", got, want)
	}
	// a is based on the tip: fast-forward; b and c: merge commits.
	if len(head.ParentHashes) != 2 || head.ParentHashes[1].String() != c.Commit {
		t.Fatalf("head parents %v, want [merge, %s]", head.ParentHashes, c.Commit)
	}
	mid := mergerCommit(t, m, "proj", head.ParentHashes[0].String())
	if !slices.Equal(hashStrings(mid.ParentHashes), []string{a.Commit, b.Commit}) {
		t.Fatalf("middle parents %v, want [%s %s]", mid.ParentHashes, a.Commit, b.Commit)
	}
	if head.Committer.Name != MergerName || head.Author.Email != MergerEmail {
		t.Fatalf("identity %v / %v", head.Author, head.Committer)
	}

	// The same items give the same commits, whatever the buildset.
	again, err := m.Merge(t.Context(), MergeRequest{Pipeline: "check", Buildset: "ffff0000", Items: []MergeItem{a, b, c}})
	if err != nil {
		t.Fatal(err)
	}
	if again.Commit != res.Commit {
		t.Fatalf("second merge %s, first %s", again.Commit, res.Commit)
	}
}

func hashStrings(hs []plumbing.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestMergerConflictNamesItem(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	tip := u.commit(threeFiles)
	u.setRef("refs/heads/master", tip)
	a := u.change("proj", 201, edit(threeFiles, "a", reg(lines(9, 5, "mine"))), tip)
	b := u.change("proj", 202, edit(threeFiles, "a", reg(lines(9, 5, "yours")), "b", gone), tip)
	c := u.change("proj", 203, edit(threeFiles, "c", reg("C\n")), tip)

	m := newTestMerger(t)
	_, err := m.Merge(t.Context(), MergeRequest{Pipeline: "gate", Buildset: "bs1", Items: []MergeItem{a, b, c}})
	ce, ok := errors.AsType[*ConflictError](err)
	if !ok {
		t.Fatalf("got %v, want a *ConflictError", err)
	}
	if ce.Index != 1 || ce.Item.Change != 202 || !slices.Equal(ce.Paths(), []string{"a"}) || ce.Conflicts[0].Reason != ReasonContent {
		t.Fatalf("conflict %+v", ce)
	}
	if !strings.Contains(err.Error(), "202,1") || !strings.Contains(err.Error(), "a (content)") {
		t.Fatalf("message %q", err)
	}
	if got := mergerRef(t, m, "proj", SpeculativeRef("gate", "bs1")); got != "" {
		t.Fatalf("ref set to %s after a conflict", got)
	}
}

func TestMergerFastForwardAndMerged(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	old := u.commit(threeFiles)
	done := u.change("proj", 301, edit(threeFiles, "c", reg("merged\n")), old)
	tip := plumbing.NewHash(done.Commit)
	u.setRef("refs/heads/master", tip) // 301 is merged already
	ff := u.change("proj", 302, edit(threeFiles, "c", reg("merged\n"), "d", reg("d\n")), tip)

	m := newTestMerger(t)
	for _, tc := range []struct {
		name  string
		items []MergeItem
		want  string
	}{
		{"fast-forward", []MergeItem{ff}, ff.Commit},
		{"already merged", []MergeItem{done}, tip.String()},
		{"merged then fast-forward", []MergeItem{done, ff}, ff.Commit},
	} {
		res, err := m.Merge(t.Context(), MergeRequest{Pipeline: "gate", Buildset: "bs-" + strings.ReplaceAll(tc.name, " ", "-"), Items: tc.items})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if res.Commit != tc.want {
			t.Errorf("%s: at %s, want %s", tc.name, res.Commit, tc.want)
		}
	}
}

func TestMergerCrossProject(t *testing.T) {
	t.Parallel()
	u1, u2 := newUpstream(t), newUpstream(t)
	tip1, tip2 := u1.commit(threeFiles), u2.commit(ctree{"lib": reg("v1\n")})
	u1.setRef("refs/heads/master", tip1)
	u2.setRef("refs/heads/master", tip2)
	u2.setRef("refs/heads/stable", tip2)
	a := u1.change("org/app", 401, edit(threeFiles, "a", reg(lines(9, 1, "A"))), tip1)
	stable := u2.change("org/lib", 402, ctree{"lib": reg("v1-stable\n")}, tip2)
	stable.Branch = "stable"
	l := u2.change("org/lib", 403, ctree{"lib": reg("v2\n")}, tip2)
	b := u1.change("org/app", 404, edit(threeFiles, "b", reg(lines(9, 9, "B"))), tip1)

	m := newTestMerger(t)
	items := []MergeItem{a, stable, l, b}
	res, err := m.Merge(t.Context(), MergeRequest{Pipeline: "gate", Buildset: "cross", Items: items})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Commits) != 2 || res.Commit != res.Commits["org/app"] {
		t.Fatalf("result %+v", res)
	}
	// org/lib's state is its master with 403: 402 is on another branch.
	if res.Commits["org/lib"] != l.Commit {
		t.Fatalf("org/lib at %s, want %s", res.Commits["org/lib"], l.Commit)
	}
	for p, sha := range res.Commits {
		if got := mergerRef(t, m, p, res.Ref); got != sha {
			t.Fatalf("%s: ref at %s, want %s", p, got, sha)
		}
	}
	if got := files(t, mergerCommit(t, m, "org/app", res.Commit)); got["a"] != lines(9, 1, "A") || got["b"] != lines(9, 9, "B") {
		t.Fatalf("org/app tree %v", got)
	}

	// A conflict in one project names the first conflicting item.
	bad := u2.change("org/lib", 405, ctree{"lib": reg("v3\n")}, tip2)
	_, err = m.Merge(t.Context(), MergeRequest{Pipeline: "gate", Buildset: "cross2", Items: []MergeItem{a, l, b, bad}})
	if ce, ok := errors.AsType[*ConflictError](err); !ok || ce.Index != 3 || ce.Item.Project != "org/lib" {
		t.Fatalf("got %v, want the conflict of item 3", err)
	}
	if got := mergerRef(t, m, "org/app", SpeculativeRef("gate", "cross2")); got != "" {
		t.Fatalf("org/app ref set after a conflict in org/lib: %s", got)
	}

	if err := m.Forget(t.Context(), "cross"); err != nil {
		t.Fatal(err)
	}
	for p := range res.Commits {
		if got := mergerRef(t, m, p, res.Ref); got != "" {
			t.Fatalf("%s: ref still at %s after Forget", p, got)
		}
	}
}

func TestMergerForgetKeepsOthers(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	tip := u.commit(threeFiles)
	u.setRef("refs/heads/master", tip)
	a := u.change("proj", 501, edit(threeFiles, "c", reg("x\n")), tip)
	m := newTestMerger(t)
	if err := m.Forget(t.Context(), "nothing-yet"); err != nil {
		t.Fatal(err)
	}
	for _, bs := range []string{"keep", "drop"} {
		if _, err := m.Merge(t.Context(), MergeRequest{Pipeline: "check", Buildset: bs, Items: []MergeItem{a}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Forget(t.Context(), "drop"); err != nil {
		t.Fatal(err)
	}
	if mergerRef(t, m, "proj", SpeculativeRef("check", "drop")) != "" || mergerRef(t, m, "proj", SpeculativeRef("check", "keep")) != a.Commit {
		t.Fatal("Forget removed the wrong refs")
	}
}

func TestMergerErrors(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	tip := u.commit(threeFiles)
	u.setRef("refs/heads/master", tip)
	a := u.change("proj", 601, edit(threeFiles, "c", reg("x\n")), tip)
	other := newUpstream(t)
	orphanTip := other.commit(ctree{"z": reg("z\n")})
	orphan := MergeItem{Project: "proj", Branch: "master", URL: a.URL, Change: 602, Patchset: 1, Ref: ChangeRef(602, 1)}
	u.setRef(orphan.Ref, orphanTip) // not in this repository's objects: copy it over
	if err := copyObjects(other.repo, u.repo); err != nil {
		t.Fatal(err)
	}

	with := func(f func(*MergeItem)) MergeItem { it := a; f(&it); return it }
	m := newTestMerger(t)
	for _, tc := range []struct {
		name  string
		req   MergeRequest
		check func(error) bool
	}{
		{"no items", MergeRequest{Pipeline: "p", Buildset: "b"}, nil},
		{"bad pipeline", MergeRequest{Pipeline: "a/b", Buildset: "b", Items: []MergeItem{a}}, nil},
		{"bad buildset", MergeRequest{Pipeline: "p", Buildset: "x.lock", Items: []MergeItem{a}}, nil},
		{"project escapes", MergeRequest{Pipeline: "p", Buildset: "b", Items: []MergeItem{with(func(i *MergeItem) { i.Project = "../x" })}}, nil},
		{"project in a repository", MergeRequest{Pipeline: "p", Buildset: "b", Items: []MergeItem{with(func(i *MergeItem) { i.Project = "a.git/b" })}}, nil},
		{"bad branch", MergeRequest{Pipeline: "p", Buildset: "b", Items: []MergeItem{with(func(i *MergeItem) { i.Branch = "a..b" })}}, nil},
		{"bad ref", MergeRequest{Pipeline: "p", Buildset: "b", Items: []MergeItem{with(func(i *MergeItem) { i.Ref = "changes/1" })}}, nil},
		{"bad commit", MergeRequest{Pipeline: "p", Buildset: "b", Items: []MergeItem{with(func(i *MergeItem) { i.Commit = "abc" })}}, nil},
		{"bad numbers", MergeRequest{Pipeline: "p", Buildset: "b", Items: []MergeItem{with(func(i *MergeItem) { i.Patchset = 0 })}}, nil},
		{"password in url", MergeRequest{Pipeline: "p", Buildset: "b", Items: []MergeItem{with(func(i *MergeItem) { i.URL = "https://u:secret@h/x" })}}, func(err error) bool {
			return !strings.Contains(err.Error(), "secret")
		}},
		{"two urls", MergeRequest{Pipeline: "p", Buildset: "b", Items: []MergeItem{a, with(func(i *MergeItem) { i.URL = "file:///elsewhere" })}}, nil},
		{"missing ref", MergeRequest{Pipeline: "p", Buildset: "b", Items: []MergeItem{with(func(i *MergeItem) { i.Ref = "refs/changes/99/9999/1"; i.Commit = "" })}}, func(err error) bool {
			return errors.Is(err, ErrMergeRefNotFound)
		}},
		{"missing branch", MergeRequest{Pipeline: "p", Buildset: "b", Items: []MergeItem{with(func(i *MergeItem) { i.Branch = "nope" })}}, func(err error) bool {
			return errors.Is(err, ErrMergeRefNotFound)
		}},
		{"commit mismatch", MergeRequest{Pipeline: "p", Buildset: "b", Items: []MergeItem{with(func(i *MergeItem) { i.Commit = strings.Repeat("0", 40) })}}, func(err error) bool {
			return strings.Contains(err.Error(), "not at 0000")
		}},
		{"unrelated history", MergeRequest{Pipeline: "p", Buildset: "b", Items: []MergeItem{orphan}}, func(err error) bool {
			ce, ok := errors.AsType[*ConflictError](err)
			return ok && ce.NoBase && ce.Index == 0
		}},
	} {
		_, err := m.Merge(t.Context(), tc.req)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if tc.check != nil && !tc.check(err) {
			t.Errorf("%s: unexpected error %v", tc.name, err)
		}
	}
}

// copyObjects copies every object of one repository to another.
func copyObjects(from, to *git.Repository) error {
	iter, err := from.Storer.IterEncodedObjects(plumbing.AnyObject)
	if err != nil {
		return err
	}
	return iter.ForEach(func(o plumbing.EncodedObject) error {
		_, err := to.Storer.SetEncodedObject(o)
		return err
	})
}

// TestMergerRefFetchable fetches a buildset's ref from the Merger's
// repository the way workers do: with the git command from
// ZUUL_URL/ZUUL_PROJECT, and with go-git from RepoURL.
func TestMergerRefFetchable(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "git")
	ctx := t.Context()
	u := newUpstream(t)
	tip := u.commit(threeFiles)
	u.setRef("refs/heads/master", tip)
	a := u.change("org/proj", 701, edit(threeFiles, "a", reg(lines(9, 2, "two"))), tip)
	b := u.change("org/proj", 702, edit(threeFiles, "b", reg(lines(9, 8, "eight")), "bin", reg(bin1)), tip)
	m := newTestMerger(t)
	res, err := m.Merge(ctx, MergeRequest{Pipeline: "gate", Buildset: "fetchme", Items: []MergeItem{a, b}})
	if err != nil {
		t.Fatal(err)
	}

	work := t.TempDir()
	if _, code := runGit(ctx, t, work, "init", "-q"); code != 0 {
		t.Fatal("git init failed")
	}
	if out, code := runGit(ctx, t, work, "fetch", "-q", res.URL+"/org/proj", res.Ref); code != 0 {
		t.Fatalf("git fetch %s/org/proj %s: exit %d %s", res.URL, res.Ref, code, out)
	}
	if out, _ := runGit(ctx, t, work, "rev-parse", "FETCH_HEAD"); strings.TrimSpace(out) != res.Commit {
		t.Fatalf("FETCH_HEAD %q, want %s", out, res.Commit)
	}
	if out, code := runGit(ctx, t, work, "fsck", "--strict", "--no-dangling"); code != 0 {
		t.Fatalf("git fsck: %d %s", code, out)
	}
	if out, _ := runGit(ctx, t, work, "show", "FETCH_HEAD:b"); out != lines(9, 8, "eight") {
		t.Fatalf("b at FETCH_HEAD: %q", out)
	}

	// The Merger's repository itself is sound to git.
	if out, code := runGit(ctx, t, filepath.Join(m.dir, "org", "proj.git"), "fsck", "--strict"); code != 0 {
		t.Fatalf("git fsck of the merger repository: %d %s", code, out)
	}

	// go-git, through the same in-process upload-pack the Merger fetches
	// with.
	rem, err := gitremote.ParseURL(m.RepoURL("org/proj"))
	if err != nil {
		t.Fatal(err)
	}
	dst, err := git.PlainInit(filepath.Join(t.TempDir(), "dst"), true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fetchRefs(ctx, dst.Storer.(*filesystem.Storage), rem, []string{res.Ref})
	if err != nil {
		t.Fatal(err)
	}
	if got[res.Ref].String() != res.Commit {
		t.Fatalf("go-git fetched %s, want %s", got[res.Ref], res.Commit)
	}
	c, err := dst.CommitObject(got[res.Ref])
	if err != nil {
		t.Fatal(err)
	}
	if f := files(t, c); f["a"] != lines(9, 2, "two") || f["bin"] != bin1 {
		t.Fatalf("fetched tree %v", f)
	}
}

// BenchmarkMergerChain merges a queue of three changes, each touching
// files in different directories of a 5000-file project, as a gate does
// for every item; the repositories are warm (fetched once before).
func BenchmarkMergerChain(b *testing.B) {
	dir := b.TempDir()
	repo, err := git.PlainInit(filepath.Join(dir, "up.git"), true)
	if err != nil {
		b.Fatal(err)
	}
	tree := ctree{}
	for d := range 100 {
		for f := range 50 {
			tree[fmt.Sprintf("dir%03d/file%02d.c", d, f)] = reg(lines(40))
		}
	}
	sto := repo.Storer
	tip := writeCommit(b, sto, "tip", writeCTree(b, sto, tree), 0)
	if err := sto.SetReference(plumbing.NewHashReference("refs/heads/master", tip)); err != nil {
		b.Fatal(err)
	}
	var items []MergeItem
	for i, path := range []string{"dir010/file01.c", "dir050/file20.c", "dir090/file40.c"} {
		h := writeCommit(b, sto, "change", writeCTree(b, sto, edit(tree, path, reg(lines(40, 20, "changed")))), i+1, tip)
		ref := ChangeRef(1000+i, 1)
		if err := sto.SetReference(plumbing.NewHashReference(plumbing.ReferenceName(ref), h)); err != nil {
			b.Fatal(err)
		}
		items = append(items, MergeItem{Project: "big", Branch: "master", URL: "file://" + filepath.Join(dir, "up.git"),
			Change: 1000 + i, Patchset: 1, Ref: ref, Commit: h.String()})
	}
	m, err := NewMerger(filepath.Join(dir, "merger"), nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := m.Merge(b.Context(), MergeRequest{Pipeline: "gate", Buildset: "warm", Items: items}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := m.Merge(b.Context(), MergeRequest{Pipeline: "gate", Buildset: fmt.Sprintf("bs%d", i), Items: items}); err != nil {
			b.Fatal(err)
		}
	}
}
