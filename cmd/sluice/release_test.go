package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/builder"
	"github.com/sluice-ci/sluice/internal/gittest"
	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/internal/proc"
	"github.com/sluice-ci/sluice/jobs"
	"github.com/sluice-ci/sluice/repo"
	"github.com/sluice-ci/sluice/results"
)

// gitRepo makes a repository with one commit on main and returns its
// directory and the commit.
func gitRepo(t *testing.T) (string, string) {
	t.Helper()
	src := t.TempDir()
	writeTestFile(t, filepath.Join(src, "README"), "hello\n")
	dir := filepath.Join(t.TempDir(), "hello")
	h, err := (gittest.Repo{When: time.Unix(1793620800, 0)}).Commit(src, dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, h
}

// setBranch points branch at commit, as a push (or a force-push) would.
func setBranch(t *testing.T, dir, branch, commit string) {
	t.Helper()
	r, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Storer.SetReference(plumbing.NewHashReference(plumbing.NewBranchReferenceName(branch), plumbing.NewHash(commit))); err != nil {
		t.Fatal(err)
	}
}

// TestBranchChecker checks "on the branch" against real repositories: the
// tip, its ancestors, a commit of another branch before and after it is
// merged, in a local repository read in place and fetched into the cache.
func TestBranchChecker(t *testing.T) {
	t.Parallel()
	for _, cached := range []bool{false, true} {
		name := map[bool]string{false: "in place", true: "cached"}[cached]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir, first := gitRepo(t)
			second := commitFile(t, dir, "main2", "NEWS", "1\n", "Add NEWS")
			setBranch(t, dir, "main", second)
			side := commitFile(t, dir, "side", "TODO", "x\n", "Side work")
			cacheDir := t.TempDir()
			check := func(commit string, want bool) {
				t.Helper()
				b := newBranchChecker(cacheDir)
				b.cacheLocal = cached
				defer b.close()
				for _, url := range []string{dir, "file://" + dir} {
					got, _, err := b.contains(t.Context(), "hello", url, "main", commit)
					if err != nil || got != want {
						t.Fatalf("%s on main (%s) = %v, %v; want %v", commit, url, got, err, want)
					}
				}
			}
			check(second, true)
			check(first, true)
			check(side, false)
			check(strings.Repeat("1", 40), false)
			setBranch(t, dir, "main", side) // merged (fast-forward)
			check(side, true)
			check(first, true)
			setBranch(t, dir, "main", first) // force-pushed back
			check(side, false)
			check(second, false)
			b := newBranchChecker(cacheDir)
			b.cacheLocal = cached
			defer b.close()
			if _, _, err := b.contains(t.Context(), "hello", dir, "nope", first); err == nil || !strings.Contains(err.Error(), "no branch nope") {
				t.Fatalf("missing branch: %v", err)
			}
		})
	}
}

// releaseTestEnv opens the store of a data directory with a config.
func releaseTestEnv(t *testing.T, data, conf string) *env {
	t.Helper()
	cmd := &cobra.Command{}
	var sf storeFlags
	sf.register(cmd.Flags())
	if err := cmd.Flags().Parse([]string{"--data-dir", data, "--config", conf}); err != nil {
		t.Fatal(err)
	}
	cmd.SetContext(t.Context())
	e, err := sf.open(cmd, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	return e
}

// saveRecord stores a build record saying a build of project at commit
// made the package at path.
func saveRecord(t *testing.T, e *env, id, project, url, commit, outcome string, change int, path string) {
	t.Helper()
	p, err := repo.Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	rec := &builder.Record{ID: id, Project: project, URL: url, Ref: "refs/heads/main", Commit: commit, Change: change, Patchset: change,
		Format: p.Format, Backend: "test", Outcome: outcome, Start: time.Unix(1793620800, 0), End: time.Unix(1793620801, 0),
		Outputs: []builder.Output{{Name: filepath.Base(path), Artifact: builder.Artifact{SHA256: p.SHA256, Size: p.Size}, Package: &p}}}
	if err := builder.NewRecords(e.db, nil, nil).Save(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
}

// TestReleaseProvenanceCLI runs `sluice release` on packages made by
// hand: refused without a build record, with a failed or test build's
// record, with a record whose commit is not on the branch; accepted once
// that commit is merged; and the audit finds the package again when the
// branch is force-pushed back. List, diff and rollback on the result.
func TestReleaseProvenanceCLI(t *testing.T) {
	t.Parallel()
	dir, first := gitRepo(t)
	side := commitFile(t, dir, "side", "TODO", "x\n", "Side work")
	data := t.TempDir()
	conf := filepath.Join(t.TempDir(), "sluice.yaml")
	writeTestFile(t, conf, "local:\n  projects:\n    - name: hello\n      path: "+dir+"\n"+
		"releases:\n  keep: 3\n  repositories:\n    - name: stable\n      branch: main\n      projects: [hello]\n      origin: Example\n"+
		"    - name: rpmonly\n      branch: main\n      projects: [hello]\n      formats: [rpm]\n")
	e := releaseTestEnv(t, data, conf)
	in := t.TempDir()
	mk := func(d pkgtest.Deb) string {
		p, err := d.WriteFile(in)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	v1 := mk(pkgtest.Deb{Name: "hello", Version: "1.0-1", Arch: "all"})
	v2 := mk(pkgtest.Deb{Name: "hello", Version: "1.1-1", Arch: "all"})
	rpmPath, err := (pkgtest.RPM{Name: "hello", Version: "1.0", Release: "1", Arch: "noarch"}).WriteFile(in)
	if err != nil {
		t.Fatal(err)
	}
	args := func(a ...string) []string { return append(a, "--data-dir", data, "--config", conf) }
	current := filepath.Join(data, "releases", "stable", "deb", repo.ReleaseCurrent)

	if out, err := sluice(t, args("release", "publish", "rpmonly", v1)...); err == nil || !strings.Contains(err.Error(), "1 .deb packages given, the repository has no deb format") {
		t.Fatalf("deb into an rpm repository: %v\n%s", err, out)
	}
	// No record at all: made by hand.
	out, err := sluice(t, args("release", "publish", "stable", v1)...)
	if err == nil || !strings.Contains(out, "no build record: sluice did not build these bytes") {
		t.Fatalf("unbuilt package: %v\n%s", err, out)
	}
	if _, err := os.Lstat(current); !os.IsNotExist(err) {
		t.Fatalf("a refused publish made %s: %v", current, err)
	}
	// Records that do not prove it.
	saveRecord(t, e, "failed", "hello", dir, first, builder.Failed, 0, v1)
	saveRecord(t, e, "test", "hello", dir, first, builder.Passed, 7, v1)
	saveRecord(t, e, "other", "other-project", dir, first, builder.Passed, 0, v1)
	saveRecord(t, e, "side", "hello", dir, side, builder.Passed, 0, v1)
	out, err = sluice(t, args("release", "publish", "stable", v1)...)
	for _, want := range []string{"build failed: outcome FAILED", "build test: a test build of change 7",
		"build other: project other-project does not release into stable", "build side: commit " + side + " is not on branch main"} {
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("refusal lacks %q: %v\n%s", want, err, out)
		}
	}
	// Merged: now on the branch.
	setBranch(t, dir, "main", side)
	// The RPM has no record: refused, its format alone (exit status 1).
	if out, err := sluice(t, args("release", "publish", "stable", v1, rpmPath)...); err == nil || !strings.Contains(out, "stable/deb: snapshot 000001") ||
		!strings.Contains(out, "stable/rpm: release stable: 1 packages refused, nothing published; hello-1.0-1.noarch.rpm: no build record") {
		t.Fatalf("publish after merge: %v\n%s", err, out)
	}
	// The refused first publish of the rpm format left nothing.
	if _, err := os.Lstat(filepath.Join(data, "releases", "stable", "rpm")); !os.IsNotExist(err) {
		t.Fatalf("a refused first publish left its directory: %v", err)
	}
	saveRecord(t, e, "v2", "hello", dir, first, builder.Passed, 0, v2)
	if out, err := sluice(t, args("release", "publish", "stable", v2)...); err != nil || !strings.Contains(out, "stable/deb: snapshot 000002, 2 packages (1 added, 0 pruned)") {
		t.Fatalf("second publish: %v\n%s", err, out)
	}
	if target, err := os.Readlink(current); err != nil || target != "snapshots/000002" {
		t.Fatalf("current -> %q %v", target, err)
	}
	rs, _, err := e.results.Results(t.Context(), results.Query{Testcases: []string{"sluice.release"}, Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	var passed, failed int
	for _, r := range rs {
		switch r.Outcome {
		case jobs.Passed:
			passed++
		case jobs.Failed:
			failed++
		}
	}
	if passed != 2 || failed != 3 {
		t.Errorf("sluice.release results: %d passed, %d failed; want 2, 3", passed, failed)
	}

	out, err = sluice(t, args("release", "list", "stable", "--packages")...)
	if err != nil || !strings.Contains(out, "* 000002") || !strings.Contains(out, "  000001") || !strings.Contains(out, "hello_1.1-1_all  since 000002  hello@"+first) ||
		strings.Contains(out, "stable/rpm") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	out, err = sluice(t, args("release", "diff", "stable", "000001", "000002")...)
	if err != nil || !strings.Contains(out, "1 added, 0 removed, 0 changed") || !strings.Contains(out, "+ hello_1.1-1_all") {
		t.Fatalf("diff: %v\n%s", err, out)
	}
	if out, err := sluice(t, args("release", "audit", "stable", "--keyring", filepath.Join(data, "keys", "release-signing-key.pub.asc"))...); err != nil || !strings.Contains(out, "2 snapshots, 3 packages checked, 0 findings") {
		t.Fatalf("audit: %v\n%s", err, out)
	}
	// Signed by another key than the one the auditor trusts: found.
	other := t.TempDir()
	if out, err := sluice(t, "key", "generate", "--name", "Other", "--email", "o@example.org", "--algo", "ed25519", "--out", other); err != nil {
		t.Fatalf("key generate: %v\n%s", err, out)
	}
	out, err = sluice(t, args("release", "audit", "stable", "--keyring", filepath.Join(other, "signing-key.pub.asc"))...)
	if err == nil || !strings.Contains(out, "000002/dists/stable/InRelease: signature") {
		t.Fatalf("audit with another keyring: %v\n%s", err, out)
	}
	// The branch is force-pushed back: hello 1.0's commit is no longer
	// on it, in either snapshot.
	setBranch(t, dir, "main", first)
	out, err = sluice(t, args("release", "audit", "stable")...)
	if err == nil || strings.Count(out, "is not on branch main") != 2 || !strings.Contains(out, "2 snapshots, 3 packages checked, 2 findings") {
		t.Fatalf("audit after force-push: %v\n%s", err, out)
	}
	if out, err := sluice(t, args("release", "rollback", "stable", "--to", "000001")...); err != nil || !strings.Contains(out, "stable/deb: current is snapshot 000001") {
		t.Fatalf("rollback: %v\n%s", err, out)
	}
	if target, err := os.Readlink(current); err != nil || target != "snapshots/000001" {
		t.Fatalf("current -> %q %v", target, err)
	}
	if out, err := sluice(t, args("release", "rollback", "stable", "--to", "000009")...); err == nil {
		t.Fatalf("rollback to a missing snapshot: %s", out)
	}
	if out, err := sluice(t, args("release", "list", "nope")...); err == nil {
		t.Fatalf("list of an unknown repository: %s", out)
	}
}

// TestStageRelease runs the post pipeline's build and release stages on
// a merged commit: the packages go into a new snapshot of the project's
// default release repository, which verifies with the release key and
// apt-get reads; sluice.release is recorded.
func TestStageRelease(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "dpkg-buildpackage")
	src := sampleRepo(t, false)
	r, err := git.PlainOpen(src)
	if err != nil {
		t.Fatal(err)
	}
	head, err := r.Reference(plumbing.NewBranchReferenceName("main"), true)
	if err != nil {
		t.Fatal(err)
	}
	data, mirrored := t.TempDir(), t.TempDir()
	conf := filepath.Join(t.TempDir(), "sluice.yaml")
	writeTestFile(t, conf, "local:\n  projects:\n    - name: hello-sh\n      path: "+src+"\n"+
		"mirrors:\n  repositories:\n    - name: hello-sh~main\n      targets:\n"+
		"        - name: here\n          type: local\n          path: "+mirrored+"\n")
	e := releaseTestEnv(t, data, conf)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := newStages(e, 10*time.Minute, true, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	st.projectURL = func(p string) string { return map[string]string{"hello-sh": src}[p] }
	const uuid = "7a8e2c1a5b7d4e3f9a1b2c3d4e5f6a7b"
	run := jobs.Run{Pipeline: "post", Buildset: uuid, Attempt: 1, Project: "hello-sh", Params: map[string]string{
		"ZUUL_URL": filepath.Dir(src), "ZUUL_PROJECT": "hello-sh", "ZUUL_BRANCH": "main", "ZUUL_REF": "refs/heads/main",
		"ZUUL_COMMIT": head.Hash().String(), "ZUUL_UUID": uuid, "ZUUL_PIPELINE": "post"}}
	funcs := st.funcs()
	stages := []string{"build.deb", "release", "mirror"}
	if _, err := exec.LookPath("rpmbuild"); err == nil || os.Getenv("CI") == "true" {
		pkgtest.NeedTool(t, "rpmbuild")
		stages = []string{"build.deb", "build.rpm", "release", "mirror"}
	}
	for _, stage := range stages {
		run.Stage = stage
		res, err := funcs[stage](t.Context(), run)
		if err != nil || res.Outcome != jobs.Passed {
			if rs, _, _ := e.results.Results(t.Context(), results.Query{Testcases: []string{"sluice.release"}}); len(rs) > 0 {
				t.Log(rs[0].Note)
			}
			t.Fatalf("%s: %+v %v", stage, res, err)
		}
	}
	rs, _, err := e.results.Results(t.Context(), results.Query{Testcases: []string{"sluice.release"}})
	if err != nil || len(rs) != 1 || rs[0].Data["snapshot_hello-sh~main_deb"][0] != "000001" {
		t.Fatalf("sluice.release: %+v %v", rs, err)
	}
	d := repo.ReleaseDir(filepath.Join(data, "releases", "hello-sh~main", "deb"))
	cur, err := d.Current()
	if err != nil || cur.ID != "000001" || len(cur.Packages) == 0 {
		t.Fatalf("current: %+v %v", cur, err)
	}
	if p := cur.Packages[0].Provenance; p.Commit != head.Hash().String() || p.Branch != "main" || p.Project != "hello-sh" {
		t.Fatalf("provenance: %+v", p)
	}
	kf, err := os.Open(filepath.Join(data, "keys", "release-signing-key.pub.asc"))
	if err != nil {
		t.Fatal(err)
	}
	defer kf.Close()
	keyring, err := repo.ReadKeyring(kf)
	if err != nil {
		t.Fatal(err)
	}
	curDir := filepath.Join(string(d), repo.ReleaseCurrent)
	if probs, err := repo.Verify(t.Context(), curDir, keyring); err != nil || len(probs) > 0 {
		t.Fatalf("verify: %v %v", probs, err)
	}
	aptGetReads(t, curDir, "main", cur.Packages[0].Name+"="+cur.Packages[0].EVR())

	// The mirror stage synced the release to the local target, which
	// apt reads; one sluice.mirror.sync result per target and format.
	aptGetReads(t, filepath.Join(mirrored, "deb", "current"), "main", cur.Packages[0].Name+"="+cur.Packages[0].EVR())
	if ms, _, err := e.results.Results(t.Context(), results.Query{Testcases: []string{"sluice.mirror"}}); err != nil || len(ms) != 1 ||
		ms[0].Outcome != jobs.Passed || ms[0].Data["release"][0] != "hello-sh~main" {
		t.Fatalf("sluice.mirror: %+v %v", ms, err)
	}
	if ms, _, err := e.results.Results(t.Context(), results.Query{Testcases: []string{"sluice.mirror.sync"}}); err != nil || len(ms) != len(stages)-2 ||
		ms[0].Outcome != jobs.Passed || ms[0].Data["buildset"][0] != uuid {
		t.Fatalf("sluice.mirror.sync: %+v %v", ms, err)
	}

	if len(stages) == 4 {
		rd := repo.ReleaseDir(filepath.Join(data, "releases", "hello-sh~main", "rpm"))
		rcur, err := rd.Current()
		if err != nil || rs[0].Data["snapshot_hello-sh~main_rpm"][0] != "000001" || len(rcur.Packages) == 0 || rcur.Packages[0].SHA256 == rcur.Packages[0].Source {
			t.Fatalf("rpm release: %+v %v", rcur, err)
		}
	}
	// The audit proves every package again, the RPMs against the
	// unsigned packages the build stored.
	if out, err := sluice(t, "release", "audit", "hello-sh~main", "--data-dir", data, "--config", conf); err != nil ||
		!strings.Contains(out, "hello-sh~main/deb: 1 snapshots") || strings.Count(out, ", 0 findings") != len(stages)-2 {
		t.Fatalf("audit: %v\n%s", err, out)
	}
	// Released again (a retry of the stage): nothing new, no new snapshot.
	run.Attempt = 2
	if res, err := funcs["release"](t.Context(), run); err != nil || res.Outcome != jobs.Passed {
		t.Fatalf("release again: %+v %v", res, err)
	}
	if snaps, err := d.Snapshots(); err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots after a retry: %d %v", len(snaps), err)
	}
}

// aptGetReads has apt-get, with its own state and only the repository's
// key trusted, update from the repository at dir and download spec.
func aptGetReads(t *testing.T, dir, codename, spec string) {
	t.Helper()
	pkgtest.NeedTool(t, "apt-get")
	root := t.TempDir()
	for _, d := range []string{"etc/apt/sources.list.d", "etc/apt/preferences.d", "etc/apt/apt.conf.d", "etc/apt/trusted.gpg.d",
		"var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg", "download"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeTestFile(t, filepath.Join(root, "var/lib/dpkg/status"), "")
	writeTestFile(t, filepath.Join(root, "etc/apt/sources.list"),
		"deb [signed-by="+filepath.Join(dir, repo.PublicKeyFile)+"] file:"+dir+" "+codename+" main\n")
	opts := []string{"-o", "Dir=" + root, "-o", "Dir::Etc=" + filepath.Join(root, "etc/apt"),
		"-o", "Dir::State::status=" + filepath.Join(root, "var/lib/dpkg/status"),
		"-o", "Dir::Etc::trusted=" + filepath.Join(root, "etc/apt/trusted.gpg"),
		"-o", "Dir::Etc::trustedparts=" + filepath.Join(root, "etc/apt/trusted.gpg.d"),
		"-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root", "-o", "Acquire::Languages=none"}
	for _, a := range [][]string{{"update"}, {"download", spec}} {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		c := proc.Command(ctx, "apt-get", append(opts, a...)...)
		c.Dir = filepath.Join(root, "download")
		out, err := c.CombinedOutput()
		cancel()
		if err != nil || strings.Contains(string(out), "W:") || strings.Contains(string(out), "E:") {
			t.Fatalf("apt-get %s: %v\n%s", a[0], err, out)
		}
	}
}

// TestReleasesConfig parses the releases section and finds the
// repositories of a project's branch, configured or default.
func TestReleasesConfig(t *testing.T) {
	t.Parallel()
	c, err := parseConfig(strings.NewReader("releases:\n  keep: 3\n  repositories:\n" +
		"    - name: stable\n      branch: main\n      projects: [hello, lib/foo]\n      formats: [rpm]\n" +
		"    - name: stable-deb\n      branch: main\n      projects: [hello]\n      codename: bookworm\n      keep: 7\n"))
	if err != nil {
		t.Fatal(err)
	}
	rs := c.Releases.releasesFor("hello", "main")
	if len(rs) != 2 || rs[0].Name != "stable" || rs[0].Keep != 3 || len(rs[0].Formats) != 1 || rs[1].Keep != 7 || len(rs[1].Formats) != 2 {
		t.Fatalf("hello main: %+v", rs)
	}
	if got := rs[1].repoConfig("deb"); got.APT.Codename != "bookworm" || got.Keep != 7 {
		t.Fatalf("deb config: %+v", got)
	}
	if rs := c.Releases.releasesFor("lib/foo", "stable/2.0"); len(rs) != 1 || rs[0].Name != "lib+foo~stable+2.0" ||
		rs[0].Branch != "stable/2.0" || rs[0].Projects[0] != "lib/foo" || rs[0].repoConfig("deb").APT.Codename != "stable-2.0" {
		t.Fatalf("default repository: %+v", rs)
	}
	for name, want := range map[string]string{"stable": "main", "lib+foo~stable+2.0": "stable/2.0", "hello~main": "main"} {
		rc, err := c.Releases.release(name)
		if err != nil || rc.Branch != want {
			t.Errorf("release(%q) = %+v, %v", name, rc, err)
		}
		for _, f := range rc.Formats {
			cfg := rc.repoConfig(f)
			if err := cfg.Validate(); err != nil {
				t.Errorf("%s/%s: %v", name, f, err)
			}
		}
	}
	for _, bad := range []string{"nope", "a~b~c", "..~main", "x~..", "~main"} {
		if _, err := c.Releases.release(bad); err == nil {
			t.Errorf("release(%q) found", bad)
		}
	}
	for name, doc := range map[string]string{
		"keep":     "releases:\n  keep: -1\n",
		"name":     "releases:\n  repositories:\n    - name: a~b\n      branch: main\n      projects: [x]\n",
		"branch":   "releases:\n  repositories:\n    - name: a\n      branch: ../x\n      projects: [x]\n",
		"projects": "releases:\n  repositories:\n    - name: a\n      branch: main\n",
		"format":   "releases:\n  repositories:\n    - name: a\n      branch: main\n      projects: [x]\n      formats: [tar]\n",
		"twice":    "releases:\n  repositories:\n    - name: a\n      branch: main\n      projects: [x]\n    - name: a\n      branch: main\n      projects: [y]\n",
		"codename": "releases:\n  repositories:\n    - name: a\n      branch: main\n      projects: [x]\n      codename: 'a b'\n",
		"unknown":  "releases:\n  repositories:\n    - name: a\n      branch: main\n      projects: [x]\n      skip_provenance: true\n",
	} {
		if _, err := parseConfig(strings.NewReader(doc)); err == nil {
			t.Errorf("%s: accepted:\n%s", name, doc)
		}
	}
}

// TestReleasePruneCLI publishes three snapshots and prunes with `sluice
// release prune`: the newest and the protected snapshots stay, the pool
// loses what only the pruned one used, apt-get reads current, a rollback
// to the pruned snapshot is refused and says why, and a format whose
// first publish failed (its directory left with only its lock) is neither
// listed nor pruned.
func TestReleasePruneCLI(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "apt-get")
	dir, first := gitRepo(t)
	data := t.TempDir()
	conf := filepath.Join(t.TempDir(), "sluice.yaml")
	writeTestFile(t, conf, "local:\n  projects:\n    - name: hello\n      path: "+dir+"\n"+
		"releases:\n  repositories:\n    - name: stable\n      branch: main\n      projects: [hello]\n      keep: 1\n")
	e := releaseTestEnv(t, data, conf)
	args := func(a ...string) []string { return append(a, "--data-dir", data, "--config", conf) }
	in := t.TempDir()
	var shas []string
	for i, v := range []string{"1.0-1", "1.1-1", "1.2-1"} {
		p, err := (pkgtest.Deb{Name: "hello", Version: v, Arch: "all"}).WriteFile(in)
		if err != nil {
			t.Fatal(err)
		}
		saveRecord(t, e, "v"+v, "hello", dir, first, builder.Passed, 0, p)
		if out, err := sluice(t, args("release", "publish", "stable", p)...); err != nil || !strings.Contains(out, fmt.Sprintf("snapshot %06d", i+1)) {
			t.Fatalf("publish %s: %v\n%s", v, err, out)
		}
		pkg, err := repo.Inspect(p)
		if err != nil {
			t.Fatal(err)
		}
		shas = append(shas, pkg.SHA256)
	}
	// The rpm format's directory as a failed first publish leaves it.
	rpmDir := filepath.Join(data, "releases", "stable", "rpm")
	if err := os.MkdirAll(filepath.Join(rpmDir, ".sluice"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(rpmDir, ".sluice", "lock"), "")

	for _, bad := range [][]string{{"--keep", "0"}, {"--keep", "1", "--protect", "1"}, {"--keep", "1", "--format", "tar"}} {
		if out, err := sluice(t, args(append([]string{"release", "prune", "stable"}, bad...)...)...); err == nil {
			t.Errorf("prune %v: %s", bad, out)
		}
	}
	out, err := sluice(t, args("release", "prune", "stable", "--keep", "1", "--protect", "000001")...)
	if err != nil || !strings.Contains(out, "stable/deb: removed 000002; kept 000001 000003 (current 000003); 1 pool files") || strings.Contains(out, "stable/rpm") {
		t.Fatalf("prune: %v\n%s", err, out)
	}
	pool := func(sha string) string {
		return filepath.Join(data, "releases", "stable", "deb", repo.ReleasePool, "sha256", sha[:2], sha)
	}
	for i, sha := range shas {
		_, err := os.Stat(pool(sha))
		if (i == 1) != os.IsNotExist(err) {
			t.Errorf("pool file of package %d: %v", i, err)
		}
	}
	out, err = sluice(t, args("release", "list", "stable")...)
	if err != nil || !strings.Contains(out, "  000001") || strings.Contains(out, " 000002  ") || !strings.Contains(out, "* 000003") ||
		!strings.Contains(out, "parent 000002 (pruned)") || strings.Contains(out, "stable/rpm") {
		t.Fatalf("list after prune: %v\n%s", err, out)
	}
	cur := filepath.Join(data, "releases", "stable", "deb", repo.ReleaseCurrent)
	aptGetReads(t, cur, "stable", "hello=1.2-1")
	out, err = sluice(t, args("release", "rollback", "stable", "--to", "000002")...)
	if err == nil || !strings.Contains(err.Error(), "snapshot 000002 was pruned") {
		t.Fatalf("rollback to a pruned snapshot: %v\n%s", err, out)
	}
	if target, err := os.Readlink(cur); err != nil || target != "snapshots/000003" {
		t.Fatalf("current -> %q %v", target, err)
	}
	// Nothing left to prune; the audit still proves every package.
	if out, err := sluice(t, args("release", "prune", "stable", "--keep", "1", "--protect", "000001")...); err != nil || !strings.Contains(out, "removed -; kept 000001 000003") {
		t.Fatalf("prune again: %v\n%s", err, out)
	}
	if out, err := sluice(t, args("release", "audit", "stable")...); err != nil || !strings.Contains(out, "2 snapshots, 2 packages checked, 0 findings") {
		t.Fatalf("audit after prune: %v\n%s", err, out)
	}
}
