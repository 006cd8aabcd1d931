package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/builder"
	"github.com/sluice-ci/sluice/jobs"
)

func newStageCmd(log *slog.Logger) *cobra.Command {
	cmd := &cobra.Command{Use: "stage", Short: "Run one pipeline stage here and report its outcome (for Jenkins or any CI executor)"}
	cmd.AddCommand(newStageBuildCmd(log), newStageRunCmd("publish", log), newStageRunCmd("lint", log),
		newStageRunCmd("install", log), newStageRunCmd("systest", log),
		newStageRunCmd("release", log), newStageRunCmd("mirror", log))
	return cmd
}

// defaultDataDir is where sluice keeps its caches and artifacts when no
// --data-dir is given.
func defaultDataDir() string {
	if d := os.Getenv("SLUICE_DATA_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "sluice")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "sluice")
	}
	return ".sluice-data"
}

func newStageBuildCmd(log *slog.Logger) *cobra.Command {
	var (
		req             builder.Request
		sf              storeFlags
		timeout         time.Duration
		rpmNoDeps       bool
		rpmHostProvides []string
	)
	cmd := &cobra.Command{
		Use:   "build [--project P] [--url URL] [--ref REF] [--out DIR]",
		Short: "Build a project's packages from git; print the build records as JSON",
		Long: "Check out URL at REF (a cached bare clone per project under the data directory), build the\n" +
			"formats the tree has (debian/ → dpkg-buildpackage, a spec → rpmbuild), store the outputs in the\n" +
			"content-addressed artifact store, keep the build record in the database and write OUT/<format>/\n" +
			"with the packages and record.json.\n" +
			"Exit status 0 only if every build passed.\n\n" +
			"Without flags, the Zuul v2 job parameters are read from the environment, so a Jenkins job\n" +
			"that Zuul triggered can call it unchanged: ZUUL_URL and ZUUL_PROJECT (the repository is\n" +
			"ZUUL_URL/ZUUL_PROJECT), ZUUL_REF, ZUUL_COMMIT (used as the ref when set), ZUUL_CHANGE, ZUUL_PATCHSET.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := fromZuulEnv(&req, cmd); err != nil {
				return err
			}
			if req.Project == "" || req.URL == "" || req.Ref == "" || req.OutDir == "" && req.Buildset == "" {
				return fmt.Errorf("stage build: --project, --url, --ref and --out are needed (or the ZUUL_* environment)")
			}
			e, err := sf.open(cmd, log)
			if err != nil {
				return err
			}
			defer e.close()
			if req.OutDir == "" {
				// In a buildset, where `sluice stage publish` finds it.
				req.OutDir = filepath.Join(e.dataDir, "buildsets", strings.ToLower(req.Buildset), "build", strings.ReplaceAll(req.Project, "/", "+"))
			}
			records := builder.NewRecords(e.db, e.recorder, artifactURL(e.cfg.Server.URL))
			b, err := newBuilder(e.dataDir, records, timeout, rpmNoDeps, rpmHostProvides, log)
			if err != nil {
				return err
			}
			recs, err := b.Build(cmd.Context(), req)
			if err != nil {
				return err
			}
			e.push(cmd.Context(), time.Minute, log)
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			if err := enc.Encode(recs); err != nil {
				return err
			}
			for _, r := range recs {
				if r.Outcome != builder.Passed {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s %s: %s: %s\n", r.Project, r.Format, r.Outcome, r.Reason)
					return exitError(1)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Project, "project", "", "project name (default $ZUUL_PROJECT)")
	f.StringVar(&req.URL, "url", "", "git repository: file://, https://, ssh:// or an absolute path (default $ZUUL_URL/$ZUUL_PROJECT)")
	f.StringVar(&req.Ref, "ref", "", "ref (refs/changes/NN/NNNN/P, a branch, a tag) or commit (default $ZUUL_COMMIT or $ZUUL_REF)")
	f.IntVar(&req.Change, "change", 0, "change number of a test build (default $ZUUL_CHANGE)")
	f.IntVar(&req.Patchset, "patchset", 0, "patchset of a test build (default $ZUUL_PATCHSET)")
	f.StringSliceVar(&req.Formats, "format", nil, "formats to build: deb, rpm (default: every layout the tree has)")
	f.StringVar(&req.OutDir, "out", "", "output directory (default ./sluice-build when run from Zuul)")
	f.StringVar(&req.Pipeline, "pipeline", "", "pipeline this stage runs in, for its results (default $ZUUL_PIPELINE)")
	f.StringVar(&req.Buildset, "buildset", "", "buildset UUID, the results' group (default $ZUUL_UUID)")
	f.IntVar(&req.Attempt, "attempt", 1, "attempt of this stage run in its buildset")
	sf.register(f)
	f.DurationVar(&timeout, "timeout", time.Hour, "time limit of one build; the build's process group is killed after it")
	f.BoolVar(&rpmNoDeps, "rpm-nodeps", false, "rpm: pass --nodeps to rpmbuild, for hosts whose rpmdb does not describe the system (Debian)")
	f.StringSliceVar(&rpmHostProvides, "rpm-host-provides", nil, "rpm: BuildRequires the host provides outside the rpmdb (e.g. gcc,make on Debian)")
	return cmd
}

// fromZuulEnv fills what the flags did not give from Zuul v2's job
// parameters.
func fromZuulEnv(req *builder.Request, cmd *cobra.Command) error {
	env := func(k string) string { return os.Getenv(k) }
	if req.Project == "" {
		req.Project = env("ZUUL_PROJECT")
	}
	if req.URL == "" && env("ZUUL_URL") != "" && req.Project != "" {
		req.URL = strings.TrimSuffix(env("ZUUL_URL"), "/") + "/" + req.Project
	}
	if req.Ref == "" {
		req.Ref = env("ZUUL_COMMIT")
		if req.Ref == "" {
			req.Ref = env("ZUUL_REF")
		}
	}
	if req.Pipeline == "" {
		req.Pipeline = env("ZUUL_PIPELINE")
	}
	if req.Buildset == "" {
		req.Buildset = env("ZUUL_UUID")
	}
	if req.Attempt < 1 {
		return fmt.Errorf("stage build: --attempt %d: attempts count from 1", req.Attempt)
	}
	if req.Buildset != "" && !uuidRE.MatchString(req.Buildset) {
		return fmt.Errorf("stage build: buildset %q is not a UUID", req.Buildset)
	}
	for flag, p := range map[string]*int{"change": &req.Change, "patchset": &req.Patchset} {
		v := env("ZUUL_" + strings.ToUpper(flag))
		if cmd.Flags().Changed(flag) || v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("stage build: ZUUL_%s=%q is not a number", strings.ToUpper(flag), v)
		}
		*p = n
	}
	if req.OutDir == "" && env("ZUUL_PROJECT") != "" && req.Buildset == "" {
		req.OutDir = "sluice-build"
	}
	return nil
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)

// artifactURL gives the links to artifacts that `sluice serve` at base
// serves; none without a base.
func artifactURL(base string) builder.LogURL {
	if base == "" {
		return nil
	}
	base = strings.TrimSuffix(base, "/")
	return func(a builder.Artifact) string { return base + "/artifacts/" + a.SHA256 }
}

// newBuilder wires a Builder under dataDir.
func newBuilder(dataDir string, records builder.RecordStore, timeout time.Duration, rpmNoDeps bool, rpmHostProvides []string, log *slog.Logger) (*builder.Builder, error) {
	for _, d := range []string{"git", "artifacts", "work"} {
		if err := os.MkdirAll(filepath.Join(dataDir, d), 0o755); err != nil {
			return nil, err
		}
	}
	arts, err := builder.NewArtifacts(filepath.Join(dataDir, "artifacts"))
	if err != nil {
		return nil, err
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C.UTF-8"}
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		env = append(env, "SOURCE_DATE_EPOCH="+v)
	}
	backends := []builder.Backend{
		&builder.Deb{},
		&builder.RPM{NoDeps: rpmNoDeps, AssumeInstalled: rpmHostProvides},
	}
	return builder.New(builder.NewSources(filepath.Join(dataDir, "git"), log), arts, backends,
		builder.Config{WorkDir: filepath.Join(dataDir, "work"), Timeout: timeout, Env: env, Version: version, Records: records}, log), nil
}

// zuulParams are the ZUUL_* variables of the environment.
func zuulParams() map[string]string {
	p := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "ZUUL_") {
			p[k] = v
		}
	}
	return p
}

// newStageRunCmd is `sluice stage NAME`: the stage function the
// in-process pool runs, on the Zuul job parameters of the environment.
func newStageRunCmd(name string, log *slog.Logger) *cobra.Command {
	var sf storeFlags
	var attempt int
	short := map[string]string{
		"publish": "Publish a buildset's packages into its signed test repositories (after stage build in the buildset)",
		"release": "Publish a post buildset's packages into the branch's signed release repositories",
		"lint":    "Run lintian and rpmlint on a buildset's test repositories (after stage publish)",
		"mirror":  "Sync the release repositories of a post buildset's branch to their mirror targets (after stage release)",
		"systest": "Run the system test scenarios of a buildset's project on its test repositories (after stage publish)",
		"install": "Install, check, remove and purge each package of a buildset's test repositories in a fresh environment (after stage publish)",
	}[name]
	cmd := &cobra.Command{
		Use:   name,
		Short: short,
		Long: short + ".\nThe buildset comes from the Zuul job parameters in the environment (ZUUL_UUID, ZUUL_PROJECT,\n" +
			"ZUUL_REF, ZUUL_URL, ZUUL_CHANGE, ZUUL_PATCHSET, ZUUL_PIPELINE...), its packages from the data\n" +
			"directory, where `sluice stage build` put them. Its outcome is recorded as a ResultsDB result.\n" +
			"Exit status 0 only if the stage passed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := sf.open(cmd, log)
			if err != nil {
				return err
			}
			defer e.close()
			stg, err := newStages(e, time.Hour, false, nil, log)
			if err != nil {
				return err
			}
			p := zuulParams()
			res, err := stg.funcs()[name](cmd.Context(), jobs.Run{Pipeline: p["ZUUL_PIPELINE"], Buildset: p["ZUUL_UUID"],
				Stage: name, Attempt: attempt, Project: p["ZUUL_PROJECT"], Params: p})
			e.push(cmd.Context(), time.Minute, log)
			if err != nil {
				return fmt.Errorf("stage %s: %w", name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s %s\n", name, res.Outcome, res.LogURL)
			if res.Outcome != jobs.Passed {
				return exitError(1)
			}
			return nil
		},
	}
	sf.register(cmd.Flags())
	cmd.Flags().IntVar(&attempt, "attempt", 1, "attempt of this stage run in its buildset")
	return cmd
}
