package builder_test

// The sample packages in testdata/src are what the builder's tests build.
// These tests build each one by hand, with Debian's real tools and the
// steps the builder will take, to show that the samples themselves are
// right: a failure here is a broken sample, not a broken builder.
//
// Both samples use source format "3.0 (quilt)", not "3.0 (native)": their
// Debian versions carry a revision (1.2-3, as the RPM carries Release 3),
// and dpkg-source refuses to build a native source package whose version
// has one. A binary build (-b) needs no orig tarball, so it runs on the
// plain tree from git; a full build takes NAME_VERSION.orig.tar.gz, which
// is the very tarball made for rpmbuild's Source0 under another name.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/internal/proc"
)

// sampleEpoch is SOURCE_DATE_EPOCH for every build, and the mtime in
// source tarballs: 2026-11-02 12:00:00 UTC, the samples' changelog date.
const sampleEpoch = 1793620800

// sampleTimeout bounds each tool the tests run.
const sampleTimeout = 2 * time.Minute

// A sample is one package under testdata/src.
type sample struct {
	name     string // source and main binary package
	version  string // upstream version
	revision string // Debian revision and RPM Release
	archDep  bool   // Architecture: any, or else all (noarch)
	// debs are the binary packages dpkg-buildpackage makes, main first.
	debs []string
	// prog is the program the main package installs.
	prog string
	// script is a line the main package's postinst and %post hold, or "".
	script string
}

func samples() []sample {
	return []sample{
		{
			name: "hello-c", version: "1.2", revision: "3", archDep: true,
			// dh_strip splits the debug symbols off into -dbgsym.
			debs: []string{"hello-c", "hello-c-dbgsym"},
			prog: "usr/bin/hello-c",
		},
		{
			name: "hello-sh", version: "0.9", revision: "1",
			debs:   []string{"hello-sh"},
			prog:   "usr/bin/hello-sh",
			script: `echo "hello-sh configured"`,
		},
	}
}

// dir is the sample's tree in testdata.
func (s sample) dir() string { return filepath.Join("testdata", "src", s.name) }

// upstream is the NAME-VERSION that prefixes the source tarball.
func (s sample) upstream() string { return s.name + "-" + s.version }

// greeting is what the sample's program prints.
func (s sample) greeting() string {
	return "hello from sluice, " + s.name + " " + s.version + "\n"
}

func TestSampleDeb(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "dpkg-buildpackage")
	pkgtest.NeedTool(t, "dh")
	hostArch := strings.TrimSpace(sampleRun(t, t.TempDir(), "dpkg", "--print-architecture"))

	modes := []struct {
		name string
		args []string
		// full builds the source package too, from an orig tarball.
		full bool
	}{
		{name: "binary", args: []string{"-us", "-uc", "-b"}},
		{name: "full", args: []string{"-us", "-uc"}, full: true},
	}
	for _, s := range samples() {
		for _, m := range modes {
			t.Run(s.name+"/"+m.name, func(t *testing.T) {
				t.Parallel()
				work := t.TempDir()
				tree := filepath.Join(work, s.upstream())
				sampleCopy(t, s.dir(), tree)
				if m.full {
					// dpkg-source finds the orig tarball next to the tree.
					sampleTarball(t, s.dir(), s.upstream(),
						filepath.Join(work, s.name+"_"+s.version+".orig.tar.gz"))
				}
				sampleRun(t, tree, "dpkg-buildpackage", m.args...)

				version := s.version + "-" + s.revision
				dsc := filepath.Join(work, s.name+"_"+version+".dsc")
				if _, err := os.Stat(dsc); m.full && err != nil {
					t.Errorf("source package: %v", err)
				} else if !m.full && err == nil {
					t.Errorf("binary build made %s", dsc)
				}

				arch := "all"
				if s.archDep {
					arch = hostArch
				}
				// Ubuntu names debug packages .ddeb.
				debs := sampleGlob(t, work, "*.deb", "*.ddeb")
				var got []string
				for _, deb := range debs {
					got = append(got, strings.TrimSuffix(strings.TrimSuffix(filepath.Base(deb), ".deb"), ".ddeb"))
				}
				var want []string
				for _, p := range s.debs {
					want = append(want, p+"_"+version+"_"+arch)
				}
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("packages: got %q, want %q", got, want)
				}
				for _, deb := range debs {
					fields := sampleRun(t, work, "dpkg-deb", "--field", deb, "Package", "Version", "Architecture")
					p := strings.SplitN(filepath.Base(deb), "_", 2)[0]
					wantFields := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: %s\n", p, version, arch)
					if fields != wantFields {
						t.Errorf("%s: dpkg-deb --field:\n%s\nwant:\n%s", filepath.Base(deb), fields, wantFields)
					}
				}

				mainDeb := filepath.Join(work, s.debs[0]+"_"+version+"_"+arch+".deb")
				if s.script != "" {
					postinst := sampleRun(t, work, "dpkg-deb", "--info", mainDeb, "postinst")
					if !strings.Contains(postinst, s.script) {
						t.Errorf("postinst does not hold %q:\n%s", s.script, postinst)
					}
				}
				root := filepath.Join(work, "root")
				sampleRun(t, work, "dpkg-deb", "-x", mainDeb, root)
				if out := sampleRun(t, work, filepath.Join(root, s.prog)); out != s.greeting() {
					t.Errorf("%s printed %q, want %q", s.prog, out, s.greeting())
				}
			})
		}
	}
}

func TestSampleRPM(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "rpmbuild")
	pkgtest.NeedTool(t, "rpm2archive")
	// %{?dist} is empty on Debian, but a host that defines it gets it.
	eval := sampleRun(t, t.TempDir(), "rpm", "--eval", "%{_arch}|%{?dist}")
	hostArch, dist, _ := strings.Cut(strings.TrimSpace(eval), "|")

	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			work := t.TempDir()
			top := filepath.Join(work, "rpmbuild")
			tmp := filepath.Join(work, "tmp")
			for _, d := range []string{filepath.Join(top, "SOURCES"), tmp} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			sampleTarball(t, s.dir(), s.upstream(), filepath.Join(top, "SOURCES", s.upstream()+".tar.gz"))
			// The spec is read from the tree, as the builder will read it
			// from git.
			tree := filepath.Join(work, "src")
			sampleCopy(t, s.dir(), tree)
			// --nodeps: rpm's database on Debian does not know the gcc and
			// make that dpkg installed, so BuildRequires cannot be met from
			// it. The builder checks build dependencies its own way.
			sampleRun(t, work, "rpmbuild",
				"--define", "_topdir "+top,
				"--define", "_tmppath "+tmp,
				"--nodeps", "-ba", filepath.Join(tree, s.name+".spec"))

			release := s.revision + dist
			arch := "noarch"
			if s.archDep {
				arch = hostArch
			}
			ident := s.name + "-" + s.version + "-" + release
			srpm := filepath.Join(top, "SRPMS", ident+".src.rpm")
			rpm := filepath.Join(top, "RPMS", arch, ident+"."+arch+".rpm")
			// Debian's rpm makes no debuginfo packages: one binary RPM.
			if got := sampleGlob(t, top, "RPMS/*/*.rpm"); !slices.Equal(got, []string{rpm}) {
				t.Errorf("binary packages: got %q, want %q", got, rpm)
			}
			if got := sampleGlob(t, top, "SRPMS/*.rpm"); !slices.Equal(got, []string{srpm}) {
				t.Errorf("source packages: got %q, want %q", got, srpm)
			}
			const qf = "%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{SOURCEPACKAGE}\n"
			for _, c := range []struct {
				file string
				want string
			}{
				{rpm, fmt.Sprintf("%s %s %s %s (none)\n", s.name, s.version, release, arch)},
				// A source package's ARCH is the binary packages' (noarch
				// for BuildArch: noarch) though its name says "src".
				{srpm, fmt.Sprintf("%s %s %s %s 1\n", s.name, s.version, release, arch)},
			} {
				if got := sampleRun(t, work, "rpm", "-qp", "--qf", qf, c.file); got != c.want {
					t.Errorf("%s: got %q, want %q", filepath.Base(c.file), got, c.want)
				}
			}
			if s.script != "" {
				scripts := sampleRun(t, work, "rpm", "-qp", "--scripts", rpm)
				if !strings.Contains(scripts, s.script) {
					t.Errorf("%%post does not hold %q:\n%s", s.script, scripts)
				}
			}

			root := filepath.Join(work, "root")
			sampleUnpackRPM(t, rpm, root)
			if out := sampleRun(t, work, filepath.Join(root, s.prog)); out != s.greeting() {
				t.Errorf("%s printed %q, want %q", s.prog, out, s.greeting())
			}
		})
	}
}

// sampleEnv is the whole environment of a build tool: nothing of the
// caller's but PATH, a fresh HOME so that no ~/.rpmmacros or dpkg
// configuration applies, and a fixed clock for reproducible output.
func sampleEnv(t *testing.T) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"TMPDIR=" + t.TempDir(),
		"LC_ALL=C.UTF-8",
		fmt.Sprintf("SOURCE_DATE_EPOCH=%d", sampleEpoch),
	}
}

// sampleRun runs name with args in dir and returns its standard output.
// The command must succeed.
func sampleRun(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), sampleTimeout)
	defer cancel()
	cmd := proc.Command(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = sampleEnv(t)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	t.Logf("%s %s: %v", filepath.Base(name), strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return stdout.String()
}

// sampleGlob returns the files under dir that match any of patterns, sorted.
func sampleGlob(t *testing.T, dir string, patterns ...string) []string {
	t.Helper()
	var files []string
	for _, p := range patterns {
		m, err := filepath.Glob(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	slices.Sort(files)
	return files
}

// sampleCopy copies the tree src to dst, as a checkout from git would
// make it: regular files and directories, execute bits kept.
func sampleCopy(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}

// sampleTarball writes the tree src to the file dst as a gzipped tar whose
// names start with prefix/: the source tarball rpmbuild takes as Source0
// and dpkg-source as the orig tarball. Owners, times and order are fixed
// so that one tree always gives one tarball.
func sampleTarball(t *testing.T, src, prefix, dst string) {
	t.Helper()
	var buf bytes.Buffer
	if err := sampleWriteTar(&buf, os.DirFS(src), prefix); err != nil {
		t.Fatalf("tarball of %s: %v", src, err)
	}
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func sampleWriteTar(w io.Writer, fsys fs.FS, prefix string) error {
	mtime := time.Unix(sampleEpoch, 0)
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	zw.ModTime = mtime
	tw := tar.NewWriter(zw)
	// WalkDir visits in lexical order.
	err = fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{
			Name:    path.Join(prefix, name),
			ModTime: mtime,
			Uname:   "root",
			Gname:   "root",
			Format:  tar.FormatPAX,
		}
		switch {
		case d.IsDir():
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o755
		case d.Type().IsRegular():
			hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeReg, info.Size(), 0o644
			if info.Mode()&0o111 != 0 {
				hdr.Mode = 0o755
			}
		default:
			return fmt.Errorf("%s: not a regular file or directory", name)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := fsys.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// sampleUnpackRPM unpacks the payload of the package rpm into dir, which
// must not exist. rpm2archive turns the payload into a gzipped tar, read
// here instead of through rpm2cpio | cpio, which would take a shell.
// Only directories and regular files are unpacked (the .build-id symlinks
// are not needed), confined to dir.
func sampleUnpackRPM(t *testing.T, rpm, dir string) {
	t.Helper()
	// rpm2archive FILE writes FILE.tgz: give it a FILE in a scratch
	// directory, not next to the package.
	link := filepath.Join(t.TempDir(), "payload")
	if err := os.Symlink(rpm, link); err != nil {
		t.Fatal(err)
	}
	sampleRun(t, filepath.Dir(link), "rpm2archive", link)
	tgz := link + ".tgz"
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := sampleUntar(tgz, dir); err != nil {
		t.Fatalf("unpack %s: %v", filepath.Base(rpm), err)
	}
}

func sampleUntar(tgz, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	f, err := os.Open(tgz)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
				return err
			}
			w, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fs.FileMode(hdr.Mode)&0o755)
			if err != nil {
				return err
			}
			_, err = io.Copy(w, tr)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}
