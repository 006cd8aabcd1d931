package mirror

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/proc"
	"github.com/sluice-ci/sluice/repo"
)

// helperEnv carries the arguments of TestHelperSync, the sync process the
// fault test kills.
const helperEnv = "SLUICE_MIRROR_TEST_SYNC"

type helperArgs struct {
	Root, Format, Snapshot, StateDir, KeyFile string
	Kind                                      string // local, rsync or rsync-quick
	Dir                                       string // local
	Dest, Password, Readback                  string // rsync
}

func (a helperArgs) target() (Target, error) {
	if a.Kind == "local" {
		return NewLocal("t", a.Dir, 0, discard)
	}
	check := CheckFull
	if a.Kind == "rsync-quick" {
		check = CheckQuick
	}
	return NewRsync("t", RsyncConfig{Dest: a.Dest, PasswordFile: a.Password, ReadbackDir: a.Readback, Check: check}, discard)
}

// TestHelperSync is not a test: it is the process the fault test starts
// (and kills) to run one sync, when helperEnv is set.
func TestHelperSync(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		t.Skip("the fault test's sync process; runs only under it")
	}
	var a helperArgs
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(a.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := repo.ReadKeyring(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	target, err := a.target()
	if err != nil {
		t.Fatal(err)
	}
	rel := Release{Name: "hello", Format: a.Format, Root: a.Root}
	snap, err := rel.Snapshot(a.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSyncer(Options{StateDir: a.StateDir, Keyring: kr, Log: discard, TrustVerified: a.Kind == "rsync-quick"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sync(t.Context(), rel, snap, "sync", []Target{target}); err != nil {
		t.Fatal(err)
	}
}

// faultRuns is how many syncs each case of TestKilledSyncs kills:
// SLUICE_MIRROR_FAULT_RUNS, or a handful.
func faultRuns(t *testing.T) int {
	v := os.Getenv("SLUICE_MIRROR_FAULT_RUNS")
	if v == "" {
		return 3
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("SLUICE_MIRROR_FAULT_RUNS=%q", v)
	}
	return n
}

// rsyncChildren returns the rsync processes pid started.
func rsyncChildren(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		data, _ := os.ReadFile(f)
		for _, c := range strings.Fields(string(data)) {
			cp, _ := strconv.Atoi(c)
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cp)); strings.TrimSpace(string(comm)) == "rsync" {
				out = append(out, cp)
			}
		}
	}
	return out
}

// TestKilledSyncs syncs snapshots to a target while a reader checks it
// without pause, and kills the sync (kill -9 of the sync process, or of
// one of its rsync processes) at random points; then syncs again. The
// reader must never see an inconsistent repository: for a local target,
// the snapshot current points at, by every rule of repo.Verify; for an
// rsync target, what a client reads from the entry file on (see the
// package comment). The restarted sync must end with the target serving
// the snapshot, passing repo.Verify.
func TestKilledSyncs(t *testing.T) {
	t.Parallel()
	runs := faultRuns(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range Formats {
		for _, kind := range []string{"local", "rsync", "rsync-quick"} {
			t.Run(format+"/"+kind, func(t *testing.T) {
				t.Parallel()
				killedSyncs(t, exe, format, kind, runs)
			})
		}
	}
}

func killedSyncs(t *testing.T, exe, format, kind string, runs int) {
	ctx := t.Context()
	kr := keyringOf(t, mustKey(t))
	rel := newRelease(t, format, mustKey(t))
	var snaps []Snapshot
	snaps = append(snaps, rel.add(t, pkgs(t, format, "base", 30, 6000)...))
	for i := range 3 {
		snaps = append(snaps, rel.add(t, pkgs(t, format, fmt.Sprintf("more%d", i), 4, 6000)...))
	}
	keyFile := filepath.Join(t.TempDir(), "key.asc")
	writePublicKey(t, keyFile)
	a := helperArgs{Root: rel.Root, Format: format, StateDir: t.TempDir(), KeyFile: keyFile, Kind: kind}
	var serve string
	if kind == "local" {
		a.Dir = t.TempDir()
		serve = filepath.Join(a.Dir, "current")
	} else {
		d := startRsyncd(t)
		a.Dest, a.Password, a.Readback = d.url, d.password, filepath.Join(t.TempDir(), "readback")
		serve = d.dir
	}
	syncTo := func(snap Snapshot, kill time.Duration, rsyncOnly bool) (time.Duration, error) {
		a.Snapshot = snap.ID
		raw, _ := json.Marshal(a)
		cmd := proc.Command(ctx, exe, "-test.run=^TestHelperSync$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"="+string(raw))
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		if kill > 0 {
			timer := time.AfterFunc(kill, func() {
				if rsyncOnly {
					if cs := rsyncChildren(cmd.Process.Pid); len(cs) > 0 {
						syscall.Kill(cs[rand.IntN(len(cs))], syscall.SIGKILL)
						return
					}
				}
				syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			})
			defer timer.Stop()
		}
		err := cmd.Wait()
		if err != nil && kill == 0 {
			return 0, fmt.Errorf("%w\n%s", err, out.String())
		}
		return time.Since(start), nil
	}
	served := func() string {
		target, err := a.target()
		if err != nil {
			t.Fatal(err)
		}
		id, err := target.Served(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}

	if _, err := syncTo(snaps[0], 0, false); err != nil {
		t.Fatal(err)
	}
	typical, err := syncTo(snaps[1], 0, false)
	if err != nil {
		t.Fatal(err)
	}
	cur := 1

	var started atomic.Int64
	var reads, stale atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			s0 := started.Load()
			var err error
			var gone bool
			if kind == "local" {
				link, lerr := os.Readlink(serve)
				if lerr != nil {
					err = lerr
				} else {
					dir := filepath.Join(a.Dir, link)
					var probs []repo.Problem
					probs, err = repo.Verify(ctx, dir, kr)
					if err == nil && len(probs) > 0 {
						err = fmt.Errorf("%v", probs)
					}
					if _, serr := os.Stat(dir); serr != nil {
						gone = true // retired while read: a reader that slow may lose it
					}
				}
			} else {
				err = clientView(format, serve, kr)
				// Files are kept one sync after the one that stops naming
				// them: a read that spans two syncs may lose them.
				gone = started.Load()-s0 >= 2
			}
			// A breath between reads: the syncs share two cores with it.
			time.Sleep(time.Millisecond)
			switch {
			case err == nil:
				reads.Add(1)
			case gone:
				stale.Add(1)
			case ctx.Err() != nil:
				return
			default:
				time.Sleep(time.Second)
				t.Errorf("reader saw an inconsistent repository (after %d syncs): %v (a second later: %v)", started.Load(), err, clientView(format, serve, kr))
				return
			}
		}
	})
	defer func() {
		close(stop)
		wg.Wait()
	}()

	for i := range runs {
		next := rand.IntN(len(snaps) - 1)
		if next >= cur {
			next++
		}
		delay := time.Duration(rand.Int64N(int64(typical)*13/10)) + time.Millisecond
		started.Add(1)
		rsyncOnly := kind != "local" && i%2 == 1
		if _, err := syncTo(snaps[next], delay, rsyncOnly); err != nil {
			t.Fatal(err)
		}
		if got := served(); got != snaps[cur].ID && got != snaps[next].ID {
			t.Fatalf("run %d: after a kill after %v, the target serves %q, neither %s nor %s", i, delay, got, snaps[cur].ID, snaps[next].ID)
		}
		started.Add(1)
		if _, err := syncTo(snaps[next], 0, false); err != nil {
			t.Fatalf("run %d: the sync after a kill after %v: %v", i, delay, err)
		}
		if got := served(); got != snaps[next].ID {
			t.Fatalf("run %d: the target serves %q after the restarted sync, want %s", i, got, snaps[next].ID)
		}
		mustVerify(t, serve)
		cur = next
	}
	close(stop)
	wg.Wait()
	stop = make(chan struct{})
	t.Logf("%d kills (sync %v typical), %d consistent reads, %d stale", runs, typical.Round(time.Millisecond), reads.Load(), stale.Load())
	if reads.Load() == 0 {
		t.Fatal("the reader never completed a read")
	}
}
