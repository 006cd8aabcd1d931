package zuul

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/sluice-ci/sluice/internal/gitremote"
)

// MergerName and MergerEmail are the author and committer of the merge
// commits the Merger makes.
const (
	MergerName  = "Sluice Merger"
	MergerEmail = "merger@sluice.invalid"
)

// Merger builds the speculative state of a buildset: for each project of
// a queue, the branch tip with the changes ahead and the change under test
// merged on top, in queue order, as `git merge -s resolve` would merge
// them. It keeps one bare repository per project under its directory,
// fetched from the project's own URL, and exposes each result as the ref
// refs/sluice/<pipeline>/<buildset> in it; workers fetch that ref from
// there (Zuul's ZUUL_URL and ZUUL_REF).
//
// The repository of project "a/b" is <dir>/a/b.git, so that
// `git fetch <URL>/a/b <ref>` finds it as git does for Gerrit URLs. A
// Merger is safe for concurrent use, and several processes may share its
// directory: each repository is changed under a lock file beside it. No
// subprocess runs: fetching and merging are go-git and the code of this
// package.
type Merger struct {
	dir string
	log *slog.Logger

	canon *canonCache

	mu    sync.Mutex
	locks map[string]chan struct{}
}

// NewMerger returns a Merger keeping its repositories under dir (made
// absolute; created on first use).
func NewMerger(dir string, log *slog.Logger) (*Merger, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("merger: directory %s: %w", dir, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Merger{dir: abs, log: log, canon: newCanonCache(), locks: make(map[string]chan struct{})}, nil
}

// URL is what Zuul calls ZUUL_URL: the base that a project name is
// appended to, with a slash, to fetch the merger's repository of that
// project (git finds <project>.git).
func (m *Merger) URL() string { return "file://" + filepath.ToSlash(m.dir) }

// RepoURL is the exact URL of project's repository, for clients that do not
// try the ".git" suffix themselves.
func (m *Merger) RepoURL(project string) string {
	return m.URL() + "/" + project + ".git"
}

// SpeculativeRef is the ref a buildset's merged commit has in each of its
// projects' merger repositories: refs/sluice/<pipeline>/<buildset>.
func SpeculativeRef(pipeline, buildset string) string {
	return "refs/sluice/" + pipeline + "/" + buildset
}

// MergeItem is one queue item to merge: a change's patchset (or any ref)
// of a project's branch.
type MergeItem struct {
	Project string
	Branch  string // short name: master, stable/1.0
	// URL is where the project's branch and Ref are fetched from:
	// file://, https:// (anonymous), ssh:// or an absolute path.
	URL string
	// Change and Patchset name the change in errors (0 and 0 for a ref
	// that is not a change's).
	Change, Patchset int
	// Ref is fetched from URL: refs/changes/NN/NNNN/P for a change.
	Ref string
	// Commit, when set, is the SHA-1 Ref must point at; when the merger
	// already has it, Ref is not fetched.
	Commit string
}

func (it MergeItem) String() string {
	if it.Change > 0 {
		return fmt.Sprintf("%s %d,%d", it.Project, it.Change, it.Patchset)
	}
	return it.Project + " " + it.Ref
}

// MergeRequest is the speculative state of one buildset: the items of the
// queue ahead of the item under test, then that item, in queue order.
type MergeRequest struct {
	Pipeline string
	Buildset string
	Items    []MergeItem
}

// MergeResult is where a buildset's merged state is.
type MergeResult struct {
	// Ref is refs/sluice/<pipeline>/<buildset>, set in the repository
	// of every project of the request (ZUUL_REF).
	Ref string
	// URL is the Merger's URL (ZUUL_URL).
	URL string
	// Commits maps each project to the commit Ref points at there.
	Commits map[string]string
	// Commit is the commit at Ref in the project of the last item: the
	// item under test (ZUUL_COMMIT).
	Commit string
}

// ConflictError reports that an item does not merge onto its branch with
// the items ahead of it. Later items were not tried.
type ConflictError struct {
	// Index is the item's position in the request's Items.
	Index int
	Item  MergeItem
	// Conflicts lists the paths that did not merge; empty when NoBase.
	Conflicts []PathConflict
	// NoBase says the item's commit shares no history with the branch.
	NoBase bool
}

func (e *ConflictError) Error() string {
	if e.NoBase {
		return fmt.Sprintf("merge %s into %s: no common ancestor", e.Item, e.Item.Branch)
	}
	paths := make([]string, 0, len(e.Conflicts))
	for _, c := range e.Conflicts {
		paths = append(paths, c.Path+" ("+c.Reason+")")
	}
	return fmt.Sprintf("merge %s into %s: conflicts in %s", e.Item, e.Item.Branch, strings.Join(paths, ", "))
}

// Paths lists the conflicting paths.
func (e *ConflictError) Paths() []string {
	out := make([]string, len(e.Conflicts))
	for i, c := range e.Conflicts {
		out[i] = c.Path
	}
	return out
}

// mergeChain is the work for one project: its branch and its items on it.
type mergeChain struct {
	project, branch, url string
	items                []int // indexes into the request's Items
}

// Merge builds the speculative commits of req and sets their ref in each
// project's repository. Per project, it fetches the branch tip and the
// items' refs, then takes the items of that project in queue order: an
// item already in the history is skipped, one based on the current commit
// is fast-forwarded to (as Gerrit's merge-if-necessary would), any other
// is merged with a merge commit of fixed identity whose time is the later
// of its parents' committer times, so that the same tip and items always
// give the same commits. Items of a project on another branch than the
// project's last item are left out: they cannot be in this branch's state.
//
// An item that does not merge gives a *ConflictError naming the first such
// item in queue order; then no ref is set. Other failures (a ref the remote
// does not have wraps ErrMergeRefNotFound) are returned as they are.
func (m *Merger) Merge(ctx context.Context, req MergeRequest) (*MergeResult, error) {
	chains, err := m.plan(req)
	if err != nil {
		return nil, err
	}
	commits := make(map[string]plumbing.Hash, len(chains))
	var first *ConflictError
	for _, ch := range chains {
		if first != nil && ch.items[0] > first.Index {
			continue // cannot conflict earlier than that
		}
		h, err := m.mergeChain(ctx, req, ch)
		if ce, ok := errors.AsType[*ConflictError](err); ok {
			if first == nil || ce.Index < first.Index {
				first = ce
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		commits[ch.project] = h
	}
	if first != nil {
		m.log.Info("merge conflict", "pipeline", req.Pipeline, "buildset", req.Buildset,
			"item", first.Item.String(), "paths", len(first.Conflicts), "no_base", first.NoBase)
		return nil, first
	}

	res := &MergeResult{
		Ref:     SpeculativeRef(req.Pipeline, req.Buildset),
		URL:     m.URL(),
		Commits: make(map[string]string, len(commits)),
	}
	for _, ch := range chains {
		h := commits[ch.project]
		if err := m.setRef(ctx, ch.project, res.Ref, h); err != nil {
			return nil, fmt.Errorf("merger %s: set %s: %w", ch.project, res.Ref, err)
		}
		res.Commits[ch.project] = h.String()
	}
	res.Commit = res.Commits[req.Items[len(req.Items)-1].Project]
	m.log.Info("merged", "pipeline", req.Pipeline, "buildset", req.Buildset, "ref", res.Ref,
		"projects", len(res.Commits), "commit", res.Commit)
	return res, nil
}

// plan validates req and groups its items by project, projects in the
// order they first appear.
func (m *Merger) plan(req MergeRequest) ([]mergeChain, error) {
	if err := validRefComponent(req.Pipeline); err != nil {
		return nil, fmt.Errorf("merger: pipeline: %w", err)
	}
	if err := validRefComponent(req.Buildset); err != nil {
		return nil, fmt.Errorf("merger: buildset: %w", err)
	}
	if len(req.Items) == 0 {
		return nil, errors.New("merger: no items")
	}
	var order []string
	byProject := make(map[string]*mergeChain)
	for i, it := range req.Items {
		if err := checkMergeItem(it); err != nil {
			return nil, fmt.Errorf("merger: item %d (%s): %w", i, it, err)
		}
		ch := byProject[it.Project]
		if ch == nil {
			ch = &mergeChain{project: it.Project, url: it.URL}
			byProject[it.Project] = ch
			order = append(order, it.Project)
		}
		if ch.url != it.URL {
			return nil, fmt.Errorf("merger: item %d (%s): URL %s, but an item before has %s", i, it, it.URL, ch.url)
		}
		ch.branch = it.Branch // the last item's branch wins
	}
	for i, it := range req.Items {
		if ch := byProject[it.Project]; ch.branch == it.Branch {
			ch.items = append(ch.items, i)
		}
	}
	chains := make([]mergeChain, len(order))
	for i, p := range order {
		chains[i] = *byProject[p]
	}
	return chains, nil
}

func checkMergeItem(it MergeItem) error {
	if err := checkMergerProject(it.Project); err != nil {
		return err
	}
	if err := validRefName("refs/heads/" + it.Branch); err != nil {
		return fmt.Errorf("branch: %w", err)
	}
	if err := validRefName(it.Ref); err != nil {
		return fmt.Errorf("ref: %w", err)
	}
	if it.Commit != "" && !isSHA1(it.Commit) {
		return fmt.Errorf("commit %q: not a full lower-case SHA-1", it.Commit)
	}
	if (it.Change > 0) != (it.Patchset > 0) || it.Change < 0 || it.Patchset < 0 {
		return fmt.Errorf("change %d, patchset %d: want both positive, or both 0", it.Change, it.Patchset)
	}
	if _, err := gitremote.ParseURL(it.URL); err != nil {
		return fmt.Errorf("url %q: %w", redactMergeURL(it.URL), err)
	}
	return nil
}

// checkMergerProject checks a project name before it names a directory
// under the Merger's: a valid Gerrit project name none of whose segments
// ends in .git (which would put a repository inside another's) or starts
// with a dot (hidden, and skipped by Forget).
func checkMergerProject(p string) error {
	if err := validProject(p); err != nil {
		return fmt.Errorf("project: %w", err)
	}
	for seg := range strings.SplitSeq(p, "/") {
		if strings.HasSuffix(seg, ".git") || strings.HasPrefix(seg, ".") {
			return fmt.Errorf("project %q: a segment starts with . or ends in .git", p)
		}
	}
	return nil
}

// validRefComponent accepts a pipeline or buildset name that can be one
// component of a ref: letters, digits, '.', '_' and '-', not starting with
// '.' or '-', not ending with ".lock".
func validRefComponent(s string) error {
	if s == "" || len(s) > 128 {
		return fmt.Errorf("%q: want 1 to 128 characters", s)
	}
	if s[0] == '.' || s[0] == '-' || strings.HasSuffix(s, ".lock") || strings.Contains(s, "..") {
		return fmt.Errorf("%q: not a ref component", s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%q: contains %q", s, c)
		}
	}
	return nil
}

func redactMergeURL(raw string) string {
	if i := strings.Index(raw, "://"); i >= 0 {
		if at := strings.LastIndex(raw[i+3:], "@"); at >= 0 {
			return raw[:i+3] + "REDACTED@" + raw[i+3+at+1:]
		}
	}
	return raw
}

// mergeChain fetches and merges the items of one project, under its lock,
// and returns the last commit. It sets no ref but the fetched ones.
func (m *Merger) mergeChain(ctx context.Context, req MergeRequest, ch mergeChain) (plumbing.Hash, error) {
	rem, err := gitremote.ParseURL(ch.url)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	var out plumbing.Hash
	err = m.withRepo(ctx, ch.project, func(sto *filesystem.Storage) error {
		branchRef := "refs/heads/" + ch.branch
		refs := []string{branchRef}
		for _, i := range ch.items {
			it := req.Items[i]
			if it.Commit != "" && sto.HasEncodedObject(plumbing.NewHash(it.Commit)) == nil {
				continue
			}
			refs = append(refs, it.Ref)
		}
		got, err := fetchRefs(ctx, sto, rem, refs)
		if err != nil {
			m.cleanTempPacks(ch.project)
			return fmt.Errorf("merger %s: fetch from %s: %w", ch.project, redactMergeURL(ch.url), err)
		}
		cur, err := gitremote.PeelCommit(sto, got[branchRef])
		if err != nil {
			return fmt.Errorf("merger %s: branch %s: %w", ch.project, ch.branch, err)
		}
		for _, i := range ch.items {
			it := req.Items[i]
			h, fetched := got[it.Ref]
			switch {
			case it.Commit != "" && fetched && h.String() != it.Commit:
				return fmt.Errorf("merger %s: %s points at %s, not at %s", it, it.Ref, h, it.Commit)
			case it.Commit != "":
				h = plumbing.NewHash(it.Commit)
			}
			c, err := gitremote.PeelCommit(sto, h)
			if err != nil {
				return fmt.Errorf("merger %s: %s: %w", it, it.Ref, err)
			}
			next, err := m.mergeOne(ctx, sto, cur, c, it)
			if ce, ok := errors.AsType[*ConflictError](err); ok {
				ce.Index = i
				return ce
			}
			if err != nil {
				return fmt.Errorf("merger %s: %w", it, err)
			}
			cur = next
		}
		out = cur.Hash
		return nil
	})
	return out, err
}

// mergeOne merges commit c of item it onto cur.
func (m *Merger) mergeOne(ctx context.Context, sto *filesystem.Storage, cur, c *object.Commit, it MergeItem) (*object.Commit, error) {
	bases, err := mergeBases(ctx, sto, cur, c)
	if err != nil {
		return nil, fmt.Errorf("merge base: %w", err)
	}
	if len(bases) == 0 {
		return nil, &ConflictError{Item: it, NoBase: true}
	}
	for _, b := range bases {
		switch b.Hash {
		case c.Hash: // already merged
			m.log.Debug("merge skipped", "item", it.String(), "commit", c.Hash)
			return cur, nil
		case cur.Hash: // based on the current commit
			m.log.Debug("merge fast-forward", "item", it.String(), "commit", c.Hash)
			return c, nil
		}
	}
	trees := make([]*object.Tree, len(bases))
	for i, b := range bases {
		if trees[i], err = b.Tree(); err != nil {
			return nil, err
		}
	}
	ours, err := cur.Tree()
	if err != nil {
		return nil, err
	}
	theirs, err := c.Tree()
	if err != nil {
		return nil, err
	}
	tree, conflicts, err := mergeTrees(ctx, sto, m.canon, trees, ours, theirs)
	if err != nil {
		return nil, err
	}
	if conflicts != nil {
		return nil, &ConflictError{Item: it, Conflicts: conflicts}
	}
	when := cur.Committer.When
	if c.Committer.When.After(when) {
		when = c.Committer.When
	}
	sig := object.Signature{Name: MergerName, Email: MergerEmail, When: when.UTC()}
	msg := fmt.Sprintf("Merge %s into %s\n", it.Ref, it.Branch)
	if it.Change > 0 {
		msg = fmt.Sprintf("Merge change %d,%d into %s\n\nRef: %s\n", it.Change, it.Patchset, it.Branch, it.Ref)
	}
	mc := &object.Commit{
		Author:       sig,
		Committer:    sig,
		Message:      msg,
		TreeHash:     tree,
		ParentHashes: []plumbing.Hash{cur.Hash, c.Hash},
	}
	o := sto.NewEncodedObject()
	if err := mc.Encode(o); err != nil {
		return nil, err
	}
	h, err := sto.SetEncodedObject(o)
	if err != nil {
		return nil, err
	}
	m.log.Debug("merge commit", "item", it.String(), "commit", h, "bases", len(bases))
	return object.GetCommit(sto, h)
}

// setRef points ref at h in project's repository.
func (m *Merger) setRef(ctx context.Context, project, ref string, h plumbing.Hash) error {
	return m.withRepo(ctx, project, func(sto *filesystem.Storage) error {
		return sto.SetReference(plumbing.NewHashReference(plumbing.ReferenceName(ref), h))
	})
}

// Forget removes the refs of buildset, in any pipeline, from every
// project's repository. Their commits stay until the repositories are
// garbage-collected.
func (m *Merger) Forget(ctx context.Context, buildset string) error {
	if err := validRefComponent(buildset); err != nil {
		return fmt.Errorf("merger: forget: buildset: %w", err)
	}
	projects, err := m.projects()
	if err != nil {
		return fmt.Errorf("merger: forget %s: %w", buildset, err)
	}
	removed := 0
	for _, p := range projects {
		err := m.withRepo(ctx, p, func(sto *filesystem.Storage) error {
			iter, err := sto.IterReferences()
			if err != nil {
				return err
			}
			var names []plumbing.ReferenceName
			err = iter.ForEach(func(r *plumbing.Reference) error {
				n := r.Name().String()
				if strings.HasPrefix(n, "refs/sluice/") && strings.HasSuffix(n, "/"+buildset) &&
					strings.Count(n, "/") == 3 {
					names = append(names, r.Name())
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, n := range names {
				if err := sto.RemoveReference(n); err != nil {
					return err
				}
				removed++
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("merger %s: forget %s: %w", p, buildset, err)
		}
	}
	m.log.Info("buildset forgotten", "buildset", buildset, "refs", removed)
	return nil
}

// projects lists the projects that have a repository under the Merger's
// directory.
func (m *Merger) projects() ([]string, error) {
	var out []string
	err := filepath.WalkDir(m.dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == m.dir {
			return fs.SkipAll
		}
		if err != nil {
			return err
		}
		if !d.IsDir() || p == m.dir {
			return nil
		}
		if strings.HasSuffix(d.Name(), ".git") {
			if gitremote.IsBare(p) {
				rel, err := filepath.Rel(m.dir, p)
				if err != nil {
					return err
				}
				out = append(out, strings.TrimSuffix(filepath.ToSlash(rel), ".git"))
			}
			return fs.SkipDir
		}
		if strings.HasPrefix(d.Name(), ".") {
			return fs.SkipDir
		}
		return nil
	})
	return out, err
}

// withRepo runs f on project's repository, creating it the first time,
// under the project's lock.
func (m *Merger) withRepo(ctx context.Context, project string, f func(*filesystem.Storage) error) error {
	if err := checkMergerProject(project); err != nil {
		return err
	}
	gitDir := filepath.Join(m.dir, filepath.FromSlash(project)+".git")
	if err := os.MkdirAll(filepath.Dir(gitDir), 0o755); err != nil {
		return err
	}
	unlock, err := m.lock(ctx, project, gitDir+".lock")
	if err != nil {
		return err
	}
	defer unlock()
	if !gitremote.IsBare(gitDir) {
		if err := initBare(gitDir); err != nil {
			return err
		}
		m.log.Info("merger repository created", "project", project, "dir", gitDir)
	}
	sto := filesystem.NewStorage(osfs.New(gitDir), cache.NewObjectLRUDefault())
	defer sto.Close()
	return f(sto)
}

// initBare makes a bare repository at gitDir: made under a temporary name
// and renamed into place, so that a crash never leaves half of one.
func initBare(gitDir string) error {
	parent, base := filepath.Split(gitDir)
	stale, _ := filepath.Glob(filepath.Join(parent, "."+base+".init-*"))
	for _, d := range stale { // left by a crash; we hold the lock
		os.RemoveAll(d)
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".init-")
	if err != nil {
		return err
	}
	if _, err := git.PlainInit(tmp, true); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("init %s: %w", gitDir, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, gitDir); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return nil
}

// cleanTempPacks removes what go-git may leave of a failed fetch.
func (m *Merger) cleanTempPacks(project string) {
	gitDir := filepath.Join(m.dir, filepath.FromSlash(project)+".git")
	tmps, _ := filepath.Glob(filepath.Join(gitDir, "objects", "pack", "tmp_pack_*"))
	for _, t := range tmps {
		os.Remove(t)
	}
}

// lock takes the project's in-process lock, then its lock file.
func (m *Merger) lock(ctx context.Context, project, path string) (func(), error) {
	m.mu.Lock()
	ch := m.locks[project]
	if ch == nil {
		ch = make(chan struct{}, 1)
		m.locks[project] = ch
	}
	m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case ch <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		<-ch
		return nil, err
	}
	delay := 10 * time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			<-ch
			return nil, &os.PathError{Op: "flock", Path: path, Err: err}
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			<-ch
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
	return func() {
		f.Close()
		<-ch
	}, nil
}
