package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"github.com/sluice-ci/sluice/internal/proc"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// testKey is one Ed25519 key per test binary; rsaTestKey one RSA 4096 key,
// which takes seconds to make.
var (
	testKey    = sync.OnceValues(func() (*Key, error) { return newTestKey(Ed25519) })
	rsaTestKey = sync.OnceValues(func() (*Key, error) { return newTestKey(RSA4096) })
)

func testKeyFor(algo Algorithm) (*Key, error) {
	if algo == RSA4096 {
		return rsaTestKey()
	}
	return testKey()
}

func newTestKey(algo Algorithm) (*Key, error) {
	priv, _, err := GenerateKey("sluice test", "test@sluice.invalid", algo, nil)
	if err != nil {
		return nil, err
	}
	return ReadKey(bytes.NewReader(priv), nil)
}

func mustKey(t testing.TB) *Key {
	t.Helper()
	k, err := testKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func keyring(t testing.TB, k *Key) openpgp.EntityList {
	t.Helper()
	var b bytes.Buffer
	if err := k.WritePublic(&b); err != nil {
		t.Fatal(err)
	}
	kr, err := ReadKeyring(&b)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func writePublic(t testing.TB, k *Key, path string) {
	t.Helper()
	var b bytes.Buffer
	if err := k.WritePublic(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// treeHash hashes every file name, mode and content below root, so that a
// test can say a directory is byte-for-byte what it was.
func treeHash(t testing.TB, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line := rel + " " + fi.Mode().String()
		if d.Type().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(data)
			line += " " + hex.EncodeToString(s[:])
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	s := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(s[:])
}

// run runs a tool with a time limit and returns its combined output and
// error.
func run(ctx context.Context, dir, tool string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := proc.Command(ctx, tool, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func flipByte(t testing.TB, path string, off int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off += len(data)
	}
	data[off] ^= 0x01
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkGolden compares got with the golden file, or rewrites the file
// under -update.
func checkGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file %s:\n%s", filepath.Base(golden), golden, got)
	}
}
