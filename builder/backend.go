package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Job is one build of one format from a checked-out tree.
type Job struct {
	// Dir is the checked-out tree. Back-ends only read it: the formats
	// of one change build from one tree.
	Dir string
	// OutDir is an empty directory that receives the outputs and nothing
	// else.
	OutDir string
	// WorkDir is an empty scratch directory of the back-end's own
	// (rpmbuild's _topdir, say).
	WorkDir string
	// Change and Patchset name the change a test build is for; both 0 for
	// a release build, which keeps the version the sources give.
	Change, Patchset int
	// Log receives the build's output as it is written.
	Log io.Writer
	// Env is the whole environment of the build's commands.
	Env []string
	// DepsChecked says MissingBuildDeps found nothing missing just
	// before, so the build tool need not check again.
	DepsChecked bool
}

// Result is what a back-end ran and made.
type Result struct {
	// Commands are the command lines run, in order, as argument lists.
	Commands [][]string `json:"commands"`
	// Outputs are the files written into OutDir, as names relative to it.
	Outputs []string `json:"outputs"`
	// Version is the version the packages carry (a test version for a
	// test build).
	Version string `json:"version"`
}

// Backend builds packages of one format from a source tree. Chroot
// back-ends (sbuild, mock) can come later behind the same interface.
type Backend interface {
	// Name names the back-end in records: "dpkg-buildpackage", "rpmbuild".
	Name() string
	// Format is "deb" or "rpm".
	Format() string
	// Detect reports whether the tree at dir has this format's layout.
	Detect(dir string) bool
	// MissingBuildDeps lists the build dependencies of the tree that the
	// build host does not satisfy. It never installs anything.
	MissingBuildDeps(ctx context.Context, job Job) ([]string, error)
	// Build builds the packages of job. A build that ran and failed
	// returns a *BuildError.
	Build(ctx context.Context, job Job) (Result, error)
}

// BuildError is a build that ran and failed: a command exited non-zero or
// was killed (time-out, cancellation).
type BuildError struct {
	Command []string
	Err     error
}

func (e *BuildError) Error() string {
	return fmt.Sprintf("build: %s: %v", e.Command[0], e.Err)
}

func (e *BuildError) Unwrap() error { return e.Err }

// ErrMissingBuildDeps is returned, wrapped with the list, when the build
// host lacks build dependencies.
var ErrMissingBuildDeps = errors.New("missing build dependencies")
