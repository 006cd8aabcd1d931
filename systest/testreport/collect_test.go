package testreport

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestCollect(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.tap")
	if err := os.WriteFile(secret, []byte("1..1\nok 1 - outside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "tmp"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "tmp/report.tap"), []byte("1..2\nok 1 - a\nnot ok 2 - b\n"), 0o644))
	must(os.Symlink(secret, filepath.Join(dir, "tmp/abs-link.tap")))
	must(os.Symlink("../../../../../../.."+secret, filepath.Join(dir, "tmp/rel-link.tap")))
	must(os.Symlink("report.tap", filepath.Join(dir, "tmp/inside-link.tap")))
	must(syscall.Mkfifo(filepath.Join(dir, "tmp/fifo.tap"), 0o644))
	root, err := os.OpenRoot(dir)
	must(err)
	defer root.Close()

	rep, err := Collect(root, "/tmp/report.tap", TAP)
	must(err)
	if len(rep.Tests) != 2 || rep.Tests[1].Outcome != Fail {
		t.Fatalf("%+v", rep)
	}
	rep, err = Collect(root, "/tmp/inside-link.tap", TAP)
	if err != nil || len(rep.Tests) != 2 {
		t.Fatalf("a link inside the root: %v", err)
	}
	for name, want := range map[string]string{
		"/tmp/abs-link.tap": "escapes",
		"/tmp/rel-link.tap": "escapes",
		"/tmp/fifo.tap":     "not a regular file",
		"/tmp":              "not a regular file",
		"/tmp/none.tap":     "no such file",
		"/":                 "not a file name",
	} {
		_, err := Collect(root, name, TAP)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", name, err, want)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "tmp/bad.xml"), []byte("<html/>"), 0o644))
	if _, err := Collect(root, "/tmp/bad.xml", JUnit); err == nil || !strings.Contains(err.Error(), "collect /tmp/bad.xml: testreport: junit: line 1: root element <html>") {
		t.Errorf("bad report: %v", err)
	}
}
