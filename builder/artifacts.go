package builder

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strings"
	"time"
)

// Layout of an artifact store, relative to its directory.
const (
	storeObjects   = "objects" // objects/<first two hex digits>/<sha256>
	storeTmp       = "tmp"     // files being written by Put
	storeTmpPrefix = "put-"
	// storeStaleAfter is the age past which NewArtifacts removes a
	// temporary file: its Put was in a process that ended. A Put in
	// progress in another process keeps its file for far less.
	storeStaleAfter = time.Hour
)

var (
	// ErrNotFound is returned when the store holds no object with the
	// digest asked for. Errors wrapping it also match [fs.ErrNotExist].
	ErrNotFound error = notFound{}
	// ErrBadDigest is returned for a digest that is not 64 lower-case
	// hexadecimal digits; no file is looked at for it.
	ErrBadDigest = errors.New("builder: not a lower-case hex sha256 digest")
	// ErrCorrupt is returned by Verify when an object's content does not
	// hash to its name.
	ErrCorrupt = errors.New("builder: artifact corrupt")
)

// notFound is the type of ErrNotFound: a sentinel that also matches
// fs.ErrNotExist, for callers that handle missing files as such.
type notFound struct{}

func (notFound) Error() string        { return "builder: artifact not found" }
func (notFound) Is(target error) bool { return target == fs.ErrNotExist }

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Artifact names the content of an object in the store.
type Artifact struct {
	SHA256 string `json:"sha256"` // lower-case hex
	Size   int64  `json:"size"`
}

// Artifacts is a content-addressed store of build outputs under one
// directory: each object is a read-only file named by the sha256 of its
// content, so the same bytes are stored once and a record's checksums can
// always be verified again. Every access goes through an [os.Root] of the
// directory. Objects appear whole or not at all: Put writes to a temporary
// file in the store, syncs it and renames it into place.
type Artifacts struct {
	root *os.Root
}

// NewArtifacts opens the artifact store in dir, creating it if needed, and
// removes the temporary files older than an hour that Puts of a crashed
// process left behind. Close releases it.
func NewArtifacts(dir string) (*Artifacts, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("builder: artifact store %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("builder: artifact store %s: %w", dir, err)
	}
	a := &Artifacts{root: root}
	if err := a.init(time.Now()); err != nil {
		root.Close()
		return nil, fmt.Errorf("builder: artifact store %s: %w", dir, err)
	}
	return a, nil
}

func (a *Artifacts) init(now time.Time) error {
	if err := a.root.MkdirAll(storeObjects, 0o755); err != nil {
		return err
	}
	if err := a.root.MkdirAll(storeTmp, 0o700); err != nil {
		return err
	}
	entries, err := fs.ReadDir(a.root.FS(), storeTmp)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), storeTmpPrefix) {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // its Put finished meanwhile
		} else if err != nil {
			return err
		}
		if now.Sub(info.ModTime()) < storeStaleAfter {
			continue
		}
		if err := a.root.Remove(path.Join(storeTmp, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Close releases the store's directory.
func (a *Artifacts) Close() error {
	return a.root.Close()
}

// Put stores the bytes of r and returns their digest and size. When the
// store holds them already, it keeps the object it has. If reading r fails
// or ctx ends first (it is checked between reads), Put stores nothing and
// leaves no temporary file.
func (a *Artifacts) Put(ctx context.Context, r io.Reader) (Artifact, error) {
	art, err := a.put(ctx, r)
	if err != nil {
		return Artifact{}, fmt.Errorf("builder: put artifact: %w", err)
	}
	return art, nil
}

func (a *Artifacts) put(ctx context.Context, r io.Reader) (_ Artifact, err error) {
	if err := ctx.Err(); err != nil {
		return Artifact{}, err
	}
	tmp := path.Join(storeTmp, storeTmpPrefix+rand.Text())
	f, err := a.root.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Artifact{}, err
	}
	renamed := false
	defer func() {
		if f != nil {
			f.Close()
		}
		if !renamed {
			if rerr := a.root.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				err = errors.Join(err, rerr)
			}
		}
	}()

	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(f, h), cancelableReader{ctx, r})
	if err != nil {
		return Artifact{}, err
	}
	art := Artifact{SHA256: hex.EncodeToString(h.Sum(nil)), Size: size}
	if err := f.Chmod(0o444); err != nil {
		return Artifact{}, err
	}
	if err := f.Sync(); err != nil {
		return Artifact{}, err
	}
	err = f.Close()
	f = nil
	if err != nil {
		return Artifact{}, err
	}
	if err := ctx.Err(); err != nil {
		return Artifact{}, err
	}

	dir, name := artifactPath(art.SHA256)
	if info, err := a.root.Lstat(name); err == nil && info.Mode().IsRegular() && info.Size() == size {
		return art, nil // stored once; the deferred func drops tmp
	}
	if err := a.mkdir(dir); err != nil {
		return Artifact{}, err
	}
	// A rename replaces an object of the wrong size (a damaged one) and
	// one that a concurrent Put of the same bytes has just put in place
	// (harmless: the same bytes).
	if err := a.root.Rename(tmp, name); err != nil {
		return Artifact{}, err
	}
	renamed = true
	if err := a.syncDir(dir); err != nil {
		return Artifact{}, err
	}
	return art, nil
}

// mkdir creates the fan-out directory dir under objects if it is missing,
// and makes its entry durable.
func (a *Artifacts) mkdir(dir string) error {
	err := a.root.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return a.syncDir(storeObjects)
}

// syncDir makes the entries of dir durable.
func (a *Artifacts) syncDir(dir string) error {
	d, err := a.root.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Open opens the object with the digest sha for reading.
func (a *Artifacts) Open(sha string) (*os.File, error) {
	if !sha256Hex.MatchString(sha) {
		return nil, fmt.Errorf("builder: open artifact %q: %w", sha, ErrBadDigest)
	}
	_, name := artifactPath(sha)
	f, err := a.root.Open(name)
	if err != nil {
		return nil, fmt.Errorf("builder: open artifact %s: %w", sha, artifactNotExist(err))
	}
	return f, nil
}

// Stat returns the digest and size of the object with the digest sha.
func (a *Artifacts) Stat(sha string) (Artifact, error) {
	if !sha256Hex.MatchString(sha) {
		return Artifact{}, fmt.Errorf("builder: stat artifact %q: %w", sha, ErrBadDigest)
	}
	_, name := artifactPath(sha)
	info, err := a.root.Stat(name)
	if err != nil {
		return Artifact{}, fmt.Errorf("builder: stat artifact %s: %w", sha, artifactNotExist(err))
	}
	if !info.Mode().IsRegular() {
		return Artifact{}, fmt.Errorf("builder: stat artifact %s: %w: not a regular file", sha, ErrCorrupt)
	}
	return Artifact{SHA256: sha, Size: info.Size()}, nil
}

// Verify hashes the object with the digest sha again and returns an error
// wrapping ErrCorrupt if its content no longer matches its name.
func (a *Artifacts) Verify(sha string) error {
	f, err := a.Open(sha)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("builder: verify artifact %s: %w", sha, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return fmt.Errorf("builder: verify artifact %s: %w: content has sha256 %s", sha, ErrCorrupt, got)
	}
	return nil
}

// artifactPath returns the fan-out directory and the name of the object
// with the digest sha, which has been checked.
func artifactPath(sha string) (dir, name string) {
	dir = path.Join(storeObjects, sha[:2])
	return dir, path.Join(dir, sha)
}

// artifactNotExist turns a missing file into ErrNotFound, keeping other
// errors.
func artifactNotExist(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotFound
	}
	return err
}

// cancelableReader reads from r until ctx ends.
type cancelableReader struct {
	ctx context.Context
	r   io.Reader
}

func (c cancelableReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
