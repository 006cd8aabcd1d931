package main

import (
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/jobs"
	"github.com/sluice-ci/sluice/repo"
	"github.com/sluice-ci/sluice/results"
)

func TestParseStageParams(t *testing.T) {
	t.Parallel()
	good := map[string]string{"ZUUL_URL": "/srv/git", "ZUUL_PROJECT": "hello", "ZUUL_BRANCH": "main",
		"ZUUL_REF": "refs/sluice/gate/0f8e2c1a5b7d4e3f9a1b2c3d4e5f6a7b", "ZUUL_UUID": "0f8e2c1a5b7d4e3f9a1b2c3d4e5f6a7b",
		"ZUUL_CHANGE": "7", "ZUUL_PATCHSET": "2", "ZUUL_PIPELINE": "gate",
		"ZUUL_CHANGES": "lib:main:refs/changes/05/5/1^hello:main:refs/changes/06/6/3^lib:main:refs/changes/08/8/1^hello:main:refs/changes/07/7/2"}
	sp, err := parseStageParams(good)
	if err != nil {
		t.Fatal(err)
	}
	got := sp.projects()
	if len(got) != 2 || got[0].Project != "lib" || got[0].Number != 8 || got[1].Project != "hello" || got[1].Number != 7 || got[1].Patchset != 2 {
		t.Fatalf("projects = %+v", got)
	}
	for name, bad := range map[string][2]string{
		"project-dotdot": {"ZUUL_PROJECT", "../etc"},
		"ref":            {"ZUUL_REF", "refs/../../x"},
		"uuid":           {"ZUUL_UUID", "../../tmp"},
		"change":         {"ZUUL_CHANGE", "-1"},
		"commit":         {"ZUUL_COMMIT", "HEAD"},
		"changes":        {"ZUUL_CHANGES", "hello:main:refs/heads/main"},
		"changes-path":   {"ZUUL_CHANGES", "../x:main:refs/changes/01/1/1"},
		"no-url":         {"ZUUL_URL", ""},
	} {
		p := map[string]string{}
		for k, v := range good {
			p[k] = v
		}
		p[bad[0]] = bad[1]
		if _, err := parseStageParams(p); err == nil {
			t.Errorf("%s: %s=%q accepted", name, bad[0], bad[1])
		}
	}
}

// TestStagesBuildPublish runs the build and publish stage functions of a
// buildset as the in-process pool does: the test repository is signed,
// verifies, and the results are recorded in the buildset's group.
func TestStagesBuildPublish(t *testing.T) {
	pkgtest.NeedTool(t, "dpkg-buildpackage")
	src := sampleRepo(t, false)
	data := t.TempDir()
	cmd := &cobra.Command{}
	var sf storeFlags
	sf.register(cmd.Flags())
	conf := filepath.Join(t.TempDir(), "sluice.yaml")
	writeTestFile(t, conf, "server:\n  url: http://ci.example.org\n")
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
	st, err := newStages(e, 10*time.Minute, false, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	const uuid = "0f8e2c1a5b7d4e3f9a1b2c3d4e5f6a7b"
	run := jobs.Run{Pipeline: "check", Buildset: uuid, Attempt: 1, Project: "hello-sh", Params: map[string]string{
		"ZUUL_URL": filepath.Dir(src), "ZUUL_PROJECT": "hello-sh", "ZUUL_BRANCH": "main", "ZUUL_REF": "refs/changes/45/12345/2",
		"ZUUL_UUID": uuid, "ZUUL_CHANGE": "12345", "ZUUL_PATCHSET": "2", "ZUUL_PIPELINE": "check",
		"ZUUL_CHANGES": "hello-sh:main:refs/changes/45/12345/2"}}
	funcs := st.funcs()
	for _, stage := range []string{"build.deb", "build.rpm", "publish"} {
		run.Stage = stage
		res, err := funcs[stage](t.Context(), run)
		if err != nil || res.Outcome != jobs.Passed {
			if rs, _, _ := e.results.Results(t.Context(), results.Query{Testcases: []string{"sluice.publish"}}); len(rs) > 0 {
				t.Log(rs[0].Note)
			}
			t.Fatalf("%s: %+v %v", stage, res, err)
		}
		if want := "http://ci.example.org/"; !strings.HasPrefix(res.LogURL, want) {
			t.Errorf("%s: log URL %q, want one under %s", stage, res.LogURL, want)
		}
	}
	kr, err := os.Open(filepath.Join(data, "keys", "test-signing-key.pub.asc"))
	if err != nil {
		t.Fatal(err)
	}
	defer kr.Close()
	keyring, err := repo.ReadKeyring(kr)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"deb", "rpm"} {
		if problems, err := repo.Verify(t.Context(), filepath.Join(data, "buildsets", uuid, "repo", f), keyring); err != nil || len(problems) > 0 {
			t.Fatalf("%s test repository: %v %v", f, problems, err)
		}
	}
	// lint: lintian and rpmlint on the published packages; rpmlint's
	// errors on the sample (no Packager, no Group) fail it.
	if _, err := exec.LookPath("lintian"); err == nil || os.Getenv("CI") == "true" {
		pkgtest.NeedTool(t, "lintian")
		pkgtest.NeedTool(t, "rpmlint")
		run.Stage = "lint"
		res, err := funcs["lint"](t.Context(), run)
		if err != nil || res.Outcome != jobs.Failed || !strings.HasPrefix(res.LogURL, "http://ci.example.org/artifacts/") {
			t.Fatalf("lint: %+v %v", res, err)
		}
		lr, _, err := e.results.Results(t.Context(), results.Query{Testcases: []string{"sluice.lint"}})
		if err != nil || len(lr) != 1 || lr[0].Data["lintian_errors"][0] != "0" || lr[0].Data["rpmlint_errors"][0] == "0" {
			t.Fatalf("lint result: %+v %v", lr, err)
		}
	}
	rs, _, err := e.results.Results(t.Context(), results.Query{Groups: []string{uuid}, Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rs {
		names = append(names, r.Testcase.Name+":"+r.Outcome+":"+r.Data["item"][0])
	}
	joined := strings.Join(names, " ")
	for _, want := range []string{"sluice.publish:PASSED:hello-sh~12345~2", "sluice.build:PASSED:hello-sh~12345~2",
		"sluice.build:PASSED:hello-sh_0.9-1~c12345.p2_all"} {
		if !strings.Contains(joined, want) {
			t.Errorf("results %s lack %s", joined, want)
		}
	}
}
