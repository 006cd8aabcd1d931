package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/pkgtest"
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
	gateLocalFlow(t, "pipeline:\n  workers: 2\n", nil)
}

// TestGateLocalGearman runs the same flow with the stage runs going
// through a real gearmand to two `sluice worker`s.
func TestGateLocalGearman(t *testing.T) {
	srv := gearmantest.New(t)
	gateLocalFlow(t, "pipeline:\n  dispatch: gearman\n  gearman: ["+srv.Addr+"]\n", func(conf, data string) {
		for _, id := range []string{"w1", "w2"} {
			startWorker(t, "worker", "--gearman", srv.Addr, "--id", id, "--capacity", "2", "--rpm-nodeps", "--config", conf, "--data-dir", data)
		}
	})
}

// startWorker runs the sluice command args in this process until the
// test ends.
func startWorker(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	root := newRoot(slog.New(slog.NewTextHandler(io.Discard, nil)))
	root.SetArgs(args)
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("%v: %v", args, err)
		}
	})
}

// gateLocalFlow proposes a change on the local source, approves it, and
// waits for the gate to merge it and the post pipeline to release it,
// with pipelineConf as the config's pipeline section; before, when not
// nil, runs once the config is written and before the server starts.
func gateLocalFlow(t *testing.T, pipelineConf string, before func(conf, data string)) {
	pkgtest.NeedTool(t, "dpkg-buildpackage")
	pkgtest.NeedTool(t, "rpmbuild")
	src := sampleRepo(t, false)
	data := t.TempDir()
	conf := filepath.Join(t.TempDir(), "sluice.yaml")
	writeTestFile(t, conf, "local:\n  projects:\n    - name: hello-sh\n      path: "+src+"\n"+pipelineConf)
	if before != nil {
		before(conf, data)
	}
	startServe(t, "--config", conf, "--data-dir", data, "--rpm-nodeps")

	commitFile(t, src, "news", "NEWS", "0.9.1\n", "Add NEWS\n\nChange-Id: I3333333333333333333333333333333333333333\n")
	if out, err := sluice(t, "change", "propose", "--project", "hello-sh", "--ref", "news", "--config", conf, "--data-dir", data); err != nil {
		t.Fatalf("propose: %v\n%s", err, out)
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
