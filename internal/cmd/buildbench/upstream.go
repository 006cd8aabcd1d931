package main

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// upstream is a project's remote: a git repository made from a sample
// source tree, with one commit that a branch and a Gerrit change ref point
// at.
type upstream struct {
	sample string
	dir    string // the repository, with its work tree
	url    string // file:// URL of dir
	commit string // its one commit
	branch string // the full name of its branch: refs/heads/master

	// What a person building by hand knows of the package before the
	// clock starts.
	debSource, debUpstream string // from the top entry of debian/changelog
	rpmName, rpmVersion    string // from the spec's Name and Version lines
	spec                   string // the spec's file name
}

// newUpstream copies the sample tree src to dir, makes it a git repository
// with one commit (dated epoch) and points refs/changes/45/12345/2 at the
// commit, as builder's tests do.
func newUpstream(src, dir string) (*upstream, error) {
	up := &upstream{sample: filepath.Base(src), dir: dir, url: "file://" + dir}
	if err := up.readSample(src); err != nil {
		return nil, err
	}
	if err := copyTree(src, dir); err != nil {
		return nil, err
	}
	r, err := git.PlainInit(dir, false)
	if err != nil {
		return nil, fmt.Errorf("git init %s: %w", dir, err)
	}
	wt, err := r.Worktree()
	if err != nil {
		return nil, err
	}
	if err := wt.AddGlob("."); err != nil {
		return nil, fmt.Errorf("git add in %s: %w", dir, err)
	}
	sig := &object.Signature{Name: "Sluice Bench", Email: "bench@example.org", When: time.Unix(epoch, 0)}
	h, err := wt.Commit("sample", &git.CommitOptions{Author: sig, Committer: sig})
	if err != nil {
		return nil, fmt.Errorf("git commit in %s: %w", dir, err)
	}
	if err := r.Storer.SetReference(plumbing.NewHashReference(changeRef, h)); err != nil {
		return nil, fmt.Errorf("ref %s in %s: %w", changeRef, dir, err)
	}
	head, err := r.Head()
	if err != nil {
		return nil, fmt.Errorf("HEAD of %s: %w", dir, err)
	}
	up.commit, up.branch = h.String(), head.Name().String()
	return up, nil
}

var (
	// changelogHeader is the first line of debian/changelog:
	// "source (version) distribution; urgency=...".
	changelogHeader = regexp.MustCompile(`^([a-z0-9][a-z0-9.+-]+) \((?:[0-9]+:)?([^() ]+)\) `)
	// specTag is a Name or Version line of a spec with a literal value.
	specTag = regexp.MustCompile(`^(?i:(name|version))[ \t]*:[ \t]*([A-Za-z0-9._+~^-]+)[ \t]*$`)
)

// readSample reads the names and versions that the by-hand builds use.
func (up *upstream) readSample(src string) error {
	head, err := firstLine(filepath.Join(src, "debian", "changelog"))
	if err != nil {
		return err
	}
	m := changelogHeader.FindStringSubmatch(head)
	if m == nil {
		return fmt.Errorf("debian/changelog: %q: not an entry header", head)
	}
	up.debSource, up.debUpstream = m[1], m[2]
	if i := strings.LastIndexByte(up.debUpstream, '-'); i >= 0 {
		up.debUpstream = up.debUpstream[:i]
	}

	specs, err := filepath.Glob(filepath.Join(src, "*.spec"))
	if err != nil {
		return err
	}
	if len(specs) != 1 {
		return fmt.Errorf("%d spec files at the top of %s, want 1", len(specs), src)
	}
	up.spec = filepath.Base(specs[0])
	f, err := os.Open(specs[0])
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() && (up.rpmName == "" || up.rpmVersion == "") {
		if m := specTag.FindStringSubmatch(sc.Text()); m != nil {
			switch strings.ToLower(m[1]) {
			case "name":
				up.rpmName = m[2]
			case "version":
				up.rpmVersion = m[2]
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", up.spec, err)
	}
	if up.rpmName == "" || up.rpmVersion == "" {
		return fmt.Errorf("%s: no literal Name and Version lines", up.spec)
	}
	return nil
}

func firstLine(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return strings.TrimRight(line, "\n"), nil
}

// copyTree copies the tree src to the new directory dst: directories,
// regular files with their permissions, and symbolic links as links.
func copyTree(src, dst string) error {
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
			return copyFile(p, target, info.Mode().Perm())
		}
		return fmt.Errorf("copy %s: not a directory, regular file or symbolic link", p)
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	// OpenFile applied the umask.
	if err := out.Chmod(perm); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
