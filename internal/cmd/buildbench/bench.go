package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sluice-ci/sluice/builder"
)

// assumeInstalled is what the RPM back-end takes as installed on a host
// whose rpmdb says nothing (Debian), as in builder's tests.
var assumeInstalled = []string{"gcc", "make"}

// fetchBench measures a checkout of what the cache already has, by commit
// and by branch, next to git fetch in a clone that is up to date.
func fetchBench(ctx context.Context, up *upstream, dir string, t *tools, log *slog.Logger) (*section, error) {
	sec := &section{kind: fetchKind, title: "no-op fetch, " + up.sample, sample: up.sample}
	project := "samples/" + up.sample
	ws := filepath.Join(dir, "ws")
	src := builder.NewSources(filepath.Join(dir, "cache"), log)
	// The first checkout clones into the cache.
	co, err := src.Checkout(ctx, project, up.url, changeRef, ws)
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(co.Dir); err != nil {
		return nil, err
	}
	checkout := func(ref string) func(int) (measured, error) {
		return func(int) (measured, error) {
			start := time.Now()
			co, err := src.Checkout(ctx, project, up.url, ref, ws)
			d := time.Since(start)
			if err != nil {
				return measured{}, err
			}
			if co.Fetched {
				return measured{}, fmt.Errorf("checkout of %s on a warm cache fetched objects", ref)
			}
			return measured{total: d}, os.RemoveAll(co.Dir)
		}
	}

	gitMissing := t.missing("git")
	clone := filepath.Join(dir, "clone")
	if gitMissing == "" {
		if err := t.run(ctx, dir, t.home, nil, "git", "clone", up.url, clone); err != nil {
			return nil, err
		}
	}
	err = sec.measure([]contender{
		{tool: "sluice Checkout, commit SHA (remote not asked)", role: sluiceRole, run: checkout(up.commit)},
		{tool: "sluice Checkout, " + up.branch + " (remote asked)", role: sluiceRole, run: checkout(up.branch)},
		{tool: "git fetch origin (nothing new)", role: byHandRole, missing: gitMissing, run: func(int) (measured, error) {
			start := time.Now()
			err := t.run(ctx, clone, t.home, nil, "git", "fetch", "origin")
			return measured{total: time.Since(start)}, err
		}},
		{tool: "git clone --bare, from scratch (for scale)", role: contextRole, missing: gitMissing, run: func(k int) (measured, error) {
			bare := filepath.Join(dir, fmt.Sprintf("bare-%d", k))
			start := time.Now()
			err := t.run(ctx, dir, t.home, nil, "git", "clone", "--bare", up.url, bare)
			d := time.Since(start)
			if err != nil {
				return measured{}, err
			}
			return measured{total: d}, os.RemoveAll(bare)
		}},
	})
	return sec, err
}

// buildBench measures checkout + build of one sample in one format.
type buildBench struct {
	up     *upstream
	format string
	dir    string
	tools  *tools
	log    *slog.Logger
}

func (b *buildBench) run(ctx context.Context) (*section, error) {
	sec := &section{kind: buildKind, title: fmt.Sprintf("checkout + build, %s, %s", b.up.sample, b.format),
		sample: b.up.sample, format: b.format}
	// What both sides need, then what only the by-hand side does.
	needs := []string{"dpkg-buildpackage", "dpkg-checkbuilddeps"}
	byHand := "by hand: git clone, orig tarball, dpkg-buildpackage"
	extra := "dpkg-checkbuilddeps alone (sluice's check)"
	if b.format == "rpm" {
		needs = []string{"rpmbuild", "rpmspec"}
		byHand = "by hand: git clone, Source0, rpmbuild"
		extra = "rpmspec queries alone (sluice runs 3)"
	}
	missing := b.tools.missing(needs...)
	gitMissing := missing
	if gitMissing == "" {
		gitMissing = b.tools.missing("git")
	}
	err := sec.measure([]contender{
		{tool: "sluice Build, test build, cold cache", role: sluiceRole, missing: missing, run: func(k int) (measured, error) {
			return b.sluice(ctx, k)
		}},
		{tool: byHand, role: byHandRole, missing: gitMissing, run: func(k int) (measured, error) {
			return b.byHand(ctx, k)
		}},
		{tool: extra, role: contextRole, missing: missing, run: func(int) (measured, error) {
			return b.extra(ctx)
		}},
	})
	return sec, err
}

// sluice times one Build of the change, with a new cache and artifact
// store: it starts from nothing, as git clone does.
func (b *buildBench) sluice(ctx context.Context, k int) (measured, error) {
	data := filepath.Join(b.dir, fmt.Sprintf("sluice-%d", k))
	arts, err := builder.NewArtifacts(filepath.Join(data, "artifacts"))
	if err != nil {
		return measured{}, err
	}
	defer arts.Close()
	work := filepath.Join(data, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return measured{}, err
	}
	backends := []builder.Backend{builder.Deb{}, &builder.RPM{NoDeps: true, AssumeInstalled: assumeInstalled}}
	bld := builder.New(builder.NewSources(filepath.Join(data, "git"), b.log), arts, backends,
		builder.Config{WorkDir: work, Timeout: toolTimeout, Env: b.tools.env, Version: "buildbench"}, b.log)
	req := builder.Request{Project: "samples/" + b.up.sample, URL: b.up.url, Ref: changeRef,
		Change: change, Patchset: patchset, Formats: []string{b.format}, OutDir: filepath.Join(data, "out")}

	start := time.Now()
	recs, err := bld.Build(ctx, req)
	total := time.Since(start)
	if err != nil {
		return measured{}, err
	}
	if err := checkRecords(recs, b.format); err != nil {
		return measured{}, err
	}
	// Start and End bracket the back-end: build dependencies, the build,
	// storing the outputs. The rest is the checkout before it and the
	// log and record after it.
	span := recs[0].End.Sub(recs[0].Start)
	m := measured{total: total, parts: []part{
		{"back-end (record start to end)", span},
		{"the rest: checkout, log, record", total - span},
	}}
	return m, os.RemoveAll(data)
}

// checkRecords checks that a Build of format passed and made a binary
// package.
func checkRecords(recs []*builder.Record, format string) error {
	if len(recs) != 1 {
		return fmt.Errorf("sluice build: %d records, want 1", len(recs))
	}
	r := recs[0]
	if r.Format != format || r.Outcome != builder.Passed {
		return fmt.Errorf("sluice build: %s: %s: %s\n%s", r.Format, r.Outcome, r.Reason, strings.Join(r.LogTail, "\n"))
	}
	if !slices.ContainsFunc(r.Outputs, func(o builder.Output) bool { return o.Package != nil }) {
		return fmt.Errorf("sluice build: %s: no binary package among %d outputs", format, len(r.Outputs))
	}
	return nil
}

// byHand times what a person does to build the change: clone, check the
// change out, make the tarball the build wants, run the build tool.
func (b *buildBench) byHand(ctx context.Context, k int) (measured, error) {
	dir := filepath.Join(b.dir, fmt.Sprintf("hand-%d", k))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return measured{}, err
	}
	s, err := b.tools.newScript(dir)
	if err != nil {
		return measured{}, err
	}
	defer s.close()
	up := b.up
	var tree, tarName, outGlob string
	var tarball, build []string
	switch b.format {
	case "deb":
		// dpkg-source wants the orig tarball beside the tree.
		base := up.debSource + "-" + up.debUpstream
		tree = filepath.Join(dir, base)
		tarName = "orig tarball (git archive)"
		tarball = []string{"git", "archive", "--prefix=" + base + "/",
			"-o", filepath.Join(dir, up.debSource+"_"+up.debUpstream+".orig.tar.gz"), "HEAD", "--", ".", ":(exclude)debian"}
		build = []string{"dpkg-buildpackage", "-us", "-uc"}
		outGlob = filepath.Join(dir, "*.deb")
	case "rpm":
		base := up.rpmName + "-" + up.rpmVersion
		tree = filepath.Join(dir, "src")
		top := filepath.Join(dir, "rpmbuild")
		if err := os.MkdirAll(filepath.Join(top, "SOURCES"), 0o755); err != nil {
			return measured{}, err
		}
		tarName = "Source0 (git archive)"
		tarball = []string{"git", "archive", "--prefix=" + base + "/",
			"-o", filepath.Join(top, "SOURCES", base+".tar.gz"), "HEAD"}
		build = []string{"rpmbuild", "--define", "_topdir " + top, "--nodeps", "-ba", up.spec}
		outGlob = filepath.Join(top, "RPMS", "*", "*.rpm")
	}

	start := time.Now()
	for _, c := range []struct {
		dir  string
		argv []string
	}{
		{dir, []string{"git", "clone", up.url, tree}},
		{tree, []string{"git", "fetch", "origin", changeRef}},
		{tree, []string{"git", "checkout", "--detach", "FETCH_HEAD"}},
	} {
		if err := s.run(ctx, c.dir, c.argv...); err != nil {
			return measured{}, err
		}
	}
	cloned := time.Now()
	if err := s.run(ctx, tree, tarball...); err != nil {
		return measured{}, err
	}
	archived := time.Now()
	if err := s.run(ctx, tree, build...); err != nil {
		return measured{}, err
	}
	end := time.Now()

	if pkgs, err := filepath.Glob(outGlob); err != nil || len(pkgs) == 0 {
		return measured{}, fmt.Errorf("by-hand %s build in %s: no binary package (%s)", b.format, dir, outGlob)
	}
	m := measured{total: end.Sub(start), parts: []part{
		{"git clone, fetch, checkout", cloned.Sub(start)},
		{tarName, archived.Sub(cloned)},
		{strings.Join(build[:1], " "), end.Sub(archived)},
	}}
	return m, os.RemoveAll(dir)
}

// extra times the commands that sluice's back-end runs besides the build
// tool, as it runs them: dpkg-checkbuilddeps before dpkg-buildpackage
// (which runs it again itself); rpmspec for the build dependencies, the
// package's name and version and the expanded spec, and rpm -q for a
// build dependency not assumed installed.
func (b *buildBench) extra(ctx context.Context) (measured, error) {
	dir := b.up.dir
	t := b.tools
	start := time.Now()
	if b.format == "deb" {
		err := t.run(ctx, dir, t.home, nil, "dpkg-checkbuilddeps")
		return measured{total: time.Since(start)}, err
	}
	var deps bytes.Buffer
	if err := t.run(ctx, dir, t.home, &deps, "rpmspec", "-q", "--buildrequires", b.up.spec); err != nil {
		return measured{}, err
	}
	for _, line := range strings.Split(deps.String(), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if name == "" || slices.Contains(assumeInstalled, name) {
			continue
		}
		// Exit 1 is the answer "not provided".
		if err := t.run(ctx, dir, t.home, nil, "rpm", "-q", "--whatprovides", strings.TrimSpace(line)); err != nil && ctx.Err() != nil {
			return measured{}, err
		}
	}
	for _, argv := range [][]string{
		{"rpmspec", "-q", "--srpm", "--qf", "%{epoch} %{name} %{version} %{release}\n", b.up.spec},
		{"rpmspec", "-P", b.up.spec},
	} {
		if err := t.run(ctx, dir, t.home, nil, argv...); err != nil {
			return measured{}, err
		}
	}
	return measured{total: time.Since(start)}, nil
}
