package pkgtest

import (
	"os"
	"os/exec"
	"testing"
)

// NeedTool returns the path of the program name, found with [exec.LookPath].
// When it is missing the test is skipped, except under CI=true, where it
// fails: CI images are expected to carry every tool the tests use.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found", name)
		}
		t.Skipf("%s not found", name)
	}
	return p
}
