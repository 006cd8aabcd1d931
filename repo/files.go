package repo

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// writeAtomic writes the bytes that write produces to name (a path below
// root, slash-separated) under a temporary name in the same directory and
// renames it into place, so that a reader sees the old file or the new one
// and never a part. It does not fsync: files nobody reads before the next
// pointer switch (pool files, content-addressed indices) are made durable
// all at once by the syncfs in commit, which is much cheaper than an fsync
// per file.
func writeAtomic(root, name string, perm os.FileMode, write func(io.Writer) error) error {
	return writeTemp(root, name, perm, write, false)
}

// createFile writes a file under a new name, one that no metadata names
// yet (a pool file): directly, with no temporary name, since no reader
// looks for it until the metadata that names it is switched in. It never
// replaces a file: when name exists it returns an error that is
// fs.ErrExist, and the caller chooses another name.
func createFile(root, name string, write func(io.Writer) error) error {
	dst := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
	}
	return err
}

// writeFileAtomic replaces name with data durably: it flushes the whole
// filesystem (this file and every file written before it, such as the pool
// files and indices the new data names) before the rename, then the
// directory. Use it for the files clients start from and for the state.
func writeFileAtomic(root, name string, data []byte) error {
	err := writeTemp(root, name, 0o644, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}, true)
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(filepath.Join(root, filepath.FromSlash(name))))
}

func writeTemp(root, name string, perm os.FileMode, write func(io.Writer) error, durable bool) error {
	dst := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(dst), ".tmp-"+filepath.Base(dst)+"-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if durable {
		if err := unix.Syncfs(int(f.Fd())); err != nil {
			return fmt.Errorf("syncfs: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	ok = true
	return nil
}

// stagedFile is a metadata file of a repository and its bytes.
type stagedFile struct {
	name string // slash-separated, below the root
	data []byte
}

// commit writes one generation of metadata. The content-addressed files
// (addressed) go first, each only if absent: no reader of the current
// metadata uses them. Then the files clients start from (pointers) are
// written under temporary names, the filesystem is flushed once (which
// makes the pool files and every file before durable too), and they are
// renamed into place in order, back to back, the last one being the file
// a client reads first. Everything, signatures included, is prepared before
// commit, so that nothing but the filesystem can fail once it starts. On an
// error before the renames it removes what it created; the repository is
// then as it was.
func commit(root string, addressed, pointers []stagedFile) (err error) {
	var created []string
	defer func() {
		if err != nil {
			removeFiles(root, created)
		}
	}()
	for _, f := range addressed {
		p := filepath.Join(root, filepath.FromSlash(f.name))
		if _, err := os.Stat(p); err == nil {
			continue
		}
		err := writeAtomic(root, f.name, 0o644, func(w io.Writer) error {
			_, err := w.Write(f.data)
			return err
		})
		if err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
		created = append(created, f.name)
	}
	tmps := make([]string, 0, len(pointers))
	defer func() {
		if err != nil {
			for _, t := range tmps {
				os.Remove(t)
			}
		}
	}()
	for _, f := range pointers {
		dst := filepath.Join(root, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
		t, err := os.CreateTemp(filepath.Dir(dst), ".tmp-"+filepath.Base(dst)+"-")
		if err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
		tmps = append(tmps, t.Name())
		_, err = t.Write(f.data)
		if err == nil {
			err = t.Chmod(0o644)
		}
		if err == nil && len(tmps) == len(pointers) {
			err = unix.Syncfs(int(t.Fd()))
		}
		if cerr := t.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	dirs := map[string]bool{}
	for i, f := range pointers {
		dst := filepath.Join(root, filepath.FromSlash(f.name))
		if err := os.Rename(tmps[i], dst); err != nil {
			// Those renamed stay: each is a complete, valid file.
			tmps = tmps[i:]
			created = nil
			return fmt.Errorf("write %s: %w", f.name, err)
		}
		dirs[filepath.Dir(dst)] = true
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// syncDir fsyncs a directory so that renames in it survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

// lockDir takes an exclusive lock on root's state directory, so that only
// one publish at a time writes a repository; concurrent publishes into one
// target corrupt its by-hash files (as seen in aptly).
func lockDir(root string) (unlock func(), err error) {
	dir := filepath.Join(root, stateDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", root, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", root, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", root, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// safeComponent reports whether s may be used as one path element or one
// field of a file name taken from a package: not empty, no '/', no NUL, no
// control characters or white space, and not "." or "..".
func safeComponent(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 255 {
		return false
	}
	for _, r := range s {
		if r == '/' || r == '\\' || r < 0x21 || r == 0x7f {
			return false
		}
	}
	return !strings.HasPrefix(s, ".")
}
