package gitremote

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/server"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/sluice-ci/sluice/internal/gittest"
)

func repo(t *testing.T) (string, *filesystem.Storage, plumbing.Hash) {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "README"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "r")
	h, err := gittest.Repo{}.Commit(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	gitDir := filepath.Join(dst, ".git")
	sto := filesystem.NewStorage(osfs.New(gitDir), cache.NewObjectLRUDefault())
	t.Cleanup(func() { sto.Close() })
	return gitDir, sto, plumbing.NewHash(h)
}

func advertise(t *testing.T, l server.Loader) (map[string]plumbing.Hash, error) {
	t.Helper()
	ep, err := transport.NewEndpoint("file:///r")
	if err != nil {
		t.Fatal(err)
	}
	sess, err := server.NewClient(l).NewUploadPackSession(ep, nil)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	ar, err := sess.AdvertisedReferencesContext(context.Background())
	if err != nil {
		return nil, err
	}
	return ar.References, nil
}

// git's own ref update leaves refs/heads/main.lock for a moment, empty at
// first and then with the new value: neither is a ref.
func TestLockFilesAreNotRefs(t *testing.T) {
	gitDir, sto, h := repo(t)
	lock := filepath.Join(gitDir, "refs", "heads", "main.lock")
	for _, content := range []string{h.String() + "\n", ""} {
		if err := os.WriteFile(lock, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if content == "" {
			// An empty lock is being written: once git renames it, the
			// listing succeeds.
			go func() {
				time.Sleep(50 * time.Millisecond)
				os.Remove(lock)
			}()
		}
		refs, err := advertise(t, Loader{Storage: sto})
		if err != nil {
			t.Fatalf("lock %q: %v", content, err)
		}
		for n := range refs {
			if strings.HasSuffix(n, ".lock") {
				t.Errorf("lock file advertised as %s", n)
			}
		}
		if refs["refs/heads/main"] != h {
			t.Errorf("refs/heads/main = %s, want %s", refs["refs/heads/main"], h)
		}
	}
}

// A writer that truncates and rewrites a ref (go-git's own SetReference)
// while the repository is listed: every listing succeeds.
func TestListWhileRefsAreWritten(t *testing.T) {
	gitDir, sto, h := repo(t)
	writer := filesystem.NewStorage(osfs.New(gitDir), cache.NewObjectLRUDefault())
	defer writer.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ref := plumbing.NewHashReference(plumbing.ReferenceName("refs/changes/01/1/"+string(rune('1'+i%9))), h)
			if err := writer.SetReference(ref); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	deadline := time.Now().Add(time.Second)
	n := 0
	for ; time.Now().Before(deadline); n++ {
		if _, err := advertise(t, Loader{Storage: sto}); err != nil {
			t.Fatalf("listing %d: %v", n, err)
		}
	}
	t.Logf("%d listings", n)
}

func FuzzParseURL(f *testing.F) {
	f.Add("file:///srv/git/x")
	f.Add("https://example.org/x.git")
	f.Add("ssh://git@example.org:29418/x")
	f.Add("ext::sh -c x")
	f.Add("https://user:pw@example.org/x")
	f.Fuzz(func(t *testing.T, raw string) {
		r, err := ParseURL(raw)
		if err != nil {
			return
		}
		if !strings.HasPrefix(raw, "file://") && !strings.HasPrefix(raw, "https://") && !strings.HasPrefix(raw, "ssh://") && !strings.HasPrefix(raw, "/") {
			t.Fatalf("ParseURL accepted %q", raw)
		}
		if r.Endpoint.Password != "" {
			t.Fatalf("ParseURL accepted a password in %q", raw)
		}
		if r.Path != "" && !filepath.IsAbs(r.Path) {
			t.Fatalf("ParseURL gave the relative path %q for %q", r.Path, raw)
		}
	})
}
