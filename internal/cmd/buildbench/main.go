// Command buildbench measures what sluice's builder adds on top of the
// build tools: a no-op fetch of a cached project next to git fetch, and
// checkout + build of the sample source packages (builder/testdata/src)
// next to git clone + dpkg-buildpackage or rpmbuild run by hand in the same
// run. It prints a table of ratios, the target (sluice's overhead under
// 10%) and where the overhead goes. `make bench` runs it.
//
// A timing never makes it fail: it exits non-zero only when a build or a
// tool run fails, and skips what needs a tool that is not installed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/sluice-ci/sluice/internal/benchmain"
)

const (
	// slowRun is the time from which a measurement is run once instead of
	// three times.
	slowRun     = 10 * time.Second
	toolTimeout = 5 * time.Minute

	// The change every test build is of, as build_test.go has it.
	changeRef = "refs/changes/45/12345/2"
	change    = 12345
	patchset  = 2
	// epoch is SOURCE_DATE_EPOCH for both sides, and the sample commits'
	// time.
	epoch = 1793620800
)

type options struct {
	work    string
	srcDir  string
	samples []string
	formats []string
}

func main() {
	var o options
	flag.StringVar(&o.work, "work", "", "keep the work in a new directory under `DIR` (default: a temporary directory, removed at the end)")
	flag.StringVar(&o.srcDir, "samples", filepath.Join("builder", "testdata", "src"), "the directory of the sample source trees")
	samples := flag.String("sample", "hello-c,hello-sh", "samples to measure, comma-separated")
	formats := flag.String("format", "deb,rpm", "formats to build, comma-separated: deb, rpm")
	flag.Parse()
	o.samples = strings.Split(*samples, ",")
	o.formats = strings.Split(*formats, ",")
	benchmain.Run("buildbench", o.validate, func(ctx context.Context, w io.Writer, log *slog.Logger) error {
		return run(ctx, o, w, log)
	})
}

func (o *options) validate() error {
	for i, f := range o.formats {
		if f != "deb" && f != "rpm" || slices.Contains(o.formats[:i], f) {
			return fmt.Errorf("-format: %q is not deb or rpm, or given twice", f)
		}
	}
	for i, s := range o.samples {
		if s == "" || strings.ContainsAny(s, `/\`) || strings.HasPrefix(s, ".") || slices.Contains(o.samples[:i], s) {
			return fmt.Errorf("-sample: %q is not a directory name, or given twice", s)
		}
		if fi, err := os.Stat(filepath.Join(o.srcDir, s)); err != nil || !fi.IsDir() {
			return fmt.Errorf("-sample %s: no directory %s (run from the module root, or give -samples)", s, filepath.Join(o.srcDir, s))
		}
	}
	return nil
}

func run(ctx context.Context, o options, w io.Writer, log *slog.Logger) (err error) {
	start := time.Now()
	var work string
	if o.work == "" {
		work, err = os.MkdirTemp("", "buildbench-")
		defer func() { err = errors.Join(err, os.RemoveAll(work)) }()
	} else if err = os.MkdirAll(o.work, 0o755); err == nil {
		work, err = os.MkdirTemp(o.work, "buildbench-")
	}
	if err != nil {
		return fmt.Errorf("work directory: %w", err)
	}
	// Absolute: rpmbuild's _topdir and the file:// URLs need it.
	if work, err = filepath.Abs(work); err != nil {
		return fmt.Errorf("work directory: %w", err)
	}
	t := &tools{
		env:  []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C.UTF-8", fmt.Sprintf("SOURCE_DATE_EPOCH=%d", epoch)},
		home: filepath.Join(work, "home"),
	}
	if err := os.Mkdir(t.home, 0o755); err != nil {
		return err
	}

	fmt.Fprintf(w, "buildbench: sluice builder, samples %s, formats %s\n", strings.Join(o.samples, " and "), strings.Join(o.formats, " and "))
	fmt.Fprintf(w, "%s %s/%s, %d CPUs, GOMAXPROCS %d; warm page cache everywhere; work in %s\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), work)
	t.printVersions(ctx, w)

	var ups []*upstream
	for _, s := range o.samples {
		up, err := newUpstream(filepath.Join(o.srcDir, s), filepath.Join(work, "upstream", s))
		if err != nil {
			return fmt.Errorf("sample %s: %w", s, err)
		}
		ups = append(ups, up)
	}
	var secs []*section
	for _, up := range ups {
		sec, err := fetchBench(ctx, up, filepath.Join(work, "fetch", up.sample), t, log)
		if err != nil {
			return fmt.Errorf("no-op fetch, %s: %w", up.sample, err)
		}
		secs = append(secs, sec)
	}
	for _, up := range ups {
		for _, f := range o.formats {
			b := &buildBench{up: up, format: f, dir: filepath.Join(work, "build", up.sample+"-"+f), tools: t, log: log}
			sec, err := b.run(ctx)
			if err != nil {
				return fmt.Errorf("checkout + build, %s, %s: %w", up.sample, f, err)
			}
			secs = append(secs, sec)
		}
	}
	printTable(w, secs)
	printTargets(w, secs)
	printOverhead(w, secs)
	printNotes(w, o.formats)
	kept := ""
	if o.work != "" {
		kept = ", work kept in " + work
	}
	fmt.Fprintf(w, "\nwhole run: %.1f s%s\n", time.Since(start).Seconds(), kept)
	return nil
}
