// Command repobench measures how fast sluice indexes APT and RPM
// repositories (package repo) next to apt-ftparchive, createrepo_c and the
// cost of reading and hashing the packages (the sha256 floor), and prints a
// table of ratios and the performance targets. `make bench` runs it.
//
// A timing never makes it fail: it exits non-zero only when a publish or a
// tool run fails, and skips a tool that is not installed.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-ci/sluice/internal/benchmain"
	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/internal/proc"
	"github.com/sluice-ci/sluice/repo"
)

const (
	smallPayload = 8 << 10 // gives packages of about 9 KiB
	bigPayload   = 1 << 20
	newPackages  = 3 // one per "add 1" run

	// slowRun is the time from which a measurement is run once instead of
	// three times.
	slowRun     = 10 * time.Second
	toolTimeout = 10 * time.Minute
	// maxArgBytes is how many bytes of file names one sha256sum process
	// gets, as xargs's default command-line size.
	maxArgBytes = 128 << 10
)

type options struct {
	n, big  int
	work    string
	formats []string
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 2000, "small packages per format")
	flag.IntVar(&o.big, "big", 200, "1 MiB packages per format for the large-package run; 0 skips it")
	flag.StringVar(&o.work, "work", "", "keep the work in a new directory under `DIR` (default: a temporary directory, removed at the end)")
	formats := flag.String("format", "deb,rpm", "formats to measure, comma-separated: deb, rpm")
	flag.Parse()
	o.formats = strings.Split(*formats, ",")
	benchmain.Run("repobench", o.validate, func(ctx context.Context, w io.Writer, log *slog.Logger) error {
		return run(ctx, o, w, log)
	})
}

func (o *options) validate() error {
	if o.n < 1 {
		return fmt.Errorf("-n %d: want at least 1", o.n)
	}
	if o.big < 0 {
		return fmt.Errorf("-big %d: negative", o.big)
	}
	for i, f := range o.formats {
		if f != "deb" && f != "rpm" || slices.Contains(o.formats[:i], f) {
			return fmt.Errorf("-format: %q is not deb or rpm, or given twice", f)
		}
	}
	return nil
}

func run(ctx context.Context, o options, w io.Writer, log *slog.Logger) (err error) {
	start := time.Now()
	var work string
	if o.work == "" {
		work, err = os.MkdirTemp("", "repobench-")
		defer func() { err = errors.Join(err, os.RemoveAll(work)) }()
	} else if err = os.MkdirAll(o.work, 0o755); err == nil {
		work, err = os.MkdirTemp(o.work, "repobench-")
	}
	if err != nil {
		return fmt.Errorf("work directory: %w", err)
	}
	priv, _, err := repo.GenerateKey("sluice benchmark", "bench@example.org", repo.Ed25519, nil)
	if err != nil {
		return err
	}
	key, err := repo.ReadKey(bytes.NewReader(priv), nil)
	if err != nil {
		return err
	}
	// RSA 4096 is the default key: RPM signing cost depends on it, so the
	// rpm run also times one publish with it.
	rsaPriv, _, err := repo.GenerateKey("sluice benchmark", "bench@example.org", repo.RSA4096, nil)
	if err != nil {
		return err
	}
	rsaKey, err := repo.ReadKey(bytes.NewReader(rsaPriv), nil)
	if err != nil {
		return err
	}
	t := &tools{env: []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "TMPDIR=" + work}}

	fmt.Fprintf(w, "repobench: sluice %s, %d small packages and %d of 1 MiB per format\n", strings.Join(o.formats, " and "), o.n, o.big)
	fmt.Fprintf(w, "%s %s/%s, %d CPUs, GOMAXPROCS %d; warm page cache everywhere (nothing is dropped between runs)\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	t.printVersions(ctx, w)

	var reps []*report
	for _, name := range o.formats {
		b := &bench{format: newFormat(name, key, log), tools: t, n: o.n, big: o.big}
		if name == "rpm" {
			b.rsaRepo = newFormat(name, rsaKey, log).newRepo
		}
		rep, err := b.run(ctx, filepath.Join(work, name))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		printTable(w, rep)
		reps = append(reps, rep)
	}
	printTargets(w, reps)
	printNotes(w, o.formats)
	kept := ""
	if o.work != "" {
		kept = ", work kept in " + work
	}
	fmt.Fprintf(w, "\nwhole run: %.1f s%s\n", time.Since(start).Seconds(), kept)
	return nil
}

// publisher is what repo.APT and repo.RPM have in common.
type publisher interface {
	Publish(ctx context.Context, paths []string, opts repo.PublishOptions) (repo.Summary, error)
}

// command is one way another tool indexes a directory.
type command struct {
	name string   // as printed
	dir  string   // the name of its work directory
	argv []string // run in that directory, where pool/ holds the packages
}

// format is what differs between the APT and the RPM runs.
type format struct {
	name    string
	write   writeFunc
	newRepo func(root string) (publisher, error)
	full    []command // the other tool's ways to index from scratch
	// poolFloor names the row that times the pool layout alone.
	poolFloor string
	update    command  // its way to index again, reusing its earlier run
	prime     []string // run once, untimed, before update is timed
}

func newFormat(name string, key *repo.Key, log *slog.Logger) format {
	if name == "rpm" {
		full := []string{"createrepo_c", "--no-database", "."}
		return format{
			name: "rpm",
			write: func(dir, name string, size int) (string, error) {
				return pkgtest.RPM{Name: name, Version: "1.0", Release: "1", Arch: "x86_64", PayloadSize: size}.WriteFile(dir)
			},
			newRepo: func(root string) (publisher, error) { return repo.NewRPM(root, key, log), nil },
			full: []command{
				{"createrepo_c --no-database", "createrepo", full},
				{"createrepo_c --no-database --workers 2", "createrepo-w2", []string{"createrepo_c", "--no-database", "--workers", "2", "."}},
			},
			update:    command{"createrepo_c --update --no-database", "createrepo-update", []string{"createrepo_c", "--update", "--no-database", "."}},
			prime:     full,
			poolFloor: "pool layout alone (a file per package)",
		}
	}
	db := []string{"apt-ftparchive", "--db", "cache.db", "packages", "pool"}
	return format{
		name: "deb",
		write: func(dir, name string, size int) (string, error) {
			return pkgtest.Deb{Name: name, Version: "1.0-1", Arch: "amd64", PayloadSize: size}.WriteFile(dir)
		},
		newRepo: func(root string) (publisher, error) {
			return repo.NewAPT(root, key, repo.APTConfig{Codename: "bench"}, log)
		},
		full: []command{
			{"apt-ftparchive packages (4 hashes)", "apt", []string{"apt-ftparchive", "packages", "pool"}},
			{"apt-ftparchive packages (SHA256 only)", "apt-sha256", []string{"apt-ftparchive",
				"-o", "APT::FTPArchive::MD5=false", "-o", "APT::FTPArchive::SHA1=false", "-o", "APT::FTPArchive::SHA512=false",
				"packages", "pool"}},
		},
		update:    command{"apt-ftparchive --db packages", "apt-db", db},
		prime:     db,
		poolFloor: "pool layout alone (mkdir + create)",
	}
}

// bench measures one format.
type bench struct {
	format
	tools  *tools
	n, big int
	// rsaRepo, when set, makes a repository signed with an RSA 4096 key,
	// timed once beside the Ed25519 one.
	rsaRepo func(root string) (publisher, error)
}

func (b *bench) run(ctx context.Context, dir string) (*report, error) {
	small, err := generate(ctx, filepath.Join(dir, "small"), "bench", b.n, smallPayload, b.write)
	if err != nil {
		return nil, err
	}
	news, err := generate(ctx, filepath.Join(dir, "new"), "bench-new", newPackages, smallPayload, b.write)
	if err != nil {
		return nil, err
	}
	full, root, err := b.fullIndex(ctx, small)
	if err != nil {
		return nil, err
	}
	add, noop, err := b.incremental(ctx, small, news, root)
	if err != nil {
		return nil, err
	}
	rep := &report{format: b.name, n: b.n, sections: []section{full, add, noop}}
	if b.big > 0 {
		big, err := generate(ctx, filepath.Join(dir, "big"), "bench-big", b.big, bigPayload, b.write)
		if err != nil {
			return nil, err
		}
		full, _, err := b.fullIndex(ctx, big)
		if err != nil {
			return nil, err
		}
		rep.sections = append(rep.sections, full)
	}
	return rep, nil
}

// fullIndex measures indexing s from scratch, and the sha256 floors. It
// returns the repository sluice published last.
func (b *bench) fullIndex(ctx context.Context, s *pkgSet) (sec section, root string, err error) {
	sec = section{kind: fullKind, title: "full index, " + s.label, pkgs: len(s.files), bytes: s.bytes}
	dir := filepath.Join(s.dir, "sluice")
	root = filepath.Join(dir, "repo")
	err = sec.measure("sluice publish", sluiceRole, func(int) (time.Duration, error) {
		if err := linkInto(dir, s.files); err != nil {
			return 0, err
		}
		return b.publish(ctx, root, []string{filepath.Join(dir, "pool")}, len(s.files), 0)
	})
	if err != nil {
		return sec, "", err
	}
	if b.rsaRepo != nil {
		err = sec.measure("sluice publish, RSA 4096 key", infoRole, func(k int) (time.Duration, error) {
			pub, err := b.rsaRepo(filepath.Join(dir, fmt.Sprintf("rsa-%d", k)))
			if err != nil {
				return 0, err
			}
			start := time.Now()
			_, err = pub.Publish(ctx, []string{filepath.Join(dir, "pool")}, repo.PublishOptions{})
			return time.Since(start), err
		})
		if err != nil {
			return sec, "", err
		}
	}
	for _, c := range b.full {
		if !b.tools.have(c.argv[0]) {
			sec.skip(c.name, competitorRole, c.argv[0])
			continue
		}
		dir := filepath.Join(s.dir, c.dir)
		err := sec.measure(c.name, competitorRole, func(int) (time.Duration, error) {
			if err := linkInto(dir, s.files); err != nil {
				return 0, err
			}
			return b.tools.timed(ctx, dir, c.argv)
		})
		if err != nil {
			return sec, "", err
		}
	}
	if name := "sha256sum (one process at a time)"; b.tools.have("sha256sum") {
		err := sec.measure(name, floorRole, func(int) (time.Duration, error) {
			return b.tools.sha256sum(ctx, s.src, s.files)
		})
		if err != nil {
			return sec, "", err
		}
	} else {
		sec.skip(name, floorRole, "sha256sum")
	}
	err = sec.measure(fmt.Sprintf("Go sha256 (%d goroutines)", runtime.GOMAXPROCS(0)), floorRole, func(int) (time.Duration, error) {
		start := time.Now()
		err := hashFiles(ctx, s.files)
		return time.Since(start), err
	})
	if err != nil {
		return sec, root, err
	}
	// The other tools index packages where they lie; sluice also copies
	// them into a pool, which costs a new file per package (and for deb a
	// directory per source package) whatever else it does.
	err = sec.measure(b.poolFloor, infoRole, func(k int) (time.Duration, error) {
		return poolLayout(filepath.Join(s.dir, fmt.Sprintf("layout-%d", k)), s.files, b.name == "deb")
	})
	return sec, root, err
}

// incremental measures adding one package to the repositories that hold
// s, and publishing s again, with sluice (into root) and with the other
// tool's incremental mode.
func (b *bench) incremental(ctx context.Context, s, news *pkgSet, root string) (add, noop section, err error) {
	add = section{kind: addKind, title: fmt.Sprintf("add 1 to %d", len(s.files)), pkgs: 1, bytes: news.bytes / int64(len(news.files))}
	noop = section{kind: noopKind, title: fmt.Sprintf("no-op republish of %d", len(s.files)), pkgs: len(s.files), bytes: s.bytes}
	err = add.measure("sluice publish", sluiceRole, func(k int) (time.Duration, error) {
		return b.publish(ctx, root, news.files[k:k+1], 1, 0)
	})
	if err != nil {
		return add, noop, err
	}
	err = noop.measure("sluice publish", sluiceRole, func(int) (time.Duration, error) {
		return b.publish(ctx, root, []string{s.src}, 0, len(s.files))
	})
	if err != nil {
		return add, noop, err
	}

	c := b.update
	if !b.tools.have(c.argv[0]) {
		add.skip(c.name, competitorRole, c.argv[0])
		noop.skip(c.name, competitorRole, c.argv[0])
		return add, noop, nil
	}
	dir := filepath.Join(s.dir, c.dir)
	if err := linkInto(dir, s.files); err != nil {
		return add, noop, err
	}
	if _, err := b.tools.timed(ctx, dir, b.prime); err != nil {
		return add, noop, err
	}
	err = add.measure(c.name, competitorRole, func(k int) (time.Duration, error) {
		if err := os.Link(news.files[k], filepath.Join(dir, "pool", filepath.Base(news.files[k]))); err != nil {
			return 0, err
		}
		return b.tools.timed(ctx, dir, c.argv)
	})
	if err != nil {
		return add, noop, err
	}
	err = noop.measure(c.name, competitorRole, func(int) (time.Duration, error) {
		return b.tools.timed(ctx, dir, c.argv)
	})
	return add, noop, err
}

// publish times one sluice publish of paths into root and checks that it
// added and kept the packages it should have.
func (b *bench) publish(ctx context.Context, root string, paths []string, added, unchanged int) (time.Duration, error) {
	pub, err := b.newRepo(root)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	sum, err := pub.Publish(ctx, paths, repo.PublishOptions{})
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	if sum.Added != added || sum.Unchanged != unchanged {
		return 0, fmt.Errorf("publish into %s: added %d and kept %d packages, want %d and %d", root, sum.Added, sum.Unchanged, added, unchanged)
	}
	return d, nil
}

// measure adds the row of a tool: run times its own measured part, and is
// called three times when the first call takes under slowRun, once
// otherwise. The row has the best time.
func (s *section) measure(tool string, ro role, run func(k int) (time.Duration, error)) error {
	r := row{tool: tool, role: ro}
	for k := range 3 {
		d, err := run(k)
		if err != nil {
			return fmt.Errorf("%s, %s: %w", s.title, tool, err)
		}
		if k == 0 || d < r.best {
			r.best = d
		}
		r.runs++
		if d >= slowRun && k == 0 {
			break
		}
	}
	s.rows = append(s.rows, r)
	return nil
}

func (s *section) skip(tool string, ro role, bin string) {
	s.rows = append(s.rows, row{tool: tool, role: ro, skipped: "skipped: " + bin + " not found"})
}

// tools runs the other programs, each with a time limit, in its own
// process group and with a sanitised environment.
type tools struct {
	env []string
}

func (t *tools) have(bin string) bool {
	_, err := exec.LookPath(bin)
	return err == nil
}

// run runs argv in dir with stdout to stdout (nil: discarded).
func (t *tools) run(ctx context.Context, dir string, stdout io.Writer, argv []string) error {
	ctx, cancel := context.WithTimeout(ctx, toolTimeout)
	defer cancel()
	cmd := proc.Command(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = t.env
	cmd.Stdout = stdout
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Run(); err != nil {
		msg := stderr.Bytes()
		msg = msg[max(0, len(msg)-500):]
		return fmt.Errorf("%s in %s: %w: %s", strings.Join(argv, " "), dir, err, bytes.TrimSpace(msg))
	}
	return nil
}

// timed runs argv in dir with stdout to the file dir/out and returns how
// long it took.
func (t *tools) timed(ctx context.Context, dir string, argv []string) (time.Duration, error) {
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		return 0, err
	}
	defer out.Close()
	start := time.Now()
	if err := t.run(ctx, dir, out, argv); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// sha256sum times sha256sum over files, which are in dir, as xargs runs
// it: as many names per process as fit in maxArgBytes, one process after
// the other.
func (t *tools) sha256sum(ctx context.Context, dir string, files []string) (time.Duration, error) {
	var batches [][]string
	argv, size := []string{"sha256sum", "--"}, 0
	for _, f := range files {
		name := filepath.Base(f)
		if size+len(name)+1 > maxArgBytes && len(argv) > 2 {
			batches = append(batches, argv)
			argv, size = []string{"sha256sum", "--"}, 0
		}
		argv, size = append(argv, name), size+len(name)+1
	}
	batches = append(batches, argv)
	start := time.Now()
	for _, argv := range batches {
		if err := t.run(ctx, dir, nil, argv); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

func (t *tools) printVersions(ctx context.Context, w io.Writer) {
	for _, v := range []struct {
		tool string
		argv []string
		note string
	}{
		{"createrepo_c", []string{"createrepo_c", "--version"}, ""},
		{"apt-ftparchive", []string{"dpkg-query", "-W", "apt-utils"}, " (dpkg-query -W apt-utils: apt-ftparchive has no --version)"},
		{"sha256sum", []string{"sha256sum", "--version"}, ""},
	} {
		if !t.have(v.tool) {
			fmt.Fprintf(w, "%-15s skipped: %s not found\n", v.tool, v.tool)
			continue
		}
		var out bytes.Buffer
		version := "unknown"
		if t.have(v.argv[0]) && t.run(ctx, "", &out, v.argv) == nil {
			line, _, _ := strings.Cut(out.String(), "\n")
			version = strings.ReplaceAll(strings.TrimSpace(line), "\t", " ")
		}
		fmt.Fprintf(w, "%-15s %s%s\n", v.tool, version, v.note)
	}
}

func printNotes(w io.Writer, formats []string) {
	notes := []string{
		"wall-clock times, warm page cache everywhere; best of 3 runs when a run takes under 10 s, else 1 run",
		"sluice runs in-process (Publish with an Ed25519 key; the rpm full index is also timed once with an RSA 4096 key, the default of sluice key generate: two RSA signatures per package); the other tools run as processes, start-up included, output to a file",
		"each tool indexes its own fresh directory of hard links to the generated packages; sluice starts from an empty repository",
		"sluice's full index includes putting each package in the pool (a copy, hashed as it is written, for deb; a signed copy for rpm) and writing and signing the metadata",
		"sha256 floors read and hash every package: sha256sum with up to 128 KiB of names per process, one process at a time (as xargs), and Go's crypto/sha256 on all cores",
		"\"add 1\": each run adds a different new package, so the runs add the N+1st, N+2nd and N+3rd",
		"\"no-op republish\": sluice is given all N again (it hashes them but parses none)",
	}
	if slices.Contains(formats, "deb") {
		notes = append(notes,
			"apt-ftparchive writes MD5, SHA1, SHA256 and SHA512 by default; sluice's Packages lists SHA256 only",
			"apt-ftparchive has no incremental mode without its cache database: its \"add 1\" and \"no-op\" rows time `apt-ftparchive --db FILE packages` after a first, untimed run filled the database")
	}
	if slices.Contains(formats, "rpm") {
		notes = append(notes,
			"createrepo_c 0.17 (Debian's) also writes sqlite databases unless --no-database, which every run here passes; its default is 5 workers; it does not sign packages",
			"createrepo_c --update runs in its own directory after an untimed full run there")
	}
	fmt.Fprintf(w, "\nnotes\n")
	for _, n := range notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
}
