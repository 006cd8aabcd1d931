package builder

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/internal/proc"
)

// debbEpoch is SOURCE_DATE_EPOCH in the tests' builds: 2026-11-02 12:00:00
// UTC, the date of the samples' changelogs.
const debbEpoch = 1793620800

// debbSample is a sample package under testdata/src, as dpkg-buildpackage
// builds it.
type debbSample struct {
	name, upstream, version string
	archDep                 bool
	debs                    []string // binary packages, main first
}

func debbSamples() []debbSample {
	return []debbSample{
		// dh_strip splits the debug symbols off into -dbgsym.
		{name: "hello-c", upstream: "1.2", version: "1.2-3", archDep: true, debs: []string{"hello-c", "hello-c-dbgsym"}},
		{name: "hello-sh", upstream: "0.9", version: "0.9-1", debs: []string{"hello-sh"}},
	}
}

// debbEnv is the whole environment of a build in these tests.
func debbEnv(t *testing.T) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"LC_ALL=C.UTF-8",
		"SOURCE_DATE_EPOCH=" + strconv.Itoa(debbEpoch),
	}
}

// debbTree copies the sample name into a fresh directory and returns the
// copy, the tree a job builds.
func debbTree(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("testdata", "src", name))); err != nil {
		t.Fatal(err)
	}
	return dir
}

// debbJob returns a job for the tree dir, with empty OutDir and WorkDir
// and the log into log.
func debbJob(t *testing.T, dir string, log io.Writer) Job {
	return Job{Dir: dir, OutDir: t.TempDir(), WorkDir: t.TempDir(), Log: log, Env: debbEnv(t)}
}

// debbWrite replaces the file name under dir.
func debbWrite(t *testing.T, dir, name, data string, perm fs.FileMode) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.WriteFile(p, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
}

// debbSnapshot returns every file under dir, with its mode and content.
func debbSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	snap := make(map[string]string)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		v := info.Mode().String()
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(data)
		}
		snap[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// debbRun runs a tool and returns its standard output.
func debbRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := proc.Command(t.Context(), name, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out)
}

func TestDebBuild(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "dpkg-buildpackage")
	pkgtest.NeedTool(t, "dh")
	hostArch := strings.TrimSpace(debbRun(t, "dpkg", "--print-architecture"))

	modes := []struct {
		name             string
		change, patchset int
		suffix           string
	}{
		{name: "release"},
		{name: "test", change: 12345, patchset: 2, suffix: "~c12345.p2"},
	}
	for _, s := range debbSamples() {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			// Both builds make the orig tarball; a repository holds one
			// file of that name, so they must make the same bytes.
			origs := make([][]byte, len(modes))
			t.Run("builds", func(t *testing.T) {
				for i, m := range modes {
					t.Run(m.name, func(t *testing.T) {
						t.Parallel()
						origs[i] = debbCheckBuild(t, s, m.change, m.patchset, s.version+m.suffix, hostArch)
					})
				}
			})
			if slices.ContainsFunc(origs, func(b []byte) bool { return b == nil }) {
				return
			}
			if !bytes.Equal(origs[0], origs[1]) {
				t.Errorf("the release and the test build made different orig tarballs")
			}
		})
	}
}

// debbCheckBuild builds the sample s for change and patchset, checks that
// its packages carry version and that nothing but OutDir received them,
// and returns the orig tarball.
func debbCheckBuild(t *testing.T, s debbSample, change, patchset int, version, hostArch string) []byte {
	t.Helper()
	dir := debbTree(t, s.name)
	var log bytes.Buffer
	job := debbJob(t, dir, &log)
	job.Change, job.Patchset = change, patchset
	before := debbSnapshot(t, filepath.Dir(dir))

	start := time.Now()
	res, err := Deb{}.Build(t.Context(), job)
	t.Logf("build: %v", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("Build: %v\nlog:\n%s", err, log.Bytes())
	}

	if res.Version != version {
		t.Errorf("Result.Version = %q, want %q", res.Version, version)
	}
	if want := [][]string{{"dpkg-buildpackage", "-us", "-uc"}}; !slices.EqualFunc(res.Commands, want, slices.Equal) {
		t.Errorf("Result.Commands = %q, want %q", res.Commands, want)
	}
	// Result.Outputs is OutDir, sorted.
	entries, err := os.ReadDir(job.OutDir)
	if err != nil {
		t.Fatal(err)
	}
	var inOut []string
	for _, e := range entries {
		inOut = append(inOut, e.Name())
	}
	if !slices.Equal(res.Outputs, inOut) {
		t.Errorf("Result.Outputs = %q, OutDir holds %q", res.Outputs, inOut)
	}

	arch := "all"
	if s.archDep {
		arch = hostArch
	}
	stem := s.name + "_" + version
	for _, want := range []string{
		stem + ".dsc",
		s.name + "_" + s.upstream + ".orig.tar.gz",
		stem + ".debian.tar.xz",
		stem + "_" + hostArch + ".buildinfo",
		stem + "_" + hostArch + ".changes",
	} {
		if !slices.Contains(res.Outputs, want) {
			t.Errorf("outputs %q lack %s", res.Outputs, want)
		}
	}
	// Ubuntu names debug packages .ddeb.
	var debs []string
	for _, o := range res.Outputs {
		if strings.HasSuffix(o, ".deb") || strings.HasSuffix(o, ".ddeb") {
			debs = append(debs, o)
		}
	}
	if len(debs) != len(s.debs) {
		t.Errorf("binary packages %q, want %d: %q", debs, len(s.debs), s.debs)
	}
	for _, deb := range debs {
		got := debbRun(t, "dpkg-deb", "--field", filepath.Join(job.OutDir, deb), "Package", "Version", "Architecture")
		name, _, _ := strings.Cut(deb, "_")
		if want := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: %s\n", name, version, arch); got != want {
			t.Errorf("%s: dpkg-deb --field:\n%swant:\n%s", deb, got, want)
		}
		if !slices.Contains(s.debs, name) {
			t.Errorf("%s: package %s, want one of %q", deb, name, s.debs)
		}
	}

	changes, err := os.ReadFile(filepath.Join(job.OutDir, stem+"_"+hostArch+".changes"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nVersion: " + version + "\n", "\nDistribution: unstable\n"} {
		if !bytes.Contains(changes, []byte(want)) {
			t.Errorf(".changes lacks %q:\n%s", want, changes)
		}
	}
	testLine := fmt.Sprintf("sluice test build of change %d patchset %d.", change, patchset)
	if got := bytes.Contains(changes, []byte(testLine)); got != (change != 0) {
		t.Errorf(".changes holds %q: %v, want %v:\n%s", testLine, got, change != 0, changes)
	}

	// The tree and its parent are as they were, and the outputs are
	// nowhere but in OutDir.
	if after := debbSnapshot(t, filepath.Dir(dir)); !maps.Equal(before, after) {
		t.Errorf("the tree's parent changed:\nbefore %q\nafter  %q", slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
	}
	err = filepath.WalkDir(job.WorkDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && debIsOutput(d.Name()) && filepath.Dir(p) == filepath.Join(job.WorkDir, debParent) {
			t.Errorf("output left in the work directory: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	orig, err := os.ReadFile(filepath.Join(job.OutDir, s.name+"_"+s.upstream+".orig.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	return orig
}

func TestDebMissingBuildDeps(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "dpkg-checkbuilddeps")
	pkgtest.NeedTool(t, "dh")
	for _, s := range debbSamples() {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			got, err := Deb{}.MissingBuildDeps(t.Context(), debbJob(t, debbTree(t, s.name), io.Discard))
			if err != nil || got != nil {
				t.Errorf("MissingBuildDeps = %q, %v; want nil, nil", got, err)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		pkgtest.NeedTool(t, "dpkg-buildpackage")
		dir := debbTree(t, "hello-sh")
		control, err := os.ReadFile(filepath.Join(dir, debControl))
		if err != nil {
			t.Fatal(err)
		}
		const dep = "sluice-no-such-package (>= 1)"
		control = bytes.Replace(control, []byte("Build-Depends: debhelper-compat (= 13)\n"),
			[]byte("Build-Depends: debhelper-compat (= 13), "+dep+",\n sluice-no-such-a | sluice-no-such-b\n"), 1)
		debbWrite(t, dir, debControl, string(control), 0o644)
		var log bytes.Buffer
		job := debbJob(t, dir, &log)
		got, err := Deb{}.MissingBuildDeps(t.Context(), job)
		if want := []string{dep, "sluice-no-such-a | sluice-no-such-b"}; err != nil || !slices.Equal(got, want) {
			t.Errorf("MissingBuildDeps = %q, %v; want %q", got, err, want)
		}
		// Build, when asked anyway, fails in dpkg-buildpackage's own check.
		_, err = Deb{}.Build(t.Context(), job)
		if _, ok := errors.AsType[*BuildError](err); !ok {
			t.Errorf("Build: %v, want a *BuildError", err)
		}
		if !strings.Contains(log.String(), dep) {
			t.Errorf("the log does not name %s:\n%s", dep, log.Bytes())
		}
	})
}

func TestDebBuildFails(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "dpkg-buildpackage")
	dir := debbTree(t, "hello-sh")
	debbWrite(t, dir, "debian/rules", "#!/usr/bin/make -f\n"+
		"clean:\n\ttrue\n"+
		"build build-arch build-indep binary binary-arch binary-indep:\n"+
		"\techo 'sluice-test: the build breaks here' >&2; exit 1\n", 0o755)
	var log bytes.Buffer
	job := debbJob(t, dir, &log)
	job.Change, job.Patchset = 12345, 2
	res, err := Deb{}.Build(t.Context(), job)
	berr, ok := errors.AsType[*BuildError](err)
	if !ok {
		t.Fatalf("Build: %v, want a *BuildError", err)
	}
	if want := []string{"dpkg-buildpackage", "-us", "-uc"}; !slices.Equal(berr.Command, want) {
		t.Errorf("BuildError.Command = %q, want %q", berr.Command, want)
	}
	if _, ok := errors.AsType[*exec.ExitError](err); !ok || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Build: %v, want an exit status", err)
	}
	if !strings.Contains(log.String(), "sluice-test: the build breaks here") {
		t.Errorf("the log lacks the failure:\n%s", log.Bytes())
	}
	if len(res.Commands) != 1 || res.Version != "0.9-1~c12345.p2" {
		t.Errorf("Result = %+v, want the command run and the version", res)
	}
	if entries, _ := os.ReadDir(job.OutDir); len(entries) != 0 {
		t.Errorf("OutDir holds %d files after a failure", len(entries))
	}
}

func TestDebBuildTimeout(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "dpkg-buildpackage")
	dir := debbTree(t, "hello-sh")
	// dpkg-buildpackage runs debian/rules clean first. The shell writes
	// its pid and process group, then becomes the sleep.
	debbWrite(t, dir, "debian/rules", "#!/usr/bin/make -f\n"+
		"clean:\n"+
		"\techo $$$$ $$(cut -d' ' -f5 /proc/$$$$/stat) > \"$$SLUICE_TEST_PIDFILE\"; exec sleep 60\n"+
		"build build-arch build-indep binary binary-arch binary-indep:\n\ttrue\n", 0o755)
	pidFile := filepath.Join(t.TempDir(), "pid")
	var log bytes.Buffer
	job := debbJob(t, dir, &log)
	job.Env = append(job.Env, "SLUICE_TEST_PIDFILE="+pidFile)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := Deb{}.Build(ctx, job)
	elapsed := time.Since(start)
	t.Logf("build: %v", elapsed.Round(time.Millisecond))
	if _, ok := errors.AsType[*BuildError](err); !ok || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Build: %v, want a *BuildError wrapping context.DeadlineExceeded", err)
	}
	// Far less than the sleep: the kill, not the sleep, ended it.
	if elapsed > 15*time.Second {
		t.Errorf("Build returned after %v", elapsed)
	}

	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the sleep did not start before the deadline: %v\nlog:\n%s", err, log.Bytes())
	}
	var pid, pgid int
	if _, err := fmt.Sscan(string(data), &pid, &pgid); err != nil {
		t.Fatalf("pid file %q: %v", data, err)
	}
	if pgid == syscall.Getpgrp() {
		t.Fatalf("the build ran in the test's process group %d", pgid)
	}
	// SIGKILL went to the whole group as the context ended; the kernel
	// ends its members as it schedules them.
	var alive []int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if alive = debbGroupAlive(t, pgid); len(alive) == 0 {
			return
		}
	}
	t.Errorf("processes %v of the build's group %d (sleep %d) outlived it", alive, pgid, pid)
}

// debbGroupAlive returns the processes of the process group pgid that are
// neither gone nor zombies.
func debbGroupAlive(t *testing.T, pgid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var alive []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone
		}
		// "pid (comm) state ppid pgrp ...": comm may hold anything.
		i := bytes.LastIndexByte(stat, ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" || f[2] != strconv.Itoa(pgid) {
			continue
		}
		alive = append(alive, pid)
	}
	return alive
}

// TestDebBuildRejects gives Build trees it must refuse before it runs
// anything.
func TestDebBuildRejects(t *testing.T) {
	t.Parallel()
	const good = "hello-c (1.2-3) unstable; urgency=medium\n\n  * Sample.\n\n -- A B <a@example.org>  Mon, 02 Nov 2026 12:00:00 +0000\n"
	for _, tc := range []struct {
		name             string
		changelog        string
		format           string
		change, patchset int
		inError          string
	}{
		{name: "bad header", changelog: "hello-c 1.2-3 unstable; urgency=medium\n", inError: "debian/changelog line 1"},
		{name: "bad trailer", changelog: strings.Replace(good, "org>  Mon", "org> Mon", 1), inError: "debian/changelog line 5"},
		{name: "unsafe version", changelog: strings.Replace(good, "1.2-3", "1.2/../x-3", 1), inError: `version "1.2/../x-3"`},
		{name: "git format", changelog: good, format: "3.0 (git)\n", inError: `source format "3.0 (git)"`},
		{name: "patchset without change", changelog: good, patchset: 2, inError: "change 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := debbTree(t, "hello-c")
			debbWrite(t, dir, debChangelog, tc.changelog, 0o644)
			if tc.format != "" {
				debbWrite(t, dir, debFormat, tc.format, 0o644)
			}
			job := debbJob(t, dir, io.Discard)
			job.Change, job.Patchset = tc.change, tc.patchset
			res, err := Deb{}.Build(t.Context(), job)
			if err == nil || !strings.Contains(err.Error(), tc.inError) {
				t.Fatalf("Build: %v, want an error naming %s", err, tc.inError)
			}
			if _, ok := errors.AsType[*BuildError](err); ok {
				t.Errorf("Build: %v is a *BuildError, but nothing ran", err)
			}
			if len(res.Commands) != 0 {
				t.Errorf("Build ran %q", res.Commands)
			}
			if entries, _ := os.ReadDir(job.WorkDir); len(entries) != 0 {
				t.Errorf("Build wrote into WorkDir")
			}
		})
	}
}

func TestDebDetect(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  bool
	}{
		{name: "sample", setup: func(*testing.T, string) {}, want: true},
		{name: "no changelog", setup: func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "debian", "changelog")); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "control a directory", setup: func(t *testing.T, dir string) {
			p := filepath.Join(dir, "debian", "control")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "debian a symlink", setup: func(t *testing.T, dir string) {
			if err := os.Rename(filepath.Join(dir, "debian"), filepath.Join(dir, "pkg")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("pkg", filepath.Join(dir, "debian")); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "changelog a symlink", setup: func(t *testing.T, dir string) {
			p := filepath.Join(dir, "debian", "changelog")
			if err := os.Rename(p, filepath.Join(dir, "changelog")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("../changelog", p); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := debbTree(t, "hello-sh")
			tc.setup(t, dir)
			if got := (Deb{}).Detect(dir); got != tc.want {
				t.Errorf("Detect = %v, want %v", got, tc.want)
			}
		})
	}
	if (Deb{}).Detect(t.TempDir()) {
		t.Errorf("Detect of an empty directory = true")
	}
}

func TestDebParseChangelog(t *testing.T) {
	t.Parallel()
	const trailer = " -- Sluice Developers <sluice-devel@example.org>  Mon, 02 Nov 2026 12:00:00 +0000\n"
	date := time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)
	good := []struct {
		name, text string
		want       debEntry
	}{
		{
			name: "sample",
			text: "hello-c (1.2-3) unstable; urgency=medium\n\n  * Sample.\n\n" + trailer + "\nhello-c (1.2-2) unstable; urgency=low\n",
			want: debEntry{Source: "hello-c", Version: "1.2-3", Distribution: "unstable", Maintainer: "Sluice Developers <sluice-devel@example.org>", Date: date},
		},
		{
			name: "epoch, two distributions, keywords, one-digit day",
			text: "lib.x+y (2:1.0~rc1+dfsg-0ubuntu1) noble noble-security; urgency=high, binary-only=yes\n\n  * Fix.\n    - More.\n\n -- Jane Doe <jane@example.org>  Thu, 5 Mar 2026 08:09:10 +0100\n",
			want: debEntry{Source: "lib.x+y", Version: "2:1.0~rc1+dfsg-0ubuntu1", Distribution: "noble noble-security", Maintainer: "Jane Doe <jane@example.org>",
				Date: time.Date(2026, 3, 5, 7, 9, 10, 0, time.UTC)},
		},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := debParseChangelog([]byte(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			if !got.Date.Equal(tc.want.Date) {
				t.Errorf("Date = %v, want %v", got.Date, tc.want.Date)
			}
			got.Date = tc.want.Date
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}

	const header = "hello-c (1.2-3) unstable; urgency=medium\n"
	bad := []struct {
		name, text, inError string
	}{
		{"empty", "", "debian/changelog: empty"},
		{"blank first line", "\n" + header, "line 1"},
		{"no parentheses", "hello-c 1.2-3 unstable; urgency=medium\n", "line 1"},
		{"no urgency", "hello-c (1.2-3) unstable; priority=high\n", "line 1: .*no urgency"},
		{"no distribution", "hello-c (1.2-3); urgency=medium\n", "line 1"},
		{"capital source", "Hello (1.2-3) unstable; urgency=medium\n", `line 1: .*source name "Hello"`},
		{"empty revision", "hello-c (1.2-) unstable; urgency=medium\n", `line 1: .*version "1.2-"`},
		{"bad epoch", "hello-c (x:1.2-3) unstable; urgency=medium\n", `line 1: .*version "x:1.2-3"`},
		{"no trailer", header + "\n  * Change.\n\n", "line 4: end of file before the trailer"},
		{"header before trailer", header + "\n  * Change.\n\nhello-c (1.2-2) unstable; urgency=medium\n", "line 5: .*neither a change line"},
		{"one space before date", header + "\n -- A B <a@example.org> Mon, 02 Nov 2026 12:00:00 +0000\n", "line 3: .*not an entry trailer"},
		{"no email", header + "\n -- A B  Mon, 02 Nov 2026 12:00:00 +0000\n", "line 3: .*not an entry trailer"},
		{"bad date", header + "\n -- A B <a@example.org>  2026-11-02 12:00:00\n", `line 3: .*date "2026-11-02 12:00:00"`},
		{"no zone", header + "\n -- A B <a@example.org>  Mon, 02 Nov 2026 12:00:00\n", "line 3: .*date"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := debParseChangelog([]byte(tc.text))
			if err == nil {
				t.Fatalf("no error")
			}
			if !strings.HasPrefix(err.Error(), "builder: debian/changelog") || !regexpMatch(t, tc.inError, err.Error()) {
				t.Errorf("error %q does not match %q", err, tc.inError)
			}
		})
	}
}

func regexpMatch(t *testing.T, re, s string) bool {
	t.Helper()
	ok, err := regexp.MatchString(re, s)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestDebTestEntry(t *testing.T) {
	t.Parallel()
	e := debEntry{Source: "hello-c", Version: "1.2-3", Distribution: "unstable", Maintainer: "Sluice Developers <sluice-devel@example.org>"}
	got := string(e.testEntry("1.2-3~c12345.p2", 12345, 2, time.Unix(debbEpoch, 0).In(time.FixedZone("CET", 3600))))
	const want = "hello-c (1.2-3~c12345.p2) unstable; urgency=medium\n" +
		"\n" +
		"  * sluice test build of change 12345 patchset 2.\n" +
		"\n" +
		" -- Sluice Developers <sluice-devel@example.org>  Mon, 02 Nov 2026 12:00:00 +0000\n" +
		"\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	// What Build writes, Build reads.
	parsed, err := debParseChangelog([]byte(got))
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Version != "1.2-3~c12345.p2" || parsed.Maintainer != e.Maintainer || !parsed.Date.Equal(time.Unix(debbEpoch, 0)) {
		t.Errorf("parsed back: %+v", parsed)
	}
}

func TestDebSplitDeps(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{in: "", want: nil},
		{in: "debhelper-compat (= 13)", want: []string{"debhelper-compat (= 13)"}},
		{in: "sluice-no-such-package (>= 1) foo | bar baz:native", want: []string{"sluice-no-such-package (>= 1)", "foo | bar", "baz:native"}},
		{in: "a (>= 1) | b (<< 2) [amd64] <!nocheck> c", want: []string{"a (>= 1) | b (<< 2) [amd64] <!nocheck>", "c"}},
		{in: "a [amd64 arm64] <!nocheck !cross> b", want: []string{"a [amd64 arm64] <!nocheck !cross>", "b"}},
		{in: "a (>= 1", err: true},
		{in: "a |", err: true},
		{in: "| a", err: true},
		{in: "(= 1)", err: true},
	} {
		got, err := debSplitDeps(tc.in)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("debSplitDeps(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}

	unmet, conflicts, err := debParseCheckBuildDeps("dpkg-checkbuilddeps: error: Unmet build dependencies: x (>= 1) y | z\n" +
		"dpkg-checkbuilddeps: error: build conflicts: debhelper\n")
	if err != nil || !slices.Equal(unmet, []string{"x (>= 1)", "y | z"}) || !slices.Equal(conflicts, []string{"debhelper"}) {
		t.Errorf("debParseCheckBuildDeps = %q, %q, %v", unmet, conflicts, err)
	}
}

func TestDebWriteOrig(t *testing.T) {
	t.Parallel()
	tree := debbTree(t, "hello-sh")
	if err := os.Symlink("hello-sh", filepath.Join(tree, "link")); err != nil {
		t.Fatal(err)
	}
	// Modes other than the execute bits, and times, do not count.
	if err := os.Chmod(filepath.Join(tree, "LICENSE"), 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.Unix(debbEpoch, 0)
	var tarballs [][]byte
	for range 2 {
		dst := filepath.Join(t.TempDir(), "orig.tar.gz")
		if err := debWriteOrig(tree, "hello-sh-0.9", mtime, dst); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		tarballs = append(tarballs, data)
		if err := os.Chtimes(filepath.Join(tree, "hello-sh"), time.Now(), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(tarballs[0], tarballs[1]) {
		t.Errorf("two tarballs of one tree differ")
	}

	zr, err := gzip.NewReader(bytes.NewReader(tarballs[0]))
	if err != nil {
		t.Fatal(err)
	}
	if !zr.ModTime.Equal(mtime) {
		t.Errorf("gzip mtime %v, want %v", zr.ModTime, mtime)
	}
	tr := tar.NewReader(zr)
	var got []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "root" || h.Gname != "root" || !h.ModTime.Equal(mtime) {
			t.Errorf("%s: owner %d:%d (%s:%s), mtime %v", h.Name, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime)
		}
		got = append(got, fmt.Sprintf("%s %o %s", h.Name, h.Mode, h.Linkname))
	}
	want := []string{
		"hello-sh-0.9/ 755 ",
		"hello-sh-0.9/LICENSE 644 ",
		"hello-sh-0.9/hello-sh 755 ",
		"hello-sh-0.9/hello-sh.spec 644 ",
		"hello-sh-0.9/link 777 hello-sh",
	}
	if !slices.Equal(got, want) {
		t.Errorf("entries:\n%q\nwant:\n%q", got, want)
	}
}

func TestDebOutputs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"hello-c_1.2-3_amd64.deb", true},
		{"hello-c-dbgsym_1.2-3_amd64.ddeb", true},
		{"hello-c_1.2-3.dsc", true},
		{"hello-c_1.2.orig.tar.gz", true},
		{"hello-c_1.2-3.debian.tar.xz", true},
		{"hello-c_1.2-3_amd64.buildinfo", true},
		{"hello-c_1.2-3_amd64.changes", true},
		{"hello-c_1.2-3.diff.gz", true},
		{"hello-c_1.2.orig.tar.gz.asc", false},
		{"hello-c-1.2", false},
		{"build.log", false},
	} {
		if got := debIsOutput(tc.name); got != tc.want {
			t.Errorf("debIsOutput(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, name := range []string{".hidden.deb", "a..b.deb", "a b.deb", "-x.deb"} {
		parent := t.TempDir()
		debbWrite(t, parent, name, "", 0o644)
		if _, err := debMoveOutputs(parent, t.TempDir()); err == nil {
			t.Errorf("debMoveOutputs took %q", name)
		}
	}
}
