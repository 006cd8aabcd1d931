package builder

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/pkgtest"
)

func TestParseLinters(t *testing.T) {
	t.Parallel()
	lintian := []byte("E: hello-sh: no-copyright-file\nW: hello-sh: no-manual-page [usr/bin/hello-sh]\nE: hello-sh source: bad-distribution-in-changes-file x\nN: a note\nI: hello-sh: info-tag\nrunning with root privileges is not recommended!\n")
	if e, w := ParseLintian(lintian); e != 2 || w != 1 {
		t.Errorf("lintian: %d errors, %d warnings", e, w)
	}
	rpmlint := []byte("hello-sh.noarch: E: no-packager-tag\n 1 packages and 0 specfiles checked; 4 errors, 4 warnings, 4 badness; has taken 0.3 s \n")
	if e, w, ok := ParseRPMLint(rpmlint); !ok || e != 4 || w != 4 {
		t.Errorf("rpmlint: %d errors, %d warnings, %v", e, w, ok)
	}
	if _, _, ok := ParseRPMLint([]byte("Traceback (most recent call last):\n")); ok {
		t.Error("rpmlint: a summary in a traceback")
	}
}

func FuzzParseLinters(f *testing.F) {
	f.Add([]byte("E: p: tag\nW: p source: other [x]\n"))
	f.Add([]byte(" 2 packages and 1 specfile checked; 0 errors, 1 warning, 0 badness"))
	f.Fuzz(func(t *testing.T, out []byte) {
		if e, w := ParseLintian(out); e < 0 || w < 0 || e+w > len(out) {
			t.Fatalf("lintian counts %d, %d of %d bytes", e, w, len(out))
		}
		ParseRPMLint(out)
	})
}

// TestLintRealTools runs lintian and rpmlint on the packages a build of
// the hello-sh sample makes.
func TestLintRealTools(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "lintian")
	pkgtest.NeedTool(t, "rpmlint")
	dir := t.TempDir()
	deb, err := (pkgtest.Deb{Name: "hello", Version: "1.0-1", Arch: "all"}).WriteFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C.UTF-8", "HOME=" + dir}
	rep, err := Lint(t.Context(), "lintian", []string{deb}, env, 5*time.Minute)
	if err != nil {
		t.Fatalf("lintian: %v\n%s", err, rep.Output)
	}
	if rep.Errors == 0 && rep.Warnings == 0 {
		t.Errorf("lintian found nothing in a package without copyright or changelog:\n%s", rep.Output)
	}
	if _, err := Lint(t.Context(), "lintian", []string{filepath.Join(dir, "missing.deb")}, env, time.Minute); err == nil {
		t.Error("lintian on a missing file: no error")
	}
	if _, err := Lint(t.Context(), "rpmlint", []string{filepath.Join(dir, "missing.rpm")}, env, time.Minute); err == nil {
		t.Error("rpmlint on a missing file: no error")
	}
	if _, err := Lint(t.Context(), "sh", []string{deb}, env, time.Minute); err == nil {
		t.Error("an unknown linter ran")
	}
}
