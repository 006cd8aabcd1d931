package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/builder"
	"github.com/sluice-ci/sluice/mirror"
	"github.com/sluice-ci/sluice/repo"
	"github.com/sluice-ci/sluice/results"
)

// The mirror commands: wiring of package mirror on the mirrors section,
// the release repositories under DATA-DIR/releases/ and the store. Sync
// state and manifests live under DATA-DIR/mirror/NAME/FORMAT/.

func newMirrorCmd(log *slog.Logger) *cobra.Command {
	cmd := &cobra.Command{Use: "mirror", Short: "Sync release repositories to their mirrors, transactionally; status, verify, rollback"}
	cmd.AddCommand(newMirrorSyncCmd(log), newMirrorStatusCmd(log), newMirrorVerifyCmd(log), newMirrorRollbackCmd(log))
	return cmd
}

// mirrorWork is what a mirror command works with for one release
// repository.
type mirrorWork struct {
	e       *env
	mc      mirrorRepoConfig
	formats []string
	syncer  *mirror.Syncer
}

// openMirror opens the store and the mirrors of release repository name.
func openMirror(cmd *cobra.Command, sf *storeFlags, name string, log *slog.Logger, progress mirror.Progress) (*mirrorWork, error) {
	e, err := sf.open(cmd, log)
	if err != nil {
		return nil, err
	}
	w, err := newMirrorWork(e, name, log, progress, nil, nil)
	if err != nil {
		e.close()
		return nil, err
	}
	return w, nil
}

// newMirrorWork wires the syncer of release repository name on e: its
// keyring, the store's results (with data and groups added to each), the
// artifact store for manifests.
func newMirrorWork(e *env, name string, log *slog.Logger, progress mirror.Progress, data map[string][]string, groups []string) (*mirrorWork, error) {
	mc, err := e.cfg.Mirrors.repository(name)
	if err != nil {
		return nil, err
	}
	rc, err := e.cfg.Releases.release(name)
	if err != nil {
		return nil, err
	}
	formats := mc.Formats
	if len(formats) == 0 {
		formats = rc.Formats
	}
	kr, err := mirrorKeyring(e, mc)
	if err != nil {
		return nil, fmt.Errorf("mirror %s: keyring: %w", name, err)
	}
	arts, err := builder.NewArtifacts(filepath.Join(e.dataDir, "artifacts"))
	if err != nil {
		return nil, err
	}
	retries := e.cfg.Mirrors.Retries
	if retries == 0 {
		retries = 1
	}
	s, err := mirror.NewSyncer(mirror.Options{StateDir: mirrorStateDir(e.dataDir), Keyring: kr, Retries: retries,
		Recorder: storeRecorder{e}, Artifacts: artifactStore{arts}, Progress: progress, Log: log,
		TrustVerified: e.cfg.Mirrors.Check == mirror.CheckQuick, ResultData: data, ResultGroups: groups})
	if err != nil {
		return nil, err
	}
	return &mirrorWork{e: e, mc: mc, formats: formats, syncer: s}, nil
}

func mirrorStateDir(dataDir string) string {
	d, err := filepath.Abs(filepath.Join(dataDir, "mirror"))
	if err != nil {
		return filepath.Join(dataDir, "mirror")
	}
	return d
}

// mirrorKeyring is the configured keyring, or the release key's public key.
func mirrorKeyring(e *env, mc mirrorRepoConfig) (openpgp.EntityList, error) {
	var pub []byte
	var err error
	if mc.Keyring != "" {
		pub, err = os.ReadFile(mc.Keyring)
	} else {
		var key *repo.Key
		key, err = signingKey(e, "release-signing-key", e.cfg.Signing.ReleaseKey, e.cfg.Signing.ReleasePassphraseFile)
		if err == nil {
			var b strings.Builder
			err = key.WritePublic(&b)
			pub = []byte(b.String())
		}
	}
	if err != nil {
		return nil, err
	}
	return repo.ReadKeyring(strings.NewReader(string(pub)))
}

// targets are the mirror targets of format f.
func (w *mirrorWork) targets(f string, log *slog.Logger) ([]mirror.Target, error) {
	var out []mirror.Target
	for _, t := range w.mc.Targets {
		mt, err := mirrorTarget(w.e.dataDir, w.mc.Name, f, w.e.cfg.Mirrors.Check, t, log)
		if err != nil {
			return nil, err
		}
		out = append(out, mt)
	}
	return out, nil
}

// mirrorTarget makes target t of the repository's format f: a local
// target in PATH/<format>, an rsync one at DEST/<format>/.
func mirrorTarget(dataDir, name, f, check string, t mirrorTargetConfig, log *slog.Logger) (mirror.Target, error) {
	switch t.Type {
	case "local":
		return mirror.NewLocal(t.Name, filepath.Join(t.Path, f), t.Keep, log)
	case "rsync":
		return mirror.NewRsync(t.Name, mirror.RsyncConfig{
			Dest: strings.TrimRight(t.Dest, "/") + "/" + f, PasswordFile: t.PasswordFile, PasswordEnv: t.PasswordEnv,
			RSH: t.RSH, Timeout: t.Timeout, IOTimeout: t.IOTimeout, TraceName: t.TraceName, Check: check,
			ReadbackDir: filepath.Join(mirrorStateDir(dataDir), name, f, "readback", t.Name),
		}, log)
	}
	return nil, fmt.Errorf("mirror %s: target %s: type %q", name, t.Name, t.Type)
}

// release is the release repository's format f on disk.
func (w *mirrorWork) release(f string) mirror.Release {
	return mirror.Release{Name: w.mc.Name, Format: f, Root: releaseDir(w.e.dataDir, w.mc.Name, f)}
}

// sync syncs each format's snapshot (to: its ID; "": the current one).
// A format without the snapshot is skipped when others have it.
func (w *mirrorWork) sync(ctx context.Context, out io.Writer, to, kind string, log *slog.Logger) error {
	var errs []error
	synced := 0
	for _, f := range w.formats {
		rel := w.release(f)
		var snap mirror.Snapshot
		var err error
		if to == "" {
			snap, err = rel.Current()
		} else {
			snap, err = rel.Snapshot(to)
		}
		if errors.Is(err, mirror.ErrNoSnapshot) {
			fmt.Fprintf(out, "%s/%s: %v\n", w.mc.Name, f, err)
			continue
		}
		if err != nil {
			return err
		}
		targets, err := w.targets(f, log)
		if err != nil {
			return err
		}
		m, err := w.syncer.Sync(ctx, rel, snap, kind, targets)
		if m != nil {
			synced++
			for _, t := range m.Targets {
				fmt.Fprintf(out, "%s/%s: %s (%s): %s, serves %s (was %s), %d files, %d bytes sent, %.1fs\n", w.mc.Name, f, t.Name, t.Kind,
					t.Outcome, orDash(t.Serves), orDash(t.Before), t.Transfer.Files, t.Transfer.BytesSent, t.Seconds)
				for _, p := range t.Problems {
					fmt.Fprintf(out, "  %s\n", p)
				}
			}
			fmt.Fprintf(out, "%s/%s: snapshot %s: %d packages added, %d removed; manifest %s\n", w.mc.Name, f, snap.ID, len(m.Added), len(m.Removed), m.Path)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if synced == 0 && len(errs) == 0 {
		return fmt.Errorf("mirror %s: no format has snapshot %q", w.mc.Name, orDash(to))
	}
	return errors.Join(errs...)
}

// syncReleaseMirrors syncs the current snapshots of release repository
// name to its mirror targets, for the post pipeline after a release
// publish: data and groups go into each sluice.mirror.sync result (the
// buildset, pipeline, ...). It does nothing (ok false) when the mirrors
// section has no targets for name; err is a *mirror.SyncError (joined per
// format) when a target failed.
func syncReleaseMirrors(ctx context.Context, e *env, name string, data map[string][]string, groups []string, out io.Writer, log *slog.Logger) (ok bool, err error) {
	if _, err := e.cfg.Mirrors.repository(name); err != nil {
		return false, nil
	}
	w, err := newMirrorWork(e, name, log, nil, data, groups)
	if err != nil {
		return true, err
	}
	return true, w.sync(ctx, out, "", "sync", log)
}

// storeRecorder records results in the store (and its outbox).
type storeRecorder struct{ e *env }

func (r storeRecorder) Record(ctx context.Context, res *results.Result) error {
	return r.e.db.Tx(ctx, func(tx *sql.Tx) error { return r.e.recorder.Record(ctx, tx, res) })
}

// artifactStore keeps manifests in the artifact store.
type artifactStore struct{ a *builder.Artifacts }

func (s artifactStore) Put(ctx context.Context, r io.Reader) (string, error) {
	a, err := s.a.Put(ctx, r)
	return a.SHA256, err
}

// progressOutput shows a sync's progress on w: a bar redrawn in place
// when w is a terminal, otherwise a log line when a step starts and ends
// (and every few seconds in between).
func progressOutput(w *os.File, log *slog.Logger) mirror.Progress {
	fi, err := w.Stat()
	tty := err == nil && fi.Mode()&os.ModeCharDevice != 0
	var mu sync.Mutex
	var last string
	var lastLog time.Time
	return func(target, step string, done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		key := target + " " + step
		if tty {
			if key != last && last != "" {
				fmt.Fprintln(w)
			}
			last = key
			const width = 30
			fill := width
			if total > 0 {
				fill = int(min(done, total) * width / total)
			}
			fmt.Fprintf(w, "\r%-28.28s [%s%s] %d/%d", key, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), done, total)
			return
		}
		if key != last || done >= total || time.Since(lastLog) > 5*time.Second {
			last, lastLog = key, time.Now()
			log.Info("mirror progress", "target", target, "step", step, "done", done, "total", total)
		}
	}
}

func newMirrorSyncCmd(log *slog.Logger) *cobra.Command {
	var sf storeFlags
	var snapshot string
	cmd := &cobra.Command{
		Use:   "sync NAME [--snapshot ID]",
		Short: "Sync the current snapshot of a release repository to each of its mirror targets",
		Long: "Put the current snapshot (or --snapshot ID) of each format of the release repository NAME on each\n" +
			"of its mirror targets (config: mirrors). Each target is checked after its sync by the rules of\n" +
			"`repo verify` and switched to the snapshot only then; one that still fails after a retry is put\n" +
			"back on the snapshot it served, and reported. Records sluice.mirror.sync per target and keeps a\n" +
			"manifest. Exits 1 if a target failed.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := openMirror(cmd, &sf, args[0], log, progressOutput(os.Stderr, log))
			if err != nil {
				return err
			}
			defer w.e.close()
			err = w.sync(cmd.Context(), cmd.OutOrStdout(), snapshot, "sync", log)
			w.e.push(cmd.Context(), 30*time.Second, log)
			return err
		},
	}
	cmd.Flags().StringVar(&snapshot, "snapshot", "", "snapshot ID to sync (default: the current one)")
	sf.register(cmd.Flags())
	return cmd
}

func newMirrorRollbackCmd(log *slog.Logger) *cobra.Command {
	var sf storeFlags
	var to string
	cmd := &cobra.Command{
		Use:   "rollback NAME --to SNAP",
		Short: "Put every mirror target of a release repository back on snapshot SNAP, checked",
		Long: "Sync snapshot SNAP of the release repository NAME to each of its mirror targets, as `mirror sync`\n" +
			"does (checked, switched only once it verifies), recorded as a rollback. The release repository's\n" +
			"own current snapshot is left as it is (see `sluice release rollback`).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return errors.New("mirror rollback: --to SNAP is required")
			}
			if err := mirror.CheckName("snapshot", to); err != nil {
				return fmt.Errorf("mirror rollback: %w", err)
			}
			w, err := openMirror(cmd, &sf, args[0], log, progressOutput(os.Stderr, log))
			if err != nil {
				return err
			}
			defer w.e.close()
			err = w.sync(cmd.Context(), cmd.OutOrStdout(), to, "rollback", log)
			w.e.push(cmd.Context(), 30*time.Second, log)
			return err
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "snapshot ID to put back (required)")
	sf.register(cmd.Flags())
	return cmd
}

func newMirrorStatusCmd(log *slog.Logger) *cobra.Command {
	var sf storeFlags
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show which snapshot each mirror target of a release repository serves, and when it was verified",
		Long: "For each format and target of the release repository NAME: the snapshot it serves and when it was\n" +
			"last verified serving it (by a sync, a restore or `mirror verify`), its last sync's outcome, and the\n" +
			"release repository's current snapshot. Read from the sync state; `mirror verify` reads the targets.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := sf.open(cmd, log)
			if err != nil {
				return err
			}
			defer e.close()
			mc, err := e.cfg.Mirrors.repository(args[0])
			if err != nil {
				return err
			}
			rc, err := e.cfg.Releases.release(args[0])
			if err != nil {
				return err
			}
			formats := mc.Formats
			if len(formats) == 0 {
				formats = rc.Formats
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FORMAT\tTARGET\tKIND\tSERVES\tVERIFIED\tLAST SYNC\tOUTCOME\tCURRENT")
			for _, f := range formats {
				st, err := mirror.LoadState(mirrorStateDir(e.dataDir), mc.Name, f)
				if err != nil {
					return err
				}
				cur := "-"
				if s, err := (mirror.Release{Name: mc.Name, Format: f, Root: releaseDir(e.dataDir, mc.Name, f)}).Current(); err == nil {
					cur = s.ID
				}
				for _, t := range mc.Targets {
					ts := st.Targets[t.Name]
					if ts == nil {
						ts = &mirror.TargetState{}
					}
					outcome := orDash(ts.Outcome)
					if ts.Error != "" {
						outcome += ": " + ts.Error
						if len(outcome) > 120 {
							outcome = outcome[:120] + "..."
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f, t.Name, t.Type, orDash(ts.Served), when(ts.VerifiedAt), when(ts.SyncedAt), outcome, cur)
				}
			}
			return tw.Flush()
		},
	}
	sf.register(cmd.Flags())
	return cmd
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func newMirrorVerifyCmd(log *slog.Logger) *cobra.Command {
	var sf storeFlags
	cmd := &cobra.Command{
		Use:   "verify [NAME/]TARGET",
		Short: "Read a mirror target back now and check it by the rules of `repo verify`",
		Long: "Read back each format of mirror target TARGET (of every release repository that has one so named,\n" +
			"or of NAME's) and check it: signatures, sizes and checksums, RPM signatures. Prints the snapshot it\n" +
			"serves and every problem; exits 1 if there is one. Notes the verification in the sync state.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := sf.open(cmd, log)
			if err != nil {
				return err
			}
			defer e.close()
			repoName, targetName, qualified := strings.Cut(args[0], "/")
			if !qualified {
				repoName, targetName = "", args[0]
			}
			out := cmd.OutOrStdout()
			found, bad := 0, 0
			for _, mc := range e.cfg.Mirrors.Repositories {
				if repoName != "" && mc.Name != repoName {
					continue
				}
				for _, tc := range mc.Targets {
					if tc.Name != targetName {
						continue
					}
					w, err := newMirrorWork(e, mc.Name, log, nil, nil, nil)
					if err != nil {
						return err
					}
					for _, f := range w.formats {
						found++
						t, err := mirrorTarget(e.dataDir, mc.Name, f, e.cfg.Mirrors.Check, tc, log)
						if err != nil {
							return err
						}
						served, probs, err := w.syncer.Verify(cmd.Context(), mc.Name, f, t)
						if err != nil {
							fmt.Fprintf(out, "%s/%s: %s: %v\n", mc.Name, f, tc.Name, err)
							bad++
							continue
						}
						for _, p := range probs {
							fmt.Fprintf(out, "%s/%s: %s: %s\n", mc.Name, f, tc.Name, p)
						}
						bad += len(probs)
						fmt.Fprintf(out, "%s/%s: %s serves %s: %d problems\n", mc.Name, f, tc.Name, orDash(served), len(probs))
					}
				}
			}
			if found == 0 {
				return fmt.Errorf("mirror verify: no target %q in the mirrors section", args[0])
			}
			if bad > 0 {
				return exitError(1)
			}
			return nil
		},
	}
	sf.register(cmd.Flags())
	return cmd
}
