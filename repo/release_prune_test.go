package repo

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/internal/proc"
)

// storeFiles lists the SHA-256 names in the repository's pool.
func storeFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	files, err := filepath.Glob(filepath.Join(dir, ReleasePool, "sha256", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		out = append(out, filepath.Base(f))
	}
	slices.Sort(out)
	return out
}

func snapshotIDs(t testing.TB, d ReleaseDir) []string {
	t.Helper()
	snaps, err := d.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range snaps {
		ids = append(ids, s.ID)
	}
	return ids
}

// TestReleasePrune publishes five snapshots, rolls back to the third and
// prunes: the newest, the current and the protected snapshots stay; the
// pool keeps exactly the files a remaining manifest names (a pool file
// linked from elsewhere, as a mirror on the same filesystem would, goes
// too; a file a failed publish stored goes); apt-get reads current as
// before; rollback to a pruned snapshot is refused and says why; the next
// publish takes a new ID; the audit finds nothing.
func TestReleasePrune(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "apt-get")
	dir, in := t.TempDir(), t.TempDir()
	r := newTestRelease(t, dir, "deb", 2)
	d := r.Dir()
	prover := builtProver{}
	data := writeDeb(t, in, pkgtest.Deb{Name: "hello-data", Version: "1.0-1", Arch: "all"})
	prover.built(t, data)
	var hello []string
	for _, v := range []string{"1.0", "1.1", "1.2", "1.3", "1.4"} {
		p := writeDeb(t, in, pkgtest.Deb{Name: "hello", Version: v + "-1", Arch: "all"})
		prover.built(t, p)
		hello = append(hello, p)
		mustPublish(t, r, prover, p, data)
	}
	// A publish that stored its package and then failed: an orphan in
	// the pool.
	orphan := writeDeb(t, in, pkgtest.Deb{Name: "orphan", Version: "1", Arch: "all"})
	prover.built(t, orphan)
	r.fail = func(s string) error {
		if s == "indexed" {
			return syscall.EIO
		}
		return nil
	}
	if _, err := r.Publish(t.Context(), []string{orphan}, prover); err == nil {
		t.Fatal("publish with a failure worked")
	}
	r.fail = nil
	if err := d.Rollback(t.Context(), "000003"); err != nil {
		t.Fatal(err)
	}
	inPool := func(path string) bool {
		pkg, err := Inspect(path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = os.Stat(filepath.Join(dir, poolStorePath(pkg.SHA256)))
		return err == nil
	}
	if !inPool(orphan) || len(storeFiles(t, dir)) != 7 {
		t.Fatalf("pool before prune: %v", storeFiles(t, dir))
	}

	for name, c := range map[string]struct {
		keep    int
		protect []string
		want    string
	}{
		"keep 0":   {0, nil, "at least the newest"},
		"bad ID":   {1, []string{"../x"}, "not a snapshot ID"},
		"short ID": {1, []string{"1"}, "not a snapshot ID"},
	} {
		if _, err := d.Prune(t.Context(), c.keep, c.protect, discard); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if got := snapshotIDs(t, d); len(got) != 5 {
		t.Fatalf("a refused prune removed snapshots: %v", got)
	}

	// 000002 is served by a mirror target: protected. 000009 is not there.
	sum, err := d.Prune(t.Context(), 1, []string{"000002", "000009"}, discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sum.Removed, []string{"000001", "000004"}) || !slices.Equal(sum.Kept, []string{"000002", "000003", "000005"}) {
		t.Fatalf("prune: %+v", sum)
	}
	if got := snapshotIDs(t, d); !slices.Equal(got, sum.Kept) {
		t.Fatalf("snapshots after prune: %v", got)
	}
	// 000002 holds hello 1.0 and 1.1; only the orphan went.
	if sum.PoolFiles != 1 || sum.PoolBytes == 0 || inPool(orphan) || !inPool(hello[0]) || len(storeFiles(t, dir)) != 6 {
		t.Fatalf("pool after prune: %+v %v", sum, storeFiles(t, dir))
	}
	checkCurrent(t, d, "000003")

	// A mirror on this filesystem holds a link to hello 1.0: the pool's
	// name goes anyway once no snapshot names it, and the mirror's copy
	// stays whole.
	p0, err := Inspect(hello[0])
	if err != nil {
		t.Fatal(err)
	}
	mirrorCopy := filepath.Join(t.TempDir(), "hello.deb")
	if err := os.Link(filepath.Join(dir, poolStorePath(p0.SHA256)), mirrorCopy); err != nil {
		t.Fatal(err)
	}
	sum, err = d.Prune(t.Context(), 1, nil, discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sum.Removed, []string{"000002"}) || sum.PoolFiles != 1 || inPool(hello[0]) {
		t.Fatalf("second prune: %+v %v", sum, storeFiles(t, dir))
	}
	if got, _ := Inspect(mirrorCopy); got.SHA256 != p0.SHA256 {
		t.Fatal("the mirror's link lost its bytes")
	}
	// The pool holds exactly what the remaining manifests name.
	var want []string
	for _, id := range []string{"000003", "000005"} {
		s, err := d.Snapshot(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range s.Packages {
			want = append(want, p.SHA256)
		}
		if probs, err := Verify(t.Context(), s.Dir, keyring(t, mustKey(t))); err != nil || len(probs) > 0 {
			t.Fatalf("snapshot %s after prune: %v %v", id, probs, err)
		}
	}
	slices.Sort(want)
	if got := storeFiles(t, dir); !slices.Equal(got, slices.Compact(want)) {
		t.Fatalf("pool holds %v, the manifests name %v", got, want)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ReleaseSnapshots, ".*")); len(left) > 0 {
		t.Fatalf("prune left %v", left)
	}

	// apt-get reads current as before.
	cur := filepath.Join(dir, ReleaseCurrent)
	env := newAptEnv(t, cur, "main", filepath.Join(cur, PublicKeyFile))
	if out, err := env.run("update"); err != nil || len(aptWarnings(out)) > 0 {
		t.Fatalf("apt-get update: %v\n%s", err, out)
	}
	for _, spec := range []string{"hello=1.1-1", "hello=1.2-1", "hello-data=1.0-1"} {
		if out, err := env.run("download", spec); err != nil || len(aptWarnings(out)) > 0 {
			t.Fatalf("apt-get download %s: %v\n%s", spec, err, out)
		}
	}

	// Rollback to a pruned snapshot: refused, and the error says why.
	for _, id := range []string{"000001", "000002", "000004"} {
		err := d.Rollback(t.Context(), id)
		if !errors.Is(err, ErrNoSnapshot) || !strings.Contains(err.Error(), "snapshot "+id+" was pruned") {
			t.Errorf("rollback to pruned %s: %v", id, err)
		}
	}
	if err := d.Rollback(t.Context(), "000007"); !errors.Is(err, ErrNoSnapshot) || strings.Contains(err.Error(), "pruned") {
		t.Errorf("rollback to a snapshot never made: %v", err)
	}
	checkCurrent(t, d, "000003")
	if err := d.Rollback(t.Context(), "000005"); err != nil {
		t.Fatal(err)
	}
	// The next snapshot takes a new ID, and the audit finds nothing.
	next := writeDeb(t, in, pkgtest.Deb{Name: "hello", Version: "1.5-1", Arch: "all"})
	prover.built(t, next)
	if s := mustPublish(t, r, prover, next); s.Snapshot.ID != "000006" || s.Snapshot.Parent != "000005" {
		t.Fatalf("publish after prune: %s (parent %s)", s.Snapshot.ID, s.Snapshot.Parent)
	}
	findings, asum, err := d.Audit(t.Context(), keyring(t, mustKey(t)), prover)
	if err != nil || len(findings) > 0 || asum.Snapshots != 3 {
		t.Fatalf("audit after prune: %v %+v %v", findings, asum, err)
	}
}

// TestReleasePruneInterrupted leaves the repository as a prune killed at
// each point would: snapshots renamed to .trash-* (one partly deleted),
// pool files no snapshot names. Readers never see the trash; current
// verifies; the next prune (or publish) finishes the work.
func TestReleasePruneInterrupted(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ format, next string }{{"deb", "prune"}, {"deb", "publish"}, {"rpm", "prune"}} {
		next := c.next
		t.Run(c.format+" "+next, func(t *testing.T) {
			t.Parallel()
			dir, in := t.TempDir(), t.TempDir()
			r := newTestRelease(t, dir, c.format, 1)
			d := r.Dir()
			prover := builtProver{}
			mk := func(v string) string {
				var p string
				if c.format == "deb" {
					p = writeDeb(t, in, pkgtest.Deb{Name: "hello", Version: v, Arch: "all"})
				} else {
					p = writeRPM(t, in, pkgtest.RPM{Name: "hello", Version: v, Release: "1", Arch: "noarch"})
				}
				prover.built(t, p)
				return p
			}
			for _, v := range []string{"1", "2", "3"} {
				mustPublish(t, r, prover, mk(v))
			}
			// Killed after the renames, in the middle of the deletion.
			snaps := filepath.Join(dir, ReleaseSnapshots)
			for _, id := range []string{"000001", "000002"} {
				if err := os.Rename(filepath.Join(snaps, id), filepath.Join(snaps, trashPrefix+id+"-x")); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.RemoveAll(filepath.Join(snaps, trashPrefix+"000001-x", ".sluice")); err != nil {
				t.Fatal(err)
			}
			if got := snapshotIDs(t, d); !slices.Equal(got, []string{"000003"}) {
				t.Fatalf("listed %v", got)
			}
			if probs, err := Verify(t.Context(), filepath.Join(dir, ReleaseCurrent), keyring(t, mustKey(t))); err != nil || len(probs) > 0 {
				t.Fatalf("current: %v %v", probs, err)
			}
			if err := d.Rollback(t.Context(), "000002"); !strings.Contains(fmtErr(err), "was pruned") {
				t.Fatalf("rollback into the trash: %v", err)
			}
			switch next {
			case "prune":
				sum, err := d.Prune(t.Context(), 1, nil, discard)
				if err != nil || len(sum.Removed) != 0 || sum.PoolFiles != 2 {
					t.Fatalf("prune after a crash: %+v %v", sum, err)
				}
			case "publish":
				if s := mustPublish(t, r, prover, mk("4")); s.Snapshot.ID != "000004" {
					t.Fatalf("publish after a crash made %s", s.Snapshot.ID)
				}
			}
			if left, _ := filepath.Glob(filepath.Join(snaps, trashPrefix+"*")); len(left) > 0 {
				t.Fatalf("trash stays: %v", left)
			}
			if next == "prune" && len(storeFiles(t, dir)) != 1 {
				t.Fatalf("pool: %v", storeFiles(t, dir))
			}
			if probs, err := Verify(t.Context(), filepath.Join(dir, ReleaseCurrent), keyring(t, mustKey(t))); err != nil || len(probs) > 0 {
				t.Fatalf("current after the %s: %v %v", next, probs, err)
			}
		})
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestReleaseFirstPublishFails: a first publish that is refused (no
// provenance, two files of one identity) leaves no directory at all; one
// that fails while it builds leaves only its lock, which does not count as
// published, and no pool files; the next publish is snapshot 000001.
// Two first publishes at once both land, the second on top of the first.
func TestReleaseFirstPublishFails(t *testing.T) {
	t.Parallel()
	in := t.TempDir()
	prover := builtProver{}
	good := writeDeb(t, in, pkgtest.Deb{Name: "hello", Version: "1", Arch: "all"})
	prover.built(t, good)
	unbuilt := writeDeb(t, t.TempDir(), pkgtest.Deb{Name: "handmade", Version: "1", Arch: "all"})
	twin := writeDeb(t, t.TempDir(), pkgtest.Deb{Name: "hello", Version: "1", Arch: "all", Description: "other bytes"})
	prover.built(t, twin)

	dir := filepath.Join(t.TempDir(), "releases", "stable", "deb")
	r := newTestRelease(t, dir, "deb", 0)
	if _, err := r.Publish(t.Context(), []string{good, unbuilt}, prover); err == nil {
		t.Fatal("unbuilt package published")
	} else if _, ok := errors.AsType[*RefusedError](err); !ok {
		t.Fatalf("refusal: %v", err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("a refused first publish left %s: %v", dir, err)
	}
	if _, err := r.Publish(t.Context(), []string{good, twin}, prover); !errors.Is(err, ErrBadPackage) {
		t.Fatalf("two hello 1 with other bytes: %v", err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("a first publish of bad packages left %s: %v", dir, err)
	}
	if _, err := r.Dir().Prune(t.Context(), 1, nil, discard); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("prune of nothing: %v", err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("prune made %s: %v", dir, err)
	}

	r.fail = func(s string) error {
		if s == "manifest" {
			return syscall.EIO
		}
		return nil
	}
	if _, err := r.Publish(t.Context(), []string{good}, prover); err == nil {
		t.Fatal("publish with a failure worked")
	}
	r.fail = nil
	if r.Dir().Published() {
		t.Fatal("a failed first publish counts as published")
	}
	for _, name := range []string{ReleaseSnapshots, ReleasePool, ReleaseCurrent} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("a failed first publish left %s: %v", name, err)
		}
	}
	// A refusal now (the directory exists) leaves nothing more.
	if _, err := r.Publish(t.Context(), []string{unbuilt}, prover); err == nil {
		t.Fatal("unbuilt package published")
	}
	if r.Dir().Published() {
		t.Fatal("a refused publish counts as published")
	}
	if s := mustPublish(t, r, prover, good); s.Snapshot.ID != "000001" || !r.Dir().Published() {
		t.Fatalf("publish after the failures made %s", s.Snapshot.ID)
	}

	// Two first publishes at once.
	dir2 := filepath.Join(t.TempDir(), "deb")
	other := writeDeb(t, in, pkgtest.Deb{Name: "other", Version: "1", Arch: "all"})
	prover.built(t, other)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, p := range []string{good, other} {
		ri := newTestRelease(t, dir2, "deb", 0)
		wg.Go(func() {
			_, errs[i] = ri.Publish(t.Context(), []string{p}, prover)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	cur, err := ReleaseDir(dir2).Current()
	if err != nil || cur.ID != "000002" || !slices.Equal(identities(cur.Packages), []string{"hello_1_all", "other_1_all"}) {
		t.Fatalf("two first publishes: %+v %v", cur, err)
	}
}

var pruneKills = flag.Int("prune-kills", 4, "rounds of TestReleasePruneKilled (each kills one prune)")

// pruneHelperDir names, in the environment of the test binary run as a
// helper, the release repository TestHelperPrune prunes.
const pruneHelperDir = "SLUICE_TEST_PRUNE_DIR"

// TestHelperPrune is the prune that TestReleasePruneKilled kills: it says
// when it starts and prunes to the newest snapshot.
func TestHelperPrune(t *testing.T) {
	dir := os.Getenv(pruneHelperDir)
	if dir == "" {
		t.Skip("run by TestReleasePruneKilled")
	}
	fmt.Println("pruning")
	if _, err := ReleaseDir(dir).Prune(t.Context(), 1, nil, discard); err != nil {
		t.Fatal(err)
	}
}

// TestReleasePruneKilled kills (SIGKILL) a prune in another process at a
// random point, in each round, after new snapshots were published: every
// snapshot still listed verifies and has its pool files, current verifies,
// and a prune run again finishes the work. -prune-kills sets the rounds.
func TestReleasePruneKilled(t *testing.T) {
	t.Parallel()
	dir, in := t.TempDir(), t.TempDir()
	r := newTestRelease(t, dir, "deb", 1)
	d := r.Dir()
	prover := builtProver{}
	data := writeDeb(t, in, pkgtest.Deb{Name: "hello-data", Version: "1", Arch: "all"})
	prover.built(t, data)
	kr := keyring(t, mustKey(t))
	v := 0
	publish8 := func() {
		for range 8 {
			v++
			p := writeDeb(t, in, pkgtest.Deb{Name: "hello", Version: strconv.Itoa(v), Arch: "all"})
			prover.built(t, p)
			mustPublish(t, r, prover, p, data)
		}
	}
	// How long a whole prune takes here: kills land anywhere in it.
	publish8()
	start := time.Now()
	if _, err := d.Prune(t.Context(), 1, nil, discard); err != nil {
		t.Fatal(err)
	}
	window := max(time.Since(start)*5/4, time.Millisecond)
	for round := range *pruneKills {
		publish8()
		cmd := proc.Command(t.Context(), os.Args[0], "-test.run=^TestHelperPrune$", "-test.count=1")
		cmd.Env = append(os.Environ(), pruneHelperDir+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it once it has begun, while it prunes (or just after).
		line, _ := bufio.NewReader(out).ReadString('\n')
		time.Sleep(time.Duration(rand.Int64N(int64(window))))
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if line != "pruning\n" {
			t.Fatalf("round %d: helper said %q", round, line)
		}
		trash, _ := filepath.Glob(filepath.Join(dir, ReleaseSnapshots, trashPrefix+"*"))
		t.Logf("round %d (window %s): killed with %d snapshots listed, %d in the trash, %d pool files", round, window, len(snapshotIDs(t, d)), len(trash), len(storeFiles(t, dir)))

		snaps, err := d.Snapshots()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for _, s := range snaps {
			if probs, err := Verify(t.Context(), s.Dir, kr); err != nil || len(probs) > 0 {
				t.Fatalf("round %d: snapshot %s: %v %v", round, s.ID, probs, err)
			}
			for _, p := range s.Packages {
				if _, err := os.Stat(filepath.Join(dir, poolStorePath(p.SHA256))); err != nil {
					t.Fatalf("round %d: snapshot %s: pool file of %s: %v", round, s.ID, p.Path, err)
				}
			}
		}
		checkCurrent(t, d, fmt.Sprintf("%06d", v))
		if probs, err := Verify(t.Context(), filepath.Join(dir, ReleaseCurrent), kr); err != nil || len(probs) > 0 {
			t.Fatalf("round %d: current: %v %v", round, probs, err)
		}
		sum, err := d.Prune(t.Context(), 1, nil, discard)
		if err != nil || !slices.Equal(sum.Kept, []string{fmt.Sprintf("%06d", v)}) {
			t.Fatalf("round %d: prune again: %+v %v", round, sum, err)
		}
		if got := storeFiles(t, dir); len(got) != 2 {
			t.Fatalf("round %d: pool after the prune: %v", round, got)
		}
	}
}
