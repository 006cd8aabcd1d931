// Package gittest makes git repositories from directory trees with go-git:
// the upstream repositories that tests, benchmarks and `make run` build
// from.
package gittest

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Repo describes a repository to make from a tree.
type Repo struct {
	Branch string    // the branch the commit is on; default "main"
	When   time.Time // author and committer time; default now
	// Refs are further refs to point at the commit, such as a Gerrit
	// change ref "refs/changes/45/12345/2".
	Refs []string
}

// Commit copies the tree src (directories, regular files with their modes,
// symbolic links) to the new directory dst, makes dst a git repository and
// commits the tree there. It returns the commit's hash.
func (r Repo) Commit(src, dst string) (string, error) {
	if err := CopyTree(src, dst); err != nil {
		return "", err
	}
	branch := r.Branch
	if branch == "" {
		branch = "main"
	}
	repo, err := git.PlainInitWithOptions(dst, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName(branch)},
	})
	if err != nil {
		return "", fmt.Errorf("git init %s: %w", dst, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return "", err
	}
	if err := wt.AddGlob("."); err != nil {
		return "", fmt.Errorf("git add in %s: %w", dst, err)
	}
	when := r.When
	if when.IsZero() {
		when = time.Now()
	}
	sig := &object.Signature{Name: "Sluice Tests", Email: "tests@example.org", When: when}
	h, err := wt.Commit("Import "+filepath.Base(src), &git.CommitOptions{Author: sig, Committer: sig})
	if err != nil {
		return "", fmt.Errorf("git commit in %s: %w", dst, err)
	}
	for _, ref := range r.Refs {
		if err := repo.Storer.SetReference(plumbing.NewHashReference(plumbing.ReferenceName(ref), h)); err != nil {
			return "", fmt.Errorf("ref %s in %s: %w", ref, dst, err)
		}
	}
	return h.String(), nil
}

// CopyTree copies the tree src to dst: directories, regular files with
// their modes, and symbolic links as links.
func CopyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, in); err != nil {
				out.Close()
				return err
			}
			if err := out.Chmod(info.Mode().Perm()); err != nil { // past the umask
				out.Close()
				return err
			}
			return out.Close()
		}
		return fmt.Errorf("copy %s: not a directory, regular file or symbolic link", p)
	})
}
