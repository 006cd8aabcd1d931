// Command envbench measures sluice's test environments (package systest)
// in one run, on the base the tests use (prepared once and cached, as
// `go test` does):
//
//   - a fresh environment from the prepared base (overlayfs, and the copy
//     made where overlayfs is refused), started and closed -n times,
//     against preparing the same base afresh with mmdebstrap and with
//     debootstrap, each timed once (-fresh=false leaves those out);
//   - the install test of one package from a signed test repository (made
//     by package repo, as the publish stage makes them) against a plain
//     apt-get install + apt-get purge (dnf install + dnf remove for the
//     RPM) of the same package in one environment, -n times each.
//
// It prints a table with the medians, the targets and the
// ratios. It needs root, mmdebstrap, debootstrap, unshare and nsenter. A
// timing never makes it fail; a step that cannot run does. `make bench`
// runs it.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sluice-ci/sluice/internal/benchmain"
	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/internal/proc"
	"github.com/sluice-ci/sluice/repo"
	"github.com/sluice-ci/sluice/systest"
)

type options struct {
	n     int
	cache string
	fresh bool
	work  string
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 10, "repetitions of each measure (fresh environments, install tests)")
	flag.StringVar(&o.cache, "cache", "", "cache of prepared bases (default $SLUICE_TEST_CACHE, or sluice-test in the user's cache directory, as the tests)")
	flag.BoolVar(&o.fresh, "fresh", true, "also prepare the base afresh with mmdebstrap and debootstrap (minutes), once each")
	flag.StringVar(&o.work, "work", "", "work directory (default a temporary directory, removed at the end)")
	flag.Parse()
	benchmain.Run("envbench", func() error {
		if o.n < 1 || o.n > 1000 {
			return fmt.Errorf("-n %d: not 1 to 1000", o.n)
		}
		if o.cache == "" {
			o.cache = os.Getenv("SLUICE_TEST_CACHE")
		}
		if o.cache == "" {
			d, err := os.UserCacheDir()
			if err != nil {
				return err
			}
			o.cache = filepath.Join(d, "sluice-test")
		}
		if os.Geteuid() != 0 {
			return fmt.Errorf("environments need root")
		}
		return nil
	}, func(ctx context.Context, w io.Writer, log *slog.Logger) error { return o.run(ctx, w, log) })
}

// spec is the base the tests use.
var spec = systest.BaseSpec{Name: "sluice-test", Suite: "bookworm", RPM: true}

func (o options) run(ctx context.Context, w io.Writer, log *slog.Logger) error {
	work := o.work
	if work == "" {
		d, err := os.MkdirTemp("", "envbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		work = d
	}
	start := time.Now()
	base, err := systest.NewBases(o.cache, log).Prepare(ctx, spec, false)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "base %s (%s, %.0f MiB, prepared in %.1fs; ready here in %s)\n\n", spec.Name, base.Key,
		float64(base.Size)/(1<<20), base.Seconds, time.Since(start).Round(time.Millisecond))
	tw := newTable(w)
	// A fresh environment, overlay and copy.
	for _, copyMode := range []bool{false, true} {
		c := systest.NewChroot(filepath.Join(work, "envs"), log)
		c.NoOverlay = copyMode
		n := o.n
		if copyMode {
			n = min(n, 3)
		}
		var starts, closes []time.Duration
		for range n {
			t0 := time.Now()
			e, err := c.StartChroot(ctx, systest.EnvOptions{Base: base})
			if err != nil {
				return err
			}
			t1 := time.Now()
			if _, err := systest.Output(ctx, e, time.Minute, "true"); err != nil {
				e.Close()
				return err
			}
			t2 := time.Now()
			if err := e.Close(); err != nil {
				return err
			}
			starts, closes = append(starts, t1.Sub(t0)), append(closes, time.Since(t2))
		}
		name := "overlayfs"
		if copyMode {
			name = "copy (no overlayfs)"
		}
		tw.row("fresh environment: start, "+name, median(starts), "< 1s", time.Second)
		tw.row("fresh environment: close, "+name, median(closes), "", 0)
	}
	if o.fresh {
		t0 := time.Now()
		if _, err := systest.NewBases(filepath.Join(work, "bases"), log).Prepare(ctx, spec, true); err != nil {
			return err
		}
		tw.row("fresh base: mmdebstrap (same definition)", time.Since(t0), "minutes", 0)
		t0 = time.Now()
		if err := debootstrap(ctx, filepath.Join(work, "debootstrap")); err != nil {
			return err
		}
		tw.row("fresh base: debootstrap --variant=minbase +rpm,dnf", time.Since(t0), "minutes", 0)
	}
	if err := o.installs(ctx, tw, base, work, log); err != nil {
		return err
	}
	return tw.flush()
}

// debootstrap makes the base afresh the classic way, for comparison.
func debootstrap(ctx context.Context, dir string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	cmd := proc.Command(ctx, "debootstrap", "--variant=minbase", "--include=rpm,dnf", "bookworm", dir, systest.DefaultMirror)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8"}
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("debootstrap: %w: %s", err, tailOf(errb.String()))
	}
	return nil
}

// installs measures the install test of one .deb and one RPM against the
// package tool's plain install and removal in one environment.
func (o options) installs(ctx context.Context, tw *table, base systest.Base, work string, log *slog.Logger) error {
	priv, _, err := repo.GenerateKey("envbench", "envbench@localhost", repo.Ed25519, nil)
	if err != nil {
		return err
	}
	key, err := repo.ReadKey(bytes.NewReader(priv), nil)
	if err != nil {
		return err
	}
	var pub bytes.Buffer
	if err := key.WritePublic(&pub); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(work, "in"), 0o755); err != nil {
		return err
	}
	// Files in directories the base has: pkgtest's RPMs do not own the
	// directories they make, so rpm leaves new ones behind, and the
	// install test rightly reports them.
	files := map[string][]byte{"/usr/share/bench-pkg.data": pkgtest.Payload("bench", 256<<10), "/usr/lib/bench-pkg.txt": []byte("bench\n")}
	debPath, err := pkgtest.Deb{Name: "bench-pkg", Version: "1.0-1", Arch: "all", Files: files}.WriteFile(filepath.Join(work, "in"))
	if err != nil {
		return err
	}
	rpmPath, err := pkgtest.RPM{Name: "bench-pkg", Version: "1.0", Release: "1", Arch: "noarch", Files: files}.WriteFile(filepath.Join(work, "in"))
	if err != nil {
		return err
	}
	debRepo := filepath.Join(work, "repo", "deb")
	a, err := repo.NewAPT(debRepo, key, repo.APTConfig{Codename: "sluice-test", Component: "main", Origin: "sluice"}, log)
	if err != nil {
		return err
	}
	if _, err := a.Publish(ctx, []string{debPath}, repo.PublishOptions{}); err != nil {
		return err
	}
	rpmRepo := filepath.Join(work, "repo", "rpm")
	if _, err := repo.NewRPM(rpmRepo, key, log).Publish(ctx, []string{rpmPath}, repo.PublishOptions{}); err != nil {
		return err
	}
	c := systest.NewChroot(filepath.Join(work, "envs"), log)
	for _, format := range []string{"deb", "rpm"} {
		dir := debRepo
		if format == "rpm" {
			dir = rpmRepo
		}
		r := systest.Repo{Format: format, Dir: dir, Key: pub.Bytes(), Suite: "sluice-test", Component: "main", Origin: "sluice"}
		ref := systest.PackageRef{Name: "bench-pkg", Version: "1.0-1", Arch: "all"}
		if format == "rpm" {
			ref.Arch = "noarch"
		}
		var tests, plains []time.Duration
		steps := map[string][]time.Duration{}
		for range o.n {
			rep, err := systest.InstallTest(ctx, c, base, r, ref, systest.InstallOptions{StepTimeout: 5 * time.Minute})
			if err != nil {
				return err
			}
			if rep.Outcome != systest.Passed {
				return fmt.Errorf("install test of the %s failed at %s: %s\n%s", format, rep.Step, rep.Reason, rep.Log)
			}
			tests = append(tests, rep.Duration)
			for _, s := range rep.Steps {
				steps[s.Name] = append(steps[s.Name], s.Duration)
			}
			d, err := plain(ctx, c, base, r)
			if err != nil {
				return err
			}
			plains = append(plains, d)
		}
		pm, tm := median(plains), median(tests)
		tw.row(format+": plain install + removal in one environment", pm, "", 0)
		tw.row(format+": install test (fresh environment, checks, leftovers)", tm, "< +20%", pm*12/10)
		var names []string
		for _, s := range []string{"start", "setup", "install", "check", "remove", "purge", "leftovers"} {
			if len(steps[s]) > 0 {
				names = append(names, s+" "+median(steps[s]).Round(time.Millisecond).String())
			}
		}
		tw.note(format + ": install test steps (medians): " + strings.Join(names, ", "))
	}
	return nil
}

// plain times the package tool's own install and removal of bench-pkg in
// one environment, the repository set up beforehand (not timed).
func plain(ctx context.Context, c *systest.Chroot, base systest.Base, r systest.Repo) (time.Duration, error) {
	var files []systest.File
	var setup, install, remove [][]string
	if r.Format == "deb" {
		files = []systest.File{
			{Path: "/etc/apt/sources.list.d/bench.sources", Data: []byte("Types: deb\nURIs: file:/srv/repo\nSuites: sluice-test\nComponents: main\nSigned-By: /etc/apt/keyrings/bench.asc\n")},
			{Path: "/etc/apt/keyrings/bench.asc", Data: r.Key},
		}
		setup = [][]string{{"apt-get", "update", "-q", "-o", "Dir::Etc::SourceList=/etc/apt/sources.list.d/bench.sources", "-o", "Dir::Etc::SourceParts=-", "-o", "APT::Get::List-Cleanup=0"}}
		install = [][]string{{"apt-get", "install", "-y", "-q", "bench-pkg"}}
		remove = [][]string{{"apt-get", "purge", "-y", "-q", "bench-pkg"}}
	} else {
		files = []systest.File{
			{Path: "/etc/bench/repos/bench.repo", Data: []byte("[bench]\nname=bench\nbaseurl=file:///srv/repo\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file:///etc/bench/key.asc\n")},
			{Path: "/etc/bench/key.asc", Data: r.Key},
		}
		dnf := []string{"dnf", "-y", "-q", "--setopt=reposdir=/etc/bench/repos", "--releasever=sluice"}
		setup = [][]string{append(slices.Clone(dnf), "makecache")}
		install = [][]string{append(slices.Clone(dnf), "install", "bench-pkg")}
		remove = [][]string{append(slices.Clone(dnf), "remove", "bench-pkg")}
	}
	e, err := c.StartChroot(ctx, systest.EnvOptions{Base: base, Files: files, Mounts: []systest.Mount{{Source: r.Dir, Target: "/srv/repo", ReadOnly: true}}})
	if err != nil {
		return 0, err
	}
	defer e.Close()
	for _, a := range setup {
		if _, err := systest.Output(ctx, e, 5*time.Minute, a...); err != nil {
			return 0, err
		}
	}
	t0 := time.Now()
	for _, a := range append(install, remove...) {
		if _, err := systest.Output(ctx, e, 5*time.Minute, a...); err != nil {
			return 0, err
		}
	}
	return time.Since(t0), nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func tailOf(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}

// table prints the measures with their targets.
type table struct {
	w     io.Writer
	rows  [][4]string
	notes []string
}

func newTable(w io.Writer) *table { return &table{w: w} }

// row adds a measure; limit, when not zero, is the target's value, and
// the ratio measure/limit is printed.
func (t *table) row(name string, d time.Duration, target string, limit time.Duration) {
	ratio := ""
	if limit > 0 {
		ratio = fmt.Sprintf("%.3f", float64(d)/float64(limit))
	}
	t.rows = append(t.rows, [4]string{name, d.Round(time.Microsecond).String(), target, ratio})
}

func (t *table) note(s string) { t.notes = append(t.notes, s) }

func (t *table) flush() error {
	width := 0
	for _, r := range t.rows {
		width = max(width, len(r[0]))
	}
	fmt.Fprintf(t.w, "%-*s  %12s  %8s  %s\n", width, "measure", "median", "target", "measure/target")
	for _, r := range t.rows {
		fmt.Fprintf(t.w, "%-*s  %12s  %8s  %s\n", width, r[0], r[1], r[2], r[3])
	}
	for _, n := range t.notes {
		fmt.Fprintln(t.w, n)
	}
	return nil
}
