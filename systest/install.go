package systest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

// The outcomes of an install test, as ResultsDB names them.
const (
	Passed = "PASSED"
	Failed = "FAILED"
)

// Repo is a buildset's published test repository, as an install test
// adds it to an environment.
type Repo struct {
	// Format is deb or rpm.
	Format string
	// Dir is the repository's root on the host (dists/ and pool/, or
	// repodata/); it is bound read-only into the environment.
	Dir string
	// Key is the armored OpenPGP public key that signs it.
	Key []byte
	// Suite and Component name the APT repository's distribution
	// (sluice-test, main); Origin is its Release file's Origin, pinned.
	Suite, Component, Origin string
}

// PackageRef names a binary package of a repository.
type PackageRef struct {
	Name string
	// Version is the full version: [epoch:]version[-revision] for a
	// .deb, [epoch:]version-release for an RPM.
	Version string
	Arch    string
}

var (
	pkgNameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._-]{0,200}$`)
	pkgVersionRE = regexp.MustCompile(`^[A-Za-z0-9.+~:_-]{1,200}$`)
)

// Validate checks a package reference; its strings reach apt-get, dnf and
// file names.
func (p PackageRef) Validate() error {
	if !pkgNameRE.MatchString(p.Name) || (p.Version != "" && !pkgVersionRE.MatchString(p.Version)) ||
		(p.Arch != "" && !pkgNameRE.MatchString(p.Arch)) {
		return fmt.Errorf("package %q %q %q: not a package name, version and architecture", p.Name, p.Version, p.Arch)
	}
	return nil
}

// InstallOptions tune an install test.
type InstallOptions struct {
	// Check is a host script run in the environment as CHECK NAME after
	// the install; its exit status decides the check. Without one, the
	// check is the package tool's own: installed, and every file there
	// as packaged (dpkg --verify, rpm -V).
	Check string
	// StepTimeout bounds each step (apt-get, dnf, the check); 10 minutes
	// when zero. A step that passes it kills the environment.
	StepTimeout time.Duration
	// NetNS is a network namespace to run in; a new, offline one when
	// empty.
	NetNS string
	// Mirror lets apt and dnf fetch from the base's Debian mirror
	// through the environment's proxy (see Proxy), so that Debian
	// dependencies the base lacks are installed; off, the environment is
	// offline.
	Mirror bool
	// Started, when set, is called with the environment once it runs
	// (tests check that nothing of it is left).
	Started func(*ChrootEnv)
}

// InstallReport is what an install test found.
type InstallReport struct {
	Package PackageRef
	Format  string
	Outcome string // Passed or Failed
	// Step is the step that failed: setup, install, check, remove,
	// purge, leftovers; empty when the test passed.
	Step   string
	Reason string
	// Leftovers are the paths the package left behind after its purge:
	// its own files, and files it made outside the package tools' own
	// directories and logs.
	Leftovers []string
	// Log is the transcript: each command and its output.
	Log []byte
	// Steps are the times of the steps, in order.
	Steps    []StepTime
	Duration time.Duration
}

// StepTime is how long one step of an install test took.
type StepTime struct {
	Name     string
	Duration time.Duration
}

// In-environment paths the install test uses.
const (
	envRepoDir  = "/srv/sluice/repo"
	envCheck    = "/srv/sluice/check"
	aptSources  = "/etc/apt/sources.list.d/sluice-test.sources"
	aptKey      = "/etc/apt/keyrings/sluice-test.asc"
	aptPrefs    = "/etc/apt/preferences.d/sluice-test"
	dnfReposDir = "/etc/sluice/yum.repos.d"
	dnfKey      = "/etc/pki/rpm-gpg/RPM-GPG-KEY-sluice-test"
)

// ignoredDirs hold what package tools and their runs change as a matter
// of course: not leftovers of a package.
var ignoredDirs = []string{"/var/log", "/var/cache", "/var/lib/apt", "/var/lib/dpkg", "/var/lib/rpm", "/var/lib/dnf",
	"/var/lib/systemd/deb-systemd-helper-enabled", "/var/lib/systemd/deb-systemd-helper-masked",
	"/tmp", "/var/tmp", "/run", "/etc/ld.so.cache", "/etc/pki/rpm-gpg", "/srv/sluice", "/etc/sluice",
	"/etc/apt/keyrings", "/etc/apt/sources.list.d", "/etc/apt/preferences.d", "/etc/dnf", "/root/.cache"}

// InstallTest installs pkg from repo in a fresh environment on base,
// checks it, removes and purges it, and reports what was left behind. It
// returns an error only when the test could not run; what the package
// does wrong is a Failed report.
func InstallTest(ctx context.Context, c *Chroot, base Base, repo Repo, pkg PackageRef, opts InstallOptions) (rep InstallReport, err error) {
	rep = InstallReport{Package: pkg, Format: repo.Format, Outcome: Passed}
	if err := pkg.Validate(); err != nil {
		return rep, err
	}
	if opts.StepTimeout == 0 {
		opts.StepTimeout = 10 * time.Minute
	}
	start := time.Now()
	defer func() { rep.Duration = time.Since(start) }()
	t := &installRun{rep: &rep, timeout: opts.StepTimeout, last: start}
	var eo EnvOptions
	switch repo.Format {
	case "deb":
		eo, err = aptOptions(repo)
	case "rpm":
		eo, err = dnfOptions(repo)
	default:
		return rep, fmt.Errorf("install test: format %q: not deb or rpm", repo.Format)
	}
	if err != nil {
		return rep, err
	}
	eo.Base, eo.NetNS = base, opts.NetNS
	if opts.Mirror {
		u, err := url.Parse(base.Spec.normal().Mirror)
		if err != nil {
			return rep, fmt.Errorf("install test: mirror: %w", err)
		}
		eo.Proxy = &Proxy{Allow: []string{u.Host}}
	}
	eo.Mounts = append(eo.Mounts, Mount{Source: repo.Dir, Target: envRepoDir, ReadOnly: true})
	if opts.Check != "" {
		eo.Mounts = append(eo.Mounts, Mount{Source: opts.Check, Target: envCheck, ReadOnly: true})
	}
	e, err := c.StartChroot(ctx, eo)
	if err != nil {
		return rep, fmt.Errorf("install test %s: %w", pkg.Name, err)
	}
	defer func() {
		// An environment that will not go is the infrastructure's
		// failure, not the package's.
		if cerr := e.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("install test %s: %w", pkg.Name, cerr)
		}
	}()
	t.env = e
	if opts.Started != nil {
		opts.Started(e)
	}
	t.step("start")
	if repo.Format == "deb" {
		err = t.deb(ctx, pkg, opts)
	} else {
		err = t.rpm(ctx, pkg, opts)
	}
	if err != nil {
		return rep, fmt.Errorf("install test %s: %w", pkg.Name, err)
	}
	return rep, nil
}

// installRun is one install test under way.
type installRun struct {
	env     *ChrootEnv
	rep     *InstallReport
	timeout time.Duration
	last    time.Time
	failed  bool
}

// step records the time since the last step under name.
func (t *installRun) step(name string) {
	now := time.Now()
	t.rep.Steps = append(t.rep.Steps, StepTime{Name: name, Duration: now.Sub(t.last)})
	t.last = now
}

// maxLog bounds an install test's transcript.
const maxLog = 4 << 20

// run runs args as step, logging it; a command that fails fails the
// test at step (when not failed already) and returns false. An error is
// returned only when the environment could not run it.
func (t *installRun) run(ctx context.Context, step string, out *bytes.Buffer, args ...string) (bool, error) {
	var b limitedBuffer
	b.max = maxLog
	t.rep.Log = fmt.Appendf(t.rep.Log, "$ %s\n", strings.Join(args, " "))
	var stdout limitedBuffer
	stdout.max = maxOutput
	err := t.env.Run(ctx, Command{Args: args, Stdout: &stdout, Stderr: &b, Timeout: t.timeout})
	if out != nil {
		out.Write(stdout.Bytes())
	} else {
		t.rep.Log = append(t.rep.Log, stdout.Bytes()...)
	}
	t.rep.Log = append(t.rep.Log, b.Bytes()...)
	if len(t.rep.Log) > maxLog {
		t.rep.Log = append(t.rep.Log[:maxLog:maxLog], "\n[log cut]\n"...)
	}
	var exit *ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &exit), errors.Is(err, ErrTimeout), errors.Is(err, ErrDead):
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		t.rep.Log = fmt.Appendf(t.rep.Log, "# %v\n", err)
		t.fail(step, err.Error())
		return false, nil
	default:
		return false, err
	}
}

func (t *installRun) fail(step, reason string) {
	if t.failed {
		return
	}
	t.failed = true
	t.rep.Outcome, t.rep.Step, t.rep.Reason = Failed, step, tail(reason, 2000)
}

// deb runs the steps with apt-get and dpkg.
func (t *installRun) deb(ctx context.Context, pkg PackageRef, opts InstallOptions) error {
	if ok, err := t.run(ctx, "setup", nil, aptUpdateArgs()...); !ok {
		return err
	}
	before, err := t.env.Changes()
	if err != nil {
		return err
	}
	t.step("setup")
	target := pkg.Name
	if pkg.Version != "" {
		target += "=" + pkg.Version
	}
	from := len(t.rep.Log)
	if ok, err := t.run(ctx, "install", nil, "apt-get", "install", "-y", "-q", "--no-install-recommends", target); !ok {
		if err == nil && missingDep.Match(t.rep.Log[min(from, len(t.rep.Log)):]) {
			t.rep.Reason += "; " + missingDepHint
		}
		return err
	}
	t.step("install")
	var status bytes.Buffer
	if ok, err := t.run(ctx, "check", &status, "dpkg-query", "-W", "-f=${Status}\t${Version}", pkg.Name); !ok {
		return err
	}
	want := "install ok installed"
	if pkg.Version != "" {
		want += "\t" + pkg.Version
	}
	if got := status.String(); !strings.HasPrefix(got+"\t", want+"\t") {
		t.fail("check", fmt.Sprintf("dpkg reports %q, want %q", got, want))
		return nil
	}
	if ok, err := t.run(ctx, "check", nil, "dpkg", "--verify", pkg.Name); !ok {
		return err
	}
	if ok, err := t.custom(ctx, pkg, opts); !ok {
		return err
	}
	var list bytes.Buffer
	if ok, err := t.run(ctx, "check", &list, "dpkg-query", "-L", pkg.Name); !ok {
		return err
	}
	files := parseFileList(list.Bytes())
	t.step("check")
	// dpkg itself removes (prerm, postrm remove), without loading APT's
	// cache again; apt-get purges, and takes the dependencies installed
	// for the package.
	if ok, err := t.run(ctx, "remove", nil, "dpkg", "--remove", pkg.Name); !ok {
		return err
	}
	t.step("remove")
	if ok, err := t.run(ctx, "purge", nil, "apt-get", "purge", "-y", "-q", "--autoremove", pkg.Name); !ok {
		return err
	}
	// dpkg forgets a purged package: dpkg-query finds nothing.
	var after bytes.Buffer
	err = t.env.Run(ctx, Command{Args: []string{"dpkg-query", "-W", "-f=${Status}", pkg.Name}, Stdout: &after, Timeout: t.timeout})
	if err == nil && !strings.HasSuffix(after.String(), "not-installed") {
		t.fail("purge", fmt.Sprintf("dpkg still reports %q after the purge", after.String()))
		return nil
	}
	t.step("purge")
	return t.leftovers(before, files)
}

// rpm runs the steps with dnf and rpm.
func (t *installRun) rpm(ctx context.Context, pkg PackageRef, opts InstallOptions) error {
	dnf := dnfArgs()
	// No makecache first: dnf install reads the metadata (and imports
	// the key) itself, and what it writes doing so lies in its cache
	// and the rpmdb, not among leftovers.
	before, err := t.env.Changes()
	if err != nil {
		return err
	}
	t.step("setup")
	target := pkg.Name
	if pkg.Version != "" {
		target += "-" + pkg.Version
		if pkg.Arch != "" {
			target += "." + pkg.Arch
		}
	}
	if ok, err := t.dnf(ctx, "install", append(dnf, "install", target)); !ok {
		return err
	}
	t.step("install")
	if ok, err := t.run(ctx, "check", nil, "rpm", "-q", pkg.Name); !ok {
		return err
	}
	if ok, err := t.run(ctx, "check", nil, "rpm", "-V", pkg.Name); !ok {
		return err
	}
	if ok, err := t.custom(ctx, pkg, opts); !ok {
		return err
	}
	var list bytes.Buffer
	if ok, err := t.run(ctx, "check", &list, "rpm", "-ql", pkg.Name); !ok {
		return err
	}
	files := parseFileList(list.Bytes())
	t.step("check")
	if ok, err := t.dnf(ctx, "remove", append(dnf, "remove", pkg.Name)); !ok {
		return err
	}
	if err := t.env.Run(ctx, Command{Args: []string{"rpm", "-q", pkg.Name}, Timeout: t.timeout}); err == nil {
		t.fail("remove", "rpm still reports the package installed after its removal")
		return nil
	}
	t.step("remove")
	return t.leftovers(before, files)
}

// missingDep matches apt's words for a dependency it cannot get; the
// environment is offline.
var missingDep = regexp.MustCompile(`(?m)(but it is not installable|but it is not going to be installed|Unable to locate package|Failed to fetch)`)

// missingDepHint says what to do about it.
const missingDepHint = "a dependency is neither in the base nor in the test repository (environments are offline): add it to the base's packages"

// scriptletFailed matches what rpm and dnf print of a failed scriptlet:
// rpm counts it as an error but keeps the transaction, and dnf exits 0.
var scriptletFailed = regexp.MustCompile(`(?m)(^warning: %[a-z]+\(.*\) scriptlet failed|^Error in [A-Z]+ scriptlet in rpm package)`)

// dnf runs a dnf transaction as step; a failed scriptlet fails it.
func (t *installRun) dnf(ctx context.Context, step string, args []string) (bool, error) {
	from := len(t.rep.Log)
	ok, err := t.run(ctx, step, nil, args...)
	if !ok || err != nil {
		return ok, err
	}
	if m := scriptletFailed.Find(t.rep.Log[min(from, len(t.rep.Log)):]); m != nil {
		t.fail(step, string(m))
		return false, nil
	}
	return true, nil
}

// custom runs the configured check script, if any.
func (t *installRun) custom(ctx context.Context, pkg PackageRef, opts InstallOptions) (bool, error) {
	if opts.Check == "" {
		return true, nil
	}
	return t.run(ctx, "check", nil, envCheck, pkg.Name)
}

// leftovers compares the environment's changes after the purge with
// those before the install: what is new, outside the tools' own
// directories, the package left behind.
func (t *installRun) leftovers(before map[string]fs.FileMode, files []string) error {
	after, err := t.env.Changes()
	if err != nil {
		return err
	}
	left := Leftovers(before, after, t.env.base.Root(), files)
	t.step("leftovers")
	if len(left) == 0 {
		return nil
	}
	own := 0
	for _, p := range left {
		if slices.Contains(files, p) {
			own++
		}
	}
	t.rep.Leftovers = left
	t.rep.Log = fmt.Appendf(t.rep.Log, "# left behind after the purge (%d of the package's own files):\n", own)
	for _, p := range left {
		t.rep.Log = fmt.Appendf(t.rep.Log, "#   %s\n", p)
	}
	t.fail("leftovers", fmt.Sprintf("%d paths left behind (%d of the package's own files), first %s", len(left), own, left[0]))
	return nil
}

// Leftovers returns the paths present in after and not in before, outside
// the ignored directories (the package's own files, own, count wherever
// they are), leaving out directories the base has (which an overlay
// copies up when something is written in them).
func Leftovers(before, after map[string]fs.FileMode, baseRoot string, own []string) []string {
	var out []string
	for p, m := range after {
		if m&fs.ModeCharDevice != 0 && m&fs.ModeDevice != 0 && m&fs.ModeIrregular != 0 {
			continue // a whiteout: removed from the base
		}
		if bm, ok := before[p]; ok && bm.Type() == m.Type() {
			continue
		}
		if ignored(p) && !slices.Contains(own, p) {
			continue
		}
		if m.IsDir() {
			if fi, err := os.Lstat(filepath.Join(baseRoot, p)); err == nil && fi.IsDir() {
				continue
			}
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func ignored(p string) bool {
	for _, d := range ignoredDirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// parseFileList reads dpkg-query -L or rpm -ql output: absolute paths,
// one a line; other lines (rpm's "(contains no files)", dpkg's
// "diverted by") are not paths and are left out.
func parseFileList(data []byte) []string {
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "/") && !strings.ContainsRune(l, 0) && len(l) < 4096 {
			out = append(out, filepath.Clean(l))
		}
	}
	return out
}

// Changes lists what the environment changed in its base: the overlay's
// upper directory, or the whole copy. Whiteouts (paths removed from the
// base) carry fs.ModeCharDevice|fs.ModeDevice|fs.ModeIrregular.
func (e *ChrootEnv) Changes() (map[string]fs.FileMode, error) {
	out := map[string]fs.FileMode{}
	err := filepath.WalkDir(e.changes, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == e.changes {
			return nil
		}
		rel := "/" + strings.TrimPrefix(p, e.changes+"/")
		m := d.Type()
		if e.overlay && m&fs.ModeCharDevice != 0 {
			if fi, err := d.Info(); err == nil && isWhiteout(fi) {
				m |= fs.ModeIrregular
			}
		}
		out[rel] = m
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("env %s: changes: %w", e.id, err)
	}
	return out, nil
}

// isWhiteout says whether an overlay's character device is a whiteout
// (device 0/0).
func isWhiteout(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Rdev == 0
}

// aptUpdateArgs reads the lists of the test repository only: the base's
// own lists stay as they were prepared.
func aptUpdateArgs() []string {
	return []string{"apt-get", "update", "-q", "-o", "Dir::Etc::SourceList=" + aptSources, "-o", "Dir::Etc::SourceParts=-",
		"-o", "APT::Get::List-Cleanup=0", "-o", "Acquire::Languages=none"}
}

// dnfArgs start a dnf command on the test repository alone.
func dnfArgs() []string {
	return []string{"dnf", "-y", "-q", "--setopt=reposdir=" + dnfReposDir, "--releasever=sluice",
		"--setopt=install_weak_deps=False", "--setopt=keepcache=False"}
}

// aptOptions are the files that add repo to APT: a deb822 source with
// signed-by, its key, and a pin of 1001 on it.
func aptOptions(repo Repo) (EnvOptions, error) {
	suite, comp, origin := repo.Suite, repo.Component, repo.Origin
	if suite == "" {
		suite = "sluice-test"
	}
	if comp == "" {
		comp = "main"
	}
	for _, s := range []string{suite, comp, origin} {
		if s != "" && !pkgNameRE.MatchString(s) {
			return EnvOptions{}, fmt.Errorf("install test: APT repository name %q: not a plain name", s)
		}
	}
	src := "Types: deb\nURIs: file:" + envRepoDir + "\nSuites: " + suite + "\nComponents: " + comp + "\nSigned-By: " + aptKey + "\n"
	pin := "n=" + suite
	if origin != "" {
		pin = "o=" + origin + "," + pin
	}
	prefs := "Package: *\nPin: release " + pin + "\nPin-Priority: 1001\n"
	return EnvOptions{Files: []File{
		{Path: aptSources, Data: []byte(src)},
		{Path: aptKey, Data: repo.Key},
		{Path: aptPrefs, Data: []byte(prefs)},
	}}, nil
}

// dnfOptions are the files that add repo to dnf: a .repo with gpgcheck,
// repo_gpgcheck and the highest priority, and its key.
func dnfOptions(repo Repo) (EnvOptions, error) {
	conf := "[sluice-test]\nname=sluice test repository\nbaseurl=file://" + envRepoDir + "\nenabled=1\n" +
		"gpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file://" + dnfKey + "\npriority=1\nmetadata_expire=0\n"
	return EnvOptions{Files: []File{
		{Path: dnfReposDir + "/sluice-test.repo", Data: []byte(conf)},
		{Path: dnfKey, Data: repo.Key},
	}}, nil
}
