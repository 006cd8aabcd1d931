package testreport

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/pkgtest"
)

const pythonTests = `import time, unittest

class Sample(unittest.TestCase):
    def test_pass(self):
        time.sleep(0.02)

    def test_fail(self):
        self.assertEqual(1, 2)

    @unittest.skip("no network here")
    def test_skip(self):
        pass

    def test_error(self):
        raise RuntimeError("setup broke")

    @unittest.expectedFailure
    def test_xfail(self):
        self.assertTrue(False)
`

// TestSubunitFromPython runs a Python unittest module under subunit.run
// (Debian's python3-subunit, pulled in by subunit) and parses the version
// 2 stream it writes.
func TestSubunitFromPython(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "subunit-1to2") // the package that brings python3-subunit
	// Debian's interpreter, where python3-subunit is, not whatever python3
	// comes first in PATH.
	python := pkgtest.NeedTool(t, "/usr/bin/python3")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "test_sample.py"), []byte(pythonTests), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), python, "-m", "subunit.run", "test_sample")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(stderr.String(), "No module named") {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s has no subunit module", python)
			}
			t.Skipf("%s has no subunit module (python3-subunit)", python)
		}
		t.Fatalf("subunit.run: %v: %s", err, stderr.Bytes())
	}
	rep, err := ParseSubunit(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	const p = "test_sample.Sample."
	checkOutcomes(t, "subunit.run", rep, map[string]Outcome{
		p + "test_pass": Pass, p + "test_fail": Fail, p + "test_skip": Skip, p + "test_error": Fail, p + "test_xfail": Pass,
	})
	byName := map[string]Result{}
	for _, r := range rep.Tests {
		byName[strings.TrimPrefix(r.Name, p)] = r
	}
	if r := byName["test_pass"]; r.Duration < 20*time.Millisecond || r.Duration > time.Minute {
		t.Errorf("test_pass lasted %v, want the 20ms it slept", r.Duration)
	}
	if r := byName["test_fail"]; r.Message != "AssertionError: 1 != 2" || !strings.Contains(r.Details, "Traceback") {
		t.Errorf("test_fail: %q\n%s", r.Message, r.Details)
	}
	if r := byName["test_error"]; r.Message != "RuntimeError: setup broke" {
		t.Errorf("test_error: %q", r.Message)
	}
	if r := byName["test_skip"]; r.Message != "no network here" {
		t.Errorf("test_skip: %q", r.Message)
	}
}

// TestTAPFromPerl parses what Perl's Test::More writes.
func TestTAPFromPerl(t *testing.T) {
	t.Parallel()
	perl := pkgtest.NeedTool(t, "perl")
	script := `use Test::More tests => 4;
ok(1, "first");
is(1, 2, "second");
SKIP: { skip "no net", 1; ok(0, "third") }
TODO: { local $TODO = "not yet"; ok(0, "fourth") }
`
	cmd := exec.CommandContext(t.Context(), perl, "-e", script)
	out, err := cmd.Output() // exits 1: one test failed
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	rep, err := ParseTAP(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	checkOutcomes(t, "Test::More", rep, map[string]Outcome{"first": Pass, "second": Fail, "test 3": Skip, "fourth": Skip})
	if len(rep.Problems) != 0 {
		t.Errorf("problems %v in\n%s", rep.Problems, out)
	}
	if m := rep.Tests[3].Message; m != "todo: not yet" {
		t.Errorf("todo message %q", m)
	}
}
