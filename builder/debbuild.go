package builder

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-ci/sluice/internal/proc"
)

// Deb builds Debian packages, source and binaries, with dpkg-buildpackage
// on the build host, from a tree with a debian/ directory (Debian Policy
// §4, dpkg-source(1) for the source formats).
//
// Build never writes beside the tree: it copies the tree to
// WorkDir/dpkg/NAME-UPSTREAM, makes the orig tarball there when the source
// format needs one, and runs dpkg-buildpackage in the copy, so that its
// outputs land in WorkDir/dpkg, which holds nothing else. The tree itself
// is only read.
type Deb struct{}

var _ Backend = Deb{}

// Layout of a Debian source tree and of Build's work directory.
const (
	debChangelog = "debian/changelog"
	debControl   = "debian/control"
	debFormat    = "debian/source/format"
	// debParent is the directory under WorkDir in which the tree is
	// copied and dpkg-buildpackage writes its outputs.
	debParent = "dpkg"
	// debDateLayout is the RFC 2822 date of a changelog trailer, as
	// `date -R` writes it; parsing also takes a one-digit day.
	debDateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"
)

// Name returns "dpkg-buildpackage".
func (Deb) Name() string { return "dpkg-buildpackage" }

// Format returns "deb".
func (Deb) Format() string { return "deb" }

// Detect reports whether dir has a directory debian/ (not a symbolic
// link) holding regular files control and changelog.
func (Deb) Detect(dir string) bool {
	fi, err := os.Lstat(filepath.Join(dir, "debian"))
	if err != nil || !fi.IsDir() {
		return false
	}
	for _, name := range []string{debControl, debChangelog} {
		fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// MissingBuildDeps runs dpkg-checkbuilddeps in job.Dir, which checks
// Build-Depends, Build-Depends-Arch and Build-Depends-Indep against the
// host's dpkg database, and returns the unmet dependencies as it writes
// them ("debhelper-compat (= 13)", "foo | bar"). Build-Conflicts that the
// host has installed are an error: installing nothing would fix them. The
// command runs with job.Env and LC_ALL=C, so that its messages can be
// parsed.
func (Deb) MissingBuildDeps(ctx context.Context, job Job) ([]string, error) {
	cmd := proc.Command(ctx, "dpkg-checkbuilddeps")
	cmd.Dir = job.Dir
	cmd.Env = append(slices.Clip(debEnv(job.Env)), "LC_ALL=C")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	if runErr == nil {
		return nil, nil
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("builder: dpkg-checkbuilddeps in %s: %w: %w", job.Dir, ctx.Err(), runErr)
	}
	var exit *exec.ExitError
	if !errors.As(runErr, &exit) || exit.ExitCode() != 1 {
		return nil, fmt.Errorf("builder: dpkg-checkbuilddeps in %s: %w: %s", job.Dir, runErr, bytes.TrimSpace(out.Bytes()))
	}
	unmet, conflicts, err := debParseCheckBuildDeps(out.String())
	switch {
	case err != nil:
		return nil, fmt.Errorf("builder: dpkg-checkbuilddeps in %s: %w", job.Dir, err)
	case len(conflicts) > 0:
		return nil, fmt.Errorf("builder: dpkg-checkbuilddeps in %s: build conflicts installed: %s", job.Dir, strings.Join(conflicts, ", "))
	case len(unmet) == 0:
		return nil, fmt.Errorf("builder: dpkg-checkbuilddeps in %s: %w, and no unmet dependency listed: %s", job.Dir, runErr, bytes.TrimSpace(out.Bytes()))
	}
	return unmet, nil
}

var (
	// debUnmetLine and debConflictsLine are dpkg-checkbuilddeps's
	// messages; dpkg 1.22 writes them in lower case.
	debUnmetLine     = regexp.MustCompile(`(?i)^dpkg-checkbuilddeps: (?:error: )?unmet build dependencies: (.*)$`)
	debConflictsLine = regexp.MustCompile(`(?i)^dpkg-checkbuilddeps: (?:error: )?build conflicts: (.*)$`)
)

// debParseCheckBuildDeps returns the unmet dependencies and the installed
// conflicts that dpkg-checkbuilddeps reported in out.
func debParseCheckBuildDeps(out string) (unmet, conflicts []string, err error) {
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\n")
		if m := debUnmetLine.FindStringSubmatch(line); m != nil {
			deps, err := debSplitDeps(m[1])
			if err != nil {
				return nil, nil, fmt.Errorf("unmet build dependencies %q: %w", m[1], err)
			}
			unmet = append(unmet, deps...)
		} else if m := debConflictsLine.FindStringSubmatch(line); m != nil {
			deps, err := debSplitDeps(m[1])
			if err != nil {
				return nil, nil, fmt.Errorf("build conflicts %q: %w", m[1], err)
			}
			conflicts = append(conflicts, deps...)
		}
	}
	return unmet, conflicts, nil
}

// debSplitDeps splits a list of dependencies as dpkg-checkbuilddeps
// writes it, joined by single spaces, into the dependencies: each is
// alternatives joined by " | ", each alternative a package name (with an
// optional ":arch") followed by an optional "(op version)", "[arches]"
// and "<profiles>" (dpkg's Dpkg::Deps output).
func debSplitDeps(s string) ([]string, error) {
	toks := strings.Fields(s)
	var deps []string
	for i := 0; i < len(toks); {
		var dep []string
		for {
			// One alternative: a name and its bracketed groups.
			if strings.ContainsAny(toks[i][:1], "([<|") {
				return nil, fmt.Errorf("%q where a package name should be", toks[i])
			}
			alt := []string{toks[i]}
			i++
			for i < len(toks) && strings.ContainsAny(toks[i][:1], "([<") {
				closer := map[byte]string{'(': ")", '[': "]", '<': ">"}[toks[i][0]]
				for {
					alt = append(alt, toks[i])
					i++
					if strings.HasSuffix(alt[len(alt)-1], closer) {
						break
					}
					if i == len(toks) {
						return nil, fmt.Errorf("%q: no closing %q", strings.Join(alt, " "), closer)
					}
				}
			}
			dep = append(dep, strings.Join(alt, " "))
			if i == len(toks) || toks[i] != "|" {
				break
			}
			i++
			if i == len(toks) {
				return nil, fmt.Errorf("%q: nothing after \"|\"", strings.Join(dep, " | "))
			}
		}
		deps = append(deps, strings.Join(dep, " | "))
	}
	return deps, nil
}

// Build builds the source package and the binary packages of job with
// `dpkg-buildpackage -us -uc` (unsigned) and moves them into job.OutDir:
// .dsc, the tarballs it names, .deb (and .udeb, .ddeb), .buildinfo and
// .changes. A test build first adds an entry for the test version on top
// of the copy's debian/changelog: same distribution and maintainer as the
// entry below it, urgency medium, dated SOURCE_DATE_EPOCH from job.Env
// when it is set, or else now. The source formats built are
// "3.0 (quilt)" and "1.0" with an orig tarball that Build makes from the
// tree without debian/ (see [debWriteOrig]), and "3.0 (native)" and "1.0"
// without a Debian revision, which need none.
//
// On error the Result still lists the commands that ran.
func (Deb) Build(ctx context.Context, job Job) (Result, error) {
	var res Result
	if job.Change != 0 || job.Patchset != 0 {
		if _, err := testSuffix(job.Change, job.Patchset); err != nil {
			return res, fmt.Errorf("builder: deb test build: %w", err)
		}
	}
	epoch, hasEpoch, err := debSourceDateEpoch(job.Env)
	if err != nil {
		return res, err
	}

	// Everything about the sources is read, and checked, before anything
	// is written.
	root, err := os.OpenRoot(job.Dir)
	if err != nil {
		return res, fmt.Errorf("builder: deb build: %w", err)
	}
	defer root.Close()
	chlog, err := debReadRegular(root, debChangelog)
	if err != nil {
		return res, err
	}
	top, err := debParseChangelog(chlog)
	if err != nil {
		return res, err
	}
	format, err := debSourceFormat(root)
	if err != nil {
		return res, err
	}
	needOrig := format == "3.0 (quilt)" || (format == "1.0" && top.revision() != "")
	res.Version = top.Version
	if job.Change != 0 {
		if res.Version, err = DebTestVersion(top.Version, job.Change, job.Patchset); err != nil {
			return res, err
		}
	}

	parent := filepath.Join(job.WorkDir, debParent)
	if err := os.Mkdir(parent, 0o755); err != nil {
		return res, fmt.Errorf("builder: deb build: %w", err)
	}
	upstream := top.upstream()
	tree := filepath.Join(parent, top.Source+"-"+upstream)
	if err := copyTree(job.Dir, tree); err != nil {
		return res, err
	}
	if job.Change != 0 {
		date := time.Now()
		if hasEpoch {
			date = epoch
		}
		entry := top.testEntry(res.Version, job.Change, job.Patchset, date)
		if err := debWriteFileIn(tree, debChangelog, append(entry, chlog...)); err != nil {
			return res, err
		}
	}
	if needOrig {
		// The orig tarball is the same for a release and all its test
		// builds (a repository holds one file of its name): its times
		// are SOURCE_DATE_EPOCH or the release entry's date, never the
		// test entry's.
		mtime := top.Date
		if hasEpoch {
			mtime = epoch
		}
		orig := filepath.Join(parent, top.Source+"_"+upstream+".orig.tar.gz")
		if err := debWriteOrig(tree, top.Source+"-"+upstream, mtime, orig); err != nil {
			return res, err
		}
	}

	args := []string{"dpkg-buildpackage", "-us", "-uc"}
	if job.DepsChecked {
		// MissingBuildDeps ran dpkg-checkbuilddeps just before.
		args = append(args, "-d")
	}
	res.Commands = append(res.Commands, args)
	if err := debRun(ctx, job, tree, args); err != nil {
		return res, err
	}
	if res.Outputs, err = debMoveOutputs(parent, job.OutDir); err != nil {
		return res, err
	}
	return res, nil
}

// debRun runs args in dir with job's environment and log. A command that
// ran and failed, or was killed, is a *BuildError, which wraps ctx's error
// when ctx ended.
func debRun(ctx context.Context, job Job, dir string, args []string) error {
	cmd := proc.Command(ctx, args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = debEnv(job.Env)
	log := job.Log
	if log == nil {
		log = io.Discard
	}
	// One writer for both: exec then calls Write from one goroutine at
	// a time.
	cmd.Stdout, cmd.Stderr = log, log
	err := cmd.Run()
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return &BuildError{Command: args, Err: fmt.Errorf("%w: %w", ctx.Err(), err)}
	}
	if exit := (*exec.ExitError)(nil); errors.As(err, &exit) {
		return &BuildError{Command: args, Err: err}
	}
	return fmt.Errorf("builder: run %s: %w", args[0], err)
}

// debEnv returns env as the whole environment of a command: never nil,
// which exec would take for the caller's environment.
func debEnv(env []string) []string {
	if env == nil {
		return []string{}
	}
	return env
}

// debSourceDateEpoch returns the time that SOURCE_DATE_EPOCH in env names,
// the last one if env sets it more than once, as exec does.
func debSourceDateEpoch(env []string) (time.Time, bool, error) {
	for _, kv := range slices.Backward(env) {
		v, ok := strings.CutPrefix(kv, "SOURCE_DATE_EPOCH=")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return time.Time{}, false, fmt.Errorf("builder: SOURCE_DATE_EPOCH %q: not a count of seconds since 1970", v)
		}
		return time.Unix(n, 0).UTC(), true, nil
	}
	return time.Time{}, false, nil
}

// debReadRegular reads the regular file name (slash-separated) of root. A
// symbolic link there is an error: it would name another file than the one
// the tree shows.
func debReadRegular(root *os.Root, name string) ([]byte, error) {
	fi, err := root.Lstat(name)
	if err != nil {
		return nil, fmt.Errorf("builder: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("builder: %s: not a regular file", name)
	}
	data, err := root.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("builder: %w", err)
	}
	return data, nil
}

// debSourceFormat returns the source format of the tree root, "1.0" when
// debian/source/format is missing, as for dpkg-source. Formats that name
// a version control system are not built.
func debSourceFormat(root *os.Root) (string, error) {
	data, err := debReadRegular(root, debFormat)
	if errors.Is(err, fs.ErrNotExist) {
		return "1.0", nil
	}
	if err != nil {
		return "", err
	}
	format := strings.TrimSpace(string(data))
	switch format {
	case "1.0", "3.0 (quilt)", "3.0 (native)":
		return format, nil
	}
	return "", fmt.Errorf("builder: %s: source format %q: not 1.0, 3.0 (quilt) or 3.0 (native)", debFormat, format)
}

// A debEntry is what Build takes from the top entry of a changelog.
type debEntry struct {
	Source, Version, Distribution string
	Maintainer                    string // "Name <email>"
	Date                          time.Time
}

var (
	// debHeader is an entry's first line (Debian Policy §4.4): "source
	// (version) distribution...; keyword=value, ...".
	debHeader = regexp.MustCompile(`^(\S+) \(([^() \t]+)\) ([^;]+);[ \t]*(\S.*)$`)
	// debSourceName is a source package name (Debian Policy §5.6.1).
	debSourceName = regexp.MustCompile(`^[a-z0-9][a-z0-9.+-]+$`)
	// debDistribution is one distribution name, as dpkg-parsechangelog
	// takes it.
	debDistribution = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+-]*$`)
	debKeyword      = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]*)=(\S+)$`)
	// debTrailer is an entry's last line: " -- Name <email>  date", with
	// two spaces before the date.
	debTrailer = regexp.MustCompile(`^ -- ([^ <>][^<>]*? <[^<>\s]+>)  (\S.*)$`)
)

// debParseChangelog parses the first entry of the changelog data. It is
// strict, as Build writes what it reads into a new entry and into file
// names: the header, the trailer and the lines between them must have
// the form Debian Policy §4.4 gives, or the error names the line.
func debParseChangelog(data []byte) (debEntry, error) {
	var e debEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	bad := func(line, format string, args ...any) error {
		return fmt.Errorf("builder: %s line %d: %q: %s", debChangelog, n, line, fmt.Sprintf(format, args...))
	}
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return e, fmt.Errorf("builder: %s: %w", debChangelog, err)
		}
		return e, fmt.Errorf("builder: %s: empty", debChangelog)
	}
	n++
	// Trailing blanks are no part of any field.
	line := strings.TrimRight(sc.Text(), " \t")
	m := debHeader.FindStringSubmatch(line)
	if m == nil {
		return e, bad(line, `not an entry header "source (version) distribution; urgency=..."`)
	}
	e.Source, e.Version = m[1], m[2]
	if !debSourceName.MatchString(e.Source) {
		return e, bad(line, "source name %q: not made of [a-z0-9.+-], starting with [a-z0-9]", e.Source)
	}
	if err := checkDebVersion(e.Version); err != nil {
		return e, bad(line, "version %q: %v", e.Version, err)
	}
	dists := strings.Fields(m[3])
	for _, d := range dists {
		if !debDistribution.MatchString(d) {
			return e, bad(line, "distribution %q: not made of [A-Za-z0-9.+-]", d)
		}
	}
	e.Distribution = strings.Join(dists, " ")
	urgency := false
	for kw := range strings.SplitSeq(m[4], ",") {
		km := debKeyword.FindStringSubmatch(strings.TrimSpace(kw))
		if km == nil {
			return e, bad(line, "keyword %q: not key=value", strings.TrimSpace(kw))
		}
		urgency = urgency || strings.EqualFold(km[1], "urgency")
	}
	if !urgency {
		return e, bad(line, "no urgency=")
	}

	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), " \t")
		switch {
		case strings.HasPrefix(line, " --"):
			m := debTrailer.FindStringSubmatch(line)
			if m == nil {
				return e, bad(line, `not an entry trailer " -- Name <email>  Date"`)
			}
			date, err := time.Parse(debDateLayout, m[2])
			if err != nil {
				// A one-digit day is RFC 2822 too.
				date, err = time.Parse("Mon, 2 Jan 2006 15:04:05 -0700", m[2])
			}
			if err != nil {
				return e, bad(line, "date %q: not RFC 2822 like %q", m[2], debDateLayout)
			}
			e.Maintainer, e.Date = m[1], date
			return e, nil
		case strings.TrimSpace(line) == "":
		case strings.HasPrefix(line, " "):
			// A change line.
		default:
			return e, bad(line, `neither a change line (indented) nor the trailer " -- Name <email>  Date" of the entry on line 1`)
		}
	}
	if err := sc.Err(); err != nil {
		return e, fmt.Errorf("builder: %s: %w", debChangelog, err)
	}
	return e, fmt.Errorf("builder: %s line %d: end of file before the trailer of the entry on line 1", debChangelog, n)
}

// upstream returns the entry's version without epoch and revision, as
// dpkg-source names the orig tarball with it.
func (e debEntry) upstream() string {
	v := e.Version
	if _, after, ok := strings.Cut(v, ":"); ok {
		v = after
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		v = v[:i]
	}
	return v
}

// revision returns the entry's Debian revision, "" for a native version.
func (e debEntry) revision() string {
	if i := strings.LastIndexByte(e.Version, '-'); i >= 0 {
		return e.Version[i+1:]
	}
	return ""
}

// testEntry returns a changelog entry for version that goes on top of e:
// same source, distribution and maintainer, urgency medium, dated date.
func (e debEntry) testEntry(version string, change, patchset int, date time.Time) []byte {
	return fmt.Appendf(nil, "%s (%s) %s; urgency=medium\n\n  * sluice test build of change %d patchset %d.\n\n -- %s  %s\n\n",
		e.Source, version, e.Distribution, change, patchset, e.Maintainer, date.UTC().Format(debDateLayout))
}

// debWriteFileIn replaces the regular file name (slash-separated) under
// dir with data, keeping its mode.
func debWriteFileIn(dir, name string, data []byte) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("builder: %w", err)
	}
	defer root.Close()
	fi, err := root.Lstat(name)
	if err != nil {
		return fmt.Errorf("builder: %w", err)
	}
	if err := root.WriteFile(name, data, fi.Mode().Perm()); err != nil {
		return fmt.Errorf("builder: %w", err)
	}
	return nil
}

// copyTree copies the tree src to the new directory dst: directories,
// regular files and symbolic links (as links), with their permissions,
// but not a .git at the top. Any other kind of file is an error.
func copyTree(src, dst string) error {
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel == ".git" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			// Writable, so that the build can write into it.
			return os.Mkdir(target, info.Mode().Perm()|0o700)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			return copyFile(p, target, info.Mode().Perm())
		}
		return fmt.Errorf("%s: not a directory, regular file or symbolic link", p)
	})
	if err != nil {
		return fmt.Errorf("builder: copy tree: %w", err)
	}
	return nil
}

// copyFile copies the regular file src to the new file dst.
func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
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
	// Open applied the umask.
	if err := out.Chmod(perm); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// debWriteOrig writes the tree without its debian/ directory as the
// gzipped tar dst, every name under prefix/ (see writeTarball).
func debWriteOrig(tree, prefix string, mtime time.Time, dst string) error {
	root, err := os.OpenRoot(tree)
	if err != nil {
		return fmt.Errorf("builder: orig tarball: %w", err)
	}
	defer root.Close()
	err = writeSourceTarball(root, dst, prefix, mtime.Truncate(time.Second), func(name string) bool { return name == "debian" })
	if err != nil {
		return fmt.Errorf("builder: orig tarball %s: %w", filepath.Base(dst), err)
	}
	return nil
}

// debOutputName is the name of a file dpkg-buildpackage makes:
// NAME_VERSION[_ARCH].EXT, the version without its epoch.
var debOutputName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+~:-]*$`)

// debIsOutput reports whether name is a kind of file dpkg-buildpackage
// makes for a build.
func debIsOutput(name string) bool {
	for _, ext := range []string{".deb", ".udeb", ".ddeb", ".dsc", ".buildinfo", ".changes", ".diff.gz"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	// .orig.tar.gz, .debian.tar.xz, .tar.xz of a native package.
	_, ext, ok := strings.Cut(name, ".tar.")
	return ok && ext != "" && !strings.Contains(ext, ".")
}

// debMoveOutputs moves the outputs of dpkg-buildpackage from parent into
// outDir and returns their names, sorted. Every name is checked: a plain
// file name, no "..", no leading dot.
func debMoveOutputs(parent, outDir string) ([]string, error) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return nil, fmt.Errorf("builder: deb outputs: %w", err)
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !debIsOutput(name) {
			continue
		}
		if !debOutputName.MatchString(name) || strings.Contains(name, "..") {
			return nil, fmt.Errorf("builder: deb output %q: not a plain file name", name)
		}
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("builder: deb output %s: not a regular file", name)
		}
		names = append(names, name)
	}
	for _, name := range names {
		if err := debMove(filepath.Join(parent, name), filepath.Join(outDir, name)); err != nil {
			return nil, fmt.Errorf("builder: deb output %s: %w", name, err)
		}
	}
	slices.Sort(names)
	return names, nil
}

// debMove moves the regular file src to dst, which must not exist: a
// hard link, which never replaces a file, or else a copy.
func debMove(src, dst string) error {
	err := os.Link(src, dst)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		// Another file system, or one without hard links.
		err = copyFile(src, dst, 0o644)
	}
	if err != nil {
		return err
	}
	return os.Remove(src)
}
