package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// newTestArtifacts opens a store in a fresh directory, under a parent
// that tests may put files in to see that nothing reaches them.
func newTestArtifacts(t *testing.T) (*Artifacts, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "artifacts")
	a, err := NewArtifacts(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, dir
}

// artifactFilesUnder returns the names, relative to dir, of the
// non-directories under dir/sub.
func artifactFilesUnder(t *testing.T, dir, sub string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(filepath.Join(dir, sub), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// wantArtifactStore checks that the store in dir holds exactly the objects
// named and no temporary file.
func wantArtifactStore(t *testing.T, dir string, shas ...string) {
	t.Helper()
	var want []string
	for _, sha := range shas {
		want = append(want, "objects/"+sha[:2]+"/"+sha)
	}
	if got := artifactFilesUnder(t, dir, storeObjects); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("objects = %q, want %q", got, want)
	}
	if got := artifactFilesUnder(t, dir, storeTmp); len(got) > 0 {
		t.Errorf("temporary files left: %q", got)
	}
}

func artifactDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// payload returns n deterministic bytes.
func artifactPayload(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{'s', 'l', 'u', 'i', 'c', 'e'}).Read(b)
	return b
}

func TestArtifactsRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"small", []byte("hello, sluice\n")},
		{"larger than a copy buffer", artifactPayload(1<<20 + 17)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, dir := newTestArtifacts(t)
			want := Artifact{SHA256: artifactDigest(tc.data), Size: int64(len(tc.data))}
			got, err := a.Put(t.Context(), bytes.NewReader(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("Put = %+v, want %+v", got, want)
			}
			wantArtifactStore(t, dir, want.SHA256)

			f, err := a.Open(want.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if b, err := io.ReadAll(f); err != nil || !bytes.Equal(b, tc.data) {
				t.Errorf("Open: read %d bytes, %v; want the %d bytes put", len(b), err, len(tc.data))
			}
			if st, err := a.Stat(want.SHA256); err != nil || st != want {
				t.Errorf("Stat = %+v, %v; want %+v", st, err, want)
			}
			if err := a.Verify(want.SHA256); err != nil {
				t.Errorf("Verify: %v", err)
			}
			info, err := os.Stat(filepath.Join(dir, storeObjects, want.SHA256[:2], want.SHA256))
			if err != nil {
				t.Fatal(err)
			}
			if mode := info.Mode(); mode != 0o444 {
				t.Errorf("object mode %v, want -r--r--r--", mode)
			}
		})
	}
}

func TestArtifactsStoredOnce(t *testing.T) {
	t.Parallel()
	a, dir := newTestArtifacts(t)
	data := []byte("the same bytes")
	first, err := a.Put(t.Context(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, storeObjects, first.SHA256[:2], first.SHA256)
	before, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	second, err := a.Put(t.Context(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if second != first {
		t.Errorf("second Put = %+v, first %+v", second, first)
	}
	after, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("the second Put replaced the object")
	}
	other, err := a.Put(t.Context(), strings.NewReader("other bytes"))
	if err != nil {
		t.Fatal(err)
	}
	shas := []string{first.SHA256, other.SHA256}
	slices.Sort(shas) // the order filepath.WalkDir lists their objects in
	wantArtifactStore(t, dir, shas...)
}

func TestArtifactsConcurrentPut(t *testing.T) {
	t.Parallel()
	a, dir := newTestArtifacts(t)
	data := artifactPayload(256 << 10)
	want := Artifact{SHA256: artifactDigest(data), Size: int64(len(data))}
	var wg sync.WaitGroup
	errs := make([]error, 20)
	got := make([]Artifact, len(errs))
	for i := range errs {
		wg.Go(func() {
			got[i], errs[i] = a.Put(t.Context(), bytes.NewReader(data))
		})
	}
	wg.Wait()
	for i := range errs {
		if errs[i] != nil || got[i] != want {
			t.Errorf("Put %d = %+v, %v; want %+v", i, got[i], errs[i], want)
		}
	}
	wantArtifactStore(t, dir, want.SHA256)
	if err := a.Verify(want.SHA256); err != nil {
		t.Error(err)
	}
}

var errArtifactMidway = errors.New("connection reset midway")

// artifactFailingReader returns some bytes, then fails.
type artifactFailingReader struct{ sent bool }

func (r *artifactFailingReader) Read(p []byte) (int, error) {
	if r.sent {
		return 0, errArtifactMidway
	}
	r.sent = true
	return copy(p, "the first half of an artifact"), nil
}

// artifactCancellingReader returns some bytes, then cancels its context.
type artifactCancellingReader struct {
	cancel context.CancelFunc
	sent   bool
}

func (r *artifactCancellingReader) Read(p []byte) (int, error) {
	if r.sent {
		r.cancel()
	}
	r.sent = true
	return copy(p, "more bytes"), nil
}

func TestArtifactsPutFails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		put  func(ctx context.Context, a *Artifacts) error
		want error
	}{
		{"reader fails midway", func(ctx context.Context, a *Artifacts) error {
			_, err := a.Put(ctx, &artifactFailingReader{})
			return err
		}, errArtifactMidway},
		{"context cancelled before", func(ctx context.Context, a *Artifacts) error {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			_, err := a.Put(ctx, strings.NewReader("some bytes"))
			return err
		}, context.Canceled},
		{"context cancelled midway", func(ctx context.Context, a *Artifacts) error {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			_, err := a.Put(ctx, &artifactCancellingReader{cancel: cancel})
			return err
		}, context.Canceled},
		{"context cancelled at the end", func(ctx context.Context, a *Artifacts) error {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			// The reader ends as it cancels: the data is whole, but the
			// caller has given up, so nothing is stored.
			r := io.MultiReader(strings.NewReader("all the bytes"), artifactReaderFunc(func([]byte) (int, error) {
				cancel()
				return 0, io.EOF
			}))
			_, err := a.Put(ctx, r)
			return err
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, dir := newTestArtifacts(t)
			err := tc.put(t.Context(), a)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Put: %v, want %v", err, tc.want)
			}
			wantArtifactStore(t, dir)
		})
	}
}

type artifactReaderFunc func([]byte) (int, error)

func (f artifactReaderFunc) Read(p []byte) (int, error) { return f(p) }

func TestArtifactsBadDigest(t *testing.T) {
	t.Parallel()
	a, dir := newTestArtifacts(t)
	good := artifactDigest([]byte("x"))
	// A file outside the store, where "../x" would lead.
	outside := filepath.Join(filepath.Dir(dir), "x")
	if err := os.WriteFile(outside, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, sha := range []string{
		"",
		"../x",
		"../../x",
		"/etc/passwd",
		strings.ToUpper(good),
		good[:63],
		good + "0",
		good[:62] + "/x",
		good[:63] + "\x00",
		strings.Repeat("g", 64),
		"objects/" + good[:2] + "/" + good,
	} {
		t.Run(sha, func(t *testing.T) {
			t.Parallel()
			if f, err := a.Open(sha); !errors.Is(err, ErrBadDigest) {
				t.Errorf("Open(%q) = %v, %v; want ErrBadDigest", sha, f, err)
			}
			if st, err := a.Stat(sha); !errors.Is(err, ErrBadDigest) {
				t.Errorf("Stat(%q) = %+v, %v; want ErrBadDigest", sha, st, err)
			}
			if err := a.Verify(sha); !errors.Is(err, ErrBadDigest) {
				t.Errorf("Verify(%q) = %v, want ErrBadDigest", sha, err)
			}
		})
	}
}

// TestArtifactsConfined plants a symbolic link in the store that leads
// out of it: the store's os.Root refuses to follow it.
func TestArtifactsConfined(t *testing.T) {
	t.Parallel()
	a, dir := newTestArtifacts(t)
	data := []byte("a file outside the store")
	sha := artifactDigest(data)
	outside := filepath.Join(filepath.Dir(dir), "outside")
	if err := os.WriteFile(outside, data, 0o444); err != nil {
		t.Fatal(err)
	}
	fanout := filepath.Join(dir, storeObjects, sha[:2])
	if err := os.Mkdir(fanout, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../outside", filepath.Join(fanout, sha)); err != nil {
		t.Fatal(err)
	}
	if f, err := a.Open(sha); err == nil {
		f.Close()
		t.Error("Open followed a link out of the store")
	}
	if _, err := a.Stat(sha); err == nil {
		t.Error("Stat followed a link out of the store")
	}
	if err := a.Verify(sha); err == nil {
		t.Error("Verify followed a link out of the store")
	}
}

func TestArtifactsNotFound(t *testing.T) {
	t.Parallel()
	a, _ := newTestArtifacts(t)
	sha := artifactDigest([]byte("never put"))
	_, openErr := a.Open(sha)
	_, statErr := a.Stat(sha)
	verifyErr := a.Verify(sha)
	for op, err := range map[string]error{"Open": openErr, "Stat": statErr, "Verify": verifyErr} {
		if !errors.Is(err, ErrNotFound) || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v, want ErrNotFound and fs.ErrNotExist", op, err)
		}
		if err != nil && !strings.Contains(err.Error(), sha) {
			t.Errorf("%s: error %q does not name %s", op, err, sha)
		}
	}
}

func TestArtifactsVerifyFlippedByte(t *testing.T) {
	t.Parallel()
	a, dir := newTestArtifacts(t)
	art, err := a.Put(t.Context(), bytes.NewReader(artifactPayload(4096)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Verify(art.SHA256); err != nil {
		t.Fatalf("Verify before the flip: %v", err)
	}
	name := filepath.Join(dir, storeObjects, art.SHA256[:2], art.SHA256)
	if err := os.Chmod(name, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, 1000); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, 1000); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	err = a.Verify(art.SHA256)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify after the flip: %v, want ErrCorrupt", err)
	}
	if !strings.Contains(err.Error(), art.SHA256) {
		t.Errorf("error %q does not name the object", err)
	}
}

// TestArtifactsStaleTemp checks that NewArtifacts removes the temporary
// files of Puts that ended with their process over an hour ago, and only
// those.
func TestArtifactsStaleTemp(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "artifacts")
	a, err := NewArtifacts(dir)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	old := time.Now().Add(-2 * time.Hour)
	for name, mtime := range map[string]time.Time{
		storeTmpPrefix + "crashed": old,
		storeTmpPrefix + "running": time.Now().Add(-time.Minute),
		"not-ours":                 old,
	} {
		p := filepath.Join(dir, storeTmp, name)
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	a, err = NewArtifacts(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	got := artifactFilesUnder(t, dir, storeTmp)
	want := []string{"tmp/not-ours", "tmp/" + storeTmpPrefix + "running"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("temporary files after NewArtifacts: %q, want %q", got, want)
	}
}
