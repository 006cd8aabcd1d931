package main

// sluice env: the base systems of test environments (prepare, list,
// prune) and the environments a failed test kept (list, prune, shell).

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/systest"
)

func newEnvCmd(log *slog.Logger) *cobra.Command {
	var sf storeFlags
	cmd := &cobra.Command{
		Use:   "env",
		Short: "Prepare, list and prune the base systems of test environments; enter a kept environment",
	}
	sf.register(cmd.PersistentFlags())
	var force bool
	prepare := &cobra.Command{
		Use:   "prepare NAME...",
		Short: "Prepare base systems (from config, or built in: bookworm, bookworm-rpm) with mmdebstrap",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, dataDir, _, err := sf.load(cmd)
			if err != nil {
				return err
			}
			bases := systest.NewBases(cfg.Systest.basesDir(dataDir), log)
			for _, name := range args {
				spec, ok := cfg.Systest.base(name)
				if !ok {
					return fmt.Errorf("env prepare: base %q is not defined (config systest.bases; built in: bookworm, bookworm-rpm)", name)
				}
				b, err := bases.Prepare(cmd.Context(), spec, force)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\t%.1fs\n", b.Spec.Name, b.Key, humanBytes(b.Size), b.Seconds)
			}
			return nil
		},
	}
	prepare.Flags().BoolVar(&force, "force", false, "prepare again even when a copy of the same definition is cached")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the prepared bases, the defined bases not prepared, and the kept environments",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, dataDir, _, err := sf.load(cmd)
			if err != nil {
				return err
			}
			prepared, err := systest.NewBases(cfg.Systest.basesDir(dataDir), log).List()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "BASE\tKEY\tCREATED\tSIZE\tSTATE")
			for _, b := range prepared {
				state := "prepared"
				if spec, ok := cfg.Systest.base(b.Spec.Name); !ok || spec.Key() != b.Key {
					state = "stale (definition changed or gone)"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", b.Spec.Name, b.Key, b.Created.Format(time.RFC3339), humanBytes(b.Size), state)
			}
			for _, spec := range cfg.Systest.allBases() {
				if !slices.ContainsFunc(prepared, func(b systest.Base) bool { return b.Key == spec.Key() }) {
					fmt.Fprintf(w, "%s\t%s\t-\t-\tnot prepared\n", spec.Name, spec.Key())
				}
			}
			kept, err := envChroot(dataDir, log).Kept()
			if err != nil {
				return err
			}
			ids := make([]string, 0, len(kept))
			for id := range kept {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			for _, id := range ids {
				fmt.Fprintf(w, "%s\t-\t%s\t-\tkept environment\n", id, kept[id].UTC().Format(time.RFC3339))
			}
			return w.Flush()
		},
	}
	var olderThan string
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Remove the bases prepared and the environments kept longer ago than --older-than, unless in use",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			age, err := parseAge(olderThan)
			if err != nil {
				return fmt.Errorf("env prune: --older-than: %w", err)
			}
			cfg, dataDir, _, err := sf.load(cmd)
			if err != nil {
				return err
			}
			now := time.Now()
			removed, err := systest.NewBases(cfg.Systest.basesDir(dataDir), log).Prune(cmd.Context(), age, now)
			for _, b := range removed {
				fmt.Fprintf(cmd.OutOrStdout(), "removed base %s %s (%s)\n", b.Spec.Name, b.Key, b.Created.Format(time.RFC3339))
			}
			if err != nil {
				return err
			}
			c := envChroot(dataDir, log)
			kept, err := c.Kept()
			if err != nil {
				return err
			}
			for id, at := range kept {
				if !at.Before(now.Add(-age)) {
					continue
				}
				if err := c.Remove(cmd.Context(), id); err != nil {
					log.Warn("environment kept", "env", id, "err", err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed environment %s\n", id)
			}
			return nil
		},
	}
	prune.Flags().StringVar(&olderThan, "older-than", "20d", "age: a number of days (20d) or a Go duration (36h)")
	shell := &cobra.Command{
		Use:   "shell ID",
		Short: "Enter a kept environment (new namespaces on the files it left) with a shell, or run a command there",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, dataDir, _, err := sf.load(cmd)
			if err != nil {
				return err
			}
			e, err := envChroot(dataDir, log).Resume(cmd.Context(), args[0], systest.EnvOptions{})
			if err != nil {
				return err
			}
			defer e.Close()
			argv := args[1:]
			if len(argv) == 0 {
				argv = []string{"/bin/sh", "-l"}
			}
			env := slices.Clone(systest.DefaultEnv)
			if t := os.Getenv("TERM"); t != "" {
				env = append(slices.DeleteFunc(env, func(s string) bool { return strings.HasPrefix(s, "TERM=") }), "TERM="+t)
			}
			err = e.Run(cmd.Context(), systest.Command{Args: argv, Env: env,
				Stdin: cmd.InOrStdin(), Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()})
			if exit, ok := errors.AsType[*systest.ExitError](err); ok {
				e.Close()
				return exitError(exit.Code)
			}
			return err
		},
	}
	cmd.AddCommand(prepare, list, prune, shell)
	return cmd
}

// envChroot is the chroot back-end of a data directory: kept
// environments are under DATA-DIR/work/envs.
func envChroot(dataDir string, log *slog.Logger) *systest.Chroot {
	return systest.NewChroot(filepath.Join(dataDir, "work", "envs"), log)
}

// parseAge reads an age: Nd (days) or a Go duration; it must be positive.
func parseAge(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 || days > 100000 {
			return 0, fmt.Errorf("%q: not a number of days", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: not Nd or a duration", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: not positive", s)
	}
	return d, nil
}

// humanBytes writes a size in MiB.
func humanBytes(n int64) string {
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
}
