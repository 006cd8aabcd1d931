package main

// The install stage: every binary package of a buildset's test
// repositories installed, checked, removed and purged, one by one, each in
// a fresh environment (package systest).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-ci/sluice/builder"
	"github.com/sluice-ci/sluice/jobs"
	"github.com/sluice-ci/sluice/repo"
	"github.com/sluice-ci/sluice/results"
	"github.com/sluice-ci/sluice/systest"
)

// systestConfig is the systest section: the base systems of test
// environments, the install stage and the system tests.
type systestConfig struct {
	// Bases are the base systems, beside the built-in bookworm (for
	// .debs) and bookworm-rpm (Debian's rpm and dnf, for RPMs); a base
	// given here under one of those names replaces it.
	Bases []systest.BaseSpec `yaml:"bases"`
	// BasesDir is where prepared bases are kept; DATA-DIR/bases when
	// empty.
	BasesDir string        `yaml:"bases_dir"`
	Install  installConfig `yaml:"install"`
	// Scenarios are system test scenario files on this host, run for
	// every project beside those in the project's own .sluice/systest/.
	Scenarios []string `yaml:"scenarios"`
	// KeepFailed is how long the environments of a failed scenario are
	// kept for `sluice env shell`; not at all when zero.
	KeepFailed time.Duration `yaml:"keep_failed"`
}

// installConfig is the install stage's section.
type installConfig struct {
	// DebBase and RPMBase name the bases .debs and RPMs are installed
	// on; bookworm and bookworm-rpm when empty.
	DebBase string `yaml:"deb_base"`
	RPMBase string `yaml:"rpm_base"`
	// Check is a script run in the environment as CHECK PACKAGE after
	// each install; without one, the package tool's own check (dpkg
	// --verify, rpm -V).
	Check string `yaml:"check"`
	// StepTimeout bounds each step of a package's test; 10m when zero.
	StepTimeout time.Duration `yaml:"step_timeout"`
	// Parallel is how many packages are tested at once; 2 when zero.
	Parallel int `yaml:"parallel"`
	// Mirror lets the environments fetch Debian dependencies the base
	// lacks from the base's mirror, through a proxy in each (systest.Proxy);
	// off, they are offline and a dependency must be in the base or the
	// test repository.
	Mirror bool `yaml:"mirror"`
}

// builtinBases are the bases there are without config.
var builtinBases = []systest.BaseSpec{
	{Name: "bookworm", Suite: "bookworm"},
	{Name: "bookworm-rpm", Suite: "bookworm", RPM: true},
}

// Validate checks the systest section.
func (c systestConfig) Validate() error {
	seen := map[string]bool{}
	for i, b := range c.Bases {
		if err := b.Validate(); err != nil {
			return fmt.Errorf("systest: bases[%d]: %w", i, err)
		}
		if seen[b.Name] {
			return fmt.Errorf("systest: bases[%d]: %s given twice", i, b.Name)
		}
		seen[b.Name] = true
	}
	if c.BasesDir != "" && !filepath.IsAbs(c.BasesDir) {
		return fmt.Errorf("systest: bases_dir %q: not absolute", c.BasesDir)
	}
	for _, n := range []string{c.Install.DebBase, c.Install.RPMBase} {
		if _, ok := c.base(n); n != "" && !ok {
			return fmt.Errorf("systest: install: base %q is not defined", n)
		}
	}
	if c.Install.Check != "" && !filepath.IsAbs(c.Install.Check) {
		return fmt.Errorf("systest: install: check %q: not absolute", c.Install.Check)
	}
	for i, f := range c.Scenarios {
		if !filepath.IsAbs(f) {
			return fmt.Errorf("systest: scenarios[%d] %q: not absolute", i, f)
		}
	}
	if c.KeepFailed < 0 {
		return errors.New("systest: keep_failed: negative")
	}
	if c.Install.StepTimeout < 0 {
		return errors.New("systest: install: step_timeout: negative")
	}
	if c.Install.Parallel < 0 || c.Install.Parallel > 64 {
		return fmt.Errorf("systest: install: parallel: %d is not 0 (default) to 64", c.Install.Parallel)
	}
	return nil
}

// base returns the base named name: configured, else built in.
func (c systestConfig) base(name string) (systest.BaseSpec, bool) {
	for _, b := range c.Bases {
		if b.Name == name {
			return b, true
		}
	}
	for _, b := range builtinBases {
		if b.Name == name {
			return b, true
		}
	}
	return systest.BaseSpec{}, false
}

// allBases are the configured and built-in bases, by name.
func (c systestConfig) allBases() []systest.BaseSpec {
	out := slices.Clone(c.Bases)
	for _, b := range builtinBases {
		if _, ok := c.base(b.Name); ok && !slices.ContainsFunc(out, func(o systest.BaseSpec) bool { return o.Name == b.Name }) {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b systest.BaseSpec) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// installBase is the base of format's install tests.
func (c systestConfig) installBase(format string) systest.BaseSpec {
	name := c.Install.DebBase
	if format == "rpm" {
		name = c.Install.RPMBase
	}
	if name == "" {
		name = "bookworm"
		if format == "rpm" {
			name = "bookworm-rpm"
		}
	}
	b, _ := c.base(name)
	return b
}

// basesDir is where prepared bases are kept.
func (c systestConfig) basesDir(dataDir string) string {
	if c.BasesDir != "" {
		return c.BasesDir
	}
	return filepath.Join(dataDir, "bases")
}

// install runs the install test on every binary package of the
// buildset's test repositories and records one sluice.install result per
// package and one for the stage.
func (s *stages) install(ctx context.Context, r jobs.Run) (jobs.Result, error) {
	sp, err := parseStageParams(r.Params)
	if err != nil {
		return jobs.Result{}, fmt.Errorf("stage install: %w", err)
	}
	start := time.Now()
	cfg := s.env.cfg.Systest
	var pub bytes.Buffer
	if err := s.testKey.WritePublic(&pub); err != nil {
		return jobs.Result{}, fmt.Errorf("stage install: %w", err)
	}
	bases := systest.NewBases(cfg.basesDir(s.env.dataDir), s.log)
	chroot := envChroot(s.env.dataDir, s.log)
	link := artifactURL(s.env.cfg.Server.URL)
	repoDir := filepath.Join(s.buildsetDir(sp.UUID), "repo")
	var (
		res          []*results.Result
		notes        []string
		passed, fail int
	)
	for _, format := range []string{"deb", "rpm"} {
		dir := filepath.Join(repoDir, format)
		pkgs, err := repoPackages(dir, format)
		if err != nil {
			return jobs.Result{}, fmt.Errorf("stage install: %w", err)
		}
		if len(pkgs) == 0 {
			continue
		}
		spec := cfg.installBase(format)
		base, err := bases.Prepare(ctx, spec, false)
		if err != nil {
			return jobs.Result{}, fmt.Errorf("stage install: %w", err)
		}
		rp := systest.Repo{Format: format, Dir: dir, Key: pub.Bytes(), Suite: testCodename, Component: "main", Origin: "sluice"}
		reps, err := installAll(ctx, chroot, base, rp, pkgs, cfg.Install)
		if err != nil {
			return jobs.Result{}, fmt.Errorf("stage install: %w", err)
		}
		for i, p := range pkgs {
			rep := reps[i]
			pr := stageResult(sp, "install", r.Attempt, start, rep.Outcome, nil)
			item, typ := p.Name+"_"+p.EVR()+"_"+p.Arch, builder.ItemDeb
			if format == "rpm" {
				item, typ = p.Name+"-"+p.EVR()+"."+p.Arch, builder.ItemRPM
			}
			pr.Data["item"], pr.Data["type"] = []string{item}, []string{typ}
			pr.Data["package"], pr.Data["arch"], pr.Data["format"] = []string{p.Name}, []string{p.Arch}, []string{format}
			pr.Data["base"] = []string{spec.Name + "-" + base.Key}
			pr.Data["duration"] = []string{strconv.FormatFloat(rep.Duration.Seconds(), 'f', 3, 64)}
			if len(rep.Leftovers) > 0 {
				pr.Data["leftovers"] = rep.Leftovers[:min(len(rep.Leftovers), 50)]
			}
			if rep.Outcome != systest.Passed {
				pr.Note = rep.Step + ": " + rep.Reason
				pr.Data["failed_step"] = []string{rep.Step}
				fail++
				notes = append(notes, fmt.Sprintf("%s: %s failed", item, rep.Step))
			} else {
				passed++
			}
			a, err := s.arts.Put(ctx, bytes.NewReader(rep.Log))
			if err != nil {
				return jobs.Result{}, err
			}
			pr.Data["log_sha256"] = []string{a.SHA256}
			if link != nil {
				pr.RefURL = link(a)
				pr.Data["log_url"] = []string{pr.RefURL}
			}
			res = append(res, pr)
		}
	}
	outcome := jobs.Passed
	switch {
	case len(res) == 0:
		outcome = jobs.Failed
		notes = append(notes, "no packages in the test repositories (publish first)")
	case fail > 0:
		outcome = jobs.Failed
	}
	notes = append([]string{fmt.Sprintf("%d packages passed, %d failed", passed, fail)}, notes...)
	stage := stageResult(sp, "install", r.Attempt, start, outcome, notes)
	// The report links the log of the first package that failed, or
	// of the first.
	logURL := ""
	for _, pr := range res {
		if logURL == "" || pr.Outcome != jobs.Passed {
			logURL = pr.RefURL
		}
		if pr.Outcome != jobs.Passed {
			break
		}
	}
	stage.RefURL = logURL
	res = append(res, stage)
	if err := s.record(ctx, res...); err != nil {
		return jobs.Result{}, err
	}
	return jobs.Result{Outcome: outcome, LogURL: logURL}, nil
}

// installAll runs the install tests of pkgs, cfg.Parallel at a time, and
// returns their reports in the order of pkgs; the first error stops the
// rest.
func installAll(ctx context.Context, c *systest.Chroot, base systest.Base, rp systest.Repo, pkgs []repo.Package,
	cfg installConfig) ([]systest.InstallReport, error) {
	n := cfg.Parallel
	if n == 0 {
		n = 2
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	reps := make([]systest.InstallReport, len(pkgs))
	errs := make([]error, len(pkgs))
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i, p := range pkgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			reps[i], errs[i] = systest.InstallTest(ctx, c, base, rp, systest.PackageRef{Name: p.Name, Version: p.EVR(), Arch: p.Arch},
				systest.InstallOptions{Check: cfg.Check, StepTimeout: cfg.StepTimeout, Mirror: cfg.Mirror})
			if errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	// The first error that is not the cancellation it caused.
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return reps, nil
}

// repoPackages returns the binary packages of a published test
// repository of format, sorted by name; none when it does not exist.
func repoPackages(dir, format string) ([]repo.Package, error) {
	var out []repo.Package
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == dir {
			return filepath.SkipAll
		}
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir // the publisher's own state
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(p, "."+format) || strings.HasSuffix(p, ".src.rpm") {
			return nil
		}
		pkg, err := repo.Inspect(p)
		if err != nil {
			return err
		}
		out = append(out, pkg)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b repo.Package) int { return strings.Compare(a.Name+" "+a.Arch, b.Name+" "+b.Arch) })
	return out, nil
}
