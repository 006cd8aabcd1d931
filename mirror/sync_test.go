package mirror

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sluice-ci/sluice/internal/pkgtest"
)

// targetKinds makes a target of each kind for a test, and says where a
// client reads what it serves.
var targetKinds = []struct {
	kind string
	make func(t *testing.T) (Target, string)
}{
	{"local", func(t *testing.T) (Target, string) {
		dir := t.TempDir()
		l, err := NewLocal("local1", dir, 0, discard)
		if err != nil {
			t.Fatal(err)
		}
		return l, filepath.Join(dir, "current")
	}},
	{"rsync", func(t *testing.T) (Target, string) {
		d := startRsyncd(t)
		r, err := NewRsync("up1", RsyncConfig{Dest: d.url, PasswordFile: d.password, ReadbackDir: filepath.Join(t.TempDir(), "readback")}, discard)
		if err != nil {
			t.Fatal(err)
		}
		return r, d.dir
	}},
	{"rsync-path", func(t *testing.T) (Target, string) {
		// rsync without a daemon: a path on this host (as over SSH,
		// without the SSH).
		pkgtest.NeedTool(t, "rsync")
		dir := filepath.Join(t.TempDir(), "mirror", "stable")
		r, err := NewRsync("up1", RsyncConfig{Dest: dir, ReadbackDir: filepath.Join(t.TempDir(), "readback")}, discard)
		if err != nil {
			t.Fatal(err)
		}
		return r, dir
	}},
	{"rsync-quick", func(t *testing.T) (Target, string) {
		d := startRsyncd(t)
		r, err := NewRsync("up1", RsyncConfig{Dest: d.url, PasswordFile: d.password, ReadbackDir: filepath.Join(t.TempDir(), "readback"), Check: CheckQuick}, discard)
		if err != nil {
			t.Fatal(err)
		}
		return r, d.dir
	}},
}

// TestSyncServesRollsBack syncs two snapshots to a target of each kind,
// has the real client read each, and rolls back.
func TestSyncServesRollsBack(t *testing.T) {
	t.Parallel()
	for _, format := range Formats {
		for _, tk := range targetKinds {
			t.Run(format+"/"+tk.kind, func(t *testing.T) {
				t.Parallel()
				ctx := t.Context()
				rel := newRelease(t, format, mustKey(t))
				s1 := rel.add(t, pkgs(t, format, "hello", 2, 3000)...)
				target, serve := tk.make(t)
				rec, arts := &recorded{}, &memArtifacts{}
				syncer, state := newSyncer(t, keyringOf(t, mustKey(t)), rec, arts)

				m, err := syncer.Sync(ctx, rel, s1, "sync", []Target{target})
				if err != nil {
					t.Fatal(err)
				}
				if got, _ := target.Served(ctx); got != s1.ID {
					t.Fatalf("serves %q after the first sync, want %s", got, s1.ID)
				}
				if len(m.Added) != 2 || len(m.Removed) != 0 || m.From != "" {
					t.Errorf("first manifest: from %q, added %v, removed %v", m.From, m.Added, m.Removed)
				}
				mustVerify(t, serve)
				clientReads(t, format, serve, []string{"hello-0", "hello-1"})

				s2 := rel.add(t, pkgs(t, format, "extra", 1, 3000)...)
				m, err = syncer.Sync(ctx, rel, s2, "sync", []Target{target})
				if err != nil {
					t.Fatal(err)
				}
				if m.From != s1.ID || len(m.Added) != 1 || len(m.Removed) != 0 || m.Targets[0].Outcome != Passed {
					t.Errorf("second manifest: %+v", m)
				}
				mustVerify(t, serve)
				clientReads(t, format, serve, []string{"hello-0", "hello-1", "extra-0"})

				// A sync of what the target serves changes nothing.
				m, err = syncer.Sync(ctx, rel, s2, "sync", []Target{target})
				if err != nil {
					t.Fatal(err)
				}
				if tr := m.Targets[0].Transfer; tr.Files != 0 {
					t.Errorf("a no-change sync wrote %d files", tr.Files)
				}

				m, err = syncer.Sync(ctx, rel, s1, "rollback", []Target{target})
				if err != nil {
					t.Fatal(err)
				}
				if got, _ := target.Served(ctx); got != s1.ID {
					t.Fatalf("serves %q after the rollback, want %s", got, s1.ID)
				}
				if len(m.Removed) != 1 || m.From != s2.ID {
					t.Errorf("rollback manifest: from %q, removed %v", m.From, m.Removed)
				}
				mustVerify(t, serve)
				clientReads(t, format, serve, []string{"hello-0", "hello-1"})
				if r, ok := target.(*Rsync); ok {
					// The trace names the snapshot; the lock is gone.
					data, err := os.ReadFile(filepath.Join(serve, traceDir, r.cfg.TraceName))
					if err != nil {
						t.Fatal(err)
					}
					if tr, err := ParseTrace(data); err != nil || tr.Snapshot != s1.ID || tr.Repo != "hello" || tr.Format != format {
						t.Errorf("trace %+v %v", tr, err)
					}
					if _, err := os.Stat(filepath.Join(serve, r.lockName())); !os.IsNotExist(err) {
						t.Errorf("lock file left after the sync: %v", err)
					}
				}
				if served, probs, err := syncer.Verify(ctx, "hello", format, target); err != nil || len(probs) > 0 || served != s1.ID {
					t.Fatalf("Verify: %s %v %v", served, probs, err)
				}

				// Four results, each with its manifest kept.
				if len(rec.res) != 4 {
					t.Fatalf("%d results recorded, want 4", len(rec.res))
				}
				for _, r := range rec.res {
					if r.Testcase.Name != Testcase || r.Outcome != Passed || len(arts.data) != 4 {
						t.Errorf("result %+v (%d artifacts)", r, len(arts.data))
					}
					if _, ok := arts.data[r.Data["manifest_sha256"][0]]; !ok {
						t.Errorf("result names manifest %v, not kept", r.Data["manifest_sha256"])
					}
				}
				st, err := LoadState(state, "hello", format)
				if err != nil {
					t.Fatal(err)
				}
				ts := st.Targets[target.Name()]
				if ts == nil || ts.Served != s1.ID || ts.VerifiedAt.IsZero() || ts.Outcome != Passed {
					t.Fatalf("state: %+v", ts)
				}
				data, err := os.ReadFile(ts.Manifest)
				if err != nil {
					t.Fatal(err)
				}
				var kept Manifest
				if err := json.Unmarshal(data, &kept); err != nil || kept.Kind != "rollback" || kept.Snapshot != s1.ID {
					t.Fatalf("manifest file: %v %+v", err, kept)
				}
				if l, ok := target.(*Local); ok {
					ents, _ := os.ReadDir(filepath.Join(l.Dir(), "snapshots"))
					var names []string
					for _, e := range ents {
						names = append(names, e.Name())
					}
					if !slices.Equal(names, []string{s1.ID, s2.ID}) {
						t.Errorf("local target keeps %v", names)
					}
				}
			})
		}
	}
}
