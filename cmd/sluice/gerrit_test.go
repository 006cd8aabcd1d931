package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/pipeline"
	"github.com/sluice-ci/sluice/results"
	"github.com/sluice-ci/sluice/zuul"
	"github.com/sluice-ci/sluice/zuul/gerrittest"
)

// treeFiles reads a source tree into the file map gerrittest takes.
func treeFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// fakeGerrit starts the fake Gerrit with project hello (the hello-sh
// sample) and, with more, lib (the hello-c sample), its SSH daemon, and
// writes sluice's configuration for it.
func fakeGerrit(t *testing.T, more ...bool) (*gerrittest.Gerrit, string) {
	t.Helper()
	g := gerrittest.NewGerrit(t)
	samples := filepath.Join("..", "..", "builder", "testdata", "src")
	g.CreateProject("hello", treeFiles(t, filepath.Join(samples, "hello-sh")))
	projects := "[hello]"
	if len(more) > 0 && more[0] {
		g.CreateProject("lib", treeFiles(t, filepath.Join(samples, "hello-c")))
		projects = "[hello, lib]"
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gerrittest.NewSSHServer(g, sshPub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	dir := t.TempDir()
	block, err := ssh.MarshalPrivateKey(priv, "sluice")
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "id_ed25519"), string(pem.EncodeToMemory(block)))
	writeTestFile(t, filepath.Join(dir, "known_hosts"), srv.KnownHostsLine()+"\n")
	writeTestFile(t, filepath.Join(dir, "password"), g.Password+"\n")
	conf := filepath.Join(dir, "sluice.yaml")
	writeTestFile(t, conf, "gerrit:\n  url: "+g.URL+"\n  user: "+g.User+"\n  password_file: "+filepath.Join(dir, "password")+
		"\n  git_url: file://"+filepath.Dir(g.GitDir("hello"))+
		"\n  projects: "+projects+"\n  ssh:\n    address: "+srv.Addr()+"\n    user: sluice\n    key_file: "+filepath.Join(dir, "id_ed25519")+
		"\n    known_hosts: "+filepath.Join(dir, "known_hosts")+"\npipeline:\n  workers: 3\n")
	return g, conf
}

// waitStream waits until sluice listens to the fake Gerrit's event stream:
// events made before that would be missed, as with a real Gerrit.
func waitStream(t *testing.T, g *gerrittest.Gerrit) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for g.Subscribers() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("sluice did not open the event stream")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitReview waits for a review of pipeline on change n that ok accepts.
func waitReview(t *testing.T, g *gerrittest.Gerrit, n int, pipeline string, d time.Duration, ok func(gerrittest.Review) bool) gerrittest.Review {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		for _, r := range g.Reviews(n) {
			if r.Tag == zuul.ReportTagPrefix+pipeline && ok(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("change %d: no %s review in %s; reviews: %+v", n, pipeline, d, g.Reviews(n))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGateGerrit drives sluice from a fake Gerrit (events over SSH,
// reviews and submits over REST): a check vote; then a gate of three
// changes where the middle one fails: the first and the third merge, the
// middle is reported -2, and the third was tested again without it.
func TestGateGerrit(t *testing.T) {
	pkgtest.NeedTool(t, "dpkg-buildpackage")
	pkgtest.NeedTool(t, "rpmbuild")
	g, conf := fakeGerrit(t)
	data := t.TempDir()
	startServe(t, "--config", conf, "--data-dir", data, "--rpm-nodeps")
	waitStream(t, g)

	// check
	a := g.Upload("hello", "master", map[string]string{"NEWS": "0.9.1\n"}, "Add NEWS")
	r := waitReview(t, g, a.Number, "check", 3*time.Minute, func(gerrittest.Review) bool { return true })
	if r.Labels["Verified"] != 1 || !strings.Contains(r.Message, "Build succeeded (check pipeline).") {
		t.Fatalf("check review: %+v", r)
	}

	// gate: a (good), b (breaks the Debian build), c (good)
	b := g.Upload("hello", "master", map[string]string{"debian/rules": "#!/usr/bin/make -f\n%:\n\texit 1\n"}, "Break the build")
	c := g.Upload("hello", "master", map[string]string{"AUTHORS": "someone\n"}, "Add AUTHORS")
	core := zuul.Account{Name: "Core", Username: "core"}
	for _, ch := range []*zuul.Change{a, b, c} {
		g.Review(ch, core, map[string]int{"Code-Review": 2, "Workflow": 1}, "")
	}
	waitReview(t, g, b.Number, "gate", 5*time.Minute, func(r gerrittest.Review) bool { return r.Labels["Verified"] == -2 })
	for _, ch := range []*zuul.Change{a, c} {
		deadline := time.Now().Add(5 * time.Minute)
		for g.Change(ch.Number).Status != "MERGED" {
			if time.Now().After(deadline) {
				t.Fatalf("change %d not merged: %+v", ch.Number, g.Reviews(ch.Number))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if st := g.Change(b.Number).Status; st != "NEW" {
		t.Fatalf("the failing change is %s", st)
	}
	if tip := g.File("hello", "master", "debian/rules"); strings.Contains(tip, "exit 1") {
		t.Fatal("the failing change's file is on master")
	}
	// c's merged buildset did not contain b.
	out, err := sluice(t, "results", "list", "--json", "--testcase", "sluice.buildset", "--item", c.Key(), "--data-dir", data, "--config", conf)
	if err != nil {
		t.Fatal(err)
	}
	var rs []results.Result
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatal(err)
	}
	merged := 0
	for _, r := range rs {
		if r.Data["result"][0] != "MERGED" {
			continue
		}
		merged++
		if slices.Contains(r.Data["changes"], b.String()) || !slices.Contains(r.Data["changes"], c.String()) {
			t.Errorf("c merged from a buildset of changes %v", r.Data["changes"])
		}
	}
	if merged != 1 {
		t.Errorf("c's buildsets:\n%s", out)
	}
}

// waitMerged waits until change n is merged.
func waitMerged(t *testing.T, g *gerrittest.Gerrit, n int) {
	t.Helper()
	deadline := time.Now().Add(4 * time.Minute)
	for g.Change(n).Status != "MERGED" {
		if time.Now().After(deadline) {
			t.Fatalf("change %d not merged: %+v", n, g.Reviews(n))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGerritScenarios: recheck; a new patchset superseding the old one;
// Depends-On across two projects (in check, tested together; in the
// gate, the dependent waits for its dependency, then both merge in
// order); a merge conflict in the gate.
func TestGerritScenarios(t *testing.T) {
	pkgtest.NeedTool(t, "dpkg-buildpackage")
	pkgtest.NeedTool(t, "rpmbuild")
	pkgtest.NeedTool(t, "gcc")
	g, conf := fakeGerrit(t, true)
	data := t.TempDir()
	startServe(t, "--config", conf, "--data-dir", data, "--rpm-nodeps", "--rpm-host-provides", "gcc,make")
	waitStream(t, g)
	core := zuul.Account{Name: "Core", Username: "core"}
	any := func(gerrittest.Review) bool { return true }
	checkReviews := func(n, ps int) int {
		k := 0
		for _, r := range g.Reviews(n) {
			if r.Tag == zuul.ReportTagPrefix+"check" && r.Patchset == ps {
				k++
			}
		}
		return k
	}

	t.Run("recheck", func(t *testing.T) {
		x := g.Upload("hello", "master", map[string]string{"RECHECK": "1\n"}, "Recheck me")
		waitReview(t, g, x.Number, "check", 3*time.Minute, any)
		g.Review(x, core, nil, "recheck")
		deadline := time.Now().Add(3 * time.Minute)
		for checkReviews(x.Number, 1) < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("no second check report: %+v", g.Reviews(x.Number))
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("new-patchset", func(t *testing.T) {
		y := g.Upload("hello", "master", map[string]string{"PS": "1\n"}, "Two patchsets")
		y2 := g.UploadPatchset(gerrittest.Patchset{Change: y.Number, Files: map[string]string{"PS": "2\n"}, Message: "Two patchsets"})
		if y2.Patchset != 2 {
			t.Fatalf("patchset %d", y2.Patchset)
		}
		waitReview(t, g, y.Number, "check", 3*time.Minute, func(r gerrittest.Review) bool { return r.Patchset == 2 })
		time.Sleep(2 * time.Second) // anything left of patchset 1 would report by now
		if n := checkReviews(y.Number, 1); n != 0 {
			t.Fatalf("the superseded patchset was reported %d times: %+v", n, g.Reviews(y.Number))
		}
	})

	t.Run("depends-on", func(t *testing.T) {
		l := g.Upload("lib", "master", map[string]string{"NEWS": "lib news\n"}, "Lib change")
		h := g.Upload("hello", "master", map[string]string{"USES-LIB": "yes\n"}, "Use the lib change\n\nDepends-On: "+l.ChangeID+"\n")
		waitReview(t, g, h.Number, "check", 3*time.Minute, func(r gerrittest.Review) bool { return r.Labels["Verified"] == 1 })
		out, err := sluice(t, "results", "list", "--json", "--testcase", "sluice.buildset", "--item", h.Key(), "--data-dir", data, "--config", conf)
		if err != nil || !strings.Contains(out, `"`+l.String()+`"`) {
			t.Fatalf("h's check buildset does not hold l: %v\n%s", err, out)
		}
		// h approved alone waits for l.
		g.Review(h, core, map[string]int{"Code-Review": 2, "Workflow": 1}, "")
		time.Sleep(3 * time.Second)
		if st := g.Change(h.Number).Status; st != "NEW" {
			t.Fatalf("h merged before its dependency: %s", st)
		}
		g.Review(l, core, map[string]int{"Code-Review": 2, "Workflow": 1}, "")
		waitMerged(t, g, l.Number)
		waitMerged(t, g, h.Number)
	})

	t.Run("conflict", func(t *testing.T) {
		p := g.Upload("hello", "master", map[string]string{"CLASH": "one\n"}, "Clash one")
		q := g.Upload("hello", "master", map[string]string{"CLASH": "two\n"}, "Clash two")
		for _, ch := range []*zuul.Change{p, q} {
			g.Review(ch, core, map[string]int{"Code-Review": 2, "Workflow": 1}, "")
		}
		waitMerged(t, g, p.Number)
		r := waitReview(t, g, q.Number, "gate", 3*time.Minute, func(r gerrittest.Review) bool { return r.Labels["Verified"] == -2 })
		if !strings.Contains(r.Message, "could not be merged") {
			t.Errorf("conflict report: %+v", r)
		}
		if st := g.Change(q.Number).Status; st != "NEW" {
			t.Errorf("the conflicting change is %s", st)
		}
	})
}

// TestGerritWebhook: with the webhooks plugin instead of SSH, an event
// posted to /webhooks/gerrit is journalled before its 202, and the change
// is checked.
func TestGerritWebhook(t *testing.T) {
	pkgtest.NeedTool(t, "dpkg-buildpackage")
	pkgtest.NeedTool(t, "rpmbuild")
	g, conf := fakeGerrit(t)
	// The same configuration without ssh, with a webhook secret.
	raw, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw)
	cfg = cfg[:strings.Index(cfg, "  ssh:")] + cfg[strings.Index(cfg, "pipeline:"):]
	secret := filepath.Join(t.TempDir(), "secret")
	writeTestFile(t, secret, "webhook-secret-0123456789\n")
	cfg = strings.Replace(cfg, "gerrit:\n", "gerrit:\n  webhook_secret_file: "+secret+"\n", 1)
	writeTestFile(t, conf, cfg)
	base := startServe(t, "--config", conf, "--data-dir", t.TempDir(), "--rpm-nodeps")

	x := g.Upload("hello", "master", map[string]string{"HOOK": "1\n"}, "Via the webhook")
	evs := g.Events()
	post := func(token string) int {
		req, _ := http.NewRequest("POST", base+"/webhooks/gerrit", bytes.NewReader(evs[len(evs)-1]))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("wrong-secret-0123456789"); code != http.StatusUnauthorized {
		t.Fatalf("a wrong secret: %d", code)
	}
	if code := post("webhook-secret-0123456789"); code != http.StatusAccepted {
		t.Fatalf("the event: %d", code)
	}
	r := waitReview(t, g, x.Number, "check", 3*time.Minute, func(gerrittest.Review) bool { return true })
	if r.Labels["Verified"] != 1 {
		t.Fatalf("check review %+v", r)
	}
}

// TestGerritReportOnClosedChange: Gerrit refuses votes on a merged
// change; the report then goes out as a message alone, and a change
// Gerrit does not have is a refusal for good.
func TestGerritReportOnClosedChange(t *testing.T) {
	g := gerrittest.NewGerrit(t)
	g.CreateProject("hello", map[string]string{"README": "hi\n"})
	c := g.Upload("hello", "master", map[string]string{"NEWS": "1\n"}, "News")
	g.Review(c, zuul.Account{Username: "core"}, map[string]int{"Code-Review": 2, "Verified": 2}, "")
	if err := g.Submit(c.Number); err != nil {
		t.Fatal(err)
	}
	client, err := zuul.NewGerritClient(zuul.GerritConfig{BaseURL: g.URL, User: g.User, Password: g.Password}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := gerritReporter{c: client, user: g.User}
	rep := pipeline.Report{Pipeline: "check", Change: *c, Action: "success", Votes: map[string]int{"Verified": 1}}
	if err := r.Report(t.Context(), rep); err != nil {
		t.Fatalf("report on a merged change: %v", err)
	}
	last := g.Reviews(c.Number)[len(g.Reviews(c.Number))-1]
	if len(last.Labels) != 0 || !strings.Contains(last.Message, "Build succeeded (check pipeline).") {
		t.Fatalf("the report: %+v", last)
	}
	gone := rep
	gone.Change.Number = 999
	if err := r.Report(t.Context(), gone); !errors.Is(err, pipeline.ErrReportRefused) {
		t.Fatalf("report on a missing change: %v", err)
	}
}
