package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/sluice-ci/sluice/builder"
	"github.com/sluice-ci/sluice/results"
	"github.com/sluice-ci/sluice/systest"
	"github.com/sluice-ci/sluice/systest/scenario"
)

// newSystestCmd is `sluice systest install|run`: the install test and
// system test scenarios on a repository given by hand, outside any
// buildset, as a maintainer runs them on their machine and as the bundles
// of `sluice reproduce` do. Nothing is recorded.
func newSystestCmd(log *slog.Logger) *cobra.Command {
	var sf storeFlags
	var repoDir, keyFile string
	cmd := &cobra.Command{
		Use:   "systest",
		Short: "Run the install test or system test scenarios on a test repository given by hand",
	}
	sf.register(cmd.PersistentFlags())
	cmd.PersistentFlags().StringVar(&repoDir, "repo", "", "the test repositories: a directory with deb/ and rpm/ as the publish stage makes them (required)")
	cmd.PersistentFlags().StringVar(&keyFile, "key", "", "the OpenPGP public key the repositories are signed with, armored (required)")
	setup := func(cmd *cobra.Command) (*config, string, map[string]systest.Repo, error) {
		cfg, dataDir, _, err := sf.load(cmd)
		if err != nil {
			return nil, "", nil, err
		}
		if repoDir == "" || keyFile == "" {
			return nil, "", nil, errors.New("--repo and --key are required")
		}
		key, err := readLimitedFile(keyFile, 1<<20)
		if err != nil {
			return nil, "", nil, fmt.Errorf("key %s: %w", keyFile, err)
		}
		repos, err := testRepos(repoDir, key)
		if err != nil {
			return nil, "", nil, err
		}
		return cfg, dataDir, repos, nil
	}
	var check string
	install := &cobra.Command{
		Use:   "install --repo DIR --key FILE [--check SCRIPT]",
		Short: "Install, check, remove and purge each package of the repositories in a fresh environment",
		Long: "Install, check, remove and purge each binary package of the test repositories in DIR (deb/, rpm/) in a\n" +
			"fresh environment, on the bases the config's systest.install names, as the install stage does.\n" +
			"Exit status 0 only if every package passed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, dataDir, repos, err := setup(cmd)
			if err != nil {
				return fmt.Errorf("systest install: %w", err)
			}
			if check != "" {
				if cfg.Systest.Install.Check, err = filepath.Abs(check); err != nil {
					return fmt.Errorf("systest install: %w", err)
				}
			}
			bases := systest.NewBases(cfg.Systest.basesDir(dataDir), log)
			failed := 0
			for _, format := range []string{"deb", "rpm"} {
				rp, ok := repos[format]
				if !ok {
					continue
				}
				pkgs, err := repoPackages(rp.Dir, format)
				if err != nil {
					return fmt.Errorf("systest install: %w", err)
				}
				if len(pkgs) == 0 {
					continue
				}
				base, err := bases.Prepare(cmd.Context(), cfg.Systest.installBase(format), false)
				if err != nil {
					return fmt.Errorf("systest install: %w", err)
				}
				reps, err := installAll(cmd.Context(), envChroot(dataDir, log), base, rp, pkgs, cfg.Systest.Install)
				if err != nil {
					return fmt.Errorf("systest install: %w", err)
				}
				for _, rep := range reps {
					fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s %s %s\t%.1fs", rep.Outcome, rep.Package.Name, rep.Package.Version, rep.Package.Arch, rep.Duration.Seconds())
					if rep.Outcome != systest.Passed {
						failed++
						fmt.Fprintf(cmd.OutOrStdout(), "\t%s: %s", rep.Step, rep.Reason)
					}
					fmt.Fprintln(cmd.OutOrStdout())
				}
			}
			if failed > 0 {
				return exitError(1)
			}
			return nil
		},
	}
	install.Flags().StringVar(&check, "check", "", "the package check, run in the environment as CHECK PACKAGE after each install (instead of systest.install.check)")
	var keep bool
	run := &cobra.Command{
		Use:   "run --repo DIR --key FILE SCENARIO.yaml...",
		Short: "Run system test scenarios on the repositories",
		Long: "Run each scenario file on the test repositories in DIR, as the systest stage does, and print its\n" +
			"outcome; a failed scenario's log follows. Exit status 0 only if every scenario passed.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, dataDir, repos, err := setup(cmd)
			if err != nil {
				return fmt.Errorf("systest run: %w", err)
			}
			opts := scenarioOptions(cfg, dataDir, repos, log)
			opts.KeepFailed = keep
			failed := 0
			for _, f := range args {
				s, err := scenario.Load(f)
				if err != nil {
					return fmt.Errorf("systest run: %w", err)
				}
				rep, err := systest.RunScenario(cmd.Context(), s, opts)
				if err != nil {
					return fmt.Errorf("systest run: %w", err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%.1fs\t%s\n", rep.Outcome, rep.Scenario, rep.Duration.Seconds(), rep.Reason)
				if rep.Outcome != systest.Passed {
					failed++
					cmd.OutOrStdout().Write(rep.Log)
					for _, id := range rep.Kept {
						fmt.Fprintf(cmd.OutOrStdout(), "kept environment %s: sluice env shell %s\n", id, id)
					}
				}
			}
			if failed > 0 {
				return exitError(1)
			}
			return nil
		},
	}
	run.Flags().BoolVar(&keep, "keep-failed", false, "keep the environments of a failed scenario (sluice env shell ID)")
	cmd.AddCommand(install, run)
	return cmd
}

// testRepos are the test repositories under dir (deb/, rpm/), signed
// with key.
func testRepos(dir string, key []byte) (map[string]systest.Repo, error) {
	repos := map[string]systest.Repo{}
	for _, format := range []string{"deb", "rpm"} {
		d := filepath.Join(dir, format)
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			abs, err := filepath.Abs(d)
			if err != nil {
				return nil, err
			}
			repos[format] = systest.Repo{Format: format, Dir: abs, Key: key, Suite: testCodename, Component: "main", Origin: "sluice"}
		}
	}
	if len(repos) == 0 {
		return nil, fmt.Errorf("repo %s: no deb/ or rpm/ repository in it", dir)
	}
	return repos, nil
}

// scenarioOptions run scenarios on repos with the config's bases.
func scenarioOptions(cfg *config, dataDir string, repos map[string]systest.Repo, log *slog.Logger) systest.ScenarioOptions {
	bases := systest.NewBases(cfg.Systest.basesDir(dataDir), log)
	return systest.ScenarioOptions{Chroot: envChroot(dataDir, log), Repos: repos, Log: log,
		Base: func(ctx context.Context, name string) (systest.Base, error) {
			spec, ok := cfg.Systest.base(name)
			if !ok {
				return systest.Base{}, fmt.Errorf("base %q is not defined (systest.bases)", name)
			}
			return bases.Prepare(ctx, spec, false)
		}}
}

// buildsetRE is a buildset UUID as sluice makes them.
var buildsetRE = regexp.MustCompile(`^[0-9a-f]{32}$|^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// newReproduceCmd is `sluice reproduce BUILDSET --stage install|systest`.
func newReproduceCmd(log *slog.Logger) *cobra.Command {
	var sf storeFlags
	var stage, out string
	cmd := &cobra.Command{
		Use:   "reproduce BUILDSET --stage install|systest --out DIR",
		Short: "Write a bundle that re-runs a buildset's install or systest stage on another machine",
		Long: "Write into DIR (new) what re-running the stage of BUILDSET takes on another machine with sluice\n" +
			"installed: the buildset's test repositories (repo/deb, repo/rpm), their public key (test-key.asc),\n" +
			"the systest section of the config (sluice.yaml: the bases by name and definition), the scenarios\n" +
			"the systest stage ran (scenarios/), the stage's parameters as recorded (params.json), and run.sh,\n" +
			"which runs `sluice systest install` or `sluice systest run` on them.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			uuid := args[0]
			if !buildsetRE.MatchString(uuid) {
				return fmt.Errorf("reproduce: %q is not a buildset UUID", uuid)
			}
			if stage != "install" && stage != "systest" {
				return fmt.Errorf("reproduce: --stage %q: want install or systest", stage)
			}
			if out == "" {
				return errors.New("reproduce: --out DIR is required")
			}
			e, err := sf.open(cmd, log)
			if err != nil {
				return err
			}
			defer e.close()
			if err := writeReproduce(cmd.Context(), e, uuid, stage, out, log); err != nil {
				return fmt.Errorf("reproduce: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: run %s\n", out, filepath.Join(out, "run.sh"))
			return nil
		},
	}
	sf.register(cmd.Flags())
	cmd.Flags().StringVar(&stage, "stage", "", "install or systest (required)")
	cmd.Flags().StringVar(&out, "out", "", "the bundle's directory, which must not exist (required)")
	return cmd
}

// writeReproduce writes the bundle of uuid's stage into out, a new
// directory; a failure leaves no directory.
func writeReproduce(ctx context.Context, e *env, uuid, stage, out string, log *slog.Logger) (err error) {
	repoDir := filepath.Join(e.dataDir, "buildsets", uuid, "repo")
	if _, err := os.Stat(repoDir); err != nil {
		return fmt.Errorf("buildset %s has no test repositories (publish first): %w", uuid, err)
	}
	rs, _, err := e.results.Results(ctx, results.Query{Groups: []string{uuid}, Limit: 500})
	if err != nil {
		return err
	}
	var params map[string][]string
	var scenarios []results.Result
	for _, r := range rs {
		switch {
		case r.Testcase.Name == "sluice."+stage && params == nil:
			params = r.Data
		case stage == "systest" && strings.HasPrefix(r.Testcase.Name, "sluice.systest.") && len(r.Data["scenario_sha256"]) == 1:
			scenarios = append(scenarios, r)
		}
	}
	if params == nil {
		// The stage never ran: what the publish stage recorded names the
		// buildset all the same.
		for _, r := range rs {
			if r.Testcase.Name == "sluice.publish" {
				params = r.Data
				break
			}
		}
	}
	if params == nil {
		return fmt.Errorf("buildset %s: no sluice.%s or sluice.publish result", uuid, stage)
	}
	if err := os.Mkdir(out, 0o755); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(out)
		}
	}()
	for _, format := range []string{"deb", "rpm"} {
		if err := copyTree(filepath.Join(repoDir, format), filepath.Join(out, "repo", format)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	k, err := signingKey(e, "test-signing-key", e.cfg.Signing.TestKey, e.cfg.Signing.TestPassphraseFile)
	if err != nil {
		return err
	}
	var pub bytes.Buffer
	if err := k.WritePublic(&pub); err != nil {
		return err
	}
	files := map[string][]byte{"test-key.asc": pub.Bytes()}
	sysCfg := e.cfg.Systest
	sysCfg.BasesDir, sysCfg.Scenarios = "", nil // the other machine's own
	if sysCfg.Install.Check != "" {
		check, err := readLimitedFile(sysCfg.Install.Check, 1<<20)
		if err != nil {
			return fmt.Errorf("install check %s: %w", sysCfg.Install.Check, err)
		}
		files["check"] = check
		sysCfg.Install.Check = "" // run.sh passes ./check
	}
	conf, err := yaml.Marshal(struct {
		Systest systestConfig `yaml:"systest"`
	}{sysCfg})
	if err != nil {
		return err
	}
	files["sluice.yaml"] = conf
	pj, err := json.MarshalIndent(map[string]any{"buildset": uuid, "stage": stage, "recorded": params}, "", "  ")
	if err != nil {
		return err
	}
	files["params.json"] = append(pj, '\n')
	var names []string
	arts, err := builder.NewArtifacts(filepath.Join(e.dataDir, "artifacts"))
	if err != nil {
		return err
	}
	defer arts.Close()
	for _, r := range scenarios {
		f, err := arts.Open(r.Data["scenario_sha256"][0])
		if err != nil {
			return fmt.Errorf("scenario of %s: %w", r.Testcase.Name, err)
		}
		data, err := io.ReadAll(io.LimitReader(f, maxScenarioFile+1))
		f.Close()
		if err != nil {
			return err
		}
		name := filepath.Join("scenarios", strings.TrimPrefix(r.Testcase.Name, "sluice.systest.")+".yaml")
		if !slices.Contains(names, name) {
			names = append(names, name)
			files[name] = data
		}
	}
	if stage == "systest" && len(names) == 0 {
		return fmt.Errorf("buildset %s: the systest stage recorded no scenario", uuid)
	}
	slices.Sort(names)
	script := "#!/bin/sh\n# Re-runs the " + stage + " stage of buildset " + uuid + " (sluice reproduce).\nset -eu\ncd \"$(dirname \"$0\")\"\n"
	if stage == "install" {
		check := ""
		if _, ok := files["check"]; ok {
			check = " --check \"$PWD/check\""
		}
		script += "exec sluice systest install --config sluice.yaml --repo repo --key test-key.asc" + check + " \"$@\"\n"
	} else {
		script += "exec sluice systest run --config sluice.yaml --repo repo --key test-key.asc \"$@\" " + strings.Join(names, " ") + "\n"
	}
	files["run.sh"] = []byte(script)
	for name, data := range files {
		mode := os.FileMode(0o644)
		if name == "run.sh" || name == "check" {
			mode = 0o755
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(out, name)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, name), data, mode); err != nil {
			return err
		}
	}
	log.Info("reproduce bundle written", "buildset", uuid, "stage", stage, "dir", out, "scenarios", len(names), "at", time.Now().UTC())
	return nil
}

// copyTree copies the regular files and directories under src to dst.
func copyTree(src, dst string) error {
	if _, err := os.Stat(src); err != nil {
		return err
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			o, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return err
			}
			if _, err := io.Copy(o, in); err != nil {
				o.Close()
				return err
			}
			return o.Close()
		}
		return nil // links and the like are not part of a repository
	})
}
