package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/repo"
)

func newRepoCmd(log *slog.Logger) *cobra.Command {
	cmd := &cobra.Command{Use: "repo", Short: "Publish and verify signed APT and RPM repositories"}
	cmd.AddCommand(newRepoPublishCmd(log), newRepoVerifyCmd())
	return cmd
}

func newRepoPublishCmd(log *slog.Logger) *cobra.Command {
	var (
		format, out, keyFile, passFile string
		cfg                            repo.APTConfig
		validFor                       time.Duration
		replace                        bool
	)
	cmd := &cobra.Command{
		Use:   "publish --format deb|rpm --out DIR --key KEYFILE PATH...",
		Short: "Add packages (files or directories of them) to a signed repository",
		Long: "Add .deb or .rpm packages to the repository in DIR (created when missing) and write its signed\n" +
			"metadata. A package already published with the same name, version and architecture but other\n" +
			"bytes is refused unless --replace is given. RPMs are signed with the key as they are stored.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			debOnly := []string{"codename", "suite", "component", "origin", "label", "arch", "valid-for"}
			switch format {
			case "deb":
				if cfg.Codename == "" {
					return fmt.Errorf("repo publish: --codename is required with --format deb")
				}
			case "rpm":
				for _, n := range debOnly {
					if cmd.Flags().Changed(n) {
						return fmt.Errorf("repo publish: --%s is for --format deb", n)
					}
				}
			default:
				return fmt.Errorf("repo publish: --format must be deb or rpm, not %q", format)
			}
			key, err := loadKey(keyFile, passFile)
			if err != nil {
				return err
			}
			opts := repo.PublishOptions{Replace: replace}
			var sum repo.Summary
			switch format {
			case "deb":
				cfg.ValidFor = validFor
				a, err := repo.NewAPT(out, key, cfg, log)
				if err != nil {
					return err
				}
				sum, err = a.Publish(cmd.Context(), args, opts)
				if err != nil {
					return err
				}
			case "rpm":
				sum, err = repo.NewRPM(out, key, log).Publish(cmd.Context(), args, opts)
				if err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d packages (generation %d): %d added, %d replaced, %d unchanged\n",
				out, sum.Packages, sum.Generation, sum.Added, sum.Replaced, sum.Unchanged)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "", "repository format: deb or rpm (required)")
	f.StringVar(&out, "out", "", "repository directory (required)")
	f.StringVar(&keyFile, "key", "", "armored OpenPGP private key file (required)")
	f.StringVar(&passFile, "passphrase-file", "", "file holding the key's passphrase (or set $"+passphraseEnv+")")
	f.BoolVar(&replace, "replace", false, "replace a published package of the same name, version and architecture")
	f.StringVar(&cfg.Codename, "codename", "", "deb: distribution codename, dists/CODENAME (required for deb)")
	f.StringVar(&cfg.Suite, "suite", "", "deb: suite (default: the codename)")
	f.StringVar(&cfg.Component, "component", "main", "deb: component")
	f.StringVar(&cfg.Origin, "origin", "sluice", "deb: Origin of the Release file")
	f.StringVar(&cfg.Label, "label", "", "deb: Label of the Release file (default: the origin)")
	f.StringSliceVar(&cfg.Architectures, "arch", nil, "deb: architectures to list besides those of the packages")
	f.DurationVar(&validFor, "valid-for", 0, "deb: write Valid-Until this long after Date (apt enforces it)")
	for _, n := range []string{"format", "out", "key"} {
		cmd.MarkFlagRequired(n)
	}
	return cmd
}

func newRepoVerifyCmd() *cobra.Command {
	var keyring string
	cmd := &cobra.Command{
		Use:   "verify --keyring PUBKEY DIR",
		Short: "Check a repository's signatures, checksums and sizes; print every problem",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(keyring)
			if err != nil {
				return err
			}
			defer f.Close()
			kr, err := repo.ReadKeyring(f)
			if err != nil {
				return fmt.Errorf("%s: %w", keyring, err)
			}
			probs, err := repo.Verify(cmd.Context(), args[0], kr)
			if err != nil {
				return err
			}
			for _, p := range probs {
				fmt.Fprintln(cmd.OutOrStdout(), p)
			}
			if len(probs) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d problems\n", args[0], len(probs))
				return exitError(1)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: OK\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&keyring, "keyring", "", "public key(s) the repository must be signed with (required)")
	cmd.MarkFlagRequired("keyring")
	return cmd
}
