package main

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/builder"
	"github.com/sluice-ci/sluice/internal/gittest"
	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/results"
	"github.com/sluice-ci/sluice/store"
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
	ext := newExternalResultsDB(t)
	conf := filepath.Join(t.TempDir(), "sluice.yaml")
	writeTestFile(t, conf, "server:\n  url: http://ci.example.org:5001\nresults:\n  external:\n    url: "+ext.url+"\n    token_file: "+ext.tokenFile+"\n")
	const buildset = "6a1f0c2e-9b8d-4c7e-a5f3-1d2e3f4a5b6c"
	stdout, err := sluice(t, "stage", "build", "--project", "hello-sh", "--url", "file://"+repo,
		"--ref", "refs/changes/45/12345/2", "--change", "12345", "--patchset", "2", "--format", "deb",
		"--pipeline", "check", "--buildset", buildset, "--config", conf, "--data-dir", data, "--out", out)
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
	// The build's results: in the local store, in the buildset's group,
	// and delivered to the external ResultsDB before the stage ended.
	local, err := sluice(t, "results", "list", "--data-dir", data, "--json", "--testcase", "sluice.build")
	if err != nil {
		t.Fatalf("results list: %v\n%s", err, local)
	}
	for _, want := range []string{`"hello-sh~12345~2"`, `"hello-sh_0.9-1~c12345.p2_all"`, buildset,
		`"http://ci.example.org:5001/artifacts/` + recs[0].Log.SHA256 + `"`} {
		if !strings.Contains(local, want) {
			t.Errorf("local results lack %s:\n%s", want, local)
		}
	}
	if got := ext.items(t); !slices.Equal(got, []string{"hello-sh_0.9-1~c12345.p2_all", "hello-sh~12345~2"}) {
		t.Errorf("external ResultsDB holds items %q", got)
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

// externalResultsDB is a ResultsDB on its own store, as another sluice
// or upstream's would be, with a worker token in a file.
type externalResultsDB struct {
	url, tokenFile string
	results        *results.Store
}

func newExternalResultsDB(t *testing.T) *externalResultsDB {
	t.Helper()
	db, err := store.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "external.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	const token = "external-worker-token-0123456789"
	rs := results.NewStore(db, results.Config{})
	srv := httptest.NewServer(results.NewAPI(rs, db, results.StaticTokens{token: results.ScopeWorker}, nil, nil))
	t.Cleanup(srv.Close)
	file := filepath.Join(t.TempDir(), "resultsdb-token")
	writeTestFile(t, file, token+"\n")
	return &externalResultsDB{url: srv.URL + "/api/v2.0/", tokenFile: file, results: rs}
}

// items returns the sorted items of the results the external side holds.
func (e *externalResultsDB) items(t *testing.T) []string {
	t.Helper()
	rs, _, err := e.results.Results(t.Context(), results.Query{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var items []string
	for _, r := range rs {
		items = append(items, r.Data["item"]...)
	}
	slices.Sort(items)
	return items
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestStageJenkinsBuildset runs the stages of a buildset as a Jenkins job
// would, one command each with only Zuul's parameters in the
// environment: build into the buildset, then publish its test
// repository; the results share the buildset's group.
func TestStageJenkinsBuildset(t *testing.T) {
	pkgtest.NeedTool(t, "dpkg-buildpackage")
	repo := sampleRepo(t, false)
	data := t.TempDir()
	const uuid = "5b1c0f2e9a8d4c7ea5f31d2e3f4a5b6c"
	for k, v := range map[string]string{"ZUUL_URL": filepath.Dir(repo), "ZUUL_PROJECT": filepath.Base(repo),
		"ZUUL_REF": "refs/changes/45/12345/2", "ZUUL_CHANGE": "12345", "ZUUL_PATCHSET": "2", "ZUUL_UUID": uuid,
		"ZUUL_PIPELINE": "check", "ZUUL_BRANCH": "main"} {
		t.Setenv(k, v)
	}
	if out, err := sluice(t, "stage", "build", "--format", "deb", "--data-dir", data); err != nil {
		t.Fatalf("stage build: %v\n%s", err, out)
	}
	if out, err := sluice(t, "stage", "publish", "--data-dir", data); err != nil || !strings.Contains(out, "publish: PASSED") {
		t.Fatalf("stage publish: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(data, "buildsets", uuid, "repo", "deb", "dists", "sluice-test", "InRelease")); err != nil {
		t.Fatal(err)
	}
	out, err := sluice(t, "results", "list", "--data-dir", data, "--json")
	if err != nil || !strings.Contains(out, `"sluice.publish"`) || !strings.Contains(out, `"sluice.build"`) {
		t.Fatalf("results: %v\n%s", err, out)
	}
	// A publish with nothing built fails, with exit status 1.
	t.Setenv("ZUUL_UUID", "00000000000000000000000000000000")
	var exit exitError
	if out, err := sluice(t, "stage", "publish", "--data-dir", data); !errors.As(err, &exit) {
		t.Fatalf("publish of an empty buildset: %v\n%s", err, out)
	}
}
