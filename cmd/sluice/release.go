package main

// `sluice release`: the release repositories (repo.Release) as the post
// pipeline's release stage and release engineers use them, and the
// provenance rule they enforce: a package enters only if a build record
// says sluice built its bytes, passed, as a release build (not a test build
// of a change) of a project the repository takes, from a commit that is
// on the repository's branch, which is checked against the branch's tip
// in the project's own repository.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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
	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/builder"
	"github.com/sluice-ci/sluice/internal/gitremote"
	"github.com/sluice-ci/sluice/jobs"
	"github.com/sluice-ci/sluice/mirror"
	"github.com/sluice-ci/sluice/repo"
	"github.com/sluice-ci/sluice/results"
)

// ItemRelease is the result item type of a publish into a release
// repository from the command line: item is <repository>/<format>.
const itemRelease = "sluice_release"

// releaser publishes into the release repositories of one data directory.
type releaser struct {
	dataDir  string
	key      *repo.Key
	records  *builder.Records
	arts     *builder.Artifacts // where the built packages are
	branches *branchChecker
	// repoURL gives a project's own repository, where its branches are
	// read; "" when unknown: then the build record's URL.
	repoURL func(project string) string
	log     *slog.Logger
}

// newReleaser returns the releaser of e's data directory; close releases
// it.
func newReleaser(e *env, key *repo.Key, log *slog.Logger) (*releaser, error) {
	arts, err := builder.NewArtifacts(filepath.Join(e.dataDir, "artifacts"))
	if err != nil {
		return nil, err
	}
	return &releaser{dataDir: e.dataDir, key: key, records: builder.NewRecords(e.db, nil, nil), arts: arts,
		branches: newBranchChecker(filepath.Join(e.dataDir, "release-git")), repoURL: configuredRepoURL(e.cfg), log: log}, nil
}

func (rl *releaser) close() {
	rl.branches.close()
	rl.arts.Close()
}

// prover is the provenance rule of rc.
func (rl *releaser) prover(rc releaseRepoConfig) *releaseProver {
	return &releaseProver{repo: rc, records: rl.records, arts: rl.arts, branches: rl.branches, repoURL: rl.repoURL}
}

// configuredRepoURL gives the repository of a project the configuration
// names: a local project's path, or the Gerrit git URL of a project.
func configuredRepoURL(cfg *config) func(string) string {
	return func(project string) string {
		for _, p := range cfg.Local.Projects {
			if p.Name == project {
				return p.Path
			}
		}
		if g := cfg.Gerrit; g != nil {
			u := g.GitURL
			if u == "" {
				u = g.URL
			}
			return strings.TrimSuffix(u, "/") + "/" + project
		}
		return ""
	}
}

// releaseOutcome is what a publish into one format of a release
// repository did: Summary when it worked, Err (a refusal or a conflict:
// the packages' fault) when it did not.
type releaseOutcome struct {
	Repo, Format, Dir string
	Summary           repo.ReleaseSummary
	Err               error
}

func (o releaseOutcome) note() string {
	if o.Err != nil {
		return fmt.Sprintf("%s/%s: %v", o.Repo, o.Format, o.Err)
	}
	if !o.Summary.Created {
		return fmt.Sprintf("%s/%s: snapshot %s unchanged (%d packages)", o.Repo, o.Format, o.Summary.Snapshot.ID, len(o.Summary.Snapshot.Packages))
	}
	return fmt.Sprintf("%s/%s: snapshot %s, %d packages (%d added, %d pruned)", o.Repo, o.Format, o.Summary.Snapshot.ID,
		len(o.Summary.Snapshot.Packages), len(o.Summary.Added), len(o.Summary.Pruned))
}

// publish publishes the packages in paths (files, or directories searched
// for them) into each format of the release repository rc that they hold
// packages of: one transaction per format; packages of a format rc does
// not have are left out. err is for what is nobody's package's fault (the
// disk, the database, a cancelled context).
func (rl *releaser) publish(ctx context.Context, rc releaseRepoConfig, paths []string) ([]releaseOutcome, error) {
	byFormat, err := packagesByFormat(paths)
	if err != nil {
		return nil, err
	}
	var out []releaseOutcome
	for _, f := range rc.Formats {
		files := byFormat[f]
		if len(files) == 0 {
			continue
		}
		dir := releaseDir(rl.dataDir, rc.Name, f)
		r, err := repo.NewRelease(dir, rl.key, rc.repoConfig(f), rl.log)
		if err != nil {
			return nil, err
		}
		sum, err := r.Publish(ctx, files, rl.prover(rc))
		o := releaseOutcome{Repo: rc.Name, Format: f, Dir: dir, Summary: sum}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if _, refused := errors.AsType[*repo.RefusedError](err); !refused && !errors.Is(err, repo.ErrConflict) && !errors.Is(err, repo.ErrBadPackage) {
				return nil, err
			}
			o.Err = err
		}
		out = append(out, o)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("release %s: no .deb or .rpm packages in %q", rc.Name, paths)
	}
	return out, nil
}

// packagesByFormat lists the binary packages paths name, by format:
// files by their name, directories searched (source RPMs left out).
func packagesByFormat(paths []string) (map[string][]string, error) {
	out := map[string][]string{}
	add := func(p string) {
		switch {
		case strings.HasSuffix(p, ".deb"):
			out["deb"] = append(out["deb"], p)
		case strings.HasSuffix(p, ".rpm"):
			out["rpm"] = append(out["rpm"], p)
		}
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			if !strings.HasSuffix(p, ".deb") && !strings.HasSuffix(p, ".rpm") {
				return nil, fmt.Errorf("%s: not a .deb or .rpm", p)
			}
			add(p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() && !strings.HasSuffix(path, ".src.rpm") {
				add(path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// releaseProver is the provenance rule of one release repository.
type releaseProver struct {
	repo     releaseRepoConfig
	records  *builder.Records
	arts     *builder.Artifacts
	branches *branchChecker
	repoURL  func(project string) string
}

var (
	_ repo.Prover      = (*releaseProver)(nil)
	_ repo.BuiltOpener = (*releaseProver)(nil)
)

// OpenBuilt opens a build's output in the artifact store.
func (p *releaseProver) OpenBuilt(sha string) (io.ReadCloser, error) {
	return p.arts.Open(sha)
}

// Prove finds a build record that made pkg's bytes and satisfies the rule;
// without one, the error says what each record lacks.
func (p *releaseProver) Prove(ctx context.Context, pkg repo.Package) (repo.Provenance, error) {
	recs, err := p.records.ByOutput(ctx, pkg.SHA256)
	if errors.Is(err, builder.ErrNoRecord) {
		return repo.Provenance{}, fmt.Errorf("no build record: sluice did not build these bytes (sha256 %s)", pkg.SHA256)
	}
	if err != nil {
		return repo.Provenance{}, err
	}
	var why []string
	for _, rec := range recs {
		reason, prov, err := p.check(ctx, rec)
		if err != nil {
			return repo.Provenance{}, err
		}
		if reason == "" {
			return prov, nil
		}
		why = append(why, "build "+rec.ID+": "+reason)
	}
	return repo.Provenance{}, fmt.Errorf("no build record proves it: %s", strings.Join(why, "; "))
}

// check returns why rec does not prove a package ("" when it does). err
// is for what stops the check itself (a cancelled context).
func (p *releaseProver) check(ctx context.Context, rec *builder.Record) (reason string, prov repo.Provenance, err error) {
	switch {
	case rec.Outcome != builder.Passed:
		return "outcome " + rec.Outcome, prov, nil
	case rec.Change != 0:
		return fmt.Sprintf("a test build of change %d, patchset %d", rec.Change, rec.Patchset), prov, nil
	case !sha1RE.MatchString(rec.Commit):
		return "names no commit", prov, nil
	case !p.repo.hasProject(rec.Project):
		return fmt.Sprintf("project %s does not release into %s", rec.Project, p.repo.Name), prov, nil
	}
	url := ""
	if p.repoURL != nil {
		url = p.repoURL(rec.Project)
	}
	if url == "" {
		url = rec.URL
	}
	on, tip, err := p.branches.contains(ctx, rec.Project, url, p.repo.Branch, rec.Commit)
	if err != nil {
		if ctx.Err() != nil {
			return "", prov, ctx.Err()
		}
		return fmt.Sprintf("branch %s of %s: %v", p.repo.Branch, gitremote.Redact(url), err), prov, nil
	}
	if !on {
		return fmt.Sprintf("commit %s is not on branch %s of %s (tip %s)", rec.Commit, p.repo.Branch, gitremote.Redact(url), tip), prov, nil
	}
	return "", repo.Provenance{Record: rec.ID, Project: rec.Project, Commit: rec.Commit, Branch: p.repo.Branch, URL: gitremote.Redact(url)}, nil
}

// branchChecker tells whether a commit is on a branch of a repository: it
// reads the branch's tip from the repository itself (as git ls-remote
// would) and walks the history from the tip. A repository on this machine
// is read in place; a remote one is fetched into a bare cache of its own
// under dir, of which only the branch's history is used, fetched anew
// each time the tip moved, so that a commit is on the branch only if the
// repository's branch, as it is now, contains it. Tips are read once per
// checker.
type branchChecker struct {
	dir string
	// cacheLocal fetches local repositories into the cache too (tests of
	// the remote path).
	cacheLocal bool

	mu   sync.Mutex
	tips map[string]*branchState
}

type branchState struct {
	once sync.Once
	tip  plumbing.Hash
	sto  *filesystem.Storage
	err  error
	// on caches the answers for this tip.
	mu sync.Mutex
	on map[string]bool
}

func newBranchChecker(dir string) *branchChecker {
	return &branchChecker{dir: dir, tips: map[string]*branchState{}}
}

// close releases the repositories the checker read.
func (b *branchChecker) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, st := range b.tips {
		if st.sto != nil {
			st.sto.Close()
		}
	}
}

// contains tells whether commit is the tip of branch in the repository at
// url, or one of its ancestors; it returns the tip.
func (b *branchChecker) contains(ctx context.Context, project, url, branch, commit string) (bool, string, error) {
	b.mu.Lock()
	key := url + "\x00" + branch
	st := b.tips[key]
	if st == nil {
		st = &branchState{on: map[string]bool{}}
		b.tips[key] = st
	}
	b.mu.Unlock()
	st.once.Do(func() { st.tip, st.sto, st.err = b.load(ctx, project, url, branch) })
	if st.err != nil {
		return false, "", st.err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if on, ok := st.on[commit]; ok {
		return on, st.tip.String(), nil
	}
	on, err := isAncestor(ctx, st.sto, plumbing.NewHash(commit), st.tip)
	if err != nil {
		return false, st.tip.String(), err
	}
	st.on[commit] = on
	return on, st.tip.String(), nil
}

// load reads the branch's tip and returns a storage holding its history.
func (b *branchChecker) load(ctx context.Context, project, url, branch string) (plumbing.Hash, *filesystem.Storage, error) {
	var zero plumbing.Hash
	rem, err := gitremote.ParseURL(url)
	if err != nil {
		return zero, nil, err
	}
	opts := filesystem.Options{LargeObjectThreshold: 4 << 20}
	sess, err := rem.Open(opts)
	if err != nil {
		return zero, nil, err
	}
	defer sess.Close()
	ar, err := sess.AdvertisedReferences(ctx)
	if err != nil {
		return zero, nil, err
	}
	refs, err := ar.AllReferences()
	if err != nil {
		return zero, nil, err
	}
	ref, ok := refs[plumbing.NewBranchReferenceName(branch)]
	if !ok || ref.Type() != plumbing.HashReference {
		return zero, nil, fmt.Errorf("no branch %s", branch)
	}
	tip := ref.Hash()
	if rem.Path != "" && !b.cacheLocal {
		gitDir, err := gitremote.LocalGitDir(rem.Path)
		if err != nil {
			return zero, nil, err
		}
		return tip, filesystem.NewStorageWithOptions(osfs.New(gitDir), cache.NewObjectLRUDefault(), opts), nil
	}
	// A remote repository: fetch what the cache lacks of the tip's history.
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return zero, nil, err
	}
	name := strings.ReplaceAll(project, "/", "+")
	unlock, err := flockFile(ctx, filepath.Join(b.dir, name+".lock"))
	if err != nil {
		return zero, nil, err
	}
	defer unlock()
	gitDir := filepath.Join(b.dir, name+".git")
	if _, err := os.Stat(gitDir); errors.Is(err, fs.ErrNotExist) {
		tmp, err := os.MkdirTemp(b.dir, "."+name+".init-")
		if err != nil {
			return zero, nil, err
		}
		if _, err := git.PlainInit(tmp, true); err != nil {
			os.RemoveAll(tmp)
			return zero, nil, err
		}
		if err := os.Rename(tmp, gitDir); err != nil {
			os.RemoveAll(tmp)
			return zero, nil, err
		}
	}
	sto := filesystem.NewStorageWithOptions(osfs.New(gitDir), cache.NewObjectLRUDefault(), opts)
	if sto.HasEncodedObject(tip) != nil {
		if _, _, err := sess.Fetch(ctx, sto, ar, []plumbing.Hash{tip}); err != nil {
			sto.Close()
			return zero, nil, fmt.Errorf("fetch %s: %w", branch, err)
		}
	}
	// The fetched tip, as a ref: the next fetch sends it as a have.
	if err := sto.SetReference(plumbing.NewHashReference(plumbing.NewBranchReferenceName(branch), tip)); err != nil {
		sto.Close()
		return zero, nil, err
	}
	return tip, sto, nil
}

// isAncestor walks the history of tip (every parent) looking for commit.
// A history that lacks an object is an error, not a no.
func isAncestor(ctx context.Context, sto *filesystem.Storage, commit, tip plumbing.Hash) (bool, error) {
	if commit == tip {
		return true, nil
	}
	seen := map[plumbing.Hash]bool{tip: true}
	queue := []plumbing.Hash{tip}
	for n := 0; len(queue) > 0; n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return false, ctx.Err()
		}
		h := queue[0]
		queue = queue[1:]
		c, err := object.GetCommit(sto, h)
		if err != nil {
			return false, fmt.Errorf("history of the branch: commit %s: %w", h, err)
		}
		for _, p := range c.ParentHashes {
			if p == commit {
				return true, nil
			}
			if !seen[p] {
				seen[p] = true
				queue = append(queue, p)
			}
		}
	}
	return false, nil
}

// flockFile takes an exclusive flock on path, polling so that ctx can stop
// the wait.
func flockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	delay := 10 * time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
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

// releaseResult is the result a publish from the command line records for
// one format of a repository.
func releaseResult(o releaseOutcome, start time.Time) *results.Result {
	outcome, note := jobs.Passed, o.note()
	if o.Err != nil {
		outcome = jobs.Failed
	}
	if len(note) > 4000 {
		note = note[:4000]
	}
	data := map[string][]string{
		"item": {o.Repo + "/" + o.Format}, "type": {itemRelease}, "stage": {"release"}, "repository": {o.Repo}, "format": {o.Format},
		"duration": {strconv.FormatFloat(time.Since(start).Seconds(), 'f', 3, 64)},
	}
	if o.Err == nil {
		data["snapshot"] = []string{o.Summary.Snapshot.ID}
		data["packages"] = []string{strconv.Itoa(len(o.Summary.Snapshot.Packages))}
		data["added"] = []string{strconv.Itoa(len(o.Summary.Added))}
	}
	return &results.Result{Testcase: results.Testcase{Name: "sluice.release"}, Outcome: outcome, Note: note, Data: data}
}

func newReleaseCmd(log *slog.Logger) *cobra.Command {
	cmd := &cobra.Command{Use: "release", Short: "Publish into, inspect, roll back and audit the release repositories"}
	cmd.AddCommand(newReleasePublishCmd(log), newReleaseListCmd(log), newReleaseDiffCmd(log), newReleaseRollbackCmd(log), newReleaseAuditCmd(log),
		newReleasePruneCmd(log))
	return cmd
}

// releaseEnv opens the store and finds the release repository called name.
func releaseEnv(cmd *cobra.Command, sf *storeFlags, name string, log *slog.Logger) (*env, releaseRepoConfig, error) {
	e, err := sf.open(cmd, log)
	if err != nil {
		return nil, releaseRepoConfig{}, err
	}
	rc, err := e.cfg.Releases.release(name)
	if err != nil {
		e.close()
		return nil, releaseRepoConfig{}, err
	}
	return e, rc, nil
}

func newReleasePublishCmd(log *slog.Logger) *cobra.Command {
	var sf storeFlags
	cmd := &cobra.Command{
		Use:   "publish NAME ARTIFACT...",
		Short: "Publish built packages into a new snapshot of a release repository",
		Long: "Publish .deb and .rpm packages (files, or directories searched for them) into a new snapshot of the\n" +
			"release repository NAME, one snapshot per format, and switch its current snapshot. Every package must\n" +
			"have a build record: sluice built these bytes, the build passed, it was a release build (not a test\n" +
			"build of a change) of a project the repository takes, from a commit on the repository's branch.\n" +
			"A package without one is refused with the reason, and nothing of its format is published. NAME is\n" +
			"a repository of releases.repositories, or PROJECT~BRANCH for a project's default one.",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, rc, err := releaseEnv(cmd, &sf, args[0], log)
			if err != nil {
				return err
			}
			defer e.close()
			key, err := signingKey(e, "release-signing-key", e.cfg.Signing.ReleaseKey, e.cfg.Signing.ReleasePassphraseFile)
			if err != nil {
				return fmt.Errorf("release key: %w", err)
			}
			byFormat, err := packagesByFormat(args[1:])
			if err != nil {
				return err
			}
			for f, files := range byFormat {
				if !slices.Contains(rc.Formats, f) {
					return fmt.Errorf("release publish %s: %d .%s packages given, the repository has no %s format", rc.Name, len(files), f, f)
				}
			}
			rl, err := newReleaser(e, key, log)
			if err != nil {
				return err
			}
			defer rl.close()
			start := time.Now()
			outs, err := rl.publish(cmd.Context(), rc, args[1:])
			if err != nil {
				return err
			}
			failed := false
			err = e.db.Tx(cmd.Context(), func(tx *sql.Tx) error {
				for _, o := range outs {
					if err := e.recorder.Record(cmd.Context(), tx, releaseResult(o, start)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			e.push(cmd.Context(), time.Minute, log)
			for _, o := range outs {
				fmt.Fprintln(cmd.OutOrStdout(), o.note())
				failed = failed || o.Err != nil
			}
			if failed {
				return exitError(1)
			}
			return nil
		},
	}
	sf.register(cmd.Flags())
	return cmd
}

// releaseDirs are the formats of a release repository that something was
// published into (a directory that a failed first publish left is not).
func releaseDirs(dataDir string, rc releaseRepoConfig) map[string]repo.ReleaseDir {
	out := map[string]repo.ReleaseDir{}
	for _, f := range rc.Formats {
		d := repo.ReleaseDir(releaseDir(dataDir, rc.Name, f))
		if d.Published() {
			out[f] = d
		}
	}
	return out
}

func newReleaseListCmd(log *slog.Logger) *cobra.Command {
	var sf storeFlags
	var pkgs bool
	cmd := &cobra.Command{
		Use:   "list NAME",
		Short: "List the snapshots of a release repository; * marks the current one",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, rc, err := releaseEnv(cmd, &sf, args[0], log)
			if err != nil {
				return err
			}
			defer e.close()
			w := cmd.OutOrStdout()
			dirs := releaseDirs(e.dataDir, rc)
			if len(dirs) == 0 {
				fmt.Fprintf(w, "%s: nothing published\n", rc.Name)
				return nil
			}
			for _, f := range rc.Formats {
				d, ok := dirs[f]
				if !ok {
					continue
				}
				snaps, err := d.Snapshots()
				if err != nil {
					return err
				}
				cur, _ := d.CurrentID()
				fmt.Fprintf(w, "%s/%s (%s):\n", rc.Name, f, d)
				listed := map[string]bool{}
				for _, s := range snaps {
					listed[s.ID] = true
				}
				for _, s := range snaps {
					mark := " "
					if s.ID == cur {
						mark = "*"
					}
					parent := orDash(s.Parent)
					if s.Parent != "" && !listed[s.Parent] {
						parent += " (pruned)"
					}
					fmt.Fprintf(w, "%s %s  %s  %d packages  parent %s\n", mark, s.ID, s.Created.UTC().Format(time.RFC3339), len(s.Packages), parent)
					if pkgs {
						for _, p := range s.Packages {
							fmt.Fprintf(w, "      %s  since %s  %s@%s\n", p.Identity(), p.Since, p.Provenance.Project, p.Provenance.Commit)
						}
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&pkgs, "packages", false, "list each snapshot's packages too")
	sf.register(cmd.Flags())
	return cmd
}

// orDash returns s, or "-" when s is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newReleaseDiffCmd(log *slog.Logger) *cobra.Command {
	var sf storeFlags
	cmd := &cobra.Command{
		Use:   "diff NAME SNAP1 SNAP2",
		Short: "List the packages added, removed and changed from snapshot SNAP1 to SNAP2",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, rc, err := releaseEnv(cmd, &sf, args[0], log)
			if err != nil {
				return err
			}
			defer e.close()
			w := cmd.OutOrStdout()
			found := false
			for _, f := range rc.Formats {
				d, ok := releaseDirs(e.dataDir, rc)[f]
				if !ok {
					continue
				}
				a, errA := d.Snapshot(args[1])
				b, errB := d.Snapshot(args[2])
				if errors.Is(errA, repo.ErrNoSnapshot) || errors.Is(errB, repo.ErrNoSnapshot) {
					continue
				}
				if err := errors.Join(errA, errB); err != nil {
					return err
				}
				found = true
				diff := repo.DiffSnapshots(a, b)
				fmt.Fprintf(w, "%s/%s %s..%s: %d added, %d removed, %d changed\n", rc.Name, f, a.ID, b.ID, len(diff.Added), len(diff.Removed), len(diff.Changed))
				for _, l := range []struct {
					sign string
					ps   []repo.SnapshotPackage
				}{{"+", diff.Added}, {"-", diff.Removed}, {"~", diff.Changed}} {
					for _, p := range l.ps {
						fmt.Fprintf(w, "%s %s\n", l.sign, p.Identity())
					}
				}
			}
			if !found {
				return fmt.Errorf("release diff %s: no format has both snapshots %s and %s", rc.Name, args[1], args[2])
			}
			return nil
		},
	}
	sf.register(cmd.Flags())
	return cmd
}

func newReleaseRollbackCmd(log *slog.Logger) *cobra.Command {
	var sf storeFlags
	var to, format string
	cmd := &cobra.Command{
		Use:   "rollback NAME --to SNAP [--format deb|rpm]",
		Short: "Switch a release repository's current snapshot back to SNAP, atomically",
		Long: "Switch the current snapshot of the release repository NAME to SNAP, in each format that has it\n" +
			"(or only in --format). The next publish starts from SNAP.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !repo.ValidSnapshotID(to) {
				return fmt.Errorf("release rollback: --to %q is not a snapshot ID", to)
			}
			e, rc, err := releaseEnv(cmd, &sf, args[0], log)
			if err != nil {
				return err
			}
			defer e.close()
			done := 0
			var missing []string
			for _, f := range rc.Formats {
				d, ok := releaseDirs(e.dataDir, rc)[f]
				if !ok || format != "" && f != format {
					continue
				}
				// A format without the snapshot (never made, or pruned)
				// is left as it is; the error says which.
				if err := d.Rollback(cmd.Context(), to); errors.Is(err, repo.ErrNoSnapshot) {
					missing = append(missing, fmt.Sprintf("%s/%s: %v", rc.Name, f, err))
					continue
				} else if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s/%s: current is snapshot %s\n", rc.Name, f, to)
				done++
			}
			if done == 0 {
				return fmt.Errorf("release rollback %s: no snapshot %s: %s", rc.Name, to, orDash(strings.Join(missing, "; ")))
			}
			for _, m := range missing {
				fmt.Fprintf(cmd.OutOrStdout(), "%s (left as it is)\n", m)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "snapshot ID to make current (required)")
	cmd.Flags().StringVar(&format, "format", "", "only this format: deb or rpm")
	sf.register(cmd.Flags())
	return cmd
}

func newReleaseAuditCmd(log *slog.Logger) *cobra.Command {
	var sf storeFlags
	var keyringFile string
	cmd := &cobra.Command{
		Use:   "audit NAME",
		Short: "Prove again the provenance of every package of every snapshot of a release repository",
		Long: "Check every snapshot of the release repository NAME: its signatures, sizes and checksums against\n" +
			"the release key, each package file against its manifest, and each package against the provenance\n" +
			"rule (its build record, and its commit on the repository's branch as the branch is now). Prints\n" +
			"every finding; exits 1 if there is one.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, rc, err := releaseEnv(cmd, &sf, args[0], log)
			if err != nil {
				return err
			}
			defer e.close()
			var pub []byte
			if keyringFile != "" {
				pub, err = os.ReadFile(keyringFile)
			} else {
				var key *repo.Key
				key, err = signingKey(e, "release-signing-key", e.cfg.Signing.ReleaseKey, e.cfg.Signing.ReleasePassphraseFile)
				if err == nil {
					var b strings.Builder
					err = key.WritePublic(&b)
					pub = []byte(b.String())
				}
			}
			if err != nil {
				return fmt.Errorf("release audit: keyring: %w", err)
			}
			keyring, err := repo.ReadKeyring(strings.NewReader(string(pub)))
			if err != nil {
				return fmt.Errorf("release audit: keyring: %w", err)
			}
			rl, err := newReleaser(e, nil, log)
			if err != nil {
				return err
			}
			defer rl.close()
			w := cmd.OutOrStdout()
			bad := 0
			for _, f := range rc.Formats {
				d, ok := releaseDirs(e.dataDir, rc)[f]
				if !ok {
					continue
				}
				findings, sum, err := d.Audit(cmd.Context(), keyring, rl.prover(rc))
				if err != nil {
					return err
				}
				for _, fd := range findings {
					fmt.Fprintf(w, "%s/%s: %s\n", rc.Name, f, fd)
				}
				bad += len(findings)
				fmt.Fprintf(w, "%s/%s: %d snapshots, %d packages checked, %d findings\n", rc.Name, f, sum.Snapshots, sum.Packages, len(findings))
			}
			if bad > 0 {
				return exitError(1)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyringFile, "keyring", "", "public key(s) the snapshots must be signed with (default: the release key's)")
	sf.register(cmd.Flags())
	return cmd
}

// pruneRelease prunes each format of the release repository rc (or only
// format) that has snapshots: it keeps the newest keep snapshots, the
// current one and those protect gives for the format (the snapshots its
// mirror targets serve), and writes one line per format to w.
func pruneRelease(ctx context.Context, dataDir string, rc releaseRepoConfig, format string, keep int,
	protect map[string][]string, w io.Writer, log *slog.Logger) error {
	done := 0
	for _, f := range rc.Formats {
		d, ok := releaseDirs(dataDir, rc)[f]
		if !ok || format != "" && f != format {
			continue
		}
		sum, err := d.Prune(ctx, keep, protect[f], log)
		if err != nil {
			return err
		}
		cur, _ := d.CurrentID()
		fmt.Fprintf(w, "%s/%s: removed %s; kept %s (current %s); %d pool files (%d bytes) removed\n", rc.Name, f,
			orDash(strings.Join(sum.Removed, " ")), orDash(strings.Join(sum.Kept, " ")), orDash(cur), sum.PoolFiles, sum.PoolBytes)
		done++
	}
	if done == 0 {
		return fmt.Errorf("release prune %s: nothing published", rc.Name)
	}
	return nil
}

func newReleasePruneCmd(log *slog.Logger) *cobra.Command {
	var sf storeFlags
	var keep int
	var protect []string
	var format string
	cmd := &cobra.Command{
		Use:   "prune NAME --keep N [--protect ID,...] [--format deb|rpm]",
		Short: "Remove the old snapshots of a release repository and the pool files only they used",
		Long: "Remove the snapshots of the release repository NAME older than its newest N, in each format (or only\n" +
			"in --format), then the files of its pool that no remaining snapshot names. The current snapshot stays,\n" +
			"and so do the snapshots its mirror targets serve (`sluice mirror status NAME`) and each one --protect\n" +
			"names. A pruned snapshot\n" +
			"cannot be rolled back to. Runs under the repository's lock; a prune interrupted at any point leaves\n" +
			"a consistent repository, and the next prune or publish finishes it.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keep < 1 {
				return fmt.Errorf("release prune: --keep %d: give how many of the newest snapshots to keep (at least 1)", keep)
			}
			if format != "" && format != "deb" && format != "rpm" {
				return fmt.Errorf("release prune: --format %q is not deb or rpm", format)
			}
			for _, id := range protect {
				if !repo.ValidSnapshotID(id) {
					return fmt.Errorf("release prune: --protect %q is not a snapshot ID", id)
				}
			}
			e, rc, err := releaseEnv(cmd, &sf, args[0], log)
			if err != nil {
				return err
			}
			defer e.close()
			// The IDs given protect the snapshot of that ID in every
			// format; what a mirror target serves is protected in its
			// format, so that the target can be restored or checked
			// against it.
			byFormat := map[string][]string{}
			for _, f := range rc.Formats {
				byFormat[f] = slices.Clone(protect)
				st, err := mirror.LoadState(mirrorStateDir(e.dataDir), rc.Name, f)
				if err != nil {
					return fmt.Errorf("release prune: the mirror state of %s/%s: %w", rc.Name, f, err)
				}
				for _, ts := range st.Targets {
					if ts.Served != "" {
						byFormat[f] = append(byFormat[f], ts.Served)
					}
				}
			}
			return pruneRelease(cmd.Context(), e.dataDir, rc, format, keep, byFormat, cmd.OutOrStdout(), log)
		},
	}
	cmd.Flags().IntVar(&keep, "keep", 0, "how many of the newest snapshots to keep, at least 1 (required)")
	cmd.Flags().StringSliceVar(&protect, "protect", nil, "further snapshot IDs to keep whatever their age, comma-separated")
	cmd.Flags().StringVar(&format, "format", "", "only this format: deb or rpm")
	sf.register(cmd.Flags())
	return cmd
}
