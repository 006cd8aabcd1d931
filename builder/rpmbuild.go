package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-ci/sluice/internal/proc"
)

var _ Backend = (*RPM)(nil)

// RPM builds binary and source RPMs with rpmbuild, straight on the host,
// from a tree that holds a spec file: exactly one *.spec at the root or,
// failing that, exactly one in rpm/.
//
// The tree itself is the source: rpmbuild gets it as Source0, a gzipped
// tar made reproducibly from the whole tree (all but a top-level .git),
// whose names start with NAME-VERSION/ as a plain %setup or %autosetup
// expects; a spec that unpacks it with %setup -n OTHER does not build.
// Other sources and patches the spec names (Source1, Patch0...) are taken
// from the spec's own directory. A test build (Job.Change > 0) rewrites the
// spec's Release line, in a copy, to [RPMTestRelease].
//
// Build dependencies are checked against the host's rpmdb. On a host that
// is not RPM-based (Debian, Ubuntu) the rpmdb does not describe what is
// installed, so the check is only as good as AssumeInstalled, the names the
// site declares the host provides, and NoDeps must be set for rpmbuild not
// to refuse the build. A site with Fedora or RHEL builders wants the mock
// back-end instead, which builds in a chroot from the spec's own
// dependencies. Nothing is ever installed.
type RPM struct {
	// AssumeInstalled are build dependency names ("gcc", "make") taken as
	// provided by the host whatever the rpmdb says. A BuildRequires is
	// matched by its name alone: "make >= 4" is met by "make".
	AssumeInstalled []string
	// NoDeps passes --nodeps to rpmbuild. Set it when the rpmdb does not
	// describe the host (a Debian host); then only MissingBuildDeps
	// checks build dependencies.
	NoDeps bool
}

// Name returns "rpmbuild".
func (*RPM) Name() string { return "rpmbuild" }

// Format returns "rpm".
func (*RPM) Format() string { return "rpm" }

// Detect reports whether dir holds exactly one spec file where RPM looks
// for one. Build says what is wrong with a tree Detect refuses.
func (*RPM) Detect(dir string) bool {
	_, err := rpmFindSpec(dir)
	return err == nil
}

// MissingBuildDeps lists, sorted, the BuildRequires of the spec, as
// rpmspec gives them, that are neither in AssumeInstalled nor provided by a package in the
// host's rpmdb (rpm -q --whatprovides). Dynamic build dependencies
// (%generate_buildrequires) are not seen.
func (r *RPM) MissingBuildDeps(ctx context.Context, job Job) ([]string, error) {
	spec, err := rpmFindSpec(job.Dir)
	if err != nil {
		return nil, fmt.Errorf("rpmbuild %s: %w", job.Dir, err)
	}
	dir, err := filepath.Abs(job.Dir)
	if err != nil {
		return nil, fmt.Errorf("rpmbuild %s: %w", spec, err)
	}
	run := newRPMRunner(job)
	out, err := run.output(ctx, "rpmspec", "-q", "--buildrequires", filepath.Join(dir, spec))
	if err != nil {
		return nil, fmt.Errorf("rpmbuild %s: build dependencies: %w", spec, err)
	}
	var missing []string
	for line := range strings.Lines(out) {
		dep := strings.TrimSpace(line)
		if dep == "" {
			continue
		}
		name, _, _ := strings.Cut(dep, " ")
		if slices.Contains(r.AssumeInstalled, name) || slices.Contains(missing, dep) {
			continue
		}
		ok, err := run.provided(ctx, dep)
		if err != nil {
			return nil, fmt.Errorf("rpmbuild %s: build dependency %q: %w", spec, dep, err)
		}
		if !ok {
			missing = append(missing, dep)
		}
	}
	slices.Sort(missing)
	return missing, nil
}

// Build builds the source RPM and the binary RPMs of job.Dir into
// job.OutDir, with WorkDir/rpmbuild as rpmbuild's _topdir. The Result it
// returns with an error holds the commands that ran.
func (r *RPM) Build(ctx context.Context, job Job) (Result, error) {
	run := newRPMRunner(job)
	res, err := r.build(ctx, job, run)
	res.Commands = run.cmds
	return res, err
}

func (r *RPM) build(ctx context.Context, job Job, run *rpmRunner) (Result, error) {
	spec, err := rpmFindSpec(job.Dir)
	if err != nil {
		return Result{}, fmt.Errorf("rpmbuild %s: %w", job.Dir, err)
	}
	work, err := filepath.Abs(job.WorkDir)
	if err != nil {
		return Result{}, fmt.Errorf("rpmbuild %s: work directory: %w", spec, err)
	}
	// The directory becomes the value of macros, which expand '%' and end
	// at a newline, and reaches build scripts that may not quote it.
	if !rpmSafePath.MatchString(work) {
		return Result{}, fmt.Errorf("rpmbuild %s: work directory %q: not made of [A-Za-z0-9/._+,=@~:-]", spec, work)
	}
	// Source0 is made from the whole tree, into the work directory.
	if dir, err := filepath.Abs(job.Dir); err != nil {
		return Result{}, fmt.Errorf("rpmbuild %s: %w", spec, err)
	} else if rel, err := filepath.Rel(dir, work); err == nil && filepath.IsLocal(rel) {
		return Result{}, fmt.Errorf("rpmbuild %s: work directory %s: inside the tree %s", spec, work, dir)
	}
	mtime, err := rpmSourceDateEpoch(job.Env)
	if err != nil {
		return Result{}, fmt.Errorf("rpmbuild %s: %w", spec, err)
	}
	tree, err := os.OpenRoot(job.Dir)
	if err != nil {
		return Result{}, fmt.Errorf("rpmbuild %s: %w", spec, err)
	}
	defer tree.Close()

	text, err := rpmReadFile(tree, spec)
	if err != nil {
		return Result{}, fmt.Errorf("rpmbuild %s: %w", spec, err)
	}
	suffix := ""
	if job.Change != 0 || job.Patchset != 0 {
		if suffix, err = testSuffix(job.Change, job.Patchset); err != nil {
			return Result{}, fmt.Errorf("rpmbuild %s: %w", spec, err)
		}
		if text, err = rpmRewriteRelease(text, job.Change, job.Patchset); err != nil {
			return Result{}, fmt.Errorf("rpmbuild %s: %w", spec, err)
		}
	}

	top := filepath.Join(work, "rpmbuild")
	sources := filepath.Join(top, "SOURCES")
	tmp := filepath.Join(work, "tmp")
	for _, d := range []string{sources, filepath.Join(top, "SPECS"), tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return Result{}, fmt.Errorf("rpmbuild %s: %w", spec, err)
		}
	}
	specCopy := filepath.Join(top, "SPECS", path.Base(spec))
	if err := os.WriteFile(specCopy, text, 0o644); err != nil {
		return Result{}, fmt.Errorf("rpmbuild %s: %w", spec, err)
	}

	nevr, err := run.query(ctx, specCopy)
	if err != nil {
		return Result{}, fmt.Errorf("rpmbuild %s: %w", spec, err)
	}
	// The line rewritten must be the Release rpmbuild uses, not one that a
	// macro or an %include overrides.
	if suffix != "" && (!strings.HasSuffix(nevr.release, suffix) || nevr.release == suffix) {
		return Result{}, fmt.Errorf("rpmbuild %s: test build: Release %q does not end in %q: the Release line rewritten is not the one rpmspec reads", spec, nevr.release, suffix)
	}
	res := Result{Version: nevr.version()}

	parsed, err := run.output(ctx, "rpmspec", "-P", specCopy)
	if err != nil {
		return res, fmt.Errorf("rpmbuild %s: %w", spec, err)
	}
	source0, others, err := rpmSources(parsed)
	if err != nil {
		return res, fmt.Errorf("rpmbuild %s: %w", spec, err)
	}
	if err := writeSourceTarball(tree, filepath.Join(sources, source0), nevr.name+"-"+nevr.ver, mtime, nil); err != nil {
		return res, fmt.Errorf("rpmbuild %s: Source0 %s: %w", spec, source0, err)
	}
	for _, name := range others {
		if name == source0 {
			return res, fmt.Errorf("rpmbuild %s: source %s: named twice", spec, name)
		}
		if err := rpmCopySource(tree, path.Join(path.Dir(spec), name), filepath.Join(sources, name)); err != nil {
			return res, fmt.Errorf("rpmbuild %s: source %s: %w", spec, name, err)
		}
	}

	args := []string{"rpmbuild",
		"--define", "_topdir " + top,
		"--define", "_tmppath " + tmp}
	if r.NoDeps {
		args = append(args, "--nodeps")
	}
	args = append(args, "-ba", specCopy)
	if err := run.stream(ctx, args...); err != nil {
		return res, err
	}

	res.Outputs, err = rpmCollect(top, job.OutDir, nevr.name+"-"+nevr.ver+"-"+nevr.release+".src.rpm")
	if err != nil {
		return res, fmt.Errorf("rpmbuild %s: outputs: %w", spec, err)
	}
	return res, nil
}

var (
	// rpmSafePath is what a directory may be made of to go into a macro.
	rpmSafePath = regexp.MustCompile(`^[A-Za-z0-9/._+,=@~:-]+$`)
	// rpmFileName is a spec, source or package file name: no directory,
	// nothing hidden, nothing a macro or a shell would read.
	rpmFileName = regexp.MustCompile(`^[A-Za-z0-9_+][A-Za-z0-9_+.,=@~^-]*$`)
	// rpmName, rpmVer and rpmEpoch check what rpmspec reports.
	rpmName  = regexp.MustCompile(`^[A-Za-z0-9_+][A-Za-z0-9_+.-]*$`)
	rpmVer   = regexp.MustCompile(`^[A-Za-z0-9._+~^]+$`)
	rpmEpoch = regexp.MustCompile(`^[0-9]{1,9}$`)
	// rpmSection starts a section of a spec, and so ends the preamble.
	rpmSection = regexp.MustCompile(`^%(package|description|prep|generate_buildrequires|conf|build|install|check|clean|files|changelog|pre|post|preun|postun|pretrans|posttrans|preuntrans|postuntrans|verifyscript|trigger[a-z]*|filetrigger[a-z]*|transfiletrigger[a-z]*|sepolicy|patchlist|sourcelist|buildsystem|end)([ \t(]|$)`)
	// rpmReleaseLine is a Release tag line: tag, value and what surrounds
	// the value, so that the line can be rebuilt byte for byte.
	rpmReleaseLine = regexp.MustCompile(`^([ \t]*(?i:release)[ \t]*:[ \t]*)(.*?)([ \t]*)$`)
	// rpmSourceLine is a Source or Patch tag line of an expanded spec.
	rpmSourceLine = regexp.MustCompile(`^[ \t]*(?i:(source|patch))([0-9]*)[ \t]*:[ \t]*(.*?)[ \t]*$`)
)

// rpmMaxSpec bounds the size of a spec file read into memory.
const rpmMaxSpec = 4 << 20

// rpmFindSpec returns the path of the spec file in dir, relative to it:
// the one *.spec at the root or, when there is none, the one in rpm/.
func rpmFindSpec(dir string) (string, error) {
	root, err := rpmSpecs(dir, ".")
	if err != nil {
		return "", err
	}
	switch len(root) {
	case 1:
		return root[0], nil
	case 0:
	default:
		return "", fmt.Errorf("several spec files at the root: %s", strings.Join(root, ", "))
	}
	sub, err := rpmSpecs(dir, "rpm")
	if err != nil {
		return "", err
	}
	switch len(sub) {
	case 1:
		return sub[0], nil
	case 0:
		return "", errors.New("no spec file: want one *.spec at the root or in rpm/")
	default:
		return "", fmt.Errorf("several spec files in rpm/: %s", strings.Join(sub, ", "))
	}
}

// rpmSpecs lists the regular files named *.spec (not hidden) in the
// directory sub of dir, which may be missing. A symlink is not followed.
func rpmSpecs(dir, sub string) ([]string, error) {
	p := filepath.Join(dir, sub)
	info, err := os.Lstat(p)
	if sub != "." && errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		if sub == "." {
			return nil, fmt.Errorf("%s: not a directory", dir)
		}
		return nil, nil
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	var specs []string
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".spec") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if !rpmFileName.MatchString(e.Name()) {
			return nil, fmt.Errorf("spec %q: name not made of [A-Za-z0-9_+.,=@~^-]", path.Join(sub, e.Name()))
		}
		specs = append(specs, path.Join(sub, e.Name()))
	}
	return specs, nil
}

// rpmReadFile reads the regular file name of root, up to rpmMaxSpec.
func rpmReadFile(root *os.Root, name string) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, rpmMaxSpec+1))
	if err != nil {
		return nil, err
	}
	if len(data) > rpmMaxSpec {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, rpmMaxSpec)
	}
	return data, nil
}

// rpmPreamble calls fn with each line of the main preamble of spec (up to
// the first section) and its start offset, without its line ending.
func rpmPreamble(spec []byte, fn func(line []byte, off int)) {
	off := 0
	for len(spec[off:]) > 0 {
		line := spec[off:]
		next := len(spec)
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line, next = line[:i], off+i+1
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if rpmSection.Match(line) {
			return
		}
		fn(line, off)
		off = next
	}
}

// rpmRewriteRelease returns spec with the value of its Release line, as
// written, replaced by its RPMTestRelease; every other byte is kept. The
// preamble must hold exactly one Release line, whose value RPMTestRelease
// accepts: a literal, possibly with macros like %{?dist} after it.
func rpmRewriteRelease(spec []byte, change, patchset int) ([]byte, error) {
	var lines []int
	rpmPreamble(spec, func(line []byte, off int) {
		if rpmReleaseLine.Match(line) {
			lines = append(lines, off)
		}
	})
	switch len(lines) {
	case 0:
		return nil, errors.New("test build: no Release line in the preamble to rewrite")
	case 1:
	default:
		// Conditionals may choose between them; which one counts is
		// rpmbuild's to say, and the test release must be sure.
		return nil, fmt.Errorf("test build: %d Release lines in the preamble: cannot tell which to rewrite", len(lines))
	}
	off := lines[0]
	end := len(spec)
	if i := bytes.IndexByte(spec[off:], '\n'); i >= 0 {
		end = off + i
	}
	if end > off && spec[end-1] == '\r' {
		end--
	}
	m := rpmReleaseLine.FindSubmatchIndex(spec[off:end])
	start, stop := off+m[4], off+m[5]
	release := string(spec[start:stop])
	test, err := RPMTestRelease(release, change, patchset)
	if err != nil {
		return nil, fmt.Errorf("test build: Release line: %w", err)
	}
	out := make([]byte, 0, len(spec)+len(test)-len(release))
	out = append(out, spec[:start]...)
	out = append(out, test...)
	return append(out, spec[stop:]...), nil
}

// rpmNEVR is what rpmspec says of a spec's source package.
type rpmNEVR struct {
	epoch, name, ver, release string // epoch "" for none
}

// version returns "[E:]V-R".
func (n rpmNEVR) version() string {
	v := n.ver + "-" + n.release
	if n.epoch != "" {
		v = n.epoch + ":" + v
	}
	return v
}

// rpmSources returns the file names of Source0 and of the other sources
// and patches in the preamble of the expanded spec: the base name of each
// value, which may be a URL, as rpmbuild looks it up in %_sourcedir.
// Source0 is the Source0 line or else the first unnumbered Source line.
func rpmSources(parsed string) (source0 string, others []string, err error) {
	type tag struct{ kind, num, file string }
	var tags []tag
	var bad error
	rpmPreamble([]byte(parsed), func(line []byte, _ int) {
		m := rpmSourceLine.FindSubmatch(line)
		if m == nil || bad != nil {
			return
		}
		value := string(m[3])
		file := value[strings.LastIndexByte(value, '/')+1:]
		if !rpmFileName.MatchString(file) {
			bad = fmt.Errorf("%s%s %q: file name not made of [A-Za-z0-9_+.,=@~^-]", m[1], m[2], value)
			return
		}
		tags = append(tags, tag{strings.ToLower(string(m[1])), string(m[2]), file})
	})
	if bad != nil {
		return "", nil, bad
	}
	i := slices.IndexFunc(tags, func(t tag) bool { return t.kind == "source" && strings.TrimLeft(t.num, "0") == "" && t.num != "" })
	if i < 0 {
		i = slices.IndexFunc(tags, func(t tag) bool { return t.kind == "source" && t.num == "" })
	}
	if i < 0 {
		return "", nil, errors.New("no Source0 line: the tree cannot be given to rpmbuild")
	}
	source0 = tags[i].file
	if !strings.HasSuffix(source0, ".tar.gz") && !strings.HasSuffix(source0, ".tgz") {
		return "", nil, fmt.Errorf("Source0 %s: not a .tar.gz or .tgz, the only tarball made from the tree", source0)
	}
	for j, t := range tags {
		if j != i && !slices.Contains(others, t.file) {
			others = append(others, t.file)
		}
	}
	return source0, others, nil
}

// rpmSourceDateEpoch returns the time SOURCE_DATE_EPOCH in env gives (the
// last one, as exec uses), or the Unix epoch when there is none.
func rpmSourceDateEpoch(env []string) (time.Time, error) {
	value := "0"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "SOURCE_DATE_EPOCH="); ok {
			value = v
		}
	}
	secs, err := strconv.ParseInt(value, 10, 64)
	if err != nil || secs < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: not a non-negative number of seconds", value)
	}
	return time.Unix(secs, 0).UTC(), nil
}

// rpmCopySource copies the regular file name of the tree to dst,
// exclusively created.
func rpmCopySource(tree *os.Root, name, dst string) error {
	info, err := tree.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("not in the tree beside the spec (%s)", name)
	}
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", name)
	}
	src, err := tree.Open(name)
	if err != nil {
		return err
	}
	defer src.Close()
	return rpmCopyTo(src, dst, info.Mode().Perm())
}

// rpmCopyTo copies r to the new file dst.
func rpmCopyTo(r io.Reader, dst string, perm fs.FileMode) error {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
	}
	return err
}

// rpmCollect moves the packages rpmbuild made under top into outDir and
// returns their names, sorted. The source package must be srpm.
func rpmCollect(top, outDir, srpm string) ([]string, error) {
	var found []string
	for _, pattern := range []string{"RPMS/*.rpm", "RPMS/*/*.rpm", "SRPMS/*.src.rpm"} {
		m, err := filepath.Glob(filepath.Join(top, pattern))
		if err != nil {
			return nil, err
		}
		found = append(found, m...)
	}
	var names []string
	for _, p := range found {
		name := filepath.Base(p)
		if !rpmFileName.MatchString(name) {
			return nil, fmt.Errorf("%q: not a plain file name", name)
		}
		if slices.Contains(names, name) {
			return nil, fmt.Errorf("%s: made twice", name)
		}
		info, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		if !info.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file", name)
		}
		names = append(names, name)
	}
	if !slices.Contains(names, srpm) {
		return nil, fmt.Errorf("no source package %s among %q", srpm, names)
	}
	for _, p := range found {
		if err := rpmMove(p, filepath.Join(outDir, filepath.Base(p))); err != nil {
			return nil, err
		}
	}
	slices.Sort(names)
	return names, nil
}

// rpmMove moves the file src to dst, which must not exist, copying when
// the two are on different file systems.
func rpmMove(src, dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("%s: already exists", dst)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	err := os.Rename(src, dst)
	if !errors.Is(err, syscall.EXDEV) {
		return err
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return rpmCopyTo(f, dst, 0o644)
}

// rpmRunner runs the commands of one job, with its environment, in its
// work directory, and keeps their command lines.
type rpmRunner struct {
	dir  string
	env  []string
	log  io.Writer
	cmds [][]string
}

func newRPMRunner(job Job) *rpmRunner {
	env := job.Env
	if env == nil {
		env = []string{} // the whole environment: nothing of sluice's
	}
	log := job.Log
	if log == nil {
		log = io.Discard
	}
	return &rpmRunner{dir: job.WorkDir, env: env, log: log}
}

// start starts args with the given outputs, after writing the command line
// to the log.
func (r *rpmRunner) start(ctx context.Context, stdout, stderr io.Writer, args ...string) (*exec.Cmd, error) {
	r.cmds = append(r.cmds, slices.Clone(args))
	fmt.Fprintf(r.log, "+ %s\n", rpmQuote(args))
	cmd := proc.Command(ctx, args[0], args[1:]...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = r.dir, r.env, stdout, stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", args[0], err)
	}
	return cmd, nil
}

// wait waits for cmd and returns, for a command that failed, an error
// that wraps the context's when the context ended it.
func (r *rpmRunner) wait(ctx context.Context, cmd *exec.Cmd) error {
	err := cmd.Wait()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	return err
}

// stream runs args with its output going to the log; a failure is a
// *BuildError.
func (r *rpmRunner) stream(ctx context.Context, args ...string) error {
	cmd, err := r.start(ctx, r.log, r.log, args...)
	if err != nil {
		return err
	}
	if err := r.wait(ctx, cmd); err != nil {
		return &BuildError{Command: slices.Clone(args), Err: err}
	}
	return nil
}

// output runs args and returns its standard output. Its standard error
// goes to the log and, when it fails, into the error.
func (r *rpmRunner) output(ctx context.Context, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd, err := r.start(ctx, &stdout, io.MultiWriter(&stderr, r.log), args...)
	if err != nil {
		return "", err
	}
	if err := r.wait(ctx, cmd); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", fmt.Errorf("%s: %w: %s", args[0], err, msg)
		}
		return "", fmt.Errorf("%s: %w", args[0], err)
	}
	return stdout.String(), nil
}

// query returns what rpmspec says of the source package of spec.
func (r *rpmRunner) query(ctx context.Context, spec string) (rpmNEVR, error) {
	out, err := r.output(ctx, "rpmspec", "-q", "--srpm", "--qf", "%{epoch} %{name} %{version} %{release}\n", spec)
	if err != nil {
		return rpmNEVR{}, err
	}
	f := strings.Fields(out)
	if len(f) != 4 {
		return rpmNEVR{}, fmt.Errorf("rpmspec: epoch, name, version and release: got %q", out)
	}
	n := rpmNEVR{epoch: f[0], name: f[1], ver: f[2], release: f[3]}
	if n.epoch == "(none)" {
		n.epoch = ""
	}
	switch {
	case n.epoch != "" && !rpmEpoch.MatchString(n.epoch):
		return n, fmt.Errorf("epoch %q: not a number", n.epoch)
	case !rpmName.MatchString(n.name):
		return n, fmt.Errorf("name %q: not made of [A-Za-z0-9_+.-]", n.name)
	case !rpmVer.MatchString(n.ver):
		return n, fmt.Errorf("version %q: not made of [A-Za-z0-9._+~^]", n.ver)
	case !rpmVer.MatchString(n.release):
		return n, fmt.Errorf("release %q: not made of [A-Za-z0-9._+~^]", n.release)
	}
	return n, nil
}

// provided reports whether a package in the rpmdb provides dep. rpm
// exits 1 both for "no package provides" and for a database it cannot
// open; only the second writes an error.
func (r *rpmRunner) provided(ctx context.Context, dep string) (bool, error) {
	// One writer for both outputs: what rpm says, in order, in one piece.
	var out bytes.Buffer
	cmd, err := r.start(ctx, &out, &out, "rpm", "-q", "--whatprovides", dep)
	if err != nil {
		return false, err
	}
	err = r.wait(ctx, cmd)
	r.log.Write(out.Bytes())
	var exit *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case ctx.Err() == nil && errors.As(err, &exit) && exit.ExitCode() == 1 && !strings.Contains(out.String(), "error:"):
		return false, nil
	}
	if msg := strings.TrimSpace(out.String()); msg != "" {
		return false, fmt.Errorf("rpm -q --whatprovides: %w: %s", err, msg)
	}
	return false, fmt.Errorf("rpm -q --whatprovides: %w", err)
}

// rpmPlainArg is an argument the log shows unquoted.
var rpmPlainArg = regexp.MustCompile(`^[A-Za-z0-9/._+,=@~:%-]+$`)

// rpmQuote renders args as a log line, quoting what needs it.
func rpmQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = a
		if !rpmPlainArg.MatchString(a) {
			q[i] = strconv.Quote(a)
		}
	}
	return strings.Join(q, " ")
}
