package main

import (
	"context"
	"log/slog"
	"time"

	"fmt"
	"github.com/sluice-ci/sluice/internal/proc"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-ci/sluice/builder"
	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/mirror"
	"github.com/sluice-ci/sluice/mirror/mirrortest"
	"github.com/sluice-ci/sluice/repo"
	"github.com/sluice-ci/sluice/results"
)

// TestMirrorCLI publishes built packages into a release repository with
// `sluice release publish`, syncs both formats to a local target and to
// an rsync target on a real rsync daemon with `sluice mirror sync`, has
// apt-get, dnf and rpmkeys read every target, publishes and syncs again,
// shows the status, verifies a target, finds damage, and rolls back.
func TestMirrorCLI(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "rsync")
	dir, commit := gitRepo(t)
	daemon := mirrortest.New(t)
	data, local := t.TempDir(), t.TempDir()
	conf := filepath.Join(t.TempDir(), "sluice.yaml")
	writeTestFile(t, conf, "local:\n  projects:\n    - name: hello\n      path: "+dir+"\n"+
		"releases:\n  repositories:\n    - name: stable\n      branch: main\n      projects: [hello]\n      origin: Example\n"+
		"mirrors:\n  check: quick\n  repositories:\n    - name: stable\n      targets:\n"+
		"        - name: here\n          type: local\n          path: "+local+"\n"+
		"        - name: up\n          type: rsync\n          dest: "+daemon.URL+"stable\n          password_file: "+daemon.PasswordFile+"\n")
	e := releaseTestEnv(t, data, conf)
	args := func(a ...string) []string { return append(a, "--data-dir", data, "--config", conf) }
	in := t.TempDir()
	publish := func(version string) {
		t.Helper()
		deb, err := pkgtest.Deb{Name: "hello", Version: version + "-1", Arch: "all"}.WriteFile(in)
		if err != nil {
			t.Fatal(err)
		}
		rpm, err := pkgtest.RPM{Name: "hello", Version: version, Release: "1", Arch: "noarch"}.WriteFile(in)
		if err != nil {
			t.Fatal(err)
		}
		saveRecord(t, e, "deb-"+version, "hello", dir, commit, builder.Passed, 0, deb)
		saveRecord(t, e, "rpm-"+version, "hello", dir, commit, builder.Passed, 0, rpm)
		if out, err := sluice(t, args("release", "publish", "stable", deb, rpm)...); err != nil {
			t.Fatalf("release publish: %v\n%s", err, out)
		}
	}
	served := map[string]map[string]string{ // target -> format -> tree a client reads
		"here": {"deb": filepath.Join(local, "deb", "current"), "rpm": filepath.Join(local, "rpm", "current")},
		"up":   {"deb": filepath.Join(daemon.Dir, "stable", "deb"), "rpm": filepath.Join(daemon.Dir, "stable", "rpm")},
	}
	pub := filepath.Join(data, "keys", "release-signing-key.pub.asc")
	readAll := func(version string) {
		t.Helper()
		for _, byFormat := range served {
			aptGetReads(t, byFormat["deb"], "stable", "hello="+version+"-1")
			dnfReadsHello(t, byFormat["rpm"], pub, version)
		}
	}
	sync := func(a ...string) string {
		t.Helper()
		out, err := sluice(t, args(a...)...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(a, " "), err, out)
		}
		return out
	}

	publish("1.0")
	out := sync("mirror", "sync", "stable")
	for _, want := range []string{"stable/deb: here (local): PASSED, serves 000001 (was -)", "stable/rpm: up (rsync): PASSED, serves 000001 (was -)",
		"stable/deb: snapshot 000001: 1 packages added, 0 removed"} {
		if !strings.Contains(out, want) {
			t.Errorf("sync output lacks %q:\n%s", want, out)
		}
	}
	readAll("1.0")

	publish("1.1")
	out = sync("mirror", "sync", "stable")
	if !strings.Contains(out, "stable/rpm: here (local): PASSED, serves 000002 (was 000001)") || !strings.Contains(out, "stable/deb: snapshot 000002: 1 packages added, 0 removed") {
		t.Errorf("second sync:\n%s", out)
	}
	readAll("1.1")
	out = sync("mirror", "status", "stable")
	if n := len(regexp.MustCompile(`(?m)^(deb|rpm) +(here|up) +(local|rsync) +000002 +20\d\d-\S+ +20\d\d-\S+ +PASSED +000002$`).FindAllString(out, -1)); n != 4 {
		t.Errorf("status shows %d targets serving 000002, verified:\n%s", n, out)
	}
	if out := sync("mirror", "verify", "stable/up"); strings.Count(out, "up serves 000002: 0 problems") != 2 {
		t.Errorf("verify:\n%s", out)
	}

	// Damage on the rsync target: verify finds it.
	pkgs, _ := filepath.Glob(filepath.Join(daemon.Dir, "stable", "rpm", "Packages", "h", "hello-1.1-1.noarch.rpm"))
	if len(pkgs) != 1 {
		t.Fatalf("rpm on the target: %v", pkgs)
	}
	if err := os.WriteFile(pkgs[0], []byte("not an rpm"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := sluice(t, args("mirror", "verify", "up")...); err == nil || !strings.Contains(out, "stable/rpm: up serves 000002: 1 problems") {
		t.Fatalf("verify of a damaged target: %v\n%s", err, out)
	}

	out = sync("mirror", "rollback", "stable", "--to", "000001")
	if strings.Count(out, "PASSED, serves 000001 (was 000002)") != 4 {
		t.Errorf("rollback:\n%s", out)
	}
	readAll("1.0")
	if out := sync("mirror", "verify", "up"); strings.Count(out, "up serves 000001: 0 problems") != 2 {
		t.Errorf("verify after the rollback:\n%s", out)
	}

	rs, _, err := e.results.Results(t.Context(), results.Query{Testcases: []string{mirror.Testcase}, Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	passed := 0
	for _, r := range rs {
		if r.Outcome == mirror.Passed && len(r.Data["manifest_sha256"]) == 1 {
			passed++
			if _, err := os.Stat(filepath.Join(data, "artifacts")); err != nil {
				t.Error(err)
			}
		}
	}
	if passed != 12 || len(rs) != 12 {
		t.Errorf("%d sluice.mirror.sync results, %d passed with a manifest; want 12", len(rs), passed)
	}
	// What the post pipeline calls after a release publish.
	const buildset = "6f1c1f8e-3a8e-4f8e-9d4e-2b1f0c7d9a11"
	var sout strings.Builder
	if ok, err := syncReleaseMirrors(t.Context(), e, "stable", map[string][]string{"buildset": {buildset}, "pipeline": {"post"}},
		[]string{buildset}, &sout, slog.New(slog.DiscardHandler)); !ok || err != nil || strings.Count(sout.String(), "PASSED, serves 000002 (was 000001)") != 4 {
		t.Fatalf("syncReleaseMirrors: %v %v\n%s", ok, err, sout.String())
	}
	rs, _, err = e.results.Results(t.Context(), results.Query{Testcases: []string{mirror.Testcase}, Limit: 50,
		Data: []results.DataFilter{{Key: "buildset", Values: []string{buildset}}}})
	if err != nil || len(rs) != 4 || rs[0].Data["pipeline"][0] != "post" {
		t.Fatalf("results of the post pipeline's sync: %v %+v", err, rs)
	}
	if ok, err := syncReleaseMirrors(t.Context(), e, "other", nil, nil, &sout, slog.New(slog.DiscardHandler)); ok || err != nil {
		t.Errorf("a repository without mirrors: %v %v", ok, err)
	}
	if out, err := sluice(t, args("mirror", "sync", "nope")...); err == nil {
		t.Errorf("sync of an unconfigured repository: %s", out)
	}

	// A prune keeps what the targets serve (000002) besides the newest
	// (000003), and removes 000001.
	publish("1.2")
	if out, err := sluice(t, args("release", "prune", "stable", "--keep", "1")...); err != nil {
		t.Fatalf("release prune: %v\n%s", err, out)
	}
	for _, f := range []string{"deb", "rpm"} {
		snaps, err := repo.ReleaseDir(filepath.Join(data, "releases", "stable", f)).Snapshots()
		var ids []string
		for _, sn := range snaps {
			ids = append(ids, sn.ID)
		}
		if err != nil || strings.Join(ids, " ") != "000002 000003" {
			t.Errorf("%s snapshots after prune: %v %v", f, ids, err)
		}
	}
	readAll("1.1")
}

// dnfReadsHello has dnf (gpgcheck, repo_gpgcheck, only key trusted) find
// hello-version in the repository at dir, and rpmkeys check its
// signature.
func dnfReadsHello(t *testing.T, dir, key, version string) {
	t.Helper()
	dnf := pkgtest.NeedTool(t, "dnf")
	rpmkeys := pkgtest.NeedTool(t, "rpmkeys")
	home := t.TempDir()
	reposd := filepath.Join(home, "repos.d")
	if err := os.MkdirAll(reposd, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(reposd, "m.repo"), fmt.Sprintf(
		"[m]\nname=mirror\nbaseurl=file://%s\nenabled=1\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file://%s\nmetadata_expire=0\n", dir, key))
	conf := filepath.Join(home, "dnf.conf")
	writeTestFile(t, conf, fmt.Sprintf("[main]\nreposdir=%s\ncachedir=%s\ngpgcheck=1\nrepo_gpgcheck=1\n", reposd, filepath.Join(home, "cache")))
	out, err := runTool(t, home, dnf, "-c", conf, "--installroot", filepath.Join(home, "root"), "--releasever=1", "--noplugins", "-y",
		"repoquery", "--repo", "m")
	if err != nil || !strings.Contains(out, "hello-0:"+version+"-1.noarch") {
		t.Fatalf("dnf repoquery of %s: %v\n%s", dir, err, out)
	}
	db := t.TempDir()
	if out, err := runTool(t, db, rpmkeys, "--dbpath", db, "--import", key); err != nil {
		t.Fatalf("rpmkeys --import: %v\n%s", err, out)
	}
	p := filepath.Join(dir, "Packages", "h", "hello-"+version+"-1.noarch.rpm")
	out, err = runTool(t, db, rpmkeys, "--dbpath", db, "--checksig", "-v", p)
	if err != nil || !regexp.MustCompile(`Header V4 \S+ Signature, key ID [0-9a-f]+: OK`).MatchString(out) {
		t.Fatalf("rpmkeys --checksig %s: %v\n%s", p, err, out)
	}
}

// TestMirrorsConfig checks the mirrors section's validation.
func TestMirrorsConfig(t *testing.T) {
	t.Parallel()
	good := "mirrors:\n  repositories:\n    - name: stable\n      targets:\n" +
		"        - {name: a, type: local, path: /srv/m}\n" +
		"        - {name: b, type: rsync, dest: 'rsync://h/m/stable', password_env: RSYNC_PW}\n"
	c, err := parseConfig(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if mc, err := c.Mirrors.repository("stable"); err != nil || len(mc.Targets) != 2 {
		t.Fatalf("repository: %+v %v", mc, err)
	}
	for name, bad := range map[string]string{
		"relative path":      "        - {name: a, type: local, path: srv/m}\n",
		"unknown type":       "        - {name: a, type: ftp, dest: 'rsync://h/m'}\n",
		"rsync without dest": "        - {name: a, type: rsync}\n",
		"local with dest":    "        - {name: a, type: local, path: /srv/m, dest: 'rsync://h/m'}\n",
		"dest as option":     "        - {name: a, type: rsync, dest: '-e sh'}\n",
		"bad name":           "        - {name: ../a, type: local, path: /srv/m}\n",
		"twice":              "        - {name: a, type: local, path: /srv/m}\n        - {name: a, type: local, path: /srv/n}\n",
		"keep 1":             "        - {name: a, type: local, path: /srv/m, keep: 1}\n",
		"check mode":         "        - {name: a, type: local, path: /srv/m}\n  check: some\n",
		"rsh with blanks":    "        - {name: a, type: rsync, dest: 'h:/m', rsh: ['ssh -i k']}\n",
		"both passwords":     "        - {name: a, type: rsync, dest: 'rsync://h/m', password_env: X, password_file: /p}\n",
	} {
		_, err := parseConfig(strings.NewReader("mirrors:\n  repositories:\n    - name: stable\n      targets:\n" + bad))
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := parseConfig(strings.NewReader("mirrors:\n  repositories:\n    - name: stable\n")); err == nil {
		t.Error("a repository without targets: accepted")
	}
}

// runTool runs a tool in dir with a time limit; its combined output.
func runTool(t *testing.T, dir, tool string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c := proc.Command(ctx, tool, args...)
	c.Dir = dir
	c.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	out, err := c.CombinedOutput()
	return string(out), err
}
