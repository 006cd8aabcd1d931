package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/sluice-ci/sluice/internal/pkgtest"
)

// builtProver accepts the packages whose built bytes it was told about, as
// the build records would: the provenance check's boundary. (The check
// against real build records and git is tested in cmd/sluice.)
type builtProver map[string]Provenance

func (b builtProver) Prove(_ context.Context, p Package) (Provenance, error) {
	if prov, ok := b[p.SHA256]; ok {
		return prov, nil
	}
	return Provenance{}, fmt.Errorf("no build record made %s (sha256 %s)", p.Name, p.SHA256)
}

// builtFiles keeps the files a builtProver was told of, by SHA-256: the
// artifact store's part.
var builtFiles sync.Map

// OpenBuilt opens the bytes a build made.
func (b builtProver) OpenBuilt(sha string) (io.ReadCloser, error) {
	p, ok := builtFiles.Load(sha)
	if !ok {
		return nil, fs.ErrNotExist
	}
	return os.Open(p.(string))
}

// built records the files as built from a commit.
func (b builtProver) built(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		pkg, err := Inspect(p)
		if err != nil {
			t.Fatal(err)
		}
		builtFiles.Store(pkg.SHA256, p)
		b[pkg.SHA256] = Provenance{Record: "rec-" + pkg.Name + "-" + pkg.EVR(), Project: "hello", Commit: strings.Repeat("a", 40), Branch: "main"}
	}
}

func newTestRelease(t testing.TB, dir, format string, keep int) *Release {
	t.Helper()
	cfg := ReleaseConfig{Name: "hello-main", Format: format, Keep: keep}
	if format == "deb" {
		cfg.APT = APTConfig{Codename: "main", Origin: "sluice-release-test", Label: "sluice-release-test"}
	}
	r, err := NewRelease(dir, mustKey(t), cfg, discard)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func writeDeb(t testing.TB, dir string, d pkgtest.Deb) string {
	t.Helper()
	return writeDebs(t, dir, []pkgtest.Deb{d})[0]
}

func writeRPM(t testing.TB, dir string, r pkgtest.RPM) string {
	t.Helper()
	return writeRPMs(t, dir, []pkgtest.RPM{r})[0]
}

func mustPublish(t testing.TB, r *Release, p Prover, paths ...string) ReleaseSummary {
	t.Helper()
	sum, err := r.Publish(t.Context(), paths, p)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func identities(ps []SnapshotPackage) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Identity())
	}
	slices.Sort(out)
	return out
}

func checkCurrent(t testing.TB, d ReleaseDir, want string) {
	t.Helper()
	id, err := d.CurrentID()
	if err != nil || id != want {
		t.Fatalf("current = %q, %v; want %s", id, err, want)
	}
}

// TestReleaseAptGet publishes two snapshots of an APT release repository
// and has apt-get read current: both versions (the retention keeps them),
// signed; the package files are hard links into the pool.
func TestReleaseAptGet(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "apt-get")
	dir, in := t.TempDir(), t.TempDir()
	r := newTestRelease(t, dir, "deb", 0)
	prover := builtProver{}
	v1 := writeDeb(t, in, pkgtest.Deb{Name: "hello", Version: "1.0-1", Arch: "amd64"})
	data := writeDeb(t, in, pkgtest.Deb{Name: "hello-data", Version: "1.0-1", Arch: "all"})
	prover.built(t, v1, data)
	s1 := mustPublish(t, r, prover, v1, data)
	if !s1.Created || s1.Snapshot.ID != "000001" || s1.Snapshot.Parent != "" || len(s1.Added) != 2 {
		t.Fatalf("first publish: %+v", s1)
	}
	v2 := writeDeb(t, t.TempDir(), pkgtest.Deb{Name: "hello", Version: "1.1-1", Arch: "amd64"})
	prover.built(t, v2)
	s2 := mustPublish(t, r, prover, v2, data)
	if !s2.Created || s2.Snapshot.ID != "000002" || s2.Snapshot.Parent != "000001" || s2.Unchanged != 1 ||
		!slices.Equal(identities(s2.Added), []string{"hello_1.1-1_amd64"}) {
		t.Fatalf("second publish: %+v", s2)
	}
	checkCurrent(t, r.Dir(), "000002")
	if got := identities(s2.Snapshot.Packages); !slices.Equal(got, []string{"hello-data_1.0-1_all", "hello_1.0-1_amd64", "hello_1.1-1_amd64"}) {
		t.Fatalf("snapshot 2 holds %v", got)
	}
	for _, p := range s2.Snapshot.Packages {
		if p.Provenance.Record == "" || p.Source != p.SHA256 {
			t.Errorf("%s: provenance %+v, source %s", p.Path, p.Provenance, p.Source)
		}
		a, errA := os.Stat(filepath.Join(s2.Snapshot.Dir, p.Path))
		b, errB := os.Stat(filepath.Join(dir, poolStorePath(p.SHA256)))
		if errA != nil || errB != nil || !os.SameFile(a, b) {
			t.Errorf("%s is not a hard link into the pool: %v %v", p.Path, errA, errB)
		}
	}
	for _, id := range []string{"000001", "000002"} {
		if probs, err := Verify(t.Context(), r.Dir().SnapshotDir(id), keyring(t, mustKey(t))); err != nil || len(probs) > 0 {
			t.Fatalf("snapshot %s: %v %v", id, probs, err)
		}
	}

	cur := filepath.Join(dir, ReleaseCurrent)
	env := newAptEnv(t, cur, "main", filepath.Join(cur, PublicKeyFile))
	if out, err := env.run("update"); err != nil || len(aptWarnings(out)) > 0 {
		t.Fatalf("apt-get update: %v\n%s", err, out)
	}
	for _, spec := range []string{"hello=1.0-1", "hello=1.1-1", "hello-data=1.0-1"} {
		if out, err := env.run("download", spec); err != nil || len(aptWarnings(out)) > 0 {
			t.Fatalf("apt-get download %s: %v\n%s", spec, err, out)
		}
	}
	for _, src := range []string{v1, v2, data} {
		want, _ := os.ReadFile(src)
		got, err := os.ReadFile(filepath.Join(env.dir, "download", filepath.Base(src)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("apt-get downloaded other bytes than %s: %v", filepath.Base(src), err)
		}
	}

	// Publishing the same files again changes nothing.
	s3 := mustPublish(t, r, prover, v1, v2, data)
	if s3.Created || s3.Snapshot.ID != "000002" || s3.Unchanged != 3 {
		t.Fatalf("publish of what is there: %+v", s3)
	}
	snaps, err := r.Dir().Snapshots()
	if err != nil || len(snaps) != 2 {
		t.Fatalf("snapshots: %v %v", snaps, err)
	}
}

// TestReleaseRPMSigned has rpmkeys check every package of an RPM release
// snapshot against the release key and dnf read current.
func TestReleaseRPMSigned(t *testing.T) {
	t.Parallel()
	rpmkeys := pkgtest.NeedTool(t, "rpmkeys")
	dir, in := t.TempDir(), t.TempDir()
	r := newTestRelease(t, dir, "rpm", 0)
	prover := builtProver{}
	paths := writeRPMs(t, in, []pkgtest.RPM{
		{Name: "hello", Version: "1.0", Release: "1", Arch: "noarch"},
		{Name: "hello-data", Version: "1.0", Release: "1", Arch: "noarch", PayloadSize: 5000},
	})
	prover.built(t, paths...)
	sum := mustPublish(t, r, prover, paths...)
	for _, p := range sum.Snapshot.Packages {
		if p.Source == p.SHA256 {
			t.Errorf("%s: served bytes are the unsigned ones", p.Path)
		}
	}
	k := mustKey(t)
	db := rpmdb(t, rpmkeys, k)
	keyID := strings.ToLower(k.Fingerprint()[len(k.Fingerprint())-8:])
	cur := filepath.Join(dir, ReleaseCurrent)
	files, _ := filepath.Glob(filepath.Join(cur, "Packages", "*", "*.rpm"))
	if len(files) != 2 {
		t.Fatalf("current holds %v", files)
	}
	for _, f := range files {
		out, err := run(t.Context(), in, rpmkeys, "--dbpath", db, "--checksig", "-v", f)
		if err != nil || !strings.Contains(out, "Signature, key ID "+keyID+": OK") || strings.Contains(out, "NOT OK") {
			t.Errorf("rpmkeys --checksig %s: %v\n%s", f, err, out)
		}
	}
	if probs, err := Verify(t.Context(), cur, keyring(t, k)); err != nil || len(probs) > 0 {
		t.Fatalf("verify current: %v %v", probs, err)
	}
	dnf := pkgtest.NeedTool(t, "dnf")
	env := newDnfEnv(t, dnf, cur, filepath.Join(cur, PublicKeyFile))
	out, err := env.run(t.Context(), "repoquery", "--repo", "sluice")
	if err != nil || !strings.Contains(out, "hello-0:1.0-1.noarch") || !strings.Contains(out, "hello-data-0:1.0-1.noarch") {
		t.Fatalf("dnf repoquery: %v\n%s", err, out)
	}
}

// TestReleaseRetention keeps the newest Keep versions of each package, by
// the format's version order, whatever the order of publication.
func TestReleaseRetention(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"deb", "rpm"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			dir, in := t.TempDir(), t.TempDir()
			r := newTestRelease(t, dir, format, 2)
			prover := builtProver{}
			mk := func(v string) string {
				var p string
				if format == "deb" {
					p = writeDeb(t, in, pkgtest.Deb{Name: "hello", Version: v + "-1", Arch: "all"})
				} else {
					p = writeRPM(t, in, pkgtest.RPM{Name: "hello", Version: v, Release: "1", Arch: "noarch"})
				}
				prover.built(t, p)
				return p
			}
			other := mk("0.1")
			if format == "deb" {
				other = writeDeb(t, in, pkgtest.Deb{Name: "other", Version: "1-1", Arch: "all"})
			} else {
				other = writeRPM(t, in, pkgtest.RPM{Name: "other", Version: "1", Release: "1", Arch: "noarch"})
			}
			prover.built(t, other)
			// 1.10 sorts above 1.9 for both dpkg and rpm, not as strings.
			var last ReleaseSummary
			for _, v := range []string{"1.9", "1.10", "1.2~rc1", "1.11"} {
				last = mustPublish(t, r, prover, mk(v), other)
			}
			var versions []string
			for _, p := range last.Snapshot.Packages {
				if p.Name == "hello" {
					versions = append(versions, p.Version)
				}
			}
			slices.Sort(versions)
			if !slices.Equal(versions, []string{"1.10", "1.11"}) {
				t.Fatalf("current keeps hello %v, want 1.10 and 1.11", versions)
			}
			if got := identities(last.Pruned); len(got) != 1 || !strings.Contains(got[0], "1.9") {
				t.Fatalf("last publish pruned %v, want 1.9", got)
			}
			// 1.2~rc1 sorted below both it kept: pruned as it came.
			s3, err := r.Dir().Snapshot("000003")
			if err != nil {
				t.Fatal(err)
			}
			if got := identities(s3.Packages); len(got) != 3 || strings.Contains(strings.Join(got, " "), "rc1") {
				t.Fatalf("snapshot 3 holds %v", got)
			}
			// Old snapshots keep what they held.
			s1, err := r.Dir().Snapshot("000001")
			if err != nil || len(s1.Packages) != 2 {
				t.Fatalf("snapshot 1: %+v %v", s1, err)
			}
			if _, err := os.Stat(filepath.Join(s1.Dir, s1.Packages[0].Path)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// releaseTree is what a reader of the repository's directory sees: every
// name and file below it but the lock and the pool's temporary files.
func releaseTree(t testing.TB, dir string) string {
	t.Helper()
	cur, _ := os.Readlink(filepath.Join(dir, ReleaseCurrent))
	snaps, _ := os.ReadDir(filepath.Join(dir, ReleaseSnapshots))
	var names []string
	for _, s := range snaps {
		names = append(names, s.Name()+"="+treeHash(t, filepath.Join(dir, ReleaseSnapshots, s.Name())))
	}
	return cur + " " + strings.Join(names, " ")
}

// TestReleaseAtomic makes publishes fail at every step: an invalid
// package among valid ones, a package without provenance, a conflict,
// and a failure while the snapshot is built. Each leaves current and the
// snapshots exactly as they were, and the next publish works.
func TestReleaseAtomic(t *testing.T) {
	t.Parallel()
	dir, in := t.TempDir(), t.TempDir()
	r := newTestRelease(t, dir, "deb", 0)
	prover := builtProver{}
	v1 := writeDeb(t, in, pkgtest.Deb{Name: "hello", Version: "1.0-1", Arch: "amd64"})
	prover.built(t, v1)
	mustPublish(t, r, prover, v1)
	before := releaseTree(t, dir)

	good := writeDeb(t, t.TempDir(), pkgtest.Deb{Name: "hello", Version: "1.1-1", Arch: "amd64"})
	prover.built(t, good)
	invalid := filepath.Join(t.TempDir(), "broken_1.0_all.deb")
	if err := os.WriteFile(invalid, []byte("!<arch>\nnot really"), 0o644); err != nil {
		t.Fatal(err)
	}
	unbuilt := writeDeb(t, t.TempDir(), pkgtest.Deb{Name: "handmade", Version: "1.0", Arch: "all"})
	conflict := writeDeb(t, t.TempDir(), pkgtest.Deb{Name: "hello", Version: "1.0-1", Arch: "amd64", Description: "other bytes"})
	prover.built(t, conflict)

	check := func(t *testing.T, err error) {
		t.Helper()
		if err == nil {
			t.Fatal("publish worked")
		}
		if got := releaseTree(t, dir); got != before {
			t.Fatalf("a failed publish changed the repository (%v):\n%s\n%s", err, before, got)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ReleaseSnapshots, ".tmp-*")); len(left) > 0 {
			t.Fatalf("left %v", left)
		}
		checkCurrent(t, r.Dir(), "000001")
	}
	t.Run("invalid package", func(t *testing.T) {
		_, err := r.Publish(t.Context(), []string{good, invalid}, prover)
		check(t, err)
	})
	t.Run("unbuilt package", func(t *testing.T) {
		_, err := r.Publish(t.Context(), []string{good, unbuilt}, prover)
		check(t, err)
		re, ok := errors.AsType[*RefusedError](err)
		if !ok || len(re.Refused) != 1 || re.Refused[0].Package.Name != "handmade" || !strings.Contains(err.Error(), "no build record") {
			t.Fatalf("refusal: %v", err)
		}
	})
	t.Run("conflict", func(t *testing.T) {
		_, err := r.Publish(t.Context(), []string{good, conflict}, prover)
		check(t, err)
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("conflict: %v", err)
		}
	})
	for _, step := range []string{"linked", "indexed", "manifest"} {
		t.Run("fails when "+step, func(t *testing.T) {
			r.fail = func(s string) error {
				if s == step {
					return syscall.EIO
				}
				return nil
			}
			defer func() { r.fail = nil }()
			_, err := r.Publish(t.Context(), []string{good}, prover)
			check(t, err)
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := r.Publish(ctx, []string{good}, prover)
		check(t, err)
	})
	// What a crash leaves (a snapshot being built, a symlink being
	// switched) is removed by the next publish, which works.
	if err := os.MkdirAll(filepath.Join(dir, ReleaseSnapshots, ".tmp-000002-x", "pool"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("snapshots/000009", filepath.Join(dir, ".tmp-current-x")); err != nil {
		t.Fatal(err)
	}
	sum := mustPublish(t, r, prover, good)
	if sum.Snapshot.ID != "000002" {
		t.Fatalf("publish after failures made %s", sum.Snapshot.ID)
	}
	checkCurrent(t, r.Dir(), "000002")
	left, _ := filepath.Glob(filepath.Join(dir, "*", ".tmp-*"))
	left2, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	if len(left)+len(left2) > 0 {
		t.Fatalf("leftovers stay: %v %v", left, left2)
	}
}

// TestReleaseRollbackDiffAudit rolls back, diffs and audits snapshots.
func TestReleaseRollbackDiffAudit(t *testing.T) {
	t.Parallel()
	dir, in := t.TempDir(), t.TempDir()
	r := newTestRelease(t, dir, "rpm", 0)
	prover := builtProver{}
	a := writeRPM(t, in, pkgtest.RPM{Name: "a", Version: "1", Release: "1", Arch: "noarch"})
	b := writeRPM(t, in, pkgtest.RPM{Name: "b", Version: "1", Release: "1", Arch: "noarch"})
	a2 := writeRPM(t, in, pkgtest.RPM{Name: "a", Version: "2", Release: "1", Arch: "noarch"})
	prover.built(t, a, b, a2)
	mustPublish(t, r, prover, a)
	mustPublish(t, r, prover, b, a2)
	d := r.Dir()
	s1, err1 := d.Snapshot("000001")
	s2, err2 := d.Snapshot("000002")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	diff := DiffSnapshots(s1, s2)
	if got := identities(diff.Added); !slices.Equal(got, []string{"a_2-1_noarch", "b_1-1_noarch"}) || len(diff.Removed) != 0 || len(diff.Changed) != 0 {
		t.Fatalf("diff 1..2: %+v", diff)
	}
	if back := DiffSnapshots(s2, s1); len(back.Removed) != 2 || len(back.Added) != 0 {
		t.Fatalf("diff 2..1: %+v", back)
	}

	if err := d.Rollback(t.Context(), "000001"); err != nil {
		t.Fatal(err)
	}
	checkCurrent(t, d, "000001")
	if probs, err := Verify(t.Context(), filepath.Join(dir, ReleaseCurrent), keyring(t, mustKey(t))); err != nil || len(probs) > 0 {
		t.Fatalf("verify after rollback: %v %v", probs, err)
	}
	for _, bad := range []string{"000007", "../x", ".tmp-000002"} {
		if err := d.Rollback(t.Context(), bad); err == nil {
			t.Errorf("rollback to %q worked", bad)
		}
	}
	checkCurrent(t, d, "000001")
	// The next publish starts from current.
	c := writeRPM(t, in, pkgtest.RPM{Name: "c", Version: "1", Release: "1", Arch: "noarch"})
	prover.built(t, c)
	s3 := mustPublish(t, r, prover, c)
	if s3.Snapshot.ID != "000003" || s3.Snapshot.Parent != "000001" || !slices.Equal(identities(s3.Snapshot.Packages), []string{"a_1-1_noarch", "c_1-1_noarch"}) {
		t.Fatalf("publish after rollback: %+v", s3.Snapshot)
	}

	kr := keyring(t, mustKey(t))
	findings, sum, err := d.Audit(t.Context(), kr, prover)
	if err != nil || len(findings) != 0 || sum.Snapshots != 3 || sum.Packages != 6 {
		t.Fatalf("audit: %v %+v %v", findings, sum, err)
	}
	// The artifact store holding other bytes than those b was signed
	// from: the served RPM is not the built one.
	var bSource string
	for _, p := range s2.Packages {
		if p.Name == "b" {
			bSource = p.Source
		}
	}
	builtFiles.Store(bSource, a2)
	findings, _, err = d.Audit(t.Context(), kr, prover)
	builtFiles.Store(bSource, b)
	if err != nil || len(findings) != 1 || !strings.Contains(findings[0].String(), "000002/Packages/b/b-1-1.noarch.rpm: header and payload") {
		t.Fatalf("audit of a package that is not the one built: %v %v", findings, err)
	}
	// A build record gone, a package file changed: both found.
	delete(prover, s1.Packages[0].Source)
	var victim string
	for _, p := range s3.Snapshot.Packages {
		if p.Name == "c" {
			victim = filepath.Join(s3.Snapshot.Dir, p.Path)
		}
	}
	flipByte(t, victim, -1)
	findings, _, err = d.Audit(t.Context(), kr, prover)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range findings {
		got = append(got, f.String())
	}
	joined := strings.Join(got, "\n")
	// Package a-1 is in snapshots 1, 2 and 3; c's file in 3.
	for _, want := range []string{"000001/Packages/a/a-1-1.noarch.rpm: provenance: no build record",
		"000002/Packages/a/a-1-1.noarch.rpm: provenance", "000003/Packages/a/a-1-1.noarch.rpm: provenance",
		"000003/Packages/c/c-1-1.noarch.rpm: file is"} {
		if !strings.Contains(joined, want) {
			t.Errorf("audit findings lack %q:\n%s", want, joined)
		}
	}
}

// TestReleaseConcurrentReaders has readers resolve current and verify
// what it names while publishes run: they never see an incomplete
// snapshot.
func TestReleaseConcurrentReaders(t *testing.T) {
	t.Parallel()
	dir, in := t.TempDir(), t.TempDir()
	r := newTestRelease(t, dir, "deb", 3)
	prover := builtProver{}
	first := writeDeb(t, in, pkgtest.Deb{Name: "hello", Version: "0-1", Arch: "all"})
	prover.built(t, first)
	mustPublish(t, r, prover, first)
	kr := keyring(t, mustKey(t))
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		for n := 0; ; n++ {
			select {
			case <-done:
				if n == 0 {
					errc <- errors.New("no read")
				}
				return
			default:
			}
			s, err := r.Dir().Current()
			if err != nil {
				errc <- err
				return
			}
			if probs, err := Verify(context.Background(), s.Dir, kr); err != nil || len(probs) > 0 {
				errc <- fmt.Errorf("snapshot %s: %v %v", s.ID, probs, err)
				return
			}
		}
	}()
	for i := 1; i <= 8; i++ {
		p := writeDeb(t, in, pkgtest.Deb{Name: "hello", Version: fmt.Sprintf("%d-1", i), Arch: "all"})
		prover.built(t, p)
		mustPublish(t, r, prover, p)
	}
	close(done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	checkCurrent(t, r.Dir(), "000009")
}

func TestReleaseConfigValidate(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]ReleaseConfig{
		"name":     {Name: "../x", Format: "rpm"},
		"format":   {Name: "x", Format: "tar"},
		"keep":     {Name: "x", Format: "rpm", Keep: -1},
		"codename": {Name: "x", Format: "deb"},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: %+v accepted", name, c)
		}
	}
	c := ReleaseConfig{Name: "x", Format: "rpm"}
	if err := c.Validate(); err != nil || c.Keep != DefaultKeep {
		t.Fatalf("defaults: %+v %v", c, err)
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"id":"000002","parent":"000001","name":"x","format":"rpm","created":"2026-01-01T00:00:00Z","keep":5,"packages":[]}`))
	f.Add([]byte(`{"id":"000001","name":"x","format":"deb","created":"2026-01-01T00:00:00Z","keep":5,"packages":[` +
		`{"pool":"pool/main/h/hello/hello_1_all.deb","size":3,"sha256":"` + strings.Repeat("a", 64) + `","source":"` + strings.Repeat("a", 64) +
		`","deb":{"package":"hello","version":"1","arch":"all","source":"hello","fields":[]},"since":"000001","provenance":{"record":"r","project":"p","commit":"c","branch":"main"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseManifest(data)
		if err != nil {
			return
		}
		for _, e := range m.Packages {
			if !safeRelPath(e.Pool) || !hex64RE.MatchString(e.SHA256) || strings.Contains(poolStorePath(e.SHA256), "..") {
				t.Fatalf("unsafe entry accepted: %+v", e)
			}
		}
		_ = m.snapshot("/x")
	})
}

// BenchmarkReleaseAddOne adds one package to a release repository of
// 2,000: the cost of a snapshot beyond its new package is its metadata
// and one hard link per package.
func BenchmarkReleaseAddOne(b *testing.B) {
	for _, format := range []string{"deb", "rpm"} {
		b.Run(format, func(b *testing.B) {
			dir, in := b.TempDir(), b.TempDir()
			r := newTestRelease(b, dir, format, 0)
			prover := builtProver{}
			var paths []string
			for i := range 2000 {
				var p string
				var err error
				if format == "deb" {
					p, err = pkgtest.Deb{Name: fmt.Sprintf("pkg%04d", i), Version: "1.0-1", Arch: "all"}.WriteFile(in)
				} else {
					p, err = pkgtest.RPM{Name: fmt.Sprintf("pkg%04d", i), Version: "1.0", Release: "1", Arch: "noarch"}.WriteFile(in)
				}
				if err != nil {
					b.Fatal(err)
				}
				paths = append(paths, p)
			}
			prover.built(b, paths...)
			mustPublish(b, r, prover, paths...)
			n := 0
			for b.Loop() {
				b.StopTimer()
				n++
				var p string
				var err error
				if format == "deb" {
					p, err = pkgtest.Deb{Name: "new", Version: fmt.Sprintf("%d-1", n), Arch: "all"}.WriteFile(b.TempDir())
				} else {
					p, err = pkgtest.RPM{Name: "new", Version: fmt.Sprint(n), Release: "1", Arch: "noarch"}.WriteFile(b.TempDir())
				}
				if err != nil {
					b.Fatal(err)
				}
				prover.built(b, p)
				b.StartTimer()
				mustPublish(b, r, prover, p)
			}
		})
	}
}
