package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// pkgSet is one batch of generated packages and the directory that the
// measurements on it work in.
type pkgSet struct {
	label string   // "2000 x 9.3 KiB"
	dir   string   // holds src/ and one directory per tool
	src   string   // the generated packages
	files []string // in src
	bytes int64    // their total size
}

// writeFunc writes the package called name, with a payload of size bytes,
// into dir and returns its path.
type writeFunc func(dir, name string, size int) (string, error)

// generate writes count packages name-00001, name-00002… into dir/src, on
// all cores. Names and therefore payloads differ: createrepo_c --update is
// confused by byte-identical copies.
func generate(ctx context.Context, dir, name string, count, size int, write writeFunc) (*pkgSet, error) {
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return nil, err
	}
	files := make([]string, count)
	errs := make([]error, count)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), count) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= count {
					return
				}
				files[i], errs[i] = write(src, fmt.Sprintf("%s-%05d", name, i+1), size)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &pkgSet{dir: dir, src: src, files: files}
	for i, f := range files {
		if errs[i] != nil {
			return nil, errs[i]
		}
		fi, err := os.Stat(f)
		if err != nil {
			return nil, err
		}
		s.bytes += fi.Size()
	}
	s.label = fmt.Sprintf("%d x %s", count, size1024(float64(s.bytes)/float64(count)))
	return s, nil
}

// linkInto makes dir/pool, after removing dir, a fresh copy of files made
// of hard links: a tool run there sees no other tool's state yet reads the
// same cached pages.
func linkInto(dir string, files []string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	pool := filepath.Join(dir, "pool")
	if err := os.MkdirAll(pool, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		if err := os.Link(f, filepath.Join(pool, filepath.Base(f))); err != nil {
			return err
		}
	}
	return nil
}

// hashFiles is the Go sha256 floor: it reads and hashes every file, on
// all cores.
func hashFiles(ctx context.Context, files []string) error {
	errs := make([]error, len(files))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(files)) {
		wg.Go(func() {
			h := sha256.New()
			buf := make([]byte, 256<<10)
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(files) {
					return
				}
				h.Reset()
				errs[i] = hashFile(h, buf, files[i])
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func hashFile(w io.Writer, buf []byte, name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	// Hide os.File's WriteTo so that the copy uses buf.
	_, err = io.CopyBuffer(w, struct{ io.Reader }{f}, buf)
	return err
}

// poolLayout does what building a pool costs on this filesystem and no
// more: a new file per package with its bytes, in a directory of its own
// (the APT pool: pool/<component>/<prefix>/<source>/) or in a shared one
// (the RPM pool: Packages/<letter>/).
func poolLayout(dir string, files []string, dirPerPackage bool) (time.Duration, error) {
	start := time.Now()
	for i, f := range files {
		d := filepath.Join(dir, "Packages")
		if dirPerPackage {
			d = filepath.Join(dir, "pool", fmt.Sprintf("p%05d", i))
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, err
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		if err := os.WriteFile(filepath.Join(d, filepath.Base(f)), data, 0o644); err != nil {
			return 0, err
		}
	}
	return time.Since(start), os.RemoveAll(dir)
}
