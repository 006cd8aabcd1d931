package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/builder"
	"github.com/sluice-ci/sluice/internal/gittest"
	"github.com/sluice-ci/sluice/internal/pkgtest"
)

// sampleRepo commits builder's hello-sh sample into a new git repository
// with a change ref and returns its path.
func sampleRepo(t *testing.T, breakIt bool) string {
	t.Helper()
	src, err := filepath.Abs(filepath.Join("..", "..", "builder", "testdata", "src", "hello-sh"))
	if err != nil {
		t.Fatal(err)
	}
	if breakIt {
		broken := filepath.Join(t.TempDir(), "hello-sh")
		if err := gittest.CopyTree(src, broken); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(broken, "debian", "rules"), []byte("#!/usr/bin/make -f\n%:\n\texit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		src = broken
	}
	dir := filepath.Join(t.TempDir(), "hello-sh")
	if _, err := (gittest.Repo{When: time.Unix(1793620800, 0), Refs: []string{"refs/changes/45/12345/2"}}).Commit(src, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestStageBuild runs `sluice stage build` as Jenkins would: with flags,
// and with only Zuul's job parameters in the environment.
func TestStageBuild(t *testing.T) {
	pkgtest.NeedTool(t, "dpkg-buildpackage")
	repo, broken := sampleRepo(t, false), sampleRepo(t, true)
	data := t.TempDir()
	out := filepath.Join(t.TempDir(), "out")
	stdout, err := sluice(t, "stage", "build", "--project", "hello-sh", "--url", "file://"+repo,
		"--ref", "refs/changes/45/12345/2", "--change", "12345", "--patchset", "2", "--format", "deb",
		"--data-dir", data, "--out", out)
	if err != nil {
		t.Fatalf("stage build: %v\n%s", err, stdout)
	}
	var recs []builder.Record
	if err := json.Unmarshal([]byte(stdout), &recs); err != nil || len(recs) != 1 || recs[0].Outcome != builder.Passed {
		t.Fatalf("records: %v\n%s", err, stdout)
	}
	if recs[0].Version != "0.9-1~c12345.p2" {
		t.Errorf("version %q", recs[0].Version)
	}
	for _, p := range []string{filepath.Join(out, "deb", "record.json"), filepath.Join(data, "sluice.db")} {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}

	// From Zuul's parameters only (the URL is ZUUL_URL/ZUUL_PROJECT).
	t.Setenv("ZUUL_URL", filepath.Dir(repo))
	t.Setenv("ZUUL_PROJECT", filepath.Base(repo))
	t.Setenv("ZUUL_REF", "refs/changes/45/12345/2")
	t.Setenv("ZUUL_CHANGE", "12345")
	t.Setenv("ZUUL_PATCHSET", "2")
	t.Chdir(t.TempDir())
	if stdout, err := sluice(t, "stage", "build", "--format", "deb", "--data-dir", data); err != nil {
		t.Fatalf("stage build from ZUUL_*: %v\n%s", err, stdout)
	}
	if _, err := os.Stat(filepath.Join("sluice-build", "deb", "record.json")); err != nil {
		t.Error(err)
	}

	// A failing build: exit status 1, and the record says why.
	stdout, err = sluice(t, "stage", "build", "--project", "broken", "--url", broken, "--ref", "refs/changes/45/12345/2",
		"--format", "deb", "--data-dir", data, "--out", t.TempDir())
	var exit exitError
	if !errors.As(err, &exit) {
		t.Fatalf("a failing build: err = %v\n%s", err, stdout)
	}
	// The output holds the records, then the reason on stderr.
	if err := json.NewDecoder(strings.NewReader(stdout)).Decode(&recs); err != nil || recs[0].Outcome != builder.Failed {
		t.Fatalf("failing build records: %v\n%s", err, stdout)
	}
}
