package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/builder"
	"github.com/sluice-ci/sluice/internal/gittest"
	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/jobs"
	"github.com/sluice-ci/sluice/results"
)

// systestBuildset makes a buildset of project echo whose tree holds
// scenario as .sluice/systest/echo.yaml, its packages (the echo server and
// client of systest/testdata/echo) published by the publish stage into its
// signed test repository, with conf added to the systest section.
func systestBuildset(t *testing.T, scenario, conf string) (st *stages, e *env, run jobs.Run, data, confFile string) {
	t.Helper()
	needEnvironments(t)
	echo := filepath.Join("..", "..", "systest", "testdata", "echo")
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(echo, name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, ".sluice", "systest"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(src, ".sluice", "systest", "echo.yaml"), scenario)
	writeTestFile(t, filepath.Join(src, "README"), "echo\n")
	git := t.TempDir()
	commit, err := (gittest.Repo{When: time.Unix(1793620800, 0), Refs: []string{"refs/changes/46/12346/1"}}).Commit(src, filepath.Join(git, "echo"))
	if err != nil {
		t.Fatal(err)
	}
	data = t.TempDir()
	confFile = filepath.Join(t.TempDir(), "sluice.yaml")
	writeTestFile(t, confFile, "server:\n  url: http://ci.example.org\nsystest:\n  bases_dir: "+testBasesDir(t)+"\n"+
		"  bases:\n  - name: sluice-test\n    suite: bookworm\n    rpm: true\n"+conf)
	cmd := &cobra.Command{}
	var sf storeFlags
	sf.register(cmd.Flags())
	if err := cmd.Flags().Parse([]string{"--data-dir", data, "--config", confFile}); err != nil {
		t.Fatal(err)
	}
	cmd.SetContext(t.Context())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err = sf.open(cmd, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.close() })
	st, err = newStages(e, 10*time.Minute, true, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	const uuid = "3d0e2c1a5b7d4e3f9a1b2c3d4e5f6a71"
	run = jobs.Run{Pipeline: "check", Buildset: uuid, Attempt: 1, Project: "echo", Params: map[string]string{
		"ZUUL_URL": git, "ZUUL_PROJECT": "echo", "ZUUL_BRANCH": "main", "ZUUL_REF": "refs/changes/46/12346/1",
		"ZUUL_COMMIT": commit, "ZUUL_UUID": uuid, "ZUUL_CHANGE": "12346", "ZUUL_PATCHSET": "1", "ZUUL_PIPELINE": "check"}}
	// The packages as the build stage leaves them.
	built := filepath.Join(st.buildsetDir(uuid), "build", "echo", "deb")
	if err := os.MkdirAll(built, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, file := range map[string]string{"echo-server": "server.pl", "echo-client": "client.pl"} {
		if _, err := (pkgtest.Deb{Name: name, Version: "1.0-1", Arch: "all",
			Files: map[string][]byte{"/usr/share/echo/" + file: read(file)}}).WriteFile(built); err != nil {
			t.Fatal(err)
		}
	}
	run.Stage = "publish"
	if res, err := st.funcs()["publish"](t.Context(), run); err != nil || res.Outcome != jobs.Passed {
		t.Fatalf("publish: %+v %v", res, err)
	}
	return st, e, run, data, confFile
}

// TestStageSystest runs the systest stage on a buildset whose project
// keeps the two-node scenario (a server package on one node, its client
// on the other, reaching it by name) in .sluice/systest/, its packages
// published by the publish stage into the buildset's signed test
// repository; a scenario from the config that does not parse fails the
// stage with its file and line. The per-test results of the client's TAP
// report are in the artifact the scenario's result points to.
func TestStageSystest(t *testing.T) {
	needEnvironments(t)
	echo, err := os.ReadFile(filepath.Join("..", "..", "systest", "testdata", "echo", "echo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(t.TempDir(), "broken.yaml")
	writeTestFile(t, broken, "name: broken\nnodes:\n  - {name: a, base: sluice-test}\nsteps:\n  - node: b\n    run: [\"true\"]\n")
	st, e, run, data, conf := systestBuildset(t, string(echo), "  scenarios: ["+broken+"]\n  keep_failed: 1h\n")
	run.Stage = "systest"
	res, err := st.funcs()["systest"](t.Context(), run)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != jobs.Failed {
		t.Errorf("stage outcome %s, want FAILED (the broken scenario)", res.Outcome)
	}
	one := func(testcase string) results.Result {
		t.Helper()
		rs, _, err := e.results.Results(t.Context(), results.Query{Testcases: []string{testcase}})
		if err != nil || len(rs) != 1 {
			t.Fatalf("%s: %d results, %v", testcase, len(rs), err)
		}
		return rs[0]
	}
	ok := one("sluice.systest.echo")
	if ok.Outcome != "PASSED" || ok.Data["tests_passed"][0] != "2" || ok.Data["scenario_file"][0] != ".sluice/systest/echo.yaml" {
		t.Errorf("echo scenario: %s %q %v", ok.Outcome, ok.Note, ok.Data)
	}
	bad := one("sluice.systest.broken")
	if bad.Outcome != "FAILED" || !strings.Contains(bad.Note, broken+":5:") || !strings.Contains(bad.Note, `node "b" is not declared`) {
		t.Errorf("broken scenario: %s %q", bad.Outcome, bad.Note)
	}
	if stage := one("sluice.systest"); stage.Outcome != "FAILED" || !strings.HasPrefix(stage.Note, "1 scenarios passed, 1 failed") {
		t.Errorf("stage result: %s %q", stage.Outcome, stage.Note)
	}
	// The details: the steps, and the client's report's tests.
	arts, err := builder.NewArtifacts(filepath.Join(data, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	defer arts.Close()
	f, err := arts.Open(ok.Data["details_sha256"][0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var details struct {
		Steps []struct {
			Outcome string `json:"outcome"`
			Report  *struct {
				Tests []struct{ Name, Outcome string } `json:"tests"`
			} `json:"report"`
		} `json:"steps"`
	}
	if err := json.NewDecoder(f).Decode(&details); err != nil || len(details.Steps) != 2 || details.Steps[1].Report == nil ||
		len(details.Steps[1].Report.Tests) != 2 || details.Steps[1].Report.Tests[1].Outcome != "pass" {
		t.Errorf("details: %+v %v", details, err)
	}

	// sluice reproduce: the bundle re-runs the scenario elsewhere (here,
	// another data directory that shares the prepared bases).
	bundle := filepath.Join(t.TempDir(), "bundle")
	if out, err := sluice(t, "reproduce", run.Buildset, "--stage", "systest", "--out", bundle, "--data-dir", data, "--config", conf); err != nil {
		t.Fatalf("reproduce: %v\n%s", err, out)
	}
	script, err := os.ReadFile(filepath.Join(bundle, "run.sh"))
	if err != nil || !strings.Contains(string(script), "sluice systest run --config sluice.yaml --repo repo --key test-key.asc \"$@\" scenarios/broken.yaml scenarios/echo.yaml") {
		t.Fatalf("run.sh: %v\n%s", err, script)
	}
	for _, f := range []string{"repo/deb/dists/sluice-test/InRelease", "test-key.asc", "sluice.yaml", "params.json", "scenarios/echo.yaml"} {
		if _, err := os.Stat(filepath.Join(bundle, f)); err != nil {
			t.Error(err)
		}
	}
	other := t.TempDir()
	if err := os.Symlink(testBasesDir(t), filepath.Join(other, "bases")); err != nil {
		t.Fatal(err)
	}
	out, err := sluice(t, "systest", "run", "--config", filepath.Join(bundle, "sluice.yaml"), "--data-dir", other,
		"--repo", filepath.Join(bundle, "repo"), "--key", filepath.Join(bundle, "test-key.asc"), filepath.Join(bundle, "scenarios", "echo.yaml"))
	if err != nil || !strings.HasPrefix(out, "PASSED\techo\t") {
		t.Fatalf("the bundle's scenario: %v\n%s", err, out)
	}
	if out, err := sluice(t, "reproduce", run.Buildset, "--stage", "systest", "--out", bundle, "--data-dir", data, "--config", conf); err == nil {
		t.Errorf("a bundle over an existing directory: %s", out)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), data) {
		t.Errorf("mounts left:\n%s", mi)
	}
}

// TestSystestCancelled cancels a running systest through the pool, as the
// gate does when the buildset's install stage fails: the run is reported
// cancelled, and no environment, mount or network of it is left.
func TestSystestCancelled(t *testing.T) {
	st, _, run, data, _ := systestBuildset(t, "name: slow\nnodes:\n  - {name: a, base: sluice-test, packages: [echo-server]}\n"+
		"  - {name: b, base: sluice-test}\nsteps:\n  - node: a\n    run: [perl, /usr/share/echo/server.pl, \"7000\"]\n    background: true\n"+
		"  - node: b\n    run: [sleep, \"1000\"]\n", "")
	outcomes := make(chan jobs.Outcome, 1)
	pool := jobs.NewPool(map[string]jobs.StageFunc{"systest": st.systest}, 1,
		func(_ context.Context, o jobs.Outcome) { outcomes <- o }, slog.New(slog.DiscardHandler))
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	go pool.Run(ctx)
	run.Stage = "systest"
	if err := pool.Dispatch(t.Context(), run); err != nil {
		t.Fatal(err)
	}
	// Both nodes up: the sleep runs.
	envs := filepath.Join(data, "work", "envs")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if ents, _ := os.ReadDir(envs); len(ents) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the scenario's environments never started")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if err := pool.Cancel(t.Context(), run.Key()); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-outcomes:
		if !o.Canceled {
			t.Fatalf("outcome %+v, want cancelled", o)
		}
	case <-time.After(time.Minute):
		t.Fatal("the cancelled systest did not end")
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), data) {
		t.Errorf("mounts left:\n%s", mi)
	}
	if ents, _ := os.ReadDir(envs); len(ents) != 0 {
		t.Errorf("environments left: %v", ents)
	}
	// Each live network has an owner record naming its process: none of
	// this test's is left (other packages' tests may own some).
	recs, _ := os.ReadDir("/run/sluice-netlab")
	for _, r := range recs {
		if b, err := os.ReadFile(filepath.Join("/run/sluice-netlab", r.Name())); err == nil &&
			strings.HasPrefix(string(b), strconv.Itoa(os.Getpid())+" ") {
			t.Errorf("network %s left", r.Name())
		}
	}
}
