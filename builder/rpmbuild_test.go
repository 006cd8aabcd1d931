package builder

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/internal/proc"
	"github.com/sluice-ci/sluice/repo"
)

// rpmTestEpoch is SOURCE_DATE_EPOCH for the builds: the samples'
// changelog date, 2026-11-02 12:00:00 UTC.
const rpmTestEpoch = 1793620800

// rpmTestSample is one sample package under testdata/src.
type rpmTestSample struct {
	name, version, release string // release as written, without %{?dist}
	archDep                bool
}

var rpmTestSamples = []rpmTestSample{
	{name: "hello-c", version: "1.2", release: "3", archDep: true},
	{name: "hello-sh", version: "0.9", release: "1"},
}

// rpmTestAssume is what a Debian host has of the samples' BuildRequires.
var rpmTestAssume = []string{"gcc", "make"}

func TestRPMBuildDetect(t *testing.T) {
	t.Parallel()
	const spec = "Name: x\n"
	for _, c := range []struct {
		name    string
		files   map[string]string // "" for a directory
		want    string
		wantErr string
	}{
		{name: "root", files: map[string]string{"x.spec": spec, "x.c": ""}, want: "x.spec"},
		{name: "rpm dir", files: map[string]string{"rpm/x.spec": spec, "x.c": "int x;"}, want: "rpm/x.spec"},
		{name: "root before rpm dir", files: map[string]string{"x.spec": spec, "rpm/y.spec": spec}, want: "x.spec"},
		{name: "none", files: map[string]string{"debian/control": "Source: x\n", "sub/x.spec": spec}, wantErr: "no spec file"},
		{name: "two at root", files: map[string]string{"x.spec": spec, "y.spec": spec, "rpm/z.spec": spec}, wantErr: "several spec files at the root: x.spec, y.spec"},
		{name: "two in rpm dir", files: map[string]string{"rpm/x.spec": spec, "rpm/y.spec": spec}, wantErr: "several spec files in rpm/"},
		{name: "hidden ignored", files: map[string]string{".x.spec": spec, "y.spec": spec}, want: "y.spec"},
		{name: "rpm is a file", files: map[string]string{"rpm": spec}, wantErr: "no spec file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, data := range c.files {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := rpmFindSpec(dir)
			if detected := (&RPM{}).Detect(dir); detected != (c.wantErr == "") {
				t.Errorf("Detect = %v", detected)
			}
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("got %q, %v; want an error holding %q", got, err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestRPMBuildRewriteRelease(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, spec, want, wantErr string
	}{
		{
			name: "dist",
			spec: "Name: x\nVersion: 1\nRelease:        3%{?dist}\nSummary: s\n%description\nRelease: 9\n",
			want: "Name: x\nVersion: 1\nRelease:        3%{?dist}~c12345.p2\nSummary: s\n%description\nRelease: 9\n",
		},
		{
			name: "crlf, case and trailing space kept",
			spec: "Name: x\r\n  release :\t1.el9 \t\r\nSummary: s\r\n",
			want: "Name: x\r\n  release :\t1.el9~c12345.p2 \t\r\nSummary: s\r\n",
		},
		{
			name: "last line without newline",
			spec: "Name: x\nRelease: 7",
			want: "Name: x\nRelease: 7~c12345.p2",
		},
		{
			name: "subpackage sections ignored",
			spec: "Release: 2\n%package devel\nRelease: 5\n%changelog\nRelease: 6\n",
			want: "Release: 2~c12345.p2\n%package devel\nRelease: 5\n%changelog\nRelease: 6\n",
		},
		{
			name: "comment and other tags not taken",
			spec: "# Release: 1\nReleaseNotes: x\n%global rel 1\nRelease: 4\n",
			want: "# Release: 1\nReleaseNotes: x\n%global rel 1\nRelease: 4~c12345.p2\n",
		},
		{name: "none", spec: "Name: x\nVersion: 1\n%description\nRelease: 1\n", wantErr: "no Release line"},
		{name: "two", spec: "%if 0%{?rhel}\nRelease: 1\n%else\nRelease: 2\n%endif\n", wantErr: "2 Release lines"},
		{name: "macro first", spec: "Release: %{rel}%{?dist}\n", wantErr: "Release line"},
		{name: "autorelease", spec: "Release: %autorelease\n", wantErr: "Release line"},
		{name: "empty", spec: "Release:\n", wantErr: "empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := rpmRewriteRelease([]byte(c.spec), 12345, 2)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("got %q, %v; want an error holding %q", got, err, c.wantErr)
				}
				return
			}
			if err != nil || string(got) != c.want {
				t.Fatalf("got %q, %v\nwant %q", got, err, c.want)
			}
		})
	}
}

func TestRPMBuildSources(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, spec string
		source0    string
		others     []string
		wantErr    string
	}{
		{name: "plain", spec: "Name: a\nSource0: a-1.tar.gz\n%description\n", source0: "a-1.tar.gz"},
		{
			name:    "unnumbered, URL with fragment, patches",
			spec:    "Source: https://example.org/x/a-1.tar.gz#/b-1.tgz\nsource1: extra.conf\nPatch0: fix.patch\n%prep\nSource2: no.conf\n",
			source0: "b-1.tgz", others: []string{"extra.conf", "fix.patch"},
		},
		{name: "no source", spec: "Name: a\n%description\nSource0: a.tar.gz\n", wantErr: "no Source0"},
		{name: "xz", spec: "Source0: a-1.tar.xz\n", wantErr: "not a .tar.gz"},
		{name: "hidden", spec: "Source0: .a.tar.gz\n", wantErr: "file name"},
		{name: "url directory", spec: "Source0: https://example.org/\n", wantErr: "file name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			source0, others, err := rpmSources(c.spec)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("got %q %q, %v; want an error holding %q", source0, others, err, c.wantErr)
				}
				return
			}
			if err != nil || source0 != c.source0 || !slices.Equal(others, c.others) {
				t.Fatalf("got %q %q, %v; want %q %q", source0, others, err, c.source0, c.others)
			}
		})
	}
}

func TestRPMBuildTarball(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, mode := range map[string]fs.FileMode{"b/z.txt": 0o644, "a-b": 0o600, "b/run": 0o755, ".git/HEAD": 0o644} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(name+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	if err := os.Symlink("b/z.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	mtime := time.Unix(rpmTestEpoch, 0)
	tarball := func() []byte {
		t.Helper()
		root, err := os.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		var buf bytes.Buffer
		if err := writeTarball(&buf, root, "x-1", mtime, nil); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	first := tarball()
	// Other times on the files must not show.
	if err := os.Chtimes(filepath.Join(dir, "a-b"), time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if second := tarball(); !bytes.Equal(first, second) {
		t.Error("two tarballs of one tree differ")
	}

	zr, err := gzip.NewReader(bytes.NewReader(first))
	if err != nil {
		t.Fatal(err)
	}
	if !zr.ModTime.Equal(mtime) {
		t.Errorf("gzip mtime %v, want %v", zr.ModTime, mtime)
	}
	tr := tar.NewReader(zr)
	var got []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !hdr.ModTime.Equal(mtime) || hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s: mtime %v, owner %d:%d", hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid)
		}
		got = append(got, fmt.Sprintf("%s %c %o %s", hdr.Name, hdr.Typeflag, hdr.Mode, hdr.Linkname))
	}
	want := []string{
		"x-1/ 5 755 ", // modes as git records them: 0755 or 0644
		"x-1/a-b 0 644 ",
		"x-1/b/ 5 755 ",
		"x-1/b/run 0 755 ",
		"x-1/b/z.txt 0 644 ",
		"x-1/link 2 777 b/z.txt",
	}
	if !slices.Equal(got, want) {
		t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRPMBuildSamples builds both samples as release and test builds.
func TestRPMBuildSamples(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "rpmbuild")
	// %{?dist} is empty on Debian, but a host that defines it gets it.
	eval := rpmTestRun(t, "rpm", "--eval", "%{_arch}|%{?dist}")
	hostArch, dist, _ := strings.Cut(strings.TrimSpace(eval), "|")

	for _, s := range rpmTestSamples {
		for _, m := range []struct {
			name             string
			change, patchset int
			suffix           string
		}{
			{name: "release"},
			{name: "test", change: 12345, patchset: 2, suffix: "~c12345.p2"},
		} {
			t.Run(s.name+"/"+m.name, func(t *testing.T) {
				t.Parallel()
				tree := rpmTestTree(t, s.name, nil)
				before := rpmTestHash(t, tree)
				job, log := rpmTestJob(t, tree)
				job.Change, job.Patchset = m.change, m.patchset
				b := &RPM{NoDeps: true, AssumeInstalled: rpmTestAssume}

				if missing, err := b.MissingBuildDeps(t.Context(), job); err != nil || len(missing) > 0 {
					t.Fatalf("MissingBuildDeps = %q, %v", missing, err)
				}
				start := time.Now()
				res, err := b.Build(t.Context(), job)
				t.Logf("build: %v", time.Since(start).Round(time.Millisecond))
				if err != nil {
					t.Fatalf("Build: %v\n%s", err, log)
				}

				release := s.release + dist + m.suffix
				arch := "noarch"
				if s.archDep {
					arch = hostArch
				}
				nvr := s.name + "-" + s.version + "-" + release
				binary, source := nvr+"."+arch+".rpm", nvr+".src.rpm"
				if res.Version != s.version+"-"+release {
					t.Errorf("Version = %q, want %q", res.Version, s.version+"-"+release)
				}
				// A host whose rpm makes debuginfo packages makes more.
				if !slices.Contains(res.Outputs, binary) || !slices.Contains(res.Outputs, source) {
					t.Errorf("Outputs = %q, want %q and %q among them", res.Outputs, binary, source)
				}
				if !slices.IsSorted(res.Outputs) {
					t.Errorf("Outputs %q: not sorted", res.Outputs)
				}
				entries, err := os.ReadDir(job.OutDir)
				if err != nil {
					t.Fatal(err)
				}
				var inOut []string
				for _, e := range entries {
					inOut = append(inOut, e.Name())
				}
				if !slices.Equal(inOut, res.Outputs) {
					t.Errorf("OutDir holds %q, Outputs says %q", inOut, res.Outputs)
				}

				pkg, err := repo.Inspect(filepath.Join(job.OutDir, binary))
				if err != nil {
					t.Fatal(err)
				}
				if pkg.Name != s.name || pkg.Version != s.version || pkg.Release != release || pkg.Arch != arch || pkg.Epoch != 0 {
					t.Errorf("%s: %+v", binary, pkg)
				}
				// A source package's ARCH is the binary packages'.
				qf := rpmTestRun(t, "rpm", "-qp", "--qf", "%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{SOURCEPACKAGE}\n", filepath.Join(job.OutDir, source))
				if want := fmt.Sprintf("%s %s %s %s 1\n", s.name, s.version, release, arch); qf != want {
					t.Errorf("%s: got %q, want %q", source, qf, want)
				}

				last := res.Commands[len(res.Commands)-1]
				if last[0] != "rpmbuild" || !slices.Contains(last, "--nodeps") || !slices.Contains(last, "-ba") {
					t.Errorf("last command %q: want rpmbuild --nodeps -ba", last)
				}
				if res.Commands[0][0] != "rpmspec" {
					t.Errorf("first command %q: want rpmspec", res.Commands[0])
				}
				if !strings.Contains(log.String(), "+ rpmbuild ") {
					t.Errorf("log lacks the rpmbuild command line:\n%s", log)
				}
				if _, err := os.Stat(filepath.Join(job.WorkDir, "rpmbuild", "SOURCES", s.name+"-"+s.version+".tar.gz")); err != nil {
					t.Errorf("Source0: %v", err)
				}
				if after := rpmTestHash(t, tree); after != before {
					t.Error("the build changed the caller's tree")
				}
			})
		}
	}
}

// TestRPMBuildSpecInRPMDir builds a tree whose spec is in rpm/, with a
// second source beside it.
func TestRPMBuildSpecInRPMDir(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "rpmbuild")
	tree := rpmTestTree(t, "hello-sh", func(spec string) string {
		return strings.Replace(spec, "BuildArch:", "Source1:        hello-sh.conf\nBuildArch:", 1)
	})
	if err := os.Mkdir(filepath.Join(tree, "rpm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(tree, "hello-sh.spec"), filepath.Join(tree, "rpm", "hello-sh.spec")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "rpm", "hello-sh.conf"), []byte("greeting=hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := rpmTestHash(t, tree)
	job, log := rpmTestJob(t, tree)
	res, err := (&RPM{NoDeps: true}).Build(t.Context(), job)
	if err != nil {
		t.Fatalf("Build: %v\n%s", err, log)
	}
	var srpm string
	for _, o := range res.Outputs {
		if strings.HasSuffix(o, ".src.rpm") {
			srpm = filepath.Join(job.OutDir, o)
		}
	}
	files := rpmTestRun(t, "rpm", "-qpl", srpm)
	for _, want := range []string{"hello-sh-0.9.tar.gz", "hello-sh.conf", "hello-sh.spec"} {
		if !slices.Contains(strings.Fields(files), want) {
			t.Errorf("source package lacks %s: %q", want, files)
		}
	}
	if after := rpmTestHash(t, tree); after != before {
		t.Error("the build changed the caller's tree")
	}
}

func TestRPMBuildMissingBuildDeps(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "rpmbuild")
	pkgtest.NeedTool(t, "rpmspec")
	addDeps := func(spec string) string {
		return strings.Replace(spec, "BuildRequires:  make\n",
			"BuildRequires:  make\nBuildRequires:  sluice-no-such-package\nBuildRequires:  sluice-no-such-lib >= 2.1\nBuildRequires:  make >= 3\n", 1)
	}
	for _, c := range []struct {
		name   string
		sample string
		edit   func(string) string
		want   []string
	}{
		{name: "hello-c", sample: "hello-c"},
		{name: "hello-sh", sample: "hello-sh"},
		{name: "unknown", sample: "hello-c", edit: addDeps, want: []string{"sluice-no-such-lib >= 2.1", "sluice-no-such-package"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tree := rpmTestTree(t, c.sample, c.edit)
			job, log := rpmTestJob(t, tree)
			got, err := (&RPM{NoDeps: true, AssumeInstalled: rpmTestAssume}).MissingBuildDeps(t.Context(), job)
			if err != nil || !slices.Equal(got, c.want) {
				t.Fatalf("got %q, %v; want %q\n%s", got, err, c.want, log)
			}
		})
	}
}

func TestRPMBuildFailure(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "rpmbuild")
	const marker = "sluice-test-build-failed"
	tree := rpmTestTree(t, "hello-sh", func(spec string) string {
		return rpmTestEditBuild(t, spec, "echo "+marker+" >&2\nexit 1\n")
	})
	job, log := rpmTestJob(t, tree)
	res, err := (&RPM{NoDeps: true}).Build(t.Context(), job)
	berr, ok := errors.AsType[*BuildError](err)
	if !ok {
		t.Fatalf("got %v, want a *BuildError\n%s", err, log)
	}
	if berr.Command[0] != "rpmbuild" || !slices.Equal(berr.Command, res.Commands[len(res.Commands)-1]) {
		t.Errorf("BuildError.Command %q, last command %q", berr.Command, res.Commands[len(res.Commands)-1])
	}
	if !strings.Contains(log.String(), marker) || !strings.Contains(log.String(), "%build") {
		t.Errorf("log lacks the failure:\n%s", log)
	}
	if entries, _ := os.ReadDir(job.OutDir); len(entries) > 0 {
		t.Errorf("a failed build left %d files in OutDir", len(entries))
	}
}

func TestRPMBuildTimeout(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "rpmbuild")
	pidFile := filepath.Join(t.TempDir(), "pid")
	tree := rpmTestTree(t, "hello-sh", func(spec string) string {
		return rpmTestEditBuild(t, spec, "sleep 60 &\necho $! > "+pidFile+"\nwait\n")
	})
	job, log := rpmTestJob(t, tree)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := (&RPM{NoDeps: true}).Build(ctx, job)
	took := time.Since(start)
	t.Logf("killed after %v", took.Round(time.Millisecond))
	if _, ok := errors.AsType[*BuildError](err); !ok || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a *BuildError wrapping context.DeadlineExceeded\n%s", err, log)
	}
	// Far below the 60 s sleep: the deadline, not the script, ended it.
	if took > 30*time.Second {
		t.Errorf("Build returned after %v", took)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the %%build script did not start: %v\n%s", err, log)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	// The sleep went with rpmbuild's process group: gone, or a zombie
	// waiting for init.
	for range 500 {
		if err := syscall.Kill(pid, 0); err != nil {
			return
		}
		if stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); strings.Contains(string(stat), ") Z ") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("the %%build script's sleep (pid %d) outlived the build", pid)
}

func TestRPMBuildBadSpec(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "rpmbuild")
	const release = "Release:        1%{?dist}\n"
	for _, c := range []struct {
		name    string
		edit    func(string) string
		test    bool
		files   map[string]string
		inTree  bool // WorkDir inside the tree
		wantErr []string
	}{
		{
			name: "two Release lines", test: true,
			edit:    func(s string) string { return strings.Replace(s, release, "%if 0\nRelease: 7\n%endif\n"+release, 1) },
			wantErr: []string{"hello-sh.spec", "2 Release lines"},
		},
		{
			name: "no Release line", test: true,
			edit:    func(s string) string { return strings.Replace(s, release, "", 1) },
			wantErr: []string{"hello-sh.spec", "no Release line"},
		},
		{
			name: "Release by macro", test: true,
			edit:    func(s string) string { return strings.Replace(s, release, "%global rel 1\nRelease: %{rel}\n", 1) },
			wantErr: []string{"Release line", "%{rel}"},
		},
		{
			name:    "no Release, release build",
			edit:    func(s string) string { return strings.Replace(s, release, "", 1) },
			wantErr: []string{"rpmspec", "Release field must be present"},
		},
		{
			name:    "unparsable",
			edit:    func(s string) string { return strings.Replace(s, "BuildArch:", "%if\nBuildArch:", 1) },
			wantErr: []string{"rpmspec", "line 8", "can't parse"},
		},
		{
			name:    "no Source0",
			edit:    func(s string) string { return strings.Replace(s, "Source0:", "#Source0:", 1) },
			wantErr: []string{"no Source0"},
		},
		{
			name:    "Source1 missing",
			edit:    func(s string) string { return strings.Replace(s, "BuildArch:", "Source1: extra.conf\nBuildArch:", 1) },
			wantErr: []string{"source extra.conf", "not in the tree"},
		},
		{
			name:    "work directory in the tree",
			inTree:  true,
			wantErr: []string{"work directory", "inside the tree"},
		},
		{
			name:    "two specs",
			files:   map[string]string{"other.spec": "Name: other\n"},
			wantErr: []string{"several spec files at the root: hello-sh.spec, other.spec"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tree := rpmTestTree(t, "hello-sh", c.edit)
			for name, data := range c.files {
				if err := os.WriteFile(filepath.Join(tree, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			job, log := rpmTestJob(t, tree)
			if c.test {
				job.Change, job.Patchset = 12345, 2
			}
			if c.inTree {
				job.WorkDir = filepath.Join(tree, "work")
			}
			res, err := (&RPM{NoDeps: true}).Build(t.Context(), job)
			if err == nil {
				t.Fatalf("Build succeeded: %+v", res)
			}
			t.Logf("error: %v", err)
			if _, ok := errors.AsType[*BuildError](err); ok {
				t.Errorf("got a *BuildError for a spec that cannot be built: %v", err)
			}
			for _, w := range c.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q\n%s", err, w, log)
				}
			}
			if slices.ContainsFunc(res.Commands, func(cmd []string) bool { return cmd[0] == "rpmbuild" }) {
				t.Errorf("rpmbuild ran: %q", res.Commands)
			}
		})
	}
}

// rpmTestEditBuild replaces the body of hello-sh's %build with body.
func rpmTestEditBuild(t *testing.T, spec, body string) string {
	t.Helper()
	const old = "%build\n# Nothing to build: hello-sh is a shell script.\n"
	if !strings.Contains(spec, old) {
		t.Fatalf("hello-sh.spec has no %q", old)
	}
	return strings.Replace(spec, old, "%build\n"+body, 1)
}

// rpmTestTree copies the sample name to a new directory, passing its spec
// through edit if edit is not nil, and returns the directory.
func rpmTestTree(t *testing.T, name string, edit func(string) string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("testdata", "src", name))); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		p := filepath.Join(dir, name+".spec")
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		edited := edit(string(data))
		if edited == string(data) {
			t.Fatalf("%s.spec: the edit changed nothing", name)
		}
		if err := os.WriteFile(p, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// rpmTestJob returns a release-build job for the tree and its log.
func rpmTestJob(t *testing.T, tree string) (Job, *rpmTestLog) {
	log := &rpmTestLog{}
	return Job{Dir: tree, OutDir: t.TempDir(), WorkDir: t.TempDir(), Log: log, Env: rpmTestEnv(t)}, log
}

// rpmTestEnv is the whole environment of the builds: PATH, a fresh HOME
// so that no ~/.rpmmacros applies, and a fixed clock.
func rpmTestEnv(t *testing.T) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"LC_ALL=C.UTF-8",
		fmt.Sprintf("SOURCE_DATE_EPOCH=%d", rpmTestEpoch),
	}
}

// rpmTestRun runs a command that must succeed and returns its output.
func rpmTestRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := proc.Command(ctx, name, args...)
	cmd.Env = rpmTestEnv(t)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, stderr.Bytes())
	}
	return stdout.String()
}

// rpmTestHash returns a digest of the tree at dir: names, types, modes,
// contents and symlink targets.
func rpmTestHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%q %v %d\n", rel, info.Mode(), info.ModTime().UnixNano())
		switch {
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%x\n", sha256.Sum256(data))
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "-> %q\n", target)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// rpmTestLog is a build log safe for concurrent writes.
type rpmTestLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *rpmTestLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *rpmTestLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
