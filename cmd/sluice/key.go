package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/repo"
)

// passphraseEnv names the environment variable a key's passphrase may come
// from; secrets are never flag values.
const passphraseEnv = "SLUICE_KEY_PASSPHRASE"

// readPassphrase returns the passphrase from the file named by file, or from
// the environment, or nil.
func readPassphrase(file string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read passphrase: %w", err)
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return nil, fmt.Errorf("read passphrase: %s is empty", file)
		}
		return b, nil
	}
	if v, ok := os.LookupEnv(passphraseEnv); ok && v != "" {
		return []byte(v), nil
	}
	return nil, nil
}

func newKeyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Manage OpenPGP signing keys"}
	var name, email, out, algo, passFile string
	gen := &cobra.Command{
		Use:   "generate",
		Short: "Generate a signing key as DIR/signing-key.asc (0600) and DIR/signing-key.pub.asc",
		Long: "Generate an OpenPGP signing key. The private key is written to DIR/signing-key.asc with mode 0600,\n" +
			"encrypted when a passphrase is given with --passphrase-file or $" + passphraseEnv + ".",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pass, err := readPassphrase(passFile)
			if err != nil {
				return err
			}
			priv, pub, err := repo.GenerateKey(name, email, repo.Algorithm(algo), pass)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			privPath := filepath.Join(out, "signing-key.asc")
			if _, err := os.Stat(privPath); !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("key generate: %s exists; not overwriting a key", privPath)
			}
			if err := writeFile(privPath, priv, 0o600); err != nil {
				return err
			}
			if err := writeFile(filepath.Join(out, "signing-key.pub.asc"), pub, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s and %s\n", privPath, filepath.Join(out, "signing-key.pub.asc"))
			return nil
		},
	}
	gen.Flags().StringVar(&name, "name", "", "name of the key's user ID (required)")
	gen.Flags().StringVar(&email, "email", "", "e-mail of the key's user ID (required)")
	gen.Flags().StringVar(&out, "out", "", "directory to write the key files to (required)")
	gen.Flags().StringVar(&algo, "algo", string(repo.RSA4096), "algorithm: rsa4096 or ed25519")
	gen.Flags().StringVar(&passFile, "passphrase-file", "", "file holding the passphrase that encrypts the key (or set $"+passphraseEnv+")")
	for _, f := range []string{"name", "email", "out"} {
		gen.MarkFlagRequired(f)
	}
	cmd.AddCommand(gen)
	return cmd
}

// writeFile creates path with perm and writes data, refusing to follow a
// symlink or to leave a partial file.
func writeFile(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// loadKey reads a private key file, with its passphrase if it needs one.
func loadKey(path, passFile string) (*repo.Key, error) {
	pass, err := readPassphrase(passFile)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	defer f.Close()
	k, err := repo.ReadKey(f, pass)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}
