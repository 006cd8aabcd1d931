package systest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/systest/netlab"
	"github.com/sluice-ci/sluice/systest/scenario"
)

// scenarioRepo publishes the server and client packages.
// The server (testdata/echo/server.pl) answers each connection with
// "hello from HOSTNAME", in Perl: perl-base is in every Debian base; the
// client connects to HOST PORT, retrying while the server starts, prints
// the answer and writes a TAP report of what it checked.
func scenarioRepo(t *testing.T) Repo {
	t.Helper()
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join("testdata", "echo", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	out := t.TempDir()
	return aptRepo(t, []string{
		testDeb{name: "echo-server", version: "1.0", files: map[string]string{"/usr/share/echo/server.pl": read("server.pl")}}.build(t, out),
		testDeb{name: "echo-client", version: "1.0", files: map[string]string{"/usr/share/echo/client.pl": read("client.pl")}}.build(t, out),
	})
}

func scenarioOptions(t *testing.T, b Base, repo Repo, c *Chroot) ScenarioOptions {
	return ScenarioOptions{Chroot: c, Repos: map[string]Repo{"deb": repo}, Log: testLog(),
		Base: func(_ context.Context, name string) (Base, error) {
			if name != b.Spec.Name {
				t.Errorf("base %q asked for", name)
			}
			return b, nil
		}}
}

// checkNoLabLeft checks that no namespace of the scenario's network is
// left, and no mount or directory of an environment under dir.
func checkNoLabLeft(t *testing.T, network, dir string) {
	t.Helper()
	if network != "" {
		if ns, err := netlab.Namespaces(context.Background(), network); err != nil || len(ns) > 0 {
			t.Errorf("namespaces of network %s left: %v %v", network, ns, err)
		}
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), dir) {
		t.Errorf("a mount under %s is left:\n%s", dir, mounts)
	}
	left, _ := os.ReadDir(dir)
	for _, e := range left {
		if !strings.HasPrefix(e.Name(), ".") {
			t.Errorf("environment %s is left in %s", e.Name(), dir)
		}
	}
}

// TestScenarioClientServer runs the two-node scenario: the client on one
// node reaches the server on the other by name over the lab's network,
// and the step's TAP report is read back.
func TestScenarioClientServer(t *testing.T) {
	t.Parallel()
	b := needBase(t)
	pkgtest.NeedTool(t, "ip")
	repo := scenarioRepo(t)
	data, err := os.ReadFile(filepath.Join("testdata", "echo", "echo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := scenario.Parse("echo.yaml", []byte(strings.ReplaceAll(string(data), "sluice-test", b.Spec.Name)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rep, err := RunScenario(t.Context(), s, scenarioOptions(t, b, repo, NewChroot(dir, testLog())))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != Passed {
		t.Fatalf("outcome %s: %s\n%s", rep.Outcome, rep.Reason, rep.Log)
	}
	tests := rep.Tests()
	if len(tests) != 2 || tests[1].Name == "" || string(tests[1].Outcome) != "pass" {
		t.Errorf("tests from the report: %+v", tests)
	}
	if !strings.Contains(string(rep.Log), "hello from server") {
		t.Errorf("log lacks the greeting:\n%s", rep.Log)
	}
	checkNoLabLeft(t, rep.Network, dir)
}

// TestScenarioFailures: a step that does not meet its expectation, one
// that hangs past its time limit, a package that is not there, and a
// cancelled run each end as an outcome or an error, and leave nothing.
func TestScenarioFailures(t *testing.T) {
	t.Parallel()
	b := needBase(t)
	repo := scenarioRepo(t)
	cases := []struct {
		name, yaml, reason string
		cancel             bool
		keep               bool
	}{
		{name: "exit", reason: "echo.yaml:5: step 1 on a: exit status 3, want 0", keep: true, yaml: `name: echo
nodes:
  - {name: a, base: B}
steps:
  - node: a
    run: [sh, -c, "exit 3"]
`},
		{name: "stdout", reason: "standard output does not match", yaml: `name: echo
nodes:
  - {name: a, base: B}
steps:
  - node: a
    run: [echo, bye]
    expect: {stdout: "^hello$"}
`},
		{name: "hang", reason: "no end within its time limit (2s)", yaml: `name: echo
nodes:
  - {name: a, base: B}
steps:
  - node: a
    run: [sh, -c, "setsid sleep 1000 & sleep 1000"]
    timeout: 2s
`},
		{name: "no package", reason: "echo.yaml:3: node a: apt-get", yaml: `name: echo
nodes:
  - {name: a, base: B, packages: [echo-nowhere]}
steps:
  - node: a
    run: ["true"]
`},
		{name: "cancelled", cancel: true, yaml: `name: echo
nodes:
  - {name: a, base: B}
  - {name: b, base: B}
steps:
  - node: a
    run: [sleep, "1000"]
    background: true
  - node: b
    run: [sleep, "1000"]
`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := scenario.Parse("echo.yaml", []byte(strings.ReplaceAll(tc.yaml, "base: B", "base: "+b.Spec.Name)))
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			c := NewChroot(dir, testLog())
			opts := scenarioOptions(t, b, repo, c)
			opts.KeepFailed = tc.keep
			ctx := t.Context()
			if tc.cancel {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				time.AfterFunc(5*time.Second, cancel)
			}
			rep, err := RunScenario(ctx, s, opts)
			if tc.cancel {
				if err == nil || !strings.Contains(err.Error(), "context canceled") {
					t.Fatalf("cancelled run: %v, outcome %s %s", err, rep.Outcome, rep.Reason)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if rep.Outcome != Failed || !strings.Contains(rep.Reason, tc.reason) {
					t.Fatalf("outcome %s, reason %q; want Failed with %q\n%s", rep.Outcome, rep.Reason, tc.reason, rep.Log)
				}
			}
			if tc.keep {
				kept, err := c.Kept()
				if err != nil || len(kept) != 1 || len(rep.Kept) != 1 {
					t.Fatalf("kept %v (report %v): %v", kept, rep.Kept, err)
				}
				if err := c.Remove(t.Context(), rep.Kept[0]); err != nil {
					t.Fatal(err)
				}
			}
			checkNoLabLeft(t, rep.Network, dir)
		})
	}
}

// A passing scenario keeps nothing even with KeepFailed.
func TestScenarioKeepsOnlyFailed(t *testing.T) {
	t.Parallel()
	b := needBase(t)
	s, err := scenario.Parse("ok.yaml", []byte("name: ok\nnodes:\n  - {name: a, base: "+b.Spec.Name+"}\nsteps:\n  - node: a\n    run: [\"true\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := NewChroot(dir, testLog())
	opts := scenarioOptions(t, b, Repo{}, c)
	opts.KeepFailed = true
	rep, err := RunScenario(t.Context(), s, opts)
	if err != nil || rep.Outcome != Passed || len(rep.Kept) != 0 {
		t.Fatalf("%v %s %v", err, rep.Outcome, rep.Kept)
	}
	if kept, err := c.Kept(); err != nil || len(kept) != 0 {
		t.Fatalf("kept %v %v", kept, err)
	}
	if _, err := os.Stat(filepath.Join(dir)); err != nil {
		t.Fatal(err)
	}
	checkNoLabLeft(t, rep.Network, dir)
}
