package builder

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	debversion "pault.ag/go/debian/version"

	"github.com/sluice-ci/sluice/internal/gittest"
	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/internal/proc"
	"github.com/sluice-ci/sluice/store"
)

// buildTestRepo makes a git repository from a sample source tree (copied,
// then changed by edit when it is not nil), commits it, and points a Gerrit
// change ref at the commit. It returns the repository's path.
func buildTestRepo(t *testing.T, sample string, edit func(dir string)) string {
	t.Helper()
	src := filepath.Join("testdata", "src", sample)
	if edit != nil {
		src = filepath.Join(t.TempDir(), "src")
		if err := copyTree(filepath.Join("testdata", "src", sample), src); err != nil {
			t.Fatal(err)
		}
		edit(src)
	}
	dir := filepath.Join(t.TempDir(), sample)
	if _, err := (gittest.Repo{When: time.Unix(1793620800, 0), Refs: []string{"refs/changes/45/12345/2"}}).Commit(src, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func newTestBuilder(t *testing.T, data string, timeout time.Duration) *Builder {
	t.Helper()
	arts, err := NewArtifacts(filepath.Join(data, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { arts.Close() })
	work := filepath.Join(data, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := store.Open(t.Context(), filepath.Join(data, "sluice.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	backends := []Backend{Deb{}, &RPM{NoDeps: true, AssumeInstalled: []string{"gcc", "make"}}}
	env := []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C.UTF-8", "SOURCE_DATE_EPOCH=1793620800"}
	return New(NewSources(filepath.Join(data, "git"), log), arts, backends,
		Config{WorkDir: work, Timeout: timeout, Env: env, Version: "test", Records: NewRecords(db, nil, nil)}, log)
}

// TestBuildChange builds both samples in both formats from a change ref, as
// a test build, and checks what the records say against the packages and
// the artifact store.
func TestBuildChange(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "dpkg-buildpackage")
	pkgtest.NeedTool(t, "rpmbuild")
	for _, tc := range []struct{ sample, debRelease, rpmRelease string }{
		{"hello-c", "1.2-3", "3"},
		{"hello-sh", "0.9-1", "1"},
	} {
		t.Run(tc.sample, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			upstream := buildTestRepo(t, tc.sample, nil)
			data := t.TempDir()
			b := newTestBuilder(t, data, 5*time.Minute)
			req := Request{Project: "samples/" + tc.sample, URL: "file://" + upstream, Ref: "refs/changes/45/12345/2",
				Change: 12345, Patchset: 2, OutDir: filepath.Join(t.TempDir(), "out")}
			recs, err := b.Build(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 2 {
				t.Fatalf("%d records, want one per format", len(recs))
			}
			for _, r := range recs {
				if r.Outcome != Passed {
					t.Fatalf("%s: %s: %s\n%s", r.Format, r.Outcome, r.Reason, strings.Join(r.LogTail, "\n"))
				}
				if r.Commit == "" || r.Tree == "" || len(r.Commands) == 0 || r.Log.SHA256 == "" {
					t.Errorf("%s: record lacks provenance: %+v", r.Format, r)
				}
				binaries := 0
				for _, o := range r.Outputs {
					if err := b.artifacts.Verify(o.SHA256); err != nil {
						t.Errorf("%s: stored bytes do not match the record: %v", o.Name, err)
					}
					if o.Package == nil {
						continue
					}
					binaries++
					p := filepath.Join(req.OutDir, r.Format, o.Name)
					switch r.Format {
					case "deb":
						out := runTool(t, "dpkg-deb", "--field", p, "Version")
						if !strings.Contains(out, "~c12345.p2") {
							t.Errorf("%s: version %q does not name the change", o.Name, out)
						}
						if debversion.Compare(mustDebVersion(t, o.Package.EVR()), mustDebVersion(t, tc.debRelease)) >= 0 {
							t.Errorf("%s: %s does not sort below the release %s", o.Name, o.Package.EVR(), tc.debRelease)
						}
					case "rpm":
						out := runTool(t, "rpm", "-qp", "--qf", "%{RELEASE}", p)
						if !strings.HasPrefix(out, tc.rpmRelease) || !strings.HasSuffix(out, "~c12345.p2") {
							t.Errorf("%s: release %q does not name the change", o.Name, out)
						}
						// rpm's own comparison: below the release build.
						cmp := runTool(t, "rpm", "--eval", fmt.Sprintf(`%%{lua: print(rpm.vercmp("%s", "%s"))}`, out, tc.rpmRelease))
						if cmp != "-1" {
							t.Errorf("%s: rpm.vercmp(%s, %s) = %s, want -1", o.Name, out, tc.rpmRelease, cmp)
						}
					}
				}
				// The store finds this record from the bytes of each output.
				for _, o := range r.Outputs {
					found, err := b.records.(*Records).ByOutput(ctx, o.SHA256)
					if err != nil || !slices.ContainsFunc(found, func(f *Record) bool { return f.ID == r.ID }) {
						t.Errorf("%s: the store does not name record %s as its maker: %v", o.Name, r.ID, err)
					}
				}
				if binaries == 0 {
					t.Errorf("%s: no binary package in %v", r.Format, r.Outputs)
				}
				if _, err := os.Stat(filepath.Join(req.OutDir, r.Format, "record.json")); err != nil {
					t.Errorf("%s: no record beside the outputs: %v", r.Format, err)
				}
			}

			// The same commit again: no fetch, and bytes already stored are
			// not stored again (a rebuild differs only where the tools
			// stamp something, such as .buildinfo).
			first := map[string]bool{}
			for _, r := range recs {
				first[r.Log.SHA256] = true
				for _, o := range r.Outputs {
					first[o.SHA256] = true
				}
			}
			objects := countFiles(t, filepath.Join(data, "artifacts", "objects"))
			req.OutDir = filepath.Join(t.TempDir(), "out2")
			co, err := b.sources.Checkout(ctx, req.Project, req.URL, req.Ref, t.TempDir())
			if err != nil || co.Fetched {
				t.Fatalf("second checkout: fetched=%v err=%v", co != nil && co.Fetched, err)
			}
			again, err := b.Build(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			added := map[string]bool{}
			shared := 0
			for _, r := range again {
				for _, a := range append([]Artifact{r.Log}, outputArtifacts(r)...) {
					if first[a.SHA256] {
						shared++
					} else {
						added[a.SHA256] = true
					}
				}
			}
			if got := countFiles(t, filepath.Join(data, "artifacts", "objects")); got != objects+len(added) {
				t.Errorf("store holds %d objects after the rebuild, want %d + %d new", got, objects, len(added))
			}
			if shared == 0 {
				t.Errorf("the rebuild shares no bytes with the first build: nothing shows the store dedupes")
			}
		})
	}
}

// TestBuildFailures: a failing build, a timed-out build, a tree with no
// layout and a missing ref each give an outcome with the reason.
func TestBuildFailures(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "dpkg-buildpackage")
	breakRules := func(script string) func(dir string) {
		return func(dir string) {
			rules := "#!/usr/bin/make -f\n%:\n\t" + script + "\n"
			if err := os.WriteFile(filepath.Join(dir, "debian", "rules"), []byte(rules), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name    string
		edit    func(dir string)
		ref     string
		timeout time.Duration
		outcome string
		reason  string
		tail    string
	}{
		{"fails", breakRules("echo sluice-broken-build >&2; exit 1"), "", time.Minute, Failed, "dpkg-buildpackage", "sluice-broken-build"},
		{"times-out", breakRules("sleep 60"), "", 3 * time.Second, Failed, "timed out", ""},
		{"no-layout", func(dir string) { os.RemoveAll(filepath.Join(dir, "debian")) }, "", time.Minute, Error, "no deb layout", ""},
		{"missing-ref", nil, "refs/changes/45/12345/9", time.Minute, Error, "not found", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			upstream := buildTestRepo(t, "hello-sh", tc.edit)
			b := newTestBuilder(t, t.TempDir(), tc.timeout)
			ref := tc.ref
			if ref == "" {
				ref = "refs/changes/45/12345/2"
			}
			start := time.Now()
			recs, err := b.Build(t.Context(), Request{Project: "hello-sh", URL: upstream, Ref: ref, Change: 12345, Patchset: 2,
				Formats: []string{"deb"}, OutDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1", len(recs))
			}
			r := recs[0]
			if r.Outcome != tc.outcome || !strings.Contains(r.Reason, tc.reason) {
				t.Fatalf("outcome %s (%s), want %s saying %q", r.Outcome, r.Reason, tc.outcome, tc.reason)
			}
			if tc.tail != "" && !strings.Contains(strings.Join(r.LogTail, "\n"), tc.tail) {
				t.Fatalf("log tail does not show the failure:\n%s", strings.Join(r.LogTail, "\n"))
			}
			if len(r.Outputs) != 0 {
				t.Fatalf("a failed build recorded outputs: %v", r.Outputs)
			}
			if tc.name == "times-out" && time.Since(start) > 30*time.Second {
				t.Fatalf("a 3 s time-out took %s", time.Since(start))
			}
		})
	}
}

func outputArtifacts(r *Record) []Artifact {
	var as []Artifact
	for _, o := range r.Outputs {
		as = append(as, o.Artifact)
	}
	return as
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := proc.Command(ctx, name, args...).Output()
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return strings.TrimSpace(string(out))
}

func mustDebVersion(t *testing.T, s string) debversion.Version {
	t.Helper()
	v, err := debversion.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}
