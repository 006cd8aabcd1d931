package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/internal/gittest"
	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/internal/proc"
	"github.com/sluice-ci/sluice/jobs"
	"github.com/sluice-ci/sluice/repo"
	"github.com/sluice-ci/sluice/results"
	"github.com/sluice-ci/sluice/systest"
)

// testBasesDir is where tests keep prepared bases, outside the repository
// and between runs (as systest's tests do, with the same base).
func testBasesDir(t *testing.T) string {
	if d := os.Getenv("SLUICE_TEST_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(d, "sluice-test")
}

// needEnvironments skips (or under CI fails) where environments cannot
// run: they need root and the namespace tools.
func needEnvironments(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("environments need root, and CI runs as root")
		}
		t.Skip("environments need root")
	}
	for _, tool := range []string{"mmdebstrap", "unshare", "nsenter", "ip", "mount", "dpkg-buildpackage", "rpmbuild", "gcc"} {
		pkgtest.NeedTool(t, tool)
	}
}

// TestStageInstall builds the builder's two samples (hello-c, linked
// against libc, and hello-sh, with maintainer scripts) as .debs and RPMs,
// publishes them into the buildset's signed test repositories, and runs
// the install stage on them: every package installs from the repository
// with apt-get or dnf, passes its check, is removed and purged without
// leftovers, and each is a result.
func TestStageInstall(t *testing.T) {
	needEnvironments(t)
	git := t.TempDir()
	for _, name := range []string{"hello-c", "hello-sh"} {
		src, err := filepath.Abs(filepath.Join("..", "..", "builder", "testdata", "src", name))
		if err != nil {
			t.Fatal(err)
		}
		ref := "refs/changes/45/12345/2"
		if name == "hello-c" {
			ref = "refs/changes/44/12344/1"
		}
		// The build fetches ZUUL_REF from every project, as Zuul's
		// merger makes it in each.
		refs := []string{ref, "refs/changes/45/12345/2"}
		if _, err := (gittest.Repo{When: time.Unix(1793620800, 0), Refs: slices.Compact(refs)}).Commit(src, filepath.Join(git, name)); err != nil {
			t.Fatal(err)
		}
	}
	data := t.TempDir()
	conf := filepath.Join(t.TempDir(), "sluice.yaml")
	writeTestFile(t, conf, "server:\n  url: http://ci.example.org\nsystest:\n  bases_dir: "+testBasesDir(t)+"\n"+
		"  bases:\n  - name: sluice-test\n    suite: bookworm\n    rpm: true\n"+
		"  install:\n    deb_base: sluice-test\n    rpm_base: sluice-test\n    step_timeout: 5m\n")
	cmd := &cobra.Command{}
	var sf storeFlags
	sf.register(cmd.Flags())
	if err := cmd.Flags().Parse([]string{"--data-dir", data, "--config", conf}); err != nil {
		t.Fatal(err)
	}
	cmd.SetContext(t.Context())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := sf.open(cmd, log)
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	st, err := newStages(e, 10*time.Minute, true, []string{"gcc", "make"}, log)
	if err != nil {
		t.Fatal(err)
	}
	const uuid = "7c0e2c1a5b7d4e3f9a1b2c3d4e5f6a70"
	run := jobs.Run{Pipeline: "check", Buildset: uuid, Attempt: 1, Project: "hello-sh", Params: map[string]string{
		"ZUUL_URL": git, "ZUUL_PROJECT": "hello-sh", "ZUUL_BRANCH": "main", "ZUUL_REF": "refs/changes/45/12345/2",
		"ZUUL_UUID": uuid, "ZUUL_CHANGE": "12345", "ZUUL_PATCHSET": "2", "ZUUL_PIPELINE": "check",
		"ZUUL_CHANGES": "hello-c:main:refs/changes/44/12344/1^hello-sh:main:refs/changes/45/12345/2"}}
	funcs := st.funcs()
	for _, stage := range []string{"build.deb", "build.rpm", "publish"} {
		run.Stage = stage
		res, err := funcs[stage](t.Context(), run)
		if err != nil || res.Outcome != jobs.Passed {
			if rs, _, _ := e.results.Results(t.Context(), results.Query{Outcomes: []string{"FAILED"}}); len(rs) > 0 {
				t.Log(rs[0].Note)
			}
			t.Fatalf("%s: %+v %v", stage, res, err)
		}
	}
	run.Stage = "install"
	start := time.Now()
	res, err := st.install(t.Context(), run)
	if err != nil {
		t.Fatal(err)
	}
	rs, _, err := e.results.Results(t.Context(), results.Query{Testcases: []string{"sluice.install"}, Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, r.Outcome+" "+r.Data["item"][0])
		if r.Outcome != "PASSED" {
			t.Logf("%s: %s", r.Data["item"][0], r.Note)
		}
		if r.Data["type"][0] != "sluice_change" && !strings.HasPrefix(r.RefURL, "http://ci.example.org/artifacts/") {
			t.Errorf("%s: log %q", r.Data["item"][0], r.RefURL)
		}
	}
	slices.Sort(got)
	t.Logf("install stage in %s: %s", time.Since(start).Round(time.Millisecond), strings.Join(got, ", "))
	want := []string{
		"PASSED hello-c-1.2-3~c12344.p1.x86_64", "PASSED hello-c-dbgsym_1.2-3~c12344.p1_amd64", "PASSED hello-c_1.2-3~c12344.p1_amd64",
		"PASSED hello-sh-0.9-1~c12345.p2.noarch", "PASSED hello-sh_0.9-1~c12345.p2_all", "PASSED hello-sh~12345~2",
	}
	if res.Outcome != jobs.Passed || !slices.Equal(got, want) {
		t.Errorf("install: %+v\n got %q\nwant %q", res, got, want)
	}
	if kept, err := envChroot(data, log).Kept(); err != nil || len(kept) != 0 {
		t.Errorf("environments left: %v %v", kept, err)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), data) {
		t.Errorf("mounts left:\n%s", mi)
	}
}

// TestInstallRPMs runs the install test on RPMs published by package repo
// (signed, as the publish stage signs them): one whose automatic
// dependencies (a soname, /bin/sh) the base provides, one that asks for
// a Fedora package name the Debian base cannot honour, one whose %post
// fails, and one whose %preun fails.
func TestInstallRPMs(t *testing.T) {
	needEnvironments(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	base, err := systest.NewBases(testBasesDir(t), log).Prepare(t.Context(), systest.BaseSpec{Name: "sluice-test", Suite: "bookworm", RPM: true}, false)
	if err != nil {
		t.Fatal(err)
	}
	in := t.TempDir()
	var paths []string
	for _, s := range []struct{ name, requires, post, preun string }{
		{"sluice-rpm-good", "Requires: libc.so.6()(64bit)\nRequires: /bin/sh", "exit 0", ""},
		{"sluice-rpm-fedora", "Requires: glibc", "", ""},
		{"sluice-rpm-bad-post", "", "echo broken >&2; exit 1", ""},
		{"sluice-rpm-bad-preun", "", "", "exit 1"},
	} {
		spec := "Name: " + s.name + "\nVersion: 1.0\nRelease: 1\nSummary: install test\nLicense: MIT\nBuildArch: noarch\n" + s.requires +
			"\n%description\ninstall test package\n%install\nmkdir -p %{buildroot}/usr/share\necho data > %{buildroot}/usr/share/" + s.name + ".data\n" +
			"%files\n/usr/share/" + s.name + ".data\n"
		if s.post != "" {
			spec += "%post\n" + s.post + "\n"
		}
		if s.preun != "" {
			spec += "%preun\n" + s.preun + "\n"
		}
		top := t.TempDir()
		writeTestFile(t, filepath.Join(top, s.name+".spec"), spec)
		cmd := proc.Command(t.Context(), "rpmbuild", "--define", "_topdir "+top, "--define", "_rpmdir "+in, "--define", "_build_name_fmt %%{NAME}.rpm",
			"-bb", filepath.Join(top, s.name+".spec"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("rpmbuild %s: %v\n%s", s.name, err, out)
		}
		paths = append(paths, filepath.Join(in, s.name+".rpm"))
	}
	priv, _, err := repo.GenerateKey("install test", "t@example.org", repo.Ed25519, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := repo.ReadKey(bytes.NewReader(priv), nil)
	if err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	if err := key.WritePublic(&pub); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "rpm")
	if _, err := repo.NewRPM(dir, key, log).Publish(t.Context(), paths, repo.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	c := envChroot(t.TempDir(), log)
	want := map[string]string{"sluice-rpm-good": "", "sluice-rpm-fedora": "install", "sluice-rpm-bad-post": "install", "sluice-rpm-bad-preun": "remove"}
	for name, step := range want {
		t.Run(name, func(t *testing.T) {
			rep, err := systest.InstallTest(t.Context(), c, base, systest.Repo{Format: "rpm", Dir: dir, Key: pub.Bytes()},
				systest.PackageRef{Name: name, Version: "1.0-1", Arch: "noarch"}, systest.InstallOptions{StepTimeout: 2 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Step != step || (step == "") != (rep.Outcome == systest.Passed) {
				t.Errorf("%s at %q (%s), want the step %q\n%s", rep.Outcome, rep.Step, rep.Reason, step, rep.Log)
			}
		})
	}
	if kept, err := c.Kept(); err != nil || len(kept) != 0 {
		t.Errorf("environments left: %v %v", kept, err)
	}
}
