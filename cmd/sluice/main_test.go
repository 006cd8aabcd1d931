package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-ci/sluice/internal/pkgtest"
)

func sluice(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := newRoot(slog.New(slog.NewTextHandler(io.Discard, nil)))
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.ExecuteContext(t.Context())
	return out.String(), err
}

// TestKeyPublishVerify runs the commands as a user would: a key with a
// passphrase from a file, a publish, a verify, a tampered package.
func TestKeyPublishVerify(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass")
	if err := os.WriteFile(pass, []byte("correct horse\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys")
	if out, err := sluice(t, "key", "generate", "--name", "Test", "--email", "t@example.org", "--algo", "ed25519",
		"--passphrase-file", pass, "--out", keys); err != nil {
		t.Fatalf("key generate: %v\n%s", err, out)
	}
	fi, err := os.Stat(filepath.Join(keys, "signing-key.asc"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key: %v, mode %v", err, fi.Mode())
	}
	if _, err := sluice(t, "key", "generate", "--name", "Test", "--email", "t@example.org", "--algo", "ed25519", "--out", keys); err == nil {
		t.Fatal("key generate overwrote an existing key")
	}

	in := filepath.Join(dir, "in")
	os.MkdirAll(in, 0o755)
	if _, err := (pkgtest.Deb{Name: "hello", Version: "1.0", Arch: "amd64"}).WriteFile(in); err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(dir, "repo")
	publish := []string{"repo", "publish", "--format", "deb", "--codename", "test", "--out", repoDir,
		"--key", filepath.Join(keys, "signing-key.asc"), "--passphrase-file", pass, in}
	out, err := sluice(t, publish...)
	if err != nil || !strings.Contains(out, "1 added") {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	// The passphrase from the environment works too; a wrong one is refused.
	t.Setenv(passphraseEnv, "wrong")
	if out, err := sluice(t, "repo", "publish", "--format", "deb", "--codename", "test", "--out", repoDir,
		"--key", filepath.Join(keys, "signing-key.asc"), in); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Fatalf("publish with a wrong passphrase: %v\n%s", err, out)
	}

	verify := []string{"repo", "verify", "--keyring", filepath.Join(keys, "signing-key.pub.asc"), repoDir}
	if out, err := sluice(t, verify...); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	pool := filepath.Join(repoDir, "pool/main/h/hello/hello_1.0_amd64.deb")
	os.Remove(pool) // a hard link to the input: break it before changing the bytes
	if err := os.WriteFile(pool, []byte("not the package"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = sluice(t, verify...)
	var exit exitError
	if !errors.As(err, &exit) || !strings.Contains(out, "hello_1.0_amd64.deb") {
		t.Fatalf("verify of a tampered repository: %v\n%s", err, out)
	}
	if _, err := sluice(t, "repo", "publish", "--format", "zip", "--out", repoDir, "--key", filepath.Join(keys, "signing-key.asc"), in); err == nil {
		t.Fatal("an unknown format was accepted")
	}
	for _, args := range [][]string{
		{"--format", "rpm", "--codename", "x"},
		{"--format", "deb"},
	} {
		full := append([]string{"repo", "publish", "--out", repoDir, "--key", filepath.Join(keys, "signing-key.asc")}, args...)
		if out, err := sluice(t, append(full, in)...); err == nil {
			t.Fatalf("repo publish %v was accepted:\n%s", args, out)
		}
	}
}
