package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"

	"github.com/sluice-ci/sluice/internal/gittest"
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
	h, err := (gittest.Repo{When: time.Unix(epoch, 0), Refs: []string{changeRef}}).Commit(src, dir)
	if err != nil {
		return nil, err
	}
	r, err := git.PlainOpen(dir)
	if err != nil {
		return nil, err
	}
	head, err := r.Head()
	if err != nil {
		return nil, fmt.Errorf("HEAD of %s: %w", dir, err)
	}
	up.commit, up.branch = h, head.Name().String()
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
