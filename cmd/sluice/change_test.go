package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/sluice-ci/sluice/store"
	"github.com/sluice-ci/sluice/zuul"
)

// commitFile commits file=content on a new branch of the work tree at
// dir, made at its HEAD, as a developer does before proposing a change,
// and returns the commit id.
func commitFile(t *testing.T, dir, branch, file, content, message string) string {
	t.Helper()
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.Checkout(&git.CheckoutOptions{Branch: plumbing.NewBranchReferenceName(branch), Create: true}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := wt.Add(file); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "Dev", Email: "dev@example.org", When: time.Unix(1793620900, 0)}
	h, err := wt.Commit(message, &git.CommitOptions{Author: sig, Committer: sig})
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// TestChangeCommands drives the local source from the command line:
// propose, comment, approve, review, show, abandon, and the errors.
func TestChangeCommands(t *testing.T) {
	src := sampleRepo(t, false)
	data := t.TempDir()
	conf := filepath.Join(t.TempDir(), "sluice.yaml")
	writeTestFile(t, conf, "local:\n  projects:\n    - name: hello-sh\n      path: "+src+"\n")
	run := func(args ...string) string {
		t.Helper()
		out, err := sluice(t, append(append([]string{"change"}, args...), "--config", conf, "--data-dir", data, "--as", "dev")...)
		if err != nil {
			t.Fatalf("change %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	if _, err := sluice(t, "change", "propose", "--project", "hello-sh", "--config", conf, "--data-dir", data); err == nil {
		t.Fatal("proposing the branch tip succeeded")
	}
	commitFile(t, src, "news", "NEWS", "0.9.1\n", "Add NEWS\n\nChange-Id: I1111111111111111111111111111111111111111\n")
	if out := run("propose", "--project", "hello-sh", "--ref", "news"); !strings.Contains(out, "change 1 patchset 1: hello-sh refs/changes/01/1/1 (Add NEWS)") {
		t.Fatalf("propose: %s", out)
	}
	run("comment", "1", "recheck")
	run("approve", "1")
	run("review", "1", "--label", "Verified=-1", "--message", "flaky?")
	out := run("show", "1")
	for _, want := range []string{"change 1 patchset 1  NEW  Add NEWS", "Code-Review  +2  dev", "Workflow     +1  dev",
		"Verified     -1  dev", "  recheck", "flaky?"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if out := run("show", "1", "--json"); !strings.Contains(out, `"change_id": "I1111111111111111111111111111111111111111"`) {
		t.Errorf("show --json: %s", out)
	}
	for _, bad := range [][]string{{"show", "0"}, {"show", "7"}, {"review", "1", "--label", "Verified=5"}, {"comment", "1", " "},
		{"propose", "--project", "nope"}} {
		if out, err := sluice(t, append(append([]string{"change"}, bad...), "--config", conf, "--data-dir", data)...); err == nil {
			t.Errorf("change %s succeeded:\n%s", strings.Join(bad, " "), out)
		}
	}
	run("abandon", "1", "--message", "not needed")
	if out := run("show", "1"); !strings.Contains(out, "ABANDONED") {
		t.Errorf("after abandon: %s", out)
	}
	if _, err := sluice(t, "change", "show", "1", "--data-dir", data); err == nil || !strings.Contains(err.Error(), "local.projects") {
		t.Errorf("without local projects: %v", err)
	}
}

// TestRetriggerCommand journals the request that `sluice serve` takes,
// and refuses names that are not a buildset or a stage.
func TestRetriggerCommand(t *testing.T) {
	data := t.TempDir()
	const bs = "0f8e2c1a5b7d4e3f9a1b2c3d4e5f6a7b"
	if out, err := sluice(t, "retrigger", "--buildset", bs, "--stage", "build.deb", "--data-dir", data); err != nil ||
		!strings.Contains(out, "retrigger of build.deb in buildset "+bs+" queued") {
		t.Fatalf("retrigger: %v\n%s", err, out)
	}
	db, err := store.Open(t.Context(), "sqlite://"+filepath.Join(data, "sluice.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := zuul.NewJournal(db).Pending(t.Context(), 10)
	if err != nil || len(p) != 1 || p[0].Event.Type != zuul.Retrigger || p[0].Event.Buildset != bs || p[0].Event.Stage != "build.deb" {
		t.Fatalf("journal: %+v %v", p, err)
	}
	for _, bad := range [][]string{{"--buildset", "../x", "--stage", "build.deb"}, {"--buildset", bs, "--stage", "a b"}, {"--stage", "publish"}} {
		if out, err := sluice(t, append(append([]string{"retrigger"}, bad...), "--data-dir", data)...); err == nil {
			t.Errorf("retrigger %v: accepted\n%s", bad, out)
		}
	}
}
