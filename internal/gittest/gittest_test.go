package gittest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

func TestCommit(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "run"), []byte("#!/bin/sh\n"), 0o755)
	os.Mkdir(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "sub", "f"), []byte("x"), 0o644)
	os.Symlink("sub/f", filepath.Join(src, "link"))
	dst := filepath.Join(t.TempDir(), "repo")
	h, err := Repo{When: time.Unix(1793620800, 0), Refs: []string{"refs/changes/45/12345/2"}}.Commit(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	r, err := git.PlainOpen(dst)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"refs/heads/main", "refs/changes/45/12345/2"} {
		ref, err := r.Reference(plumbing.ReferenceName(name), true)
		if err != nil || ref.Hash().String() != h {
			t.Fatalf("%s: %v, %v; want %s", name, ref, err, h)
		}
	}
	c, _ := r.CommitObject(plumbing.NewHash(h))
	tree, _ := c.Tree()
	for path, mode := range map[string]string{"run": "0100755", "sub/f": "0100644", "link": "0120000"} {
		e, err := tree.FindEntry(path)
		if err != nil || e.Mode.String() != mode {
			t.Errorf("%s: %v %v, want mode %s", path, e, err, mode)
		}
	}
}
