package builder

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"
)

// writeSourceTarball writes the tree as the gzipped tar dst, exclusively
// created: the Source0 of an RPM build, the orig tarball of a Debian one.
// skip, when not nil, leaves out the top-level entries it names.
func writeSourceTarball(tree *os.Root, dst, prefix string, mtime time.Time, skip func(name string) bool) error {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	err = writeTarball(w, tree, prefix, mtime, skip)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeTarball writes the tree (all but a top-level .git, and what skip
// names) to w as a
// gzipped tar whose names start with prefix/. One tree gives one tarball:
// names in lexical order within each directory, every time mtime, owner
// and group 0 (root), modes as git records them (see tarMode), symlinks as symlinks
// with their target as written. Other file types are refused.
func writeTarball(w io.Writer, tree *os.Root, prefix string, mtime time.Time, skip func(name string) bool) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	zw.ModTime = mtime
	tw := tar.NewWriter(zw)
	err = fs.WalkDir(tree.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name == ".git" || (skip != nil && !strings.Contains(name, "/") && skip(name)) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil // a worktree's or submodule's .git file
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{
			Name:    path.Join(prefix, name),
			Mode:    tarMode(info.Mode()),
			ModTime: mtime,
			Uname:   "root",
			Gname:   "root",
		}
		switch t := d.Type(); {
		case t.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
		case t.IsRegular():
			hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
		case t&fs.ModeSymlink != 0:
			if hdr.Linkname, err = tree.Readlink(name); err != nil {
				return err
			}
			hdr.Typeflag, hdr.Mode = tar.TypeSymlink, 0o777
		default:
			return fmt.Errorf("%s: not a regular file, directory or symlink", name)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := tree.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.Copy(tw, f); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// tarMode is the mode an entry gets in a source tarball: what git
// records (executable or not), whatever the umask of the checkout was.
func tarMode(m fs.FileMode) int64 {
	switch {
	case m&fs.ModeSymlink != 0:
		return 0o777
	case m.IsDir(), m&0o111 != 0:
		return 0o755
	}
	return 0o644
}
