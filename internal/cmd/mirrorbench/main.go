// Command mirrorbench measures sluice's mirror sync (package mirror) on a
// generated repository of about 10,000 files: a full first sync, a sync
// with nothing changed and a sync after one package was added, to an
// rsync target on a real rsync daemon on loopback and to a local target,
// each next to a plain `rsync -a --delete` of the same trees in the same
// run (time and bytes moved). It prints a table and the targets: a
// no-change sync under 1 s, a one-package sync within 1.5x of plain
// rsync. `make bench` runs it.
//
// A timing never makes it fail: it exits non-zero only when a sync or a
// tool run fails.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/sluice-ci/sluice/internal/benchmain"
	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/internal/proc"
	"github.com/sluice-ci/sluice/mirror"
	"github.com/sluice-ci/sluice/mirror/mirrortest"
	"github.com/sluice-ci/sluice/repo"
)

type options struct {
	files, payload, repeat int
	format, work           string
}

func main() {
	var o options
	flag.IntVar(&o.files, "files", 10000, "files in the generated repository (packages plus metadata)")
	flag.IntVar(&o.payload, "payload", 2048, "incompressible payload bytes per package")
	flag.IntVar(&o.repeat, "repeat", 3, "runs of the no-change and one-package syncs (the median is shown)")
	flag.StringVar(&o.format, "format", "deb", "repository format: deb or rpm")
	flag.StringVar(&o.work, "work", "", "keep the work in a new directory under `DIR` (default: a temporary directory, removed at the end)")
	flag.Parse()
	benchmain.Run("mirrorbench", o.validate, func(ctx context.Context, w io.Writer, log *slog.Logger) error {
		return run(ctx, o, w, log)
	})
}

func (o *options) validate() error {
	if o.files < 100 {
		return fmt.Errorf("-files %d: want at least 100", o.files)
	}
	if o.payload < 0 || o.repeat < 1 {
		return fmt.Errorf("-payload %d, -repeat %d: want >= 0, >= 1", o.payload, o.repeat)
	}
	if o.format != "deb" && o.format != "rpm" {
		return fmt.Errorf("-format %q: want deb or rpm", o.format)
	}
	return nil
}

// release builds the release repository: snapshots of a published tree.
type release struct {
	mirror.Release
	format, pub, in string
	publish         func(ctx context.Context, paths []string) error
	n               int
}

func (r *release) writePackage(i int) (string, error) {
	name := fmt.Sprintf("pkg%05d", i)
	if r.format == "deb" {
		return pkgtest.Deb{Name: name, Version: "1.0", Arch: "amd64", PayloadSize: payload}.WriteFile(r.in)
	}
	return pkgtest.RPM{Name: name, Version: "1.0", Release: "1", Arch: "x86_64", PayloadSize: payload}.WriteFile(r.in)
}

var payload int

// snapshot publishes paths and freezes the tree as the next snapshot:
// package files hard-linked (as release repositories do from their pool),
// metadata copied.
func (r *release) snapshot(ctx context.Context, paths []string) (mirror.Snapshot, error) {
	if err := r.publish(ctx, paths); err != nil {
		return mirror.Snapshot{}, err
	}
	r.n++
	id := fmt.Sprintf("%06d", r.n)
	dst := filepath.Join(r.Root, "snapshots", id)
	err := filepath.WalkDir(r.pub, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(r.pub, p)
		if d.IsDir() {
			if rel == ".sluice" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if strings.HasSuffix(p, ".deb") || strings.HasSuffix(p, ".rpm") {
			return os.Link(p, filepath.Join(dst, rel))
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, rel), data, 0o644); err != nil {
			return err
		}
		return os.Chtimes(filepath.Join(dst, rel), fi.ModTime(), fi.ModTime())
	})
	if err != nil {
		return mirror.Snapshot{}, err
	}
	return r.Snapshot(id)
}

// measure is one timed run and the bytes it moved.
type measure struct {
	d              time.Duration
	sent, received int64
}

func median(ms []measure) measure {
	slices.SortFunc(ms, func(a, b measure) int { return int(a.d - b.d) })
	return ms[len(ms)/2]
}

type bench struct {
	o        options
	log      *slog.Logger
	daemon   *mirrortest.Daemon
	work     string
	syncer   *mirror.Syncer
	rel      *release
	env      []string
	rsyncBin string
}

// sluiceSync syncs snap to target and times it.
func (b *bench) sluiceSync(ctx context.Context, s *mirror.Syncer, t mirror.Target, snap mirror.Snapshot) (measure, error) {
	start := time.Now()
	m, err := s.Sync(ctx, b.rel, snap, "sync", []mirror.Target{t})
	d := time.Since(start)
	if err != nil {
		return measure{}, err
	}
	tr := m.Targets[0].Transfer
	return measure{d: d, sent: tr.BytesSent, received: tr.BytesReceived}, nil
}

// plainRsync runs rsync -a --delete of snap's tree to dest and times it.
func (b *bench) plainRsync(ctx context.Context, snap mirror.Snapshot, dest string, daemon bool) (measure, error) {
	args := []string{"-a", "--delete", "--stats", "--no-human-readable"}
	if daemon {
		args = append(args, "--sockopts=TCP_NODELAY", "--password-file="+b.daemon.PasswordFile)
	}
	args = append(args, snap.Dir+"/", dest)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	cmd := proc.Command(ctx, b.rsyncBin, args...)
	cmd.Env = b.env
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return measure{}, fmt.Errorf("rsync -a --delete %s: %w: %s", dest, err, stderr.String())
	}
	tr, err := mirror.ParseStats(out.Bytes())
	if err != nil {
		return measure{}, err
	}
	return measure{d: d, sent: tr.BytesSent, received: tr.BytesReceived}, nil
}

func run(ctx context.Context, o options, w io.Writer, log *slog.Logger) (err error) {
	rsyncBin, err := exec.LookPath("rsync")
	if err != nil {
		return fmt.Errorf("rsync: %w", err)
	}
	payload = o.payload
	var work string
	if o.work == "" {
		work, err = os.MkdirTemp("", "mirrorbench-")
		defer func() { err = errors.Join(err, os.RemoveAll(work)) }()
	} else if err = os.MkdirAll(o.work, 0o755); err == nil {
		work, err = os.MkdirTemp(o.work, "mirrorbench-")
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
	var pubKey bytes.Buffer
	if err := key.WritePublic(&pubKey); err != nil {
		return err
	}
	kr, err := repo.ReadKeyring(&pubKey)
	if err != nil {
		return err
	}
	rel, err := newRelease(work, o.format, key, log)
	if err != nil {
		return err
	}
	daemon, err := mirrortest.Start(filepath.Join(work, "daemon"))
	if err != nil {
		return err
	}
	defer daemon.Stop()
	b := &bench{o: o, log: log, daemon: daemon, work: work, rel: rel, rsyncBin: rsyncBin,
		env: []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "HOME=" + work}}
	if b.syncer, err = newSyncer(work, kr, log); err != nil {
		return err
	}

	// The repository: packages plus its metadata make o.files files.
	meta := 9 // deb: InRelease, Release, Release.gpg, Packages{,.gz,.xz}, their by-hash (SHA256, MD5Sum) copies...
	if o.format == "rpm" {
		meta = 6
	}
	npkg := o.files - meta
	start := time.Now()
	var paths []string
	for i := range npkg {
		p, err := rel.writePackage(i)
		if err != nil {
			return err
		}
		paths = append(paths, p)
	}
	s1, err := rel.snapshot(ctx, paths)
	if err != nil {
		return err
	}
	snaps := []mirror.Snapshot{s1}
	for i := range o.repeat {
		p, err := rel.writePackage(npkg + i)
		if err != nil {
			return err
		}
		s, err := rel.snapshot(ctx, []string{p})
		if err != nil {
			return err
		}
		snaps = append(snaps, s)
	}
	nfiles, size, err := treeSize(s1.Dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "mirrorbench: a %s repository of %d files (%d packages of %d payload bytes), %.1f MiB; made in %v\n",
		o.format, nfiles, npkg, o.payload, float64(size)/(1<<20), time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(w, "%s %s/%s, %d CPUs; %s; rsync daemon on loopback; warm page cache; median of %d where repeated\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), rsyncVersion(ctx, rsyncBin), o.repeat)

	quickSyncer, err := mirror.NewSyncer(mirror.Options{StateDir: filepath.Join(work, "state-quick"), Keyring: kr, Log: log, TrustVerified: true})
	if err != nil {
		return err
	}
	var cols []column
	for _, c := range []struct {
		name, check string
		s           *mirror.Syncer
	}{{"full", mirror.CheckFull, b.syncer}, {"quick", mirror.CheckQuick, quickSyncer}} {
		rt, err := mirror.NewRsync("rsync-"+c.name, mirror.RsyncConfig{Dest: daemon.URL + "sluice-" + c.name, PasswordFile: daemon.PasswordFile,
			ReadbackDir: filepath.Join(work, "readback-"+c.name), Check: c.check}, log)
		if err != nil {
			return err
		}
		lt, err := mirror.NewLocal("local-"+c.name, filepath.Join(work, "local-"+c.name), 0, log)
		if err != nil {
			return err
		}
		cols = append(cols, column{name: "sluice rsync " + c.name, s: c.s, t: rt}, column{name: "sluice local " + c.name, s: c.s, t: lt})
	}
	if err := os.MkdirAll(filepath.Join(daemon.Dir, "plain"), 0o755); err != nil {
		return err
	}
	cols = append(cols, column{name: "rsync -a --delete (daemon)", plain: daemon.URL + "plain/", daemon: true},
		column{name: "rsync -a --delete (local)", plain: filepath.Join(work, "local-plain") + "/"})

	steps := []struct {
		name string
		snap func(i int) mirror.Snapshot
		runs int
	}{
		{"full first sync", func(int) mirror.Snapshot { return s1 }, 1},
		{"no change", func(int) mirror.Snapshot { return s1 }, o.repeat},
		{"one package added", func(i int) mirror.Snapshot { return snaps[i+1] }, o.repeat},
	}
	res := make([][]measure, len(steps))
	for si, st := range steps {
		runs := make([][]measure, len(cols))
		for i := range st.runs {
			snap := st.snap(i)
			for ci, c := range cols {
				var m measure
				var err error
				if c.t != nil {
					m, err = b.sluiceSync(ctx, c.s, c.t, snap)
				} else {
					m, err = b.plainRsync(ctx, snap, c.plain, c.daemon)
				}
				if err != nil {
					return fmt.Errorf("%s, %s: %w", st.name, c.name, err)
				}
				runs[ci] = append(runs[ci], m)
			}
		}
		for ci := range cols {
			res[si] = append(res[si], median(runs[ci]))
		}
	}

	mib := func(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-28s", "")
	for _, st := range steps {
		fmt.Fprintf(w, " | %-32s", st.name)
	}
	fmt.Fprintln(w)
	plainOf := func(c column) int {
		if strings.Contains(c.name, "rsync ") && !strings.Contains(c.name, "local") {
			return len(cols) - 2
		}
		return len(cols) - 1
	}
	for ci, c := range cols {
		fmt.Fprintf(w, "%-28s", c.name)
		for si := range steps {
			m := res[si][ci]
			ratio := ""
			if c.t != nil {
				ratio = fmt.Sprintf("%.2fx", float64(m.d)/float64(res[si][plainOf(c)].d))
			}
			fmt.Fprintf(w, " | %8s %6s %9s", m.d.Round(time.Millisecond), ratio, mib(m.sent))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "(time, ratio to plain rsync to the same kind of target, bytes sent; a sluice rsync sync's read-back is a dry run: nothing comes back)")
	fmt.Fprintln(w)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT MET"
	}
	for ci, c := range cols[:4] {
		nc, one := res[1][ci], res[2][ci]
		plain := res[2][plainOf(c)]
		fmt.Fprintf(w, "%-20s no-change sync under 1 s: %8s %-8s one-package sync within 1.5x of plain rsync: %5.2fx %s\n", c.name,
			nc.d.Round(time.Millisecond), verdict(nc.d < time.Second), float64(one.d)/float64(plain.d), verdict(float64(one.d) <= 1.5*float64(plain.d)))
	}
	fmt.Fprintln(w, "sluice does what plain rsync does not: the snapshot's repo.Verify (every sync in full mode; once per snapshot")
	fmt.Fprintln(w, "in quick mode), the lock and trace files, three ordered stages, the check of the target against the snapshot")
	fmt.Fprintln(w, "(by content in full mode: the target reads everything), the deletion one generation late.")
	return nil
}

// column is one way of syncing: sluice to a target, or plain rsync.
type column struct {
	name   string
	s      *mirror.Syncer
	t      mirror.Target
	plain  string
	daemon bool
}

func newRelease(work, format string, key *repo.Key, log *slog.Logger) (*release, error) {
	r := &release{Release: mirror.Release{Name: "bench", Format: format, Root: filepath.Join(work, "release")},
		format: format, pub: filepath.Join(work, "pub"), in: filepath.Join(work, "in")}
	if err := os.MkdirAll(r.in, 0o755); err != nil {
		return nil, err
	}
	switch format {
	case "deb":
		a, err := repo.NewAPT(r.pub, key, repo.APTConfig{Codename: "stable", Origin: "bench"}, log)
		if err != nil {
			return nil, err
		}
		r.publish = func(ctx context.Context, p []string) error {
			_, err := a.Publish(ctx, p, repo.PublishOptions{})
			return err
		}
	default:
		rr := repo.NewRPM(r.pub, key, log)
		r.publish = func(ctx context.Context, p []string) error {
			_, err := rr.Publish(ctx, p, repo.PublishOptions{})
			return err
		}
	}
	return r, nil
}

func newSyncer(work string, kr openpgp.EntityList, log *slog.Logger) (*mirror.Syncer, error) {
	return mirror.NewSyncer(mirror.Options{StateDir: filepath.Join(work, "state"), Keyring: kr, Log: log})
}

func treeSize(dir string) (n int, size int64, err error) {
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n++
		size += fi.Size()
		return nil
	})
	return n, size, err
}

func rsyncVersion(ctx context.Context, bin string) string {
	out, err := proc.Command(ctx, bin, "--version").Output()
	if err != nil {
		return "rsync ?"
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.Join(strings.Fields(first)[:3], " ")
}
