package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/zuul"
	"github.com/sluice-ci/sluice/zuul/gerrittest"
)

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// sluiceBinary builds the sluice command once per test process.
func sluiceBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-bin-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "sluice")
		out, err := exec.Command("go", "build", "-o", binaryPath, ".").CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// serverProcess is `sluice serve` in a process of its own, to be killed.
type serverProcess struct {
	t    *testing.T
	args []string
	cmd  *exec.Cmd
	log  *os.File
}

func (p *serverProcess) start() {
	p.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p.cmd = exec.Command(sluiceBinary(p.t), append([]string{"serve", "--listen", addr}, p.args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	// Its own group, to be killed with what it started; and killed if
	// the test process dies first, so that no server outlives the test.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	for range 400 {
		if resp, err := http.Get("http://" + addr + "/api/v2.0/healthcheck"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	p.t.Fatal("sluice serve did not come up")
}

// kill9 kills the server and what it started in its process group, with
// no chance to clean up.
func (p *serverProcess) kill9() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	p.cmd.Wait()
}

// TestGateSurvivesKill runs a gate of three changes (the middle one
// failing) on the fake Gerrit and kills `sluice serve` with SIGKILL at
// moments of the run, restarting it each time: the changes end as in a
// run without faults (first and third merged, the middle reported -2),
// and no report is posted twice. The kill points are moments the test
// sees in Gerrit; SLUICE_FAULT_RUNS=N adds N runs killed at random times.
func TestGateSurvivesKill(t *testing.T) {
	pkgtest.NeedTool(t, "dpkg-buildpackage")
	pkgtest.NeedTool(t, "rpmbuild")
	sluiceBinary(t)
	runs := []func(*rand.Rand) []killPoint{func(*rand.Rand) []killPoint { return namedKillPoints }}
	if n, _ := strconv.Atoi(os.Getenv("SLUICE_FAULT_RUNS")); n > 0 {
		for range n {
			runs = append(runs, randomKillPoints)
		}
	}
	for i, points := range runs {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			gateWithKills(t, points(rand.New(rand.NewPCG(uint64(i), 7))))
		})
	}
}

// killPoint is a moment to kill the server at: when cond holds, or after
// a delay.
type killPoint struct {
	name  string
	cond  func(g *gerrittest.Gerrit, a, b, c *zuul.Change) bool
	delay time.Duration
}

var namedKillPoints = []killPoint{
	{name: "approved", delay: 300 * time.Millisecond},
	{name: "gate started", cond: func(g *gerrittest.Gerrit, a, b, c *zuul.Change) bool {
		return countReviews(g, a.Number, "gate", 0) > 0
	}},
	{name: "middle failed", cond: func(g *gerrittest.Gerrit, a, b, c *zuul.Change) bool {
		return countReviews(g, b.Number, "gate", -2) > 0
	}},
	{name: "first merged", cond: func(g *gerrittest.Gerrit, a, b, c *zuul.Change) bool {
		return g.Change(a.Number).Status == "MERGED"
	}},
}

func randomKillPoints(r *rand.Rand) []killPoint {
	var ps []killPoint
	for i := range 1 + r.IntN(4) {
		ps = append(ps, killPoint{name: "random " + strconv.Itoa(i), delay: time.Duration(r.IntN(4000)) * time.Millisecond})
	}
	return ps
}

// killedDataDir is a data directory for servers that get killed: the
// builds they started run on in their own process groups (sluice kills
// them only when it is stopped, not killed) and may still write under it
// for a moment, so it is removed with patience.
func killedDataDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sluice-killed-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var err error
		for range 100 {
			if err = os.RemoveAll(dir); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("remove %s: %v", dir, err)
	})
	return dir
}

// countReviews counts sluice's reviews of pipeline on change n that vote
// Verified v.
func countReviews(g *gerrittest.Gerrit, n int, pipeline string, v int) int {
	k := 0
	for _, r := range g.Reviews(n) {
		if got, ok := r.Labels["Verified"]; ok && got == v && r.Tag == zuul.ReportTagPrefix+pipeline {
			k++
		}
	}
	return k
}

func gateWithKills(t *testing.T, points []killPoint) {
	g, conf := fakeGerrit(t)
	data := killedDataDir(t)
	log, err := os.Create(filepath.Join(t.TempDir(), "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	srv := &serverProcess{t: t, args: []string{"--config", conf, "--data-dir", data, "--rpm-nodeps"}, log: log}
	srv.start()
	defer func() { srv.kill9() }()
	waitStream(t, g)

	a := g.Upload("hello", "master", map[string]string{"NEWS": "0.9.1\n"}, "Add NEWS")
	b := g.Upload("hello", "master", map[string]string{"debian/rules": "#!/usr/bin/make -f\n%:\n\texit 1\n"}, "Break the build")
	c := g.Upload("hello", "master", map[string]string{"AUTHORS": "someone\n"}, "Add AUTHORS")
	core := zuul.Account{Name: "Core", Username: "core"}
	for _, ch := range []*zuul.Change{a, b, c} {
		g.Review(ch, core, map[string]int{"Code-Review": 2, "Workflow": 1}, "")
	}
	for _, p := range points {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
		for p.cond != nil && !p.cond(g, a, b, c) && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		time.Sleep(p.delay)
		t.Logf("kill -9 at %q", p.name)
		srv.kill9()
		srv.start()
	}
	deadline := time.Now().Add(2 * time.Minute)
	for g.Change(a.Number).Status != "MERGED" || g.Change(c.Number).Status != "MERGED" || countReviews(g, b.Number, "gate", -2) == 0 {
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(log.Name())
			t.Fatalf("the gate did not finish: a %s, c %s, b's reviews %+v\nlog:\n%s", g.Change(a.Number).Status,
				g.Change(c.Number).Status, g.Reviews(b.Number), out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := g.Change(b.Number).Status; st != "NEW" {
		t.Errorf("the failing change is %s", st)
	}
	// Nothing reported twice. A moment for anything late to show.
	time.Sleep(time.Second)
	for _, want := range []struct {
		ch       *zuul.Change
		vote, n  int
		pipeline string
	}{
		{a, 2, 1, "gate"}, {c, 2, 1, "gate"}, {b, -2, 1, "gate"}, {a, 0, 1, "gate"}, {b, 0, 1, "gate"},
	} {
		if got := countReviews(g, want.ch.Number, want.pipeline, want.vote); got != want.n {
			t.Errorf("change %d: %d %s reviews with Verified %+d, want %d: %+v", want.ch.Number, got, want.pipeline, want.vote, want.n, g.Reviews(want.ch.Number))
		}
	}
}
