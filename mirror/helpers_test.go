package mirror

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/internal/proc"
	"github.com/sluice-ci/sluice/mirror/mirrortest"
	"github.com/sluice-ci/sluice/repo"
	"github.com/sluice-ci/sluice/results"
)

var discard = slog.New(slog.DiscardHandler)

// testKey is one Ed25519 key per test binary.
var testKey = sync.OnceValues(func() (*repo.Key, error) {
	priv, _, err := repo.GenerateKey("sluice mirror test", "mirror@sluice.invalid", repo.Ed25519, nil)
	if err != nil {
		return nil, err
	}
	return repo.ReadKey(bytes.NewReader(priv), nil)
})

func mustKey(t testing.TB) *repo.Key {
	t.Helper()
	k, err := testKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func keyringOf(t testing.TB, k *repo.Key) openpgp.EntityList {
	t.Helper()
	var b bytes.Buffer
	if err := k.WritePublic(&b); err != nil {
		t.Fatal(err)
	}
	kr, err := repo.ReadKeyring(&b)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// release is a release repository made the way the contract describes
// it: each publish of real packages with the repo publishers into a work
// tree, then frozen as root/snapshots/ID (package files hard-linked,
// metadata copied), root/current switched by rename.
type release struct {
	Release
	work    string
	publish func(ctx context.Context, paths []string) error
	n       int
	key     *repo.Key
}

func newRelease(t testing.TB, format string, key *repo.Key) *release {
	t.Helper()
	root := t.TempDir()
	r := &release{Release: Release{Name: "hello", Format: format, Root: root}, work: filepath.Join(root, "work"), key: key}
	switch format {
	case "deb":
		a, err := repo.NewAPT(r.work, key, repo.APTConfig{Codename: "stable", Origin: "sluice-mirror-test", Label: "sluice-mirror-test"}, discard)
		if err != nil {
			t.Fatal(err)
		}
		r.publish = func(ctx context.Context, p []string) error {
			_, err := a.Publish(ctx, p, repo.PublishOptions{})
			return err
		}
	case "rpm":
		rr := repo.NewRPM(r.work, key, discard)
		r.publish = func(ctx context.Context, p []string) error {
			_, err := rr.Publish(ctx, p, repo.PublishOptions{})
			return err
		}
	}
	return r
}

// pkgs writes n distinct packages named prefix-i of format into a new
// directory.
func pkgs(t testing.TB, format, prefix string, n, size int) []string {
	t.Helper()
	dir := t.TempDir()
	var out []string
	for i := range n {
		name := fmt.Sprintf("%s-%d", prefix, i)
		var p string
		var err error
		if format == "deb" {
			p, err = pkgtest.Deb{Name: name, Version: "1.0", Arch: "amd64", PayloadSize: size}.WriteFile(dir)
		} else {
			p, err = pkgtest.RPM{Name: name, Version: "1.0", Release: "1", Arch: "x86_64", PayloadSize: size}.WriteFile(dir)
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// add publishes paths and freezes the result as the next snapshot.
func (r *release) add(t testing.TB, paths ...string) Snapshot {
	t.Helper()
	if err := r.publish(context.Background(), paths); err != nil {
		t.Fatal(err)
	}
	r.n++
	id := fmt.Sprintf("%04d", r.n)
	dst := filepath.Join(r.Root, "snapshots", id)
	freeze(t, r.work, dst)
	tmp := filepath.Join(r.Root, ".current.new")
	os.Remove(tmp)
	if err := os.Symlink("snapshots/"+id, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(r.Root, "current")); err != nil {
		t.Fatal(err)
	}
	s, err := r.Snapshot(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// freeze copies the published tree src to dst: files under pool/ and
// Packages/ (never rewritten) as hard links, the rest as copies.
func freeze(t testing.TB, src, dst string) {
	t.Helper()
	files, err := listTree(src)
	if err != nil {
		t.Fatal(err)
	}
	for rel := range files {
		from, to := filepath.Join(src, rel), filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(rel, "pool/") || strings.HasPrefix(rel, "Packages/") {
			err = os.Link(from, to)
		} else {
			err = copyFile(from, to)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// rsyncd is a real rsync daemon for the test (mirrortest).
type rsyncd struct {
	dir      string // the module's directory: what the mirror serves
	url      string // rsync://sluice@127.0.0.1:PORT/m/
	password string // a password file for the client
}

func startRsyncd(t testing.TB) *rsyncd {
	t.Helper()
	d := mirrortest.New(t)
	return &rsyncd{dir: d.Dir, url: d.URL, password: d.PasswordFile}
}

// recorded collects the results a Syncer records.
type recorded struct {
	mu  sync.Mutex
	res []*results.Result
}

func (r *recorded) Record(_ context.Context, res *results.Result) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res = append(r.res, res)
	return nil
}

// memArtifacts keeps artifacts in memory.
type memArtifacts struct {
	mu   sync.Mutex
	data map[string][]byte
}

func (m *memArtifacts) Put(_ context.Context, r io.Reader) (string, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		m.data = map[string][]byte{}
	}
	ref := fmt.Sprintf("art-%d", len(m.data))
	m.data[ref] = b
	return ref, nil
}

func newSyncer(t testing.TB, kr openpgp.EntityList, rec Recorder, arts Artifacts) (*Syncer, string) {
	t.Helper()
	state := t.TempDir()
	s, err := NewSyncer(Options{StateDir: state, Keyring: kr, Recorder: rec, Artifacts: arts, Log: discard})
	if err != nil {
		t.Fatal(err)
	}
	return s, state
}

// run runs a tool with a time limit and returns its combined output.
func run(ctx context.Context, dir, tool string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := proc.Command(ctx, tool, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
