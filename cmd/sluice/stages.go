package main

// The stage functions the in-process pool runs and `sluice stage` calls:
// thin wiring of builder and repo around a buildset's work directory,
// DATA-DIR/buildsets/<uuid>/ (build/<project>/<format>/ with each
// project's packages, repo/{deb,rpm}/ the buildset's signed test
// repositories).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-ci/sluice/builder"
	"github.com/sluice-ci/sluice/jobs"
	"github.com/sluice-ci/sluice/repo"
	"github.com/sluice-ci/sluice/results"
)

// stages runs stages for one data directory.
type stages struct {
	env     *env
	builder *builder.Builder
	records *builder.Records
	arts    *builder.Artifacts // where lint keeps its output
	testKey *repo.Key
	// releaseKey signs the release repositories.
	releaseKey *repo.Key
	log        *slog.Logger
	// projectURL gives a project's own repository, where ref items (the
	// post pipeline's branch updates) are built from; the merger's
	// copy may not have the new commit yet. Nil: ZUUL_URL.
	projectURL func(project string) string
}

// newStages wires the stage functions on e.
func newStages(e *env, timeout time.Duration, rpmNoDeps bool, rpmHostProvides []string, log *slog.Logger) (*stages, error) {
	records := builder.NewRecords(e.db, e.recorder, artifactURL(e.cfg.Server.URL))
	b, err := newBuilder(e.dataDir, records, timeout, rpmNoDeps, rpmHostProvides, log)
	if err != nil {
		return nil, err
	}
	k, err := signingKey(e, "test-signing-key", e.cfg.Signing.TestKey, e.cfg.Signing.TestPassphraseFile)
	if err != nil {
		return nil, fmt.Errorf("test repository key: %w", err)
	}
	rk, err := signingKey(e, "release-signing-key", e.cfg.Signing.ReleaseKey, e.cfg.Signing.ReleasePassphraseFile)
	if err != nil {
		return nil, fmt.Errorf("release repository key: %w", err)
	}
	arts, err := builder.NewArtifacts(filepath.Join(e.dataDir, "artifacts"))
	if err != nil {
		return nil, err
	}
	return &stages{env: e, builder: b, records: records, arts: arts, testKey: k, releaseKey: rk, log: log}, nil
}

// funcs are the stage functions by the names the pipeline gives stages.
func (s *stages) funcs() map[string]jobs.StageFunc {
	return map[string]jobs.StageFunc{
		"build.deb": s.build("deb"),
		"build.rpm": s.build("rpm"),
		"publish":   s.publish,
		"release":   s.release,
		"lint":      s.lint,
		"install":   s.install,
		"mirror":    s.mirror,
		"systest":   s.systest,
	}
}

// stageParams are the Zuul v2 job parameters a stage reads, validated.
type stageParams struct {
	URL, Project, Branch, Ref, Commit, Pipeline, UUID string
	Change, Patchset                                  int
	// Changes are ZUUL_CHANGES: project, branch and ref of the item's
	// changes and those ahead of it, in queue order.
	Changes []stageChange
}

type stageChange struct {
	Project, Branch, Ref string
	Number, Patchset     int
}

var (
	zuulRefRE    = regexp.MustCompile(`^refs/[A-Za-z0-9._/-]+$`)
	changeRefRE  = regexp.MustCompile(`^refs/changes/[0-9]{2}/([0-9]+)/([0-9]+)$`)
	sha1RE       = regexp.MustCompile(`^[0-9a-f]{40}$`)
	stageUUIDRE  = regexp.MustCompile(`^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$`)
	stageNameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
	pipelineRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	maxParamSize = 64 << 10
)

// parseStageParams validates the parameters: they name paths and refs,
// so nothing is used unchecked.
func parseStageParams(p map[string]string) (stageParams, error) {
	var sp stageParams
	for k, v := range p {
		if len(v) > maxParamSize {
			return sp, fmt.Errorf("%s: longer than %d bytes", k, maxParamSize)
		}
	}
	sp.URL, sp.Project, sp.Branch, sp.Ref = p["ZUUL_URL"], p["ZUUL_PROJECT"], p["ZUUL_BRANCH"], p["ZUUL_REF"]
	sp.Commit, sp.Pipeline, sp.UUID = p["ZUUL_COMMIT"], p["ZUUL_PIPELINE"], strings.ToLower(p["ZUUL_UUID"])
	switch {
	case sp.URL == "":
		return sp, errors.New("ZUUL_URL: missing")
	case !stageNameRE.MatchString(sp.Project) || strings.Contains(sp.Project, ".."):
		return sp, fmt.Errorf("ZUUL_PROJECT %q: not a project name", sp.Project)
	case !zuulRefRE.MatchString(sp.Ref) || strings.Contains(sp.Ref, ".."):
		return sp, fmt.Errorf("ZUUL_REF %q: not a ref", sp.Ref)
	case sp.Commit != "" && !sha1RE.MatchString(sp.Commit):
		return sp, fmt.Errorf("ZUUL_COMMIT %q: not a commit id", sp.Commit)
	case !stageUUIDRE.MatchString(sp.UUID):
		return sp, fmt.Errorf("ZUUL_UUID %q: not a UUID", sp.UUID)
	case sp.Pipeline != "" && !pipelineRE.MatchString(sp.Pipeline):
		return sp, fmt.Errorf("ZUUL_PIPELINE %q: not a pipeline name", sp.Pipeline)
	}
	for _, k := range []string{"ZUUL_CHANGE", "ZUUL_PATCHSET"} {
		v := p[k]
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return sp, fmt.Errorf("%s %q: not a positive number", k, v)
		}
		if k == "ZUUL_CHANGE" {
			sp.Change = n
		} else {
			sp.Patchset = n
		}
	}
	if v := p["ZUUL_CHANGES"]; v != "" {
		for _, part := range strings.Split(v, "^") {
			f := strings.Split(part, ":")
			if len(f) != 3 {
				return sp, fmt.Errorf("ZUUL_CHANGES: %q is not project:branch:ref", part)
			}
			m := changeRefRE.FindStringSubmatch(f[2])
			if m == nil || !stageNameRE.MatchString(f[0]) || strings.Contains(f[0], "..") {
				return sp, fmt.Errorf("ZUUL_CHANGES: %q is not project:branch:refs/changes/NN/N/P", part)
			}
			n, _ := strconv.Atoi(m[1])
			ps, _ := strconv.Atoi(m[2])
			sp.Changes = append(sp.Changes, stageChange{Project: f[0], Branch: f[1], Ref: f[2], Number: n, Patchset: ps})
		}
	}
	return sp, nil
}

// projects returns the projects the buildset builds: those of its
// changes, in queue order, the item's own project last; with the change
// (number, patchset) each is built for, the last of that project.
func (sp stageParams) projects() []stageChange {
	var out []stageChange
	for _, c := range sp.Changes {
		if i := slices.IndexFunc(out, func(o stageChange) bool { return o.Project == c.Project }); i >= 0 {
			out = slices.Delete(out, i, i+1)
		}
		out = append(out, c)
	}
	if i := slices.IndexFunc(out, func(o stageChange) bool { return o.Project == sp.Project }); i >= 0 {
		out = slices.Delete(out, i, i+1)
	}
	return append(out, stageChange{Project: sp.Project, Branch: sp.Branch, Ref: sp.Ref, Number: sp.Change, Patchset: sp.Patchset})
}

// buildsetDir is a buildset's work directory.
func (s *stages) buildsetDir(uuid string) string {
	return filepath.Join(s.env.dataDir, "buildsets", uuid)
}

// build returns the stage function that builds format for every project
// of the buildset, at the buildset's speculative ref.
func (s *stages) build(format string) jobs.StageFunc {
	return func(ctx context.Context, r jobs.Run) (jobs.Result, error) {
		sp, err := parseStageParams(r.Params)
		if err != nil {
			return jobs.Result{}, fmt.Errorf("stage build.%s: %w", format, err)
		}
		outcome, logURL := jobs.Passed, ""
		link := artifactURL(s.env.cfg.Server.URL)
		for _, pc := range sp.projects() {
			own := pc.Project == sp.Project
			ref := sp.Ref
			if own && sp.Commit != "" {
				ref = sp.Commit
			}
			url := gitURL(strings.TrimSuffix(sp.URL, "/") + "/" + pc.Project)
			if sp.Change == 0 && s.projectURL != nil {
				if u := s.projectURL(pc.Project); u != "" {
					url = u
				}
			}
			out := filepath.Join(s.buildsetDir(sp.UUID), "build", strings.ReplaceAll(pc.Project, "/", "+"))
			// A new attempt starts from nothing.
			if err := os.RemoveAll(filepath.Join(out, format)); err != nil {
				return jobs.Result{}, err
			}
			recs, err := s.builder.Build(ctx, builder.Request{
				Project: pc.Project, URL: url, Ref: ref,
				Change: pc.Number, Patchset: pc.Patchset, Pipeline: sp.Pipeline, Buildset: sp.UUID, Attempt: r.Attempt,
				Formats: []string{format}, SkipMissing: !own, OutDir: out,
			})
			if err != nil {
				return jobs.Result{}, err
			}
			for _, rec := range recs {
				// The report links the log of the item's own build, or
				// of the first that failed.
				if link != nil && rec.Log.SHA256 != "" && (own && logURL == "" || rec.Outcome != builder.Passed && outcome == jobs.Passed) {
					logURL = link(rec.Log)
				}
				switch rec.Outcome {
				case builder.Passed:
				case builder.Failed:
					outcome = jobs.Failed
				default:
					if ctx.Err() != nil {
						return jobs.Result{}, ctx.Err()
					}
					outcome = jobs.Failed // the change's tree cannot be built: its fault
				}
			}
		}
		return jobs.Result{Outcome: outcome, LogURL: logURL}, nil
	}
}

// gitURL returns url, or url.git when url is local and only that exists,
// as git itself tries both (the merger keeps <project>.git).
func gitURL(url string) string {
	path := strings.TrimPrefix(url, "file://")
	if !filepath.IsAbs(path) {
		return url
	}
	if _, err := os.Stat(path); err != nil {
		if _, err := os.Stat(path + ".git"); err == nil {
			return url + ".git"
		}
	}
	return url
}

// testCodename is the distribution of every buildset's APT repository.
const testCodename = "sluice-test"

// publishInto publishes the buildset's packages of each format into
// out/<format> signed with key, after check (nil: none) accepts each
// file; it returns the repositories written and a note per format, and
// ok=false when a format's packages were refused.
func (s *stages) publishInto(ctx context.Context, uuid, out string, key *repo.Key, codename string,
	check func(ctx context.Context, path string) error) (repos map[string]string, notes []string, ok bool, err error) {
	dir := s.buildsetDir(uuid)
	repos, ok = map[string]string{}, true
	for _, format := range []string{"deb", "rpm"} {
		pkgs, err := filepath.Glob(filepath.Join(dir, "build", "*", format, "*."+format))
		if err != nil {
			return nil, nil, false, err
		}
		// Source RPMs go with the build record, not into the repository.
		pkgs = slices.DeleteFunc(pkgs, func(p string) bool { return strings.HasSuffix(p, ".src.rpm") })
		if len(pkgs) == 0 {
			continue
		}
		refused := false
		for _, p := range pkgs {
			if check == nil {
				break
			}
			if err := check(ctx, p); err != nil {
				if ctx.Err() != nil {
					return nil, nil, false, ctx.Err()
				}
				notes = append(notes, fmt.Sprintf("%s: %v", filepath.Base(p), err))
				refused = true
			}
		}
		if refused {
			ok = false
			continue
		}
		dst := filepath.Join(out, format)
		var sum repo.Summary
		switch format {
		case "deb":
			a, err := repo.NewAPT(dst, key, repo.APTConfig{Codename: codename, Component: "main", Origin: "sluice"}, s.log)
			if err != nil {
				return nil, nil, false, err
			}
			sum, err = a.Publish(ctx, pkgs, repo.PublishOptions{Replace: true})
		case "rpm":
			sum, err = repo.NewRPM(dst, key, s.log).Publish(ctx, pkgs, repo.PublishOptions{Replace: true})
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, false, err
			}
			// The packages themselves are refused (conflicts, bad
			// names): the change's fault.
			ok = false
			notes = append(notes, fmt.Sprintf("%s: %v", format, err))
			continue
		}
		repos[format] = dst
		notes = append(notes, fmt.Sprintf("%s: %d packages", format, sum.Packages))
	}
	if len(repos) == 0 && ok {
		ok = false
		notes = append(notes, "no packages were built")
	}
	return repos, notes, ok, nil
}

// record records results in one transaction.
func (s *stages) record(ctx context.Context, res ...*results.Result) error {
	return s.env.db.Tx(ctx, func(tx *sql.Tx) error {
		for _, r := range res {
			if err := s.env.recorder.Record(ctx, tx, r); err != nil {
				return err
			}
		}
		return nil
	})
}

// postBranch is the branch a post buildset's ZUUL_REF updates, checked
// for use in paths.
func postBranch(sp stageParams) (string, error) {
	branch, ok := strings.CutPrefix(sp.Ref, "refs/heads/")
	if !ok || sp.Commit == "" {
		return "", fmt.Errorf("ZUUL_REF %q is not a branch update with ZUUL_COMMIT", sp.Ref)
	}
	if err := checkBranchForPath(branch); err != nil {
		return "", err
	}
	return branch, nil
}

// stageResult is the change-level (or commit-level) result of a stage.
func stageResult(sp stageParams, stage string, attempt int, start time.Time, outcome string, notes []string) *results.Result {
	data := map[string][]string{
		"item": {sp.Project + "~" + strconv.Itoa(sp.Change) + "~" + strconv.Itoa(sp.Patchset)}, "type": {builder.ItemChange},
		"project": {sp.Project}, "stage": {stage}, "buildset": {sp.UUID}, "attempt": {strconv.Itoa(attempt)},
		"duration": {strconv.FormatFloat(time.Since(start).Seconds(), 'f', 3, 64)},
	}
	if sp.Change == 0 {
		data["item"], data["type"] = []string{sp.Project + "~" + sp.Commit}, []string{builder.ItemCommit}
	} else {
		data["change"], data["patchset"] = []string{strconv.Itoa(sp.Change)}, []string{strconv.Itoa(sp.Patchset)}
	}
	if sp.Pipeline != "" {
		data["pipeline"] = []string{sp.Pipeline}
	}
	note := strings.Join(notes, "; ")
	if len(note) > 4000 {
		note = note[:4000]
	}
	return &results.Result{Testcase: results.Testcase{Name: "sluice." + stage}, Groups: []string{sp.UUID},
		Outcome: outcome, Note: note, Data: data}
}

// publish puts the buildset's packages into its signed test repositories
// and records sluice.publish.
func (s *stages) publish(ctx context.Context, r jobs.Run) (jobs.Result, error) {
	sp, err := parseStageParams(r.Params)
	if err != nil {
		return jobs.Result{}, fmt.Errorf("stage publish: %w", err)
	}
	start := time.Now()
	repos, notes, ok, err := s.publishInto(ctx, sp.UUID, filepath.Join(s.buildsetDir(sp.UUID), "repo"), s.testKey, testCodename, nil)
	if err != nil {
		return jobs.Result{}, err
	}
	outcome := jobs.Passed
	if !ok {
		outcome = jobs.Failed
	}
	res := stageResult(sp, "publish", r.Attempt, start, outcome, notes)
	if base := s.env.cfg.Server.URL; base != "" {
		res.RefURL = strings.TrimSuffix(base, "/") + "/buildsets/" + sp.UUID + "/repo/"
		res.Data["repo_url"] = []string{res.RefURL}
	}
	for f, path := range repos {
		res.Data["repo_path_"+f] = []string{path}
	}
	if err := s.env.db.Tx(ctx, func(tx *sql.Tx) error { return s.env.recorder.Record(ctx, tx, res) }); err != nil {
		return jobs.Result{}, err
	}
	return jobs.Result{Outcome: outcome, LogURL: res.RefURL}, nil
}

// release publishes what the post pipeline built of the item's project
// into a new snapshot of each release repository configured for the
// project's branch (releases.repositories), or of its default one,
// DATA-DIR/releases/<project>~<branch>/{deb,rpm}/, signed with the release
// key. Every package must pass the provenance rule (releaseProver): a
// passed release build of the project from a commit on the branch.
func (s *stages) release(ctx context.Context, r jobs.Run) (jobs.Result, error) {
	sp, err := parseStageParams(r.Params)
	if err != nil {
		return jobs.Result{}, fmt.Errorf("stage release: %w", err)
	}
	branch, err := postBranch(sp)
	if err != nil {
		return jobs.Result{}, fmt.Errorf("stage release: %w", err)
	}
	start := time.Now()
	built := filepath.Join(s.buildsetDir(sp.UUID), "build", strings.ReplaceAll(sp.Project, "/", "+"))
	var pkgs []string
	for _, format := range []string{"deb", "rpm"} {
		ps, err := filepath.Glob(filepath.Join(built, format, "*."+format))
		if err != nil {
			return jobs.Result{}, err
		}
		pkgs = append(pkgs, slices.DeleteFunc(ps, func(p string) bool { return strings.HasSuffix(p, ".src.rpm") })...)
	}
	configured := configuredRepoURL(s.env.cfg)
	rl := &releaser{dataDir: s.env.dataDir, key: s.releaseKey, records: s.records, arts: s.arts,
		branches: newBranchChecker(filepath.Join(s.env.dataDir, "release-git")), log: s.log,
		repoURL: func(project string) string {
			if s.projectURL != nil {
				if u := s.projectURL(project); u != "" {
					return u
				}
			}
			return configured(project)
		}}
	defer rl.branches.close()
	outcome, notes := jobs.Passed, []string(nil)
	res := stageResult(sp, "release", r.Attempt, start, "", nil)
	if len(pkgs) == 0 {
		outcome, notes = jobs.Failed, []string{"no packages were built"}
	}
	for _, rc := range s.env.cfg.Releases.releasesFor(sp.Project, branch) {
		if len(pkgs) == 0 {
			break
		}
		outs, err := rl.publish(ctx, rc, pkgs)
		if err != nil {
			return jobs.Result{}, fmt.Errorf("stage release: %w", err)
		}
		for _, o := range outs {
			notes = append(notes, o.note())
			if o.Err != nil {
				outcome = jobs.Failed
				continue
			}
			res.Data["snapshot_"+o.Repo+"_"+o.Format] = []string{o.Summary.Snapshot.ID}
			res.Data["repo_path_"+o.Format] = append(res.Data["repo_path_"+o.Format], filepath.Join(o.Dir, repo.ReleaseCurrent))
		}
	}
	note := strings.Join(notes, "; ")
	if len(note) > 4000 {
		note = note[:4000]
	}
	res.Outcome, res.Note = outcome, note
	res.Data["branch"] = []string{branch}
	if err := s.env.db.Tx(ctx, func(tx *sql.Tx) error { return s.env.recorder.Record(ctx, tx, res) }); err != nil {
		return jobs.Result{}, err
	}
	return jobs.Result{Outcome: outcome}, nil
}

// lintTimeout bounds one linter's run.
const lintTimeout = 20 * time.Minute

// lint runs lintian on the Debian packages and rpmlint on the RPMs of the
// buildset's test repositories (as published: RPMs signed), keeps their
// output as an artifact and records sluice.lint; an error either finds
// fails the stage.
func (s *stages) lint(ctx context.Context, r jobs.Run) (jobs.Result, error) {
	sp, err := parseStageParams(r.Params)
	if err != nil {
		return jobs.Result{}, fmt.Errorf("stage lint: %w", err)
	}
	start := time.Now()
	repoDir := filepath.Join(s.buildsetDir(sp.UUID), "repo")
	files := map[string][]string{}
	for tool, glob := range map[string][2]string{"lintian": {"deb", ".deb"}, "rpmlint": {"rpm", ".rpm"}} {
		root := filepath.Join(repoDir, glob[0])
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if errors.Is(err, os.ErrNotExist) && p == root {
				return filepath.SkipAll
			}
			if err != nil {
				return err
			}
			if d.Type().IsRegular() && strings.HasSuffix(p, glob[1]) && !strings.Contains(p, "/.sluice/") {
				files[tool] = append(files[tool], p)
			}
			return nil
		})
		if err != nil {
			return jobs.Result{}, fmt.Errorf("stage lint: %w", err)
		}
		slices.Sort(files[tool])
	}
	if len(files) == 0 {
		return jobs.Result{}, fmt.Errorf("stage lint: no test repository in buildset %s (publish first)", sp.UUID)
	}
	home, err := os.MkdirTemp(filepath.Join(s.env.dataDir, "work"), "lint-")
	if err != nil {
		return jobs.Result{}, err
	}
	defer os.RemoveAll(home)
	env := []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C.UTF-8", "HOME=" + home}
	var out bytes.Buffer
	var notes []string
	outcome := jobs.Passed
	res := stageResult(sp, "lint", r.Attempt, start, "", nil)
	for _, tool := range []string{"lintian", "rpmlint"} {
		if len(files[tool]) == 0 {
			continue
		}
		rep, err := builder.Lint(ctx, tool, files[tool], env, lintTimeout)
		fmt.Fprintf(&out, "$ %s %d packages\n%s\n", tool, len(files[tool]), rep.Output)
		if err != nil {
			return jobs.Result{}, err
		}
		notes = append(notes, fmt.Sprintf("%s: %d errors, %d warnings", tool, rep.Errors, rep.Warnings))
		res.Data[tool+"_errors"] = []string{strconv.Itoa(rep.Errors)}
		res.Data[tool+"_warnings"] = []string{strconv.Itoa(rep.Warnings)}
		if rep.Errors > 0 {
			outcome = jobs.Failed
		}
	}
	a, err := s.arts.Put(ctx, &out)
	if err != nil {
		return jobs.Result{}, err
	}
	res.Outcome, res.Note = outcome, strings.Join(notes, "; ")
	res.Data["log_sha256"] = []string{a.SHA256}
	if link := artifactURL(s.env.cfg.Server.URL); link != nil {
		res.RefURL = link(a)
		res.Data["log_url"] = []string{res.RefURL}
	}
	if err := s.env.db.Tx(ctx, func(tx *sql.Tx) error { return s.env.recorder.Record(ctx, tx, res) }); err != nil {
		return jobs.Result{}, err
	}
	return jobs.Result{Outcome: outcome, LogURL: res.RefURL}, nil
}

// checkBranchForPath accepts a branch name that is safe as a directory.
func checkBranchForPath(b string) error {
	if b == "" || len(b) > 255 || strings.Contains(b, "..") || strings.HasPrefix(b, "/") || strings.ContainsAny(b, "\x00\\") ||
		!stageNameRE.MatchString(b) {
		return fmt.Errorf("branch %q: not a safe name", b)
	}
	return nil
}

// signingKey returns a signing key: the configured file, or the data
// directory's keys/<name>.asc, made on first use. Two processes making it
// at once end up with the same key: the first link wins.
func signingKey(e *env, name, configured, passFile string) (*repo.Key, error) {
	if configured != "" {
		return loadKey(configured, passFile)
	}
	dir := filepath.Join(e.dataDir, "keys")
	path := filepath.Join(dir, name+".asc")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		priv, _, err := repo.GenerateKey("sluice "+name, "sluice@localhost", repo.Ed25519, nil)
		if err != nil {
			return nil, err
		}
		tmp := path + ".new"
		if err := writeFile(tmp, priv, 0o600); err != nil {
			return nil, err
		}
		err = os.Link(tmp, path)
		os.Remove(tmp)
		if err != nil && !errors.Is(err, os.ErrExist) {
			return nil, err
		}
	}
	k, err := loadKey(path, "")
	if err != nil {
		return nil, err
	}
	// The public key, for the test machines' keyrings, from the key that
	// won.
	pub := filepath.Join(dir, name+".pub.asc")
	if _, err := os.Stat(pub); errors.Is(err, os.ErrNotExist) {
		var b strings.Builder
		if err := k.WritePublic(&b); err != nil {
			return nil, err
		}
		if err := writeFile(pub, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// fileSHA256 returns the lower-case hex SHA-256 of the file at path.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
