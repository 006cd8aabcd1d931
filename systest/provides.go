package systest

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/rpmpack"
)

// ProvidesPackage is the name of the generated package that registers
// what an RPM base holds in its rpmdb.
const ProvidesPackage = "sluice-base-provides"

// rpmMacros make Debian's rpm (whose rpmdb is ~/.rpmdb by default) keep
// the system's rpmdb where dnf and rpm -V look for it.
const rpmMacros = "%_dbpath /var/lib/rpm\n"

// finishRPM sets up the rpmdb of an RPM base and registers the base in
// it with a generated package.
func (c *Bases) finishRPM(ctx context.Context, root string) error {
	if err := os.MkdirAll(filepath.Join(root, "etc/rpm"), 0o755); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(root, "etc/rpm/macros.sluice"), []byte(rpmMacros), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(root, "var/lib/rpm"), 0o755); err != nil {
		return err
	}
	// Directories Fedora's filesystem package owns, that RPMs put files
	// in without owning them: made here, so that a removal that leaves
	// them is no leftover.
	for _, d := range fedoraDirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	if err := run(ctx, 5*time.Minute, nil, "chroot", root, "rpm", "--initdb"); err != nil {
		return err
	}
	libs, progs, err := baseFiles(root)
	if err != nil {
		return err
	}
	out, err := output(ctx, 5*time.Minute, strings.NewReader(strings.Join(libs, "\n")+"\n"),
		"chroot", root, "/usr/lib/rpm/elfdeps", "--provides")
	if err != nil {
		return fmt.Errorf("elfdeps: %w", err)
	}
	provides, err := ParseProvides(out)
	if err != nil {
		return err
	}
	// rpm's own dependency generator asks for rtld(GNU_HASH) from every
	// ELF program; glibc provides it on Fedora.
	provides = append(provides, "rtld(GNU_HASH)")
	provides = append(provides, progs...)
	slices.Sort(provides)
	provides = slices.Compact(provides)
	pkg, err := providesRPM(provides)
	if err != nil {
		return err
	}
	dst := filepath.Join(root, "var/lib/sluice")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dst, ProvidesPackage+".rpm"), pkg, 0o644); err != nil {
		return err
	}
	if err := run(ctx, 5*time.Minute, nil, "chroot", root, "rpm", "-i", "/var/lib/sluice/"+ProvidesPackage+".rpm"); err != nil {
		return fmt.Errorf("install %s: %w", ProvidesPackage, err)
	}
	c.log.Info("base rpmdb registered", "provides", len(provides))
	return nil
}

// fedoraDirs are directories of Fedora's filesystem package that a
// Debian system lacks.
var fedoraDirs = []string{"usr/share/licenses", "usr/lib/debug", "usr/lib/debug/.build-id", "usr/src/debug",
	"etc/pki/rpm-gpg", "usr/share/metainfo", "usr/libexec", "usr/lib/sysimage"}

// soRE matches a shared object's file name.
var soRE = regexp.MustCompile(`\.so(\.[0-9.]+)?$`)

// baseFiles returns the shared objects of the base (paths in it) and the
// paths its programs are reached by, /bin/X as well as /usr/bin/X where
// /bin is a link to usr/bin.
func baseFiles(root string) (libs, progs []string, err error) {
	for _, dir := range []string{"usr/lib", "usr/lib64", "lib", "lib64"} {
		top := filepath.Join(root, dir)
		if fi, err := os.Lstat(top); err != nil || !fi.IsDir() {
			continue // absent, or a link into usr (merged /usr)
		}
		err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() && soRE.MatchString(d.Name()) {
				libs = append(libs, "/"+strings.TrimPrefix(p, root+"/"))
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	for _, dir := range []string{"usr/bin", "usr/sbin", "bin", "sbin"} {
		top := filepath.Join(root, dir)
		fi, err := os.Lstat(top)
		if err != nil {
			continue
		}
		real := dir
		if fi.Mode()&fs.ModeSymlink != 0 {
			real = "usr/" + dir
		}
		entries, err := os.ReadDir(filepath.Join(root, real))
		if err != nil {
			return nil, nil, err
		}
		for _, e := range entries {
			if !e.IsDir() && validProvide(e.Name()) {
				progs = append(progs, "/"+dir+"/"+e.Name())
			}
		}
	}
	return libs, progs, nil
}

// ParseProvides reads elfdeps --provides output: one capability per line,
// such as libc.so.6(GLIBC_2.34)(64bit).
func ParseProvides(data []byte) ([]string, error) {
	var out []string
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if !validProvide(line) {
			return nil, fmt.Errorf("elfdeps output line %d: %q is not a capability", i+1, tail(line, 80))
		}
		out = append(out, line)
	}
	return out, nil
}

// validProvide accepts a capability name rpm can hold: printable, no
// blanks, not empty, bounded.
func validProvide(s string) bool {
	if s == "" || len(s) > 512 {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f {
			return false
		}
	}
	return true
}

// providesRPM makes the package that provides what the base holds: no
// files, no scripts.
func providesRPM(provides []string) ([]byte, error) {
	rels := make(rpmpack.Relations, 0, len(provides))
	for _, p := range provides {
		rels = append(rels, &rpmpack.Relation{Name: p, Sense: rpmpack.SenseAny})
	}
	r, err := rpmpack.NewRPM(rpmpack.RPMMetaData{
		Name: ProvidesPackage, Version: "1", Release: "1", Arch: "noarch", OS: "linux",
		Summary:     "What the Debian base system of a sluice environment holds",
		Description: "Generated by sluice: registers the base's libraries and programs in the rpmdb so that RPM dependencies resolve against them.",
		Licence:     "MIT", Compressor: "gzip", BuildTime: time.Unix(0, 0), Provides: rels,
	})
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := r.Write(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
