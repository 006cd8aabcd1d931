package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/internal/proc"
	"github.com/sluice-ci/sluice/jobs/gearman/gearmantest"
	"github.com/sluice-ci/sluice/zuul"
)

// changeState is what `sluice change show --json` prints.
type changeState struct {
	Change   zuul.Change    `json:"change"`
	Messages []zuul.Message `json:"messages"`
}

// waitChange polls change n until ok holds, for at most d.
func waitChange(t *testing.T, conf, data string, n string, d time.Duration, ok func(changeState) bool) changeState {
	t.Helper()
	deadline := time.Now().Add(d)
	var st changeState
	for {
		out, err := sluice(t, "change", "show", n, "--json", "--config", conf, "--data-dir", data)
		if err != nil {
			t.Fatalf("change show %s: %v\n%s", n, err, out)
		}
		st = changeState{}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("change show %s: %v\n%s", n, err, out)
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("change %s did not get there in %s: %+v", n, d, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// reportBy returns the last report of pipeline on the change.
func reportBy(st changeState, pipeline string) *zuul.Message {
	for i := len(st.Messages) - 1; i >= 0; i-- {
		if st.Messages[i].Tag == zuul.ReportTagPrefix+pipeline {
			return &st.Messages[i]
		}
	}
	return nil
}

// TestGateLocal runs the whole flow of the embedded default on the local
// source: a proposed change is checked (Verified +1), approved, gated,
// submitted by the gate, and the post pipeline releases the merged
// branch into its signed release repository.
func TestGateLocal(t *testing.T) {
	gateLocalFlow(t, "pipeline:\n  workers: 2\n", gateHooks{})
}

// TestGateLocalGearman runs the same flow with the stage runs going
// through a real gearmand to two `sluice worker` processes: one is killed
// (SIGKILL) while it runs a check stage, and gearmand is restarted while
// the gate runs; the change is still checked, gated, merged and released.
func TestGateLocalGearman(t *testing.T) {
	bin := sluiceBinary(t)
	srv := gearmantest.New(t)
	logs := t.TempDir()
	workers := map[string]*exec.Cmd{}
	started := func(id string) int {
		b, _ := os.ReadFile(filepath.Join(logs, id+".log"))
		return strings.Count(string(b), "stage run started")
	}
	waitStarted := func(id string, n int) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for started(id) < n {
			if time.Now().After(deadline) {
				t.Fatalf("worker %s never started %d runs", id, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	gateLocalFlow(t, "pipeline:\n  dispatch: gearman\n  gearman: ["+srv.Addr+"]\n", gateHooks{
		before: func(conf, data string) {
			for _, id := range []string{"w1", "w2"} {
				f, err := os.Create(filepath.Join(logs, id+".log"))
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				cmd := proc.Command(ctx, bin, "worker", "--gearman", srv.Addr, "--id", id, "--capacity", "1", "--rpm-nodeps",
					"--config", conf, "--data-dir", data)
				cmd.Stdout, cmd.Stderr = f, f
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				workers[id] = cmd
				t.Cleanup(func() {
					cancel()
					cmd.Wait()
					f.Close()
					if t.Failed() {
						b, _ := os.ReadFile(f.Name())
						t.Logf("%s:\n%s", id, b)
					}
				})
			}
		},
		proposed: func() {
			waitStarted("w1", 1)
			workers["w1"].Process.Kill() // SIGKILL, mid-run
		},
		approved: func() {
			n := started("w2")
			waitStarted("w2", n+1) // a gate run under way
			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// gateHooks are what a test does at points of the flow.
type gateHooks struct {
	before   func(conf, data string) // the config written, the server not started
	proposed func()                  // the change proposed
	approved func()                  // the change approved
}

// gateLocalFlow proposes a change on the local source, approves it, and
// waits for the gate to merge it and the post pipeline to release it,
// with pipelineConf as the config's pipeline section and hooks run at
// their points.
func gateLocalFlow(t *testing.T, pipelineConf string, hooks gateHooks) {
	pkgtest.NeedTool(t, "dpkg-buildpackage")
	pkgtest.NeedTool(t, "rpmbuild")
	src := sampleRepo(t, false)
	data := t.TempDir()
	conf := filepath.Join(t.TempDir(), "sluice.yaml")
	writeTestFile(t, conf, "local:\n  projects:\n    - name: hello-sh\n      path: "+src+"\n"+pipelineConf)
	if hooks.before != nil {
		hooks.before(conf, data)
	}
	startServe(t, "--config", conf, "--data-dir", data, "--rpm-nodeps")

	commitFile(t, src, "news", "NEWS", "0.9.1\n", "Add NEWS\n\nChange-Id: I3333333333333333333333333333333333333333\n")
	if out, err := sluice(t, "change", "propose", "--project", "hello-sh", "--ref", "news", "--config", conf, "--data-dir", data); err != nil {
		t.Fatalf("propose: %v\n%s", err, out)
	}
	if hooks.proposed != nil {
		hooks.proposed()
	}
	st := waitChange(t, conf, data, "1", 3*time.Minute, func(st changeState) bool { return reportBy(st, "check") != nil })
	rep := reportBy(st, "check")
	if rep.Labels["Verified"] != 1 || !strings.Contains(rep.Text, "Build succeeded (check pipeline).") ||
		!strings.Contains(rep.Text, "sluice.build.deb") || !strings.Contains(rep.Text, "sluice.publish") {
		out, _ := sluice(t, "results", "list", "--json", "--data-dir", data, "--config", conf)
		t.Fatalf("check report: %+v\nresults:\n%s", rep, out)
	}

	if out, err := sluice(t, "change", "approve", "1", "--config", conf, "--data-dir", data, "--as", "core"); err != nil {
		t.Fatalf("approve: %v\n%s", err, out)
	}
	if hooks.approved != nil {
		hooks.approved()
	}
	st = waitChange(t, conf, data, "1", 3*time.Minute, func(st changeState) bool { return st.Change.Status == "MERGED" })
	rep = reportBy(st, "gate")
	if rep == nil || rep.Labels["Verified"] != 2 {
		t.Fatalf("gate report: %+v", st.Messages)
	}
	// The post pipeline builds the merged branch and releases it.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		out, err := sluice(t, "results", "list", "--json", "--testcase", "sluice.release", "--data-dir", data, "--config", conf)
		if err == nil && strings.Contains(out, `"PASSED"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no release: %v\n%s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
