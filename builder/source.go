package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/hash"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/sluice-ci/sluice/internal/gitremote"
)

// ErrRefNotFound reports that the remote has no such ref or commit. The
// cache is left as it was.
var ErrRefNotFound = errors.New("builder: ref not found")

// ErrUnsafeTree reports a tree entry that cannot be written safely into a
// workspace: a name that would leave its directory, a duplicate, a ".git", or
// a tree nested too deep. Such a commit cannot be built.
var ErrUnsafeTree = errors.New("builder: unsafe tree entry")

const (
	// sourceMaxTreeDepth is git's own default limit (core.maxTreeDepth).
	sourceMaxTreeDepth = 2048
	// sourceMaxSymlink is PATH_MAX: a longer target cannot be a symlink.
	sourceMaxSymlink = 4096
	// sourceLargeObject is the size above which the cache streams an object
	// instead of holding it in memory.
	sourceLargeObject = 4 << 20
)

// Sources keeps one bare git cache per project under dir and checks commits
// out of it. The cache of project "a/b" is dir/a+b.git, guarded by the lock
// file dir/a+b.lock. It is safe for concurrent use, and several processes may
// share dir.
//
// Sources runs no subprocess: file:// URLs and local paths are served by
// go-git's in-process upload-pack, https:// and ssh:// by go-git's own
// clients.
type Sources struct {
	dir string
	log *slog.Logger

	mu    sync.Mutex
	locks map[string]chan struct{} // per cache name; a buffered channel is a mutex that can wait on a context

	// Counters for tests: sessions opened with a remote, packs fetched, and
	// the objects in them.
	sessions atomic.Int64
	packs    atomic.Int64
	objects  atomic.Int64
}

// NewSources returns Sources that keep their caches under dir, which is
// created on first use.
func NewSources(dir string, log *slog.Logger) *Sources {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sources{dir: dir, log: log, locks: make(map[string]chan struct{})}
}

// Checkout is one checked-out tree.
type Checkout struct {
	// Project and URL are as given.
	Project string
	URL     string
	// Ref is the full name of the ref the commit was found at
	// (refs/heads/B for a branch given as B), or the object name when a
	// commit was asked for by its SHA.
	Ref string
	// Commit is the full SHA of the commit.
	Commit string
	// Tree is the hash of the commit's tree.
	Tree string
	// Dir is the workspace: a fresh directory holding the files of the
	// commit and no .git. Files and directories carry the committer time as
	// their mtime, so that what is built from them does not depend on when it
	// was checked out.
	Dir string
	// Fetched tells whether objects had to be fetched from the remote: false
	// when the cache already had the commit.
	Fetched bool
}

// Checkout fetches what is new for ref from url into project's cache
// (cloning it the first time) and writes the commit's tree into a new
// directory under workDir.
//
// url is file://, https://, ssh:// or an absolute local path. No credentials
// are passed: https must be anonymous (a URL with a user or password is
// refused), and ssh uses go-git's defaults (the agent at SSH_AUTH_SOCK and
// known_hosts). ref is a full ref name (refs/heads/B, refs/tags/T,
// refs/changes/NN/NNNN/P, ...), a branch or tag name (refused when both
// exist), or a full commit SHA. A SHA the cache has is not fetched at all;
// named refs are always asked of the remote, and only objects the cache lacks
// are fetched.
//
// A ref the remote does not have gives an error wrapping ErrRefNotFound; a
// tree that cannot be written safely, one wrapping ErrUnsafeTree. The cache
// stays usable after either.
func (s *Sources) Checkout(ctx context.Context, project, url, ref, workDir string) (*Checkout, error) {
	if err := validSourceProject(project); err != nil {
		return nil, fmt.Errorf("source %q: %w", project, err)
	}
	want, err := parseSourceRef(ref)
	if err != nil {
		return nil, fmt.Errorf("source %s: ref %q: %w", project, ref, err)
	}
	rem, err := gitremote.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("source %s: url %q: %w", project, gitremote.Redact(url), err)
	}
	name := sourceCacheName(project)

	sto, res, err := s.sync(ctx, name, rem, want)
	if err != nil {
		return nil, fmt.Errorf("source %s: fetch %s from %s: %w", project, ref, url, err)
	}
	defer sto.Close()

	co := &Checkout{
		Project: project,
		URL:     url,
		Ref:     res.ref,
		Commit:  res.commit.Hash.String(),
		Tree:    res.commit.TreeHash.String(),
		Fetched: res.fetched,
	}
	co.Dir, err = writeWorkspace(ctx, sto, res.commit, workDir, name)
	if err != nil {
		return nil, fmt.Errorf("source %s: check out %s: %w", project, co.Commit, err)
	}
	s.log.Info("source checked out", "project", project, "ref", co.Ref,
		"commit", co.Commit, "fetched", co.Fetched, "dir", co.Dir)
	return co, nil
}

// sourceResolved is what a sync found.
type sourceResolved struct {
	ref     string
	commit  *object.Commit
	fetched bool
}

// sync brings the commit for want into the cache, under the project's lock,
// and returns the cache opened for reading.
func (s *Sources) sync(ctx context.Context, name string, rem *gitremote.Remote, want sourceRef) (*filesystem.Storage, sourceResolved, error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, sourceResolved{}, err
	}
	unlock, err := s.lock(ctx, name)
	if err != nil {
		return nil, sourceResolved{}, err
	}
	defer unlock()

	sto, err := s.openCache(name)
	if err != nil {
		return nil, sourceResolved{}, err
	}
	f := &sourceFetcher{s: s, cache: sto, rem: rem}
	var res sourceResolved
	if want.name == "" {
		res, err = f.commit(ctx, want.sha)
	} else {
		res, err = f.ref(ctx, want)
	}
	if err != nil {
		sto.Close()
		cleanTempPacks(filepath.Join(s.dir, name+".git"))
		return nil, sourceResolved{}, err
	}
	return sto, res, nil
}

// lock takes the project's in-process lock, then its lock file, so that
// neither another goroutine nor another process writes the cache meanwhile.
func (s *Sources) lock(ctx context.Context, name string) (unlock func(), err error) {
	s.mu.Lock()
	ch := s.locks[name]
	if ch == nil {
		ch = make(chan struct{}, 1)
		s.locks[name] = ch
	}
	s.mu.Unlock()

	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case ch <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	f, err := lockFile(ctx, filepath.Join(s.dir, name+".lock"))
	if err != nil {
		<-ch
		return nil, err
	}
	return func() {
		f.Close() // releases the flock
		<-ch
	}, nil
}

// lockFile takes an exclusive flock on path. flock(2) cannot be
// interrupted, so it polls without blocking, backing off, until ctx is done.
func lockFile(ctx context.Context, path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	delay := 10 * time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, &os.PathError{Op: "flock", Path: path, Err: err}
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
}

// openCache opens the project's bare cache, creating it the first time. It
// is created under a temporary name and renamed into place, so that a crash
// never leaves a half-made cache. The caller holds the project's lock.
func (s *Sources) openCache(name string) (*filesystem.Storage, error) {
	gitDir := filepath.Join(s.dir, name+".git")
	if _, err := os.Stat(gitDir); errors.Is(err, os.ErrNotExist) {
		// Left over by a crash: nobody else inits this cache while we
		// hold its lock. Names never start with '.', so the pattern
		// matches this project's leftovers only.
		stale, _ := filepath.Glob(filepath.Join(s.dir, "."+name+".init-*"))
		for _, d := range stale {
			os.RemoveAll(d)
		}
		tmp, err := os.MkdirTemp(s.dir, "."+name+".init-")
		if err != nil {
			return nil, fmt.Errorf("cache %s: %w", name, err)
		}
		if _, err := git.PlainInit(tmp, true); err != nil {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("cache %s: init: %w", name, err)
		}
		if err := os.Chmod(tmp, 0o755); err != nil {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("cache %s: %w", name, err)
		}
		if err := os.Rename(tmp, gitDir); err != nil {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("cache %s: %w", name, err)
		}
		s.log.Info("source cache created", "cache", gitDir)
	} else if err != nil {
		return nil, fmt.Errorf("cache %s: %w", name, err)
	}
	return filesystem.NewStorageWithOptions(osfs.New(gitDir), cache.NewObjectLRUDefault(),
		filesystem.Options{LargeObjectThreshold: sourceLargeObject}), nil
}

// cleanTempPacks removes what go-git leaves of a pack whose fetch failed
// (it does not remove its temporary file on every error path). The caller
// holds the project's lock, so no fetch of this cache is under way.
func cleanTempPacks(gitDir string) {
	tmps, _ := filepath.Glob(filepath.Join(gitDir, "objects", "pack", "tmp_pack_*"))
	for _, t := range tmps {
		os.Remove(t)
	}
}

// sourceFetcher fetches into one cache from one remote, under the
// project's lock.
type sourceFetcher struct {
	s     *Sources
	cache *filesystem.Storage
	rem   *gitremote.Remote
}

// commit makes sure the cache has commit h. It contacts the remote only when
// the cache does not have it: then it fetches the remote's branches and
// tags, and, when h is on none of them, asks for h itself where the remote
// allows that.
func (f *sourceFetcher) commit(ctx context.Context, h plumbing.Hash) (sourceResolved, error) {
	res := sourceResolved{ref: h.String()}
	if c, err := gitremote.PeelCommit(f.cache, h); err == nil {
		res.commit = c
		return res, nil
	} else if !errors.Is(err, plumbing.ErrObjectNotFound) {
		return res, err
	}

	up, ar, err := f.open(ctx)
	if err != nil {
		return res, err
	}
	defer func() { // up changes below
		if up != nil {
			up.Close()
		}
	}()

	var wants []plumbing.Hash
	var refs []*plumbing.Reference
	for n, t := range ar.References {
		name := plumbing.ReferenceName(n)
		if !name.IsBranch() && !name.IsTag() {
			continue
		}
		refs = append(refs, plumbing.NewHashReference(name, t))
		if !f.has(t) {
			wants = append(wants, t)
		}
	}
	if len(wants) > 0 {
		if err := f.pack(ctx, up, ar, wants); err != nil {
			return res, err
		}
		res.fetched = true
		for _, r := range refs {
			if err := f.cache.SetReference(r); err != nil {
				return res, err
			}
		}
	}
	if !f.has(h) && (up.Local || ar.Capabilities.Supports(capability.AllowReachableSHA1InWant) ||
		ar.Capabilities.Supports(capability.AllowTipSHA1InWant)) {
		// An upload-pack session serves one pack: ask again on a new one.
		up.Close()
		up, ar, err = f.open(ctx)
		if err != nil {
			return res, err
		}
		if err := f.pack(ctx, up, ar, []plumbing.Hash{h}); err != nil {
			if ctx.Err() != nil {
				return res, err
			}
			return res, fmt.Errorf("%w: commit %s: %w", ErrRefNotFound, h, err)
		}
		res.fetched = true
	}
	if !f.has(h) {
		return res, fmt.Errorf("%w: commit %s is not on any branch or tag", ErrRefNotFound, h)
	}
	res.commit, err = gitremote.PeelCommit(f.cache, h)
	return res, err
}

// ref resolves want against the refs the remote advertises, fetches its
// target unless the cache has it, and records the ref in the cache under
// its own name: the refspec is +R:R.
func (f *sourceFetcher) ref(ctx context.Context, want sourceRef) (sourceResolved, error) {
	up, ar, err := f.open(ctx)
	if err != nil {
		return sourceResolved{}, err
	}
	defer up.Close()

	var name plumbing.ReferenceName
	var target plumbing.Hash
	for _, c := range want.candidates() {
		t, ok := ar.References[c.String()]
		if !ok {
			continue
		}
		if name != "" {
			return sourceResolved{}, fmt.Errorf("ref %s is ambiguous: both %s and %s exist", want.name, name, c)
		}
		name, target = c, t
	}
	if name == "" {
		// go-git speaks protocol v0/v1 only, where a ref the server
		// does not advertise cannot be fetched by name.
		return sourceResolved{}, fmt.Errorf("%w: the remote does not advertise %s", ErrRefNotFound, want.name)
	}

	res := sourceResolved{ref: name.String()}
	if !f.has(target) {
		if err := f.pack(ctx, up, ar, []plumbing.Hash{target}); err != nil {
			return res, err
		}
		if !f.has(target) {
			return res, fmt.Errorf("remote sent no object %s for %s", target, name)
		}
		res.fetched = true
	}
	res.commit, err = gitremote.PeelCommit(f.cache, target)
	if err != nil {
		return res, fmt.Errorf("ref %s: %w", name, err)
	}
	if err := f.cache.SetReference(plumbing.NewHashReference(name, target)); err != nil {
		return res, err
	}
	f.s.log.Debug("source ref updated", "ref", name, "refspec", "+"+name+":"+name, "target", target)
	return res, nil
}

func (f *sourceFetcher) has(h plumbing.Hash) bool {
	return f.cache.HasEncodedObject(h) == nil
}

// open opens an upload-pack session with the remote and reads what it
// advertises.
func (f *sourceFetcher) open(ctx context.Context) (*gitremote.Session, *packp.AdvRefs, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	up, err := f.rem.Open(filesystem.Options{LargeObjectThreshold: sourceLargeObject})
	if err != nil {
		return nil, nil, err
	}
	f.s.sessions.Add(1)
	ar, err := up.AdvertisedReferences(ctx)
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		err = fmt.Errorf("%w: %w", ErrRefNotFound, err)
	}
	if err != nil {
		up.Close()
		return nil, nil, err
	}
	return up, ar, nil
}

// pack fetches the objects reachable from wants that are not reachable from
// the cache's refs, as one pack, and stores it in the cache.
func (f *sourceFetcher) pack(ctx context.Context, up *gitremote.Session, ar *packp.AdvRefs, wants []plumbing.Hash) error {
	objects, haves, err := up.Fetch(ctx, f.cache, ar, wants)
	if err != nil {
		return err
	}
	f.s.packs.Add(1)
	f.s.objects.Add(int64(objects))
	f.s.log.Info("source fetched", "url", f.rem.URL, "wants", len(wants), "haves", haves, "objects", objects)
	return nil
}

// sourceRef is a validated ref: a full or short ref name, or an object name.
type sourceRef struct {
	name string // empty when sha is set
	sha  plumbing.Hash
}

// candidates lists the full ref names that want may stand for.
func (w sourceRef) candidates() []plumbing.ReferenceName {
	if strings.HasPrefix(w.name, "refs/") {
		return []plumbing.ReferenceName{plumbing.ReferenceName(w.name)}
	}
	return []plumbing.ReferenceName{plumbing.NewBranchReferenceName(w.name), plumbing.NewTagReferenceName(w.name)}
}

func parseSourceRef(ref string) (sourceRef, error) {
	if isSourceHex(ref) && (len(ref) == 40 || len(ref) == 64) {
		if len(ref) != hash.HexSize {
			return sourceRef{}, fmt.Errorf("object names of %d hex digits are not supported", len(ref))
		}
		return sourceRef{sha: plumbing.NewHash(strings.ToLower(ref))}, nil
	}
	if err := checkRefFormat(ref); err != nil {
		return sourceRef{}, err
	}
	if rest, ok := strings.CutPrefix(ref, "refs/changes/"); ok {
		if err := checkChangeRef(rest); err != nil {
			return sourceRef{}, err
		}
	}
	return sourceRef{name: ref}, nil
}

func isSourceHex(s string) bool {
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return s != ""
}

// checkRefFormat applies the rules of git check-ref-format, allowing one
// level (a branch or tag name given without refs/heads/ or refs/tags/).
func checkRefFormat(ref string) error {
	switch {
	case ref == "", ref == "@":
		return errors.New("not a ref name")
	case len(ref) > 1024:
		return errors.New("ref name too long")
	case strings.Contains(ref, ".."), strings.Contains(ref, "@{"):
		return errors.New(`ref name contains ".." or "@{"`)
	case strings.HasSuffix(ref, "."):
		return errors.New(`ref name ends with "."`)
	}
	for _, c := range []byte(ref) {
		if c < 0x20 || c == 0x7f || strings.IndexByte(" ~^:?*[\\", c) >= 0 {
			return fmt.Errorf("ref name contains %q", c)
		}
	}
	for el := range strings.SplitSeq(ref, "/") {
		switch {
		case el == "":
			return errors.New("ref name has an empty element")
		case el[0] == '.':
			return errors.New(`ref name element starts with "."`)
		case strings.HasSuffix(el, ".lock"):
			return errors.New(`ref name element ends with ".lock"`)
		}
	}
	return nil
}

// checkChangeRef checks the NN/NNNN/P of a Gerrit refs/changes/NN/NNNN/P,
// where NN is the change number's last two digits, zero-padded.
func checkChangeRef(rest string) error {
	parts := strings.Split(rest, "/")
	bad := errors.New("want refs/changes/NN/NNNN/P")
	if len(parts) != 3 {
		return bad
	}
	change, err1 := strconv.ParseUint(parts[1], 10, 32)
	ps, err2 := strconv.ParseUint(parts[2], 10, 32)
	if err1 != nil || err2 != nil || change == 0 || ps == 0 ||
		parts[1][0] == '0' || parts[2][0] == '0' || parts[0] != fmt.Sprintf("%02d", change%100) {
		return bad
	}
	return nil
}

// validSourceProject checks a project name: path elements of letters, digits,
// '.', '_' and '-', none empty or starting with '.'.
func validSourceProject(p string) error {
	switch {
	case p == "":
		return errors.New("empty project name")
	case len(p) > 255:
		return errors.New("project name too long")
	case strings.Contains(p, ".."):
		return errors.New(`project name contains ".."`)
	}
	for _, c := range []byte(p) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-/", c) >= 0) {
			return fmt.Errorf("project name contains %q", c)
		}
	}
	for el := range strings.SplitSeq(p, "/") {
		if el == "" || el[0] == '.' {
			return errors.New(`project name has an empty element or one starting with "."`)
		}
	}
	return nil
}

// sourceCacheName maps a valid project name to a file name. '+' cannot
// occur in a project name, so the mapping is one to one.
func sourceCacheName(project string) string {
	return strings.ReplaceAll(project, "/", "+")
}

// writeWorkspace writes the tree of c into a new directory under workDir,
// through an os.Root: no entry, and no symlink written before it, can make a
// write land outside. On error nothing is left behind.
func writeWorkspace(ctx context.Context, sto storer.EncodedObjectStorer, c *object.Commit, workDir, name string) (_ string, err error) {
	tree, err := c.Tree()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(workDir, name+"-")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", err
	}
	defer root.Close()

	w := &sourceTreeWriter{ctx: ctx, sto: sto, root: root, mtime: c.Committer.When}
	if err := w.tree(tree, "", 0); err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.Chtimes(dir, w.mtime, w.mtime); err != nil {
		return "", err
	}
	return dir, nil
}

type sourceTreeWriter struct {
	ctx   context.Context
	sto   storer.EncodedObjectStorer
	root  *os.Root
	mtime time.Time
}

// tree writes the entries of t under dir ("" for the top), in tree order.
// All names of t are checked before any is written.
func (w *sourceTreeWriter) tree(t *object.Tree, dir string, depth int) error {
	if depth > sourceMaxTreeDepth {
		return fmt.Errorf("%w %q: trees nested deeper than %d", ErrUnsafeTree, dir, sourceMaxTreeDepth)
	}
	seen := make(map[string]bool, len(t.Entries))
	for _, e := range t.Entries {
		if why := unsafeEntryName(e.Name); why != "" {
			return fmt.Errorf("%w %q: %s", ErrUnsafeTree, dir+e.Name, why)
		}
		if seen[e.Name] {
			return fmt.Errorf("%w %q: duplicate name", ErrUnsafeTree, dir+e.Name)
		}
		seen[e.Name] = true
	}
	for _, e := range t.Entries {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		p := dir + e.Name
		var err error
		switch e.Mode {
		case filemode.Dir:
			err = w.dir(e, p, depth)
		case filemode.Regular, filemode.Deprecated:
			err = w.file(e, p, 0o644)
		case filemode.Executable:
			err = w.file(e, p, 0o755)
		case filemode.Symlink:
			err = w.symlink(e, p)
		case filemode.Submodule:
			// The submodule's commit is in another repository: like
			// git, leave an empty directory.
			if err = w.root.Mkdir(p, 0o755); err == nil {
				err = w.root.Chtimes(p, w.mtime, w.mtime)
			}
		default:
			err = fmt.Errorf("%w %q: mode %o", ErrUnsafeTree, p, uint32(e.Mode))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (w *sourceTreeWriter) dir(e object.TreeEntry, p string, depth int) error {
	// Mkdir, not MkdirAll: it fails on anything already there.
	if err := w.root.Mkdir(p, 0o755); err != nil {
		return err
	}
	sub, err := object.GetTree(w.sto, e.Hash)
	if err != nil {
		return fmt.Errorf("tree %q: %w", p, err)
	}
	if err := w.tree(sub, p+"/", depth+1); err != nil {
		return err
	}
	return w.root.Chtimes(p, w.mtime, w.mtime)
}

func (w *sourceTreeWriter) file(e object.TreeEntry, p string, perm os.FileMode) (err error) {
	b, err := object.GetBlob(w.sto, e.Hash)
	if err != nil {
		return fmt.Errorf("file %q: %w", p, err)
	}
	r, err := b.Reader()
	if err != nil {
		return fmt.Errorf("file %q: %w", p, err)
	}
	defer r.Close()
	// O_EXCL: never write through a name that is already there.
	f, err := w.root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("file %q: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return w.root.Chtimes(p, w.mtime, w.mtime)
}

func (w *sourceTreeWriter) symlink(e object.TreeEntry, p string) error {
	b, err := object.GetBlob(w.sto, e.Hash)
	if err != nil {
		return fmt.Errorf("symlink %q: %w", p, err)
	}
	if b.Size == 0 || b.Size > sourceMaxSymlink {
		return fmt.Errorf("%w %q: symlink target of %d bytes", ErrUnsafeTree, p, b.Size)
	}
	r, err := b.Reader()
	if err != nil {
		return fmt.Errorf("symlink %q: %w", p, err)
	}
	defer r.Close()
	target, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("symlink %q: %w", p, err)
	}
	if strings.IndexByte(string(target), 0) >= 0 {
		return fmt.Errorf("%w %q: NUL in symlink target", ErrUnsafeTree, p)
	}
	// The target is written as it is, wherever it points: os.Root does not
	// follow a symlink out of the workspace, and no later entry can be
	// written through this one (names are unique and files O_EXCL).
	return w.root.Symlink(string(target), p)
}

// unsafeEntryName says why a tree entry name cannot be written, or returns "".
func unsafeEntryName(n string) string {
	switch {
	case n == "", n == ".", n == "..":
		return "not a file name"
	case strings.ContainsAny(n, "/\x00"):
		return "name leaves its directory"
	case strings.EqualFold(n, ".git"):
		return "a .git in the tree"
	}
	return ""
}
