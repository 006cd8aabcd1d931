package pkgtest_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"github.com/sluice-ci/sluice/internal/proc"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cavaliergopher/cpio"
	"github.com/cavaliergopher/rpm"
	"pault.ag/go/debian/deb"

	"github.com/sluice-ci/sluice/internal/pkgtest"
)

var fixed = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

type debCase struct {
	name string
	deb  pkgtest.Deb
	ext  string // of the member names
}

func debCases() []debCase {
	return []debCase{
		{name: "minimal", ext: "gz", deb: pkgtest.Deb{Name: "hello", Version: "1.0-1", Arch: "amd64"}},
		{name: "full", ext: "gz", deb: pkgtest.Deb{
			Name:        "libfoo1",
			Version:     "2:1.2.3-4+deb12u1",
			Arch:        "amd64",
			Source:      "foo (1.2.3-4)",
			Depends:     "libc6 (>= 2.34), bar | baz",
			Description: "a library for tests\nIt does nothing at all.\n\nReally nothing.\n",
			Extra:       [][2]string{{"Section", "libs"}, {"Priority", "optional"}, {"Homepage", "https://example.org"}},
			Files: map[string][]byte{
				"/usr/lib/x86_64-linux-gnu/libfoo.so.1": []byte("not really ELF\n"),
				"usr/share/doc/libfoo1/copyright":       []byte("MIT\n"),
				"./usr/share/foo/empty":                 nil,
			},
			PayloadSize: 9000,
			Compression: "gz",
		}},
		{name: "xz", ext: "xz", deb: pkgtest.Deb{Name: "xz-pkg", Version: "0.1", Arch: "all", PayloadSize: 9000, Compression: "xz"}},
		{name: "zst", ext: "zst", deb: pkgtest.Deb{Name: "zst-pkg", Version: "3.0~rc1-2", Arch: "arm64", PayloadSize: 9000, Compression: "zst"}},
		{name: "1MiB", ext: "gz", deb: pkgtest.Deb{Name: "big", Version: "1.0", Arch: "amd64", PayloadSize: 1 << 20}},
		{name: "1MiB xz", ext: "xz", deb: pkgtest.Deb{Name: "big-xz", Version: "1.0", Arch: "amd64", PayloadSize: 1 << 20, Compression: "xz"}},
		{name: "1MiB zst", ext: "zst", deb: pkgtest.Deb{Name: "big-zst", Version: "1.0", Arch: "amd64", PayloadSize: 1 << 20, Compression: "zst"}},
	}
}

type rpmCase struct {
	name string
	rpm  pkgtest.RPM
}

func rpmCases() []rpmCase {
	return []rpmCase{
		{name: "minimal", rpm: pkgtest.RPM{Name: "hello", Version: "1.0", Release: "1", Arch: "x86_64"}},
		{name: "full", rpm: pkgtest.RPM{
			Name:        "libfoo",
			Version:     "1.2.3",
			Release:     "4.el9",
			Arch:        "x86_64",
			Epoch:       2,
			Summary:     "a library for tests",
			Description: "It does nothing at all.\n\nReally nothing.",
			License:     "Apache-2.0",
			URL:         "https://example.org/foo",
			Group:       "System Environment/Libraries",
			Requires:    []string{"/bin/sh", "glibc >= 2.34", "bar < 2", "baz <= 3:1.0-1", "qux == 1", "quux > 0.1"},
			Provides:    []string{"libfoo.so.1()(64bit)", "foo-api = 1"},
			Conflicts:   []string{"oldfoo"},
			Obsoletes:   []string{"libfoo-compat < 1.2"},
			Files: map[string][]byte{
				"/usr/lib64/libfoo.so.1":         []byte("not really ELF\n"),
				"usr/share/licenses/libfoo/COPY": []byte("Apache\n"),
				"./usr/share/foo/empty":          nil,
			},
			PayloadSize: 9000,
			BuildTime:   time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC),
		}},
		{name: "noarch", rpm: pkgtest.RPM{Name: "data", Version: "0.1~rc1", Release: "0.1", Arch: "noarch", PayloadSize: 9000}},
		{name: "1MiB", rpm: pkgtest.RPM{Name: "big", Version: "1.0", Release: "1", Arch: "x86_64", PayloadSize: 1 << 20}},
	}
}

// wantFiles is what a package's payload should hold: Files with clean
// absolute names, or the default README, and the payload file.
func wantFiles(name, version string, files map[string][]byte, payloadSize int) map[string][]byte {
	want := make(map[string][]byte)
	for k, v := range files {
		want[filepath.Clean("/"+k)] = v
	}
	if len(files) == 0 {
		want["/usr/share/doc/"+name+"/README"] = []byte("synthetic test package " + name + " " + version + "\n")
	}
	if payloadSize > 0 {
		want["/usr/share/"+name+"/payload"] = pkgtest.Payload(name+"\x00"+version, payloadSize)
	}
	return want
}

func diffFiles(t *testing.T, got, want map[string][]byte) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("file %s missing", k)
		case !bytes.Equal(g, want[k]):
			t.Errorf("file %s: %d bytes, want %d (%.40q, want %.40q)", k, len(g), len(want[k]), g, want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected file %s", k)
		}
	}
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	for _, tc := range debCases() {
		t.Run("deb "+tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := tc.deb.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			b, err := tc.deb.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Errorf("two calls gave different bytes (%d and %d long)", len(a), len(b))
			}
		})
	}
	for _, tc := range rpmCases() {
		t.Run("rpm "+tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := tc.rpm.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			b, err := tc.rpm.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Errorf("two calls gave different bytes (%d and %d long)", len(a), len(b))
			}
		})
	}
}

func TestDebLoad(t *testing.T) {
	t.Parallel()
	for _, tc := range debCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := tc.deb.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			d, err := deb.Load(bytes.NewReader(b), "test.deb")
			if err != nil {
				t.Fatalf("deb.Load: %v", err)
			}
			defer d.Close()

			want := wantFiles(tc.deb.Name, tc.deb.Version, tc.deb.Files, tc.deb.PayloadSize)
			var size int
			for _, v := range want {
				size += len(v)
			}
			wantDesc := strings.TrimRight(tc.deb.Description, "\n")
			if wantDesc == "" {
				wantDesc = "synthetic test package " + tc.deb.Name
			}
			fields := [][2]string{
				{"Package", tc.deb.Name},
				{"Source", tc.deb.Source},
				{"Version", tc.deb.Version},
				{"Architecture", tc.deb.Arch},
				{"Maintainer", "Sluice Tests <tests@example.org>"},
				{"Installed-Size", fmt.Sprint((size + 1023) / 1024)},
				{"Depends", tc.deb.Depends},
				{"Description", wantDesc},
			}
			fields = append(fields, tc.deb.Extra...)
			for _, kv := range fields {
				got, ok := d.Control.Values[kv[0]]
				if kv[1] == "" {
					if ok {
						t.Errorf("control has %s: %q, want none", kv[0], got)
					}
					continue
				}
				// The parser keeps continuation lines as they are, with
				// their leading space and " ." for an empty line.
				if kv[0] == "Description" {
					got = strings.ReplaceAll(strings.ReplaceAll(got, "\n .", "\n"), "\n ", "\n")
					got = strings.TrimSuffix(got, "\n")
				}
				if got != kv[1] {
					t.Errorf("control %s: %q, want %q", kv[0], got, kv[1])
				}
			}
			if got := d.Control.Version.String(); got != tc.deb.Version {
				t.Errorf("parsed Version %q, want %q", got, tc.deb.Version)
			}
			members := slices.Sorted(maps.Keys(d.ArContent))
			if want := []string{"control.tar." + tc.ext, "data.tar." + tc.ext, "debian-binary"}; !slices.Equal(members, want) {
				t.Errorf("ar members %q, want %q", members, want)
			}

			got := make(map[string][]byte)
			dirs := make(map[string]bool)
			for {
				h, err := d.Data.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("data.tar: %v", err)
				}
				if !h.ModTime.Equal(fixed) || h.Uid != 0 || h.Gid != 0 || h.Uname != "root" || h.Gname != "root" {
					t.Errorf("%s: mtime %s, owner %d/%d %s/%s", h.Name, h.ModTime, h.Uid, h.Gid, h.Uname, h.Gname)
				}
				if !strings.HasPrefix(h.Name, "./") {
					t.Errorf("%s: name without ./", h.Name)
				}
				switch h.Typeflag {
				case tar.TypeDir:
					if h.Mode != 0o755 {
						t.Errorf("%s: mode %o", h.Name, h.Mode)
					}
					dirs[h.Name] = true
				case tar.TypeReg:
					if h.Mode != 0o644 {
						t.Errorf("%s: mode %o", h.Name, h.Mode)
					}
					for p := filepath.Dir(h.Name[1:]); ; p = filepath.Dir(p) {
						if !dirs["."+strings.TrimSuffix(p, "/")+"/"] {
							t.Errorf("%s comes before its directory %s", h.Name, p)
						}
						if p == "/" {
							break
						}
					}
					body, err := io.ReadAll(d.Data)
					if err != nil {
						t.Fatalf("data.tar: %s: %v", h.Name, err)
					}
					got[h.Name[1:]] = body
				default:
					t.Errorf("%s: type %c", h.Name, h.Typeflag)
				}
			}
			diffFiles(t, got, want)
		})
	}
}

func TestRPMRead(t *testing.T) {
	t.Parallel()
	for _, tc := range rpmCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := tc.rpm.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			r := bytes.NewReader(b)
			p, err := rpm.Read(r)
			if err != nil {
				t.Fatalf("rpm.Read: %v", err)
			}
			buildTime := tc.rpm.BuildTime
			if buildTime.IsZero() {
				buildTime = fixed
			}
			or := func(s, def string) string {
				if s == "" {
					return def
				}
				return s
			}
			for _, f := range []struct{ name, got, want string }{
				{"Name", p.Name(), tc.rpm.Name},
				{"Epoch", fmt.Sprint(p.Epoch()), fmt.Sprint(tc.rpm.Epoch)},
				{"Version", p.Version(), tc.rpm.Version},
				{"Release", p.Release(), tc.rpm.Release},
				{"Arch", p.Architecture(), tc.rpm.Arch},
				{"OS", p.OperatingSystem(), "linux"},
				{"Summary", p.Summary(), or(tc.rpm.Summary, "synthetic test package "+tc.rpm.Name)},
				{"Description", p.Description(), or(tc.rpm.Description, "synthetic test package "+tc.rpm.Name)},
				{"License", p.License(), or(tc.rpm.License, "MIT")},
				{"URL", p.URL(), or(tc.rpm.URL, "https://example.org/"+tc.rpm.Name)},
				{"Group", strings.Join(p.Groups(), ","), or(tc.rpm.Group, "Unspecified")},
				{"BuildTime", p.BuildTime().UTC().String(), buildTime.String()},
				{"SourceRPM", p.SourceRPM(), tc.rpm.Name + "-" + tc.rpm.Version + "-" + tc.rpm.Release + ".src.rpm"},
			} {
				if f.got != f.want {
					t.Errorf("%s %q, want %q", f.name, f.got, f.want)
				}
			}
			evr := tc.rpm.Version + "-" + tc.rpm.Release
			if tc.rpm.Epoch != 0 {
				evr = fmt.Sprintf("%d:%s", tc.rpm.Epoch, evr)
			}
			deps := func(ds []rpm.Dependency) []string {
				var s []string
				for _, d := range ds {
					s = append(s, fmt.Sprint(d))
				}
				return s
			}
			norm := func(rels []string) []string {
				var s []string
				for _, r := range rels {
					s = append(s, strings.Replace(r, " == ", " = ", 1))
				}
				return s
			}
			for _, f := range []struct {
				name      string
				got, want []string
			}{
				{"Requires", deps(p.Requires()), norm(tc.rpm.Requires)},
				{"Provides", deps(p.Provides()), append(norm(tc.rpm.Provides), tc.rpm.Name+" = "+evr)},
				{"Conflicts", deps(p.Conflicts()), norm(tc.rpm.Conflicts)},
				{"Obsoletes", deps(p.Obsoletes()), norm(tc.rpm.Obsoletes)},
			} {
				if !slices.Equal(f.got, f.want) {
					t.Errorf("%s %q, want %q", f.name, f.got, f.want)
				}
			}

			want := wantFiles(tc.rpm.Name, tc.rpm.Version, tc.rpm.Files, tc.rpm.PayloadSize)
			for _, fi := range p.Files() {
				if fi.Mode() != 0o644 || fi.Owner() != "root" || fi.Group() != "root" || !fi.ModTime().Equal(buildTime) {
					t.Errorf("%s: mode %v, owner %s/%s, mtime %s", fi.Name(), fi.Mode(), fi.Owner(), fi.Group(), fi.ModTime())
				}
				if w, ok := want[fi.Name()]; !ok || fi.Size() != int64(len(w)) {
					t.Errorf("header lists %s of %d bytes", fi.Name(), fi.Size())
				}
			}
			if p.PayloadCompression() != "gzip" || p.PayloadFormat() != "cpio" {
				t.Fatalf("payload %s in %s, want cpio in gzip", p.PayloadFormat(), p.PayloadCompression())
			}
			zr, err := gzip.NewReader(r)
			if err != nil {
				t.Fatalf("payload: %v", err)
			}
			cr := cpio.NewReader(zr)
			got := make(map[string][]byte)
			for {
				h, err := cr.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("payload: %v", err)
				}
				body, err := io.ReadAll(cr)
				if err != nil {
					t.Fatalf("payload: %s: %v", h.Name, err)
				}
				got[h.Name] = body
			}
			diffFiles(t, got, want)
		})
	}
}

func TestDebInvalid(t *testing.T) {
	t.Parallel()
	ok := pkgtest.Deb{Name: "ok", Version: "1.0", Arch: "all"}
	for _, tc := range []struct {
		name  string
		edit  func(*pkgtest.Deb)
		field string // the error must name it
	}{
		{"no name", func(d *pkgtest.Deb) { d.Name = "" }, "Name"},
		{"upper-case name", func(d *pkgtest.Deb) { d.Name = "Foo" }, "Name"},
		{"name with slash", func(d *pkgtest.Deb) { d.Name = "a/b" }, "Name"},
		{"no version", func(d *pkgtest.Deb) { d.Version = "" }, "Version"},
		{"version with space", func(d *pkgtest.Deb) { d.Version = "1 0" }, "Version"},
		{"no arch", func(d *pkgtest.Deb) { d.Arch = "" }, "Arch"},
		{"two-line depends", func(d *pkgtest.Deb) { d.Depends = "a\nb" }, "Depends"},
		{"two-line source", func(d *pkgtest.Deb) { d.Source = "a\nb" }, "Source"},
		{"description without synopsis", func(d *pkgtest.Deb) { d.Description = "\nlong" }, "Description"},
		{"extra with colon", func(d *pkgtest.Deb) { d.Extra = [][2]string{{"A:B", "x"}} }, "Extra"},
		{"extra repeats own field", func(d *pkgtest.Deb) { d.Extra = [][2]string{{"version", "2"}} }, "Extra"},
		{"extra twice", func(d *pkgtest.Deb) { d.Extra = [][2]string{{"Section", "a"}, {"Section", "b"}} }, "Extra"},
		{"extra empty value", func(d *pkgtest.Deb) { d.Extra = [][2]string{{"Section", " "}} }, "Extra"},
		{"bad compression", func(d *pkgtest.Deb) { d.Compression = "bz2" }, "Compression"},
		{"negative payload", func(d *pkgtest.Deb) { d.PayloadSize = -1 }, "PayloadSize"},
		{"file twice", func(d *pkgtest.Deb) { d.Files = map[string][]byte{"/a": nil, "./a": nil} }, "Files"},
		{"file is a directory", func(d *pkgtest.Deb) { d.Files = map[string][]byte{"/a": nil, "/a/b": nil} }, "Files"},
		{"file is root", func(d *pkgtest.Deb) { d.Files = map[string][]byte{"./": nil} }, "Files"},
		{"file with ..", func(d *pkgtest.Deb) { d.Files = map[string][]byte{"/usr/../etc/x": nil} }, "Files"},
		{"file with newline", func(d *pkgtest.Deb) { d.Files = map[string][]byte{"/a\nb": nil} }, "Files"},
		{"payload clashes with file", func(d *pkgtest.Deb) {
			d.Files = map[string][]byte{"/usr/share/ok/payload": nil}
			d.PayloadSize = 1
		}, "Files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := ok
			tc.edit(&d)
			_, err := d.Bytes()
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("Bytes() error %v, want one naming %s", err, tc.field)
			}
			if _, err := d.WriteFile(t.TempDir()); err == nil {
				t.Fatalf("WriteFile succeeded")
			}
		})
	}
	if _, err := ok.Bytes(); err != nil {
		t.Fatalf("valid base Deb: %v", err)
	}
}

func TestRPMInvalid(t *testing.T) {
	t.Parallel()
	ok := pkgtest.RPM{Name: "ok", Version: "1.0", Release: "1", Arch: "noarch"}
	for _, tc := range []struct {
		name  string
		edit  func(*pkgtest.RPM)
		field string
	}{
		{"no name", func(r *pkgtest.RPM) { r.Name = "" }, "Name"},
		{"name with space", func(r *pkgtest.RPM) { r.Name = "a b" }, "Name"},
		{"no version", func(r *pkgtest.RPM) { r.Version = "" }, "Version"},
		{"version with dash", func(r *pkgtest.RPM) { r.Version = "1-2" }, "Version"},
		{"no release", func(r *pkgtest.RPM) { r.Release = "" }, "Release"},
		{"no arch", func(r *pkgtest.RPM) { r.Arch = "" }, "Arch"},
		{"two-line summary", func(r *pkgtest.RPM) { r.Summary = "a\nb" }, "Summary"},
		{"bad operator", func(r *pkgtest.RPM) { r.Requires = []string{"foo => 1"} }, "Requires"},
		{"two words", func(r *pkgtest.RPM) { r.Provides = []string{"foo 1"} }, "Provides"},
		{"empty relation", func(r *pkgtest.RPM) { r.Conflicts = []string{""} }, "Conflicts"},
		{"missing version", func(r *pkgtest.RPM) { r.Obsoletes = []string{"foo >="} }, "Obsoletes"},
		{"negative payload", func(r *pkgtest.RPM) { r.PayloadSize = -1 }, "PayloadSize"},
		{"build time before 1970", func(r *pkgtest.RPM) { r.BuildTime = time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC) }, "BuildTime"},
		{"file twice", func(r *pkgtest.RPM) { r.Files = map[string][]byte{"/a": nil, "a": nil} }, "Files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := ok
			tc.edit(&r)
			_, err := r.Bytes()
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("Bytes() error %v, want one naming %s", err, tc.field)
			}
			if _, err := r.WriteFile(t.TempDir()); err == nil {
				t.Fatalf("WriteFile succeeded")
			}
		})
	}
	if _, err := ok.Bytes(); err != nil {
		t.Fatalf("valid base RPM: %v", err)
	}
}

func TestWriteFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		write  func(string) (string, error)
		bytes  func() ([]byte, error)
		wantAs string
	}{
		{"deb", pkgtest.Deb{Name: "foo", Version: "1:2.0-1", Arch: "amd64"}.WriteFile,
			pkgtest.Deb{Name: "foo", Version: "1:2.0-1", Arch: "amd64"}.Bytes, "foo_2.0-1_amd64.deb"},
		{"rpm", pkgtest.RPM{Name: "foo", Version: "2.0", Release: "1.el9", Arch: "x86_64", Epoch: 1}.WriteFile,
			pkgtest.RPM{Name: "foo", Version: "2.0", Release: "1.el9", Arch: "x86_64", Epoch: 1}.Bytes, "foo-2.0-1.el9.x86_64.rpm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := tc.write(dir)
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(dir, tc.wantAs); p != want {
				t.Errorf("WriteFile wrote %s, want %s", p, want)
			}
			got, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			want, err := tc.bytes()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("file differs from Bytes()")
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o644 {
				t.Errorf("mode %v, want 0644", fi.Mode())
			}
		})
	}
	t.Cleanup(func() {
		// Only the two packages: no temporary files left behind.
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 2 {
			t.Errorf("dir holds %d entries, want 2", len(ents))
		}
	})
}

func TestPayload(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 100, 9000, 1 << 20} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			a, b := pkgtest.Payload("seed", n), pkgtest.Payload("seed", n)
			if len(a) != n || !bytes.Equal(a, b) {
				t.Fatalf("Payload(seed, %d): %d bytes, same twice: %v", n, len(a), bytes.Equal(a, b))
			}
			if n >= 100 {
				if bytes.Equal(a, pkgtest.Payload("other", n)) {
					t.Errorf("seeds seed and other gave the same bytes")
				}
				var z bytes.Buffer
				w := gzip.NewWriter(&z)
				w.Write(a)
				w.Close()
				if z.Len() < n {
					t.Errorf("%d bytes gzip to %d", n, z.Len())
				}
			}
		})
	}
}

// run runs tool with args and returns its standard output. The tool must
// succeed and write nothing on standard error: dpkg and rpm warn there
// about packages they find odd.
func run(t *testing.T, tool string, args ...string) string {
	t.Helper()
	stdout, stderr := runNoisy(t, tool, args...)
	if stderr != "" {
		t.Errorf("%s %s: stderr:\n%s", tool, strings.Join(args, " "), stderr)
	}
	return stdout
}

// runNoisy runs tool with args and returns its standard output and error.
// The tool must succeed.
func runNoisy(t *testing.T, tool string, args ...string) (stdout, stderr string) {
	t.Helper()
	cmd := proc.Command(t.Context(), pkgtest.NeedTool(t, tool), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "HOME=" + t.TempDir(), "TMPDIR=" + t.TempDir()}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", tool, strings.Join(args, " "), err, out.Bytes(), errb.Bytes())
	}
	return out.String(), errb.String()
}

// needRoot skips tests that install packages into a scratch root: dpkg
// and rpm chroot or chown there, which takes root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("installing into a scratch root needs root, and CI runs as root")
		}
		t.Skip("installing into a scratch root needs root")
	}
}

func TestDpkgDeb(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "dpkg-deb")
	for _, tc := range debCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := tc.deb.WriteFile(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			info := run(t, "dpkg-deb", "--info", p)
			for _, want := range []string{
				"new Debian package, version 2.0.",
				"Package: " + tc.deb.Name + "\n",
				"Version: " + tc.deb.Version + "\n",
				"Architecture: " + tc.deb.Arch + "\n",
			} {
				if !strings.Contains(info, want) {
					t.Errorf("dpkg-deb --info lacks %q:\n%s", want, info)
				}
			}
			// --show parses the control file as dpkg does.
			show := run(t, "dpkg-deb", "--show", "--showformat=${Package} ${Version} ${Architecture} ${Installed-Size}\n", p)
			if want := tc.deb.Name + " " + tc.deb.Version + " " + tc.deb.Arch + " "; !strings.HasPrefix(show, want) {
				t.Errorf("dpkg-deb --show: %q, want %q...", show, want)
			}
			contents := run(t, "dpkg-deb", "--contents", p)
			want := wantFiles(tc.deb.Name, tc.deb.Version, tc.deb.Files, tc.deb.PayloadSize)
			for name := range want {
				if !strings.Contains(contents, " ."+name+"\n") {
					t.Errorf("dpkg-deb --contents lacks .%s:\n%s", name, contents)
				}
			}
			if !strings.Contains(contents, "drwxr-xr-x root/root         0 2024-01-01 00:00 ./\n") {
				t.Errorf("dpkg-deb --contents lacks ./ owned by root at 2024-01-01:\n%s", contents)
			}
			root := t.TempDir()
			run(t, "dpkg-deb", "--extract", p, root)
			got := make(map[string][]byte)
			err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				b, err := os.ReadFile(path)
				got[strings.TrimPrefix(path, root)] = b
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			diffFiles(t, got, want)
		})
	}
}

// TestAptFtparchive checks that apt's own .deb reader, which builds
// Packages indices, accepts every compression.
func TestAptFtparchive(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "apt-ftparchive")
	dir := t.TempDir()
	for _, tc := range debCases() {
		if _, err := tc.deb.WriteFile(dir); err != nil {
			t.Fatal(err)
		}
	}
	out := run(t, "apt-ftparchive", "packages", dir)
	for _, tc := range debCases() {
		if !strings.Contains(out, "Package: "+tc.deb.Name+"\n") {
			t.Errorf("apt-ftparchive packages lacks %s:\n%s", tc.deb.Name, out)
		}
	}
}

// TestDpkgInstall installs every case into a scratch root, checks the
// files against their md5sums with dpkg --verify, and removes them again.
func TestDpkgInstall(t *testing.T) {
	t.Parallel()
	needRoot(t)
	pkgtest.NeedTool(t, "dpkg")
	pkgtest.NeedTool(t, "dpkg-query")
	dir, root := t.TempDir(), t.TempDir()
	admin := filepath.Join(root, "var/lib/dpkg")
	for _, d := range []string{"info", "updates"} {
		if err := os.MkdirAll(filepath.Join(admin, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"status", "available"} {
		if err := os.WriteFile(filepath.Join(admin, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var debs, names []string
	for _, tc := range debCases() {
		p, err := tc.deb.WriteFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		debs = append(debs, p)
		names = append(names, tc.deb.Name)
	}
	// The packages depend on ones the scratch root lacks, one is for
	// arm64, and dpkg says so on standard error.
	runNoisy(t, "dpkg", append([]string{"--root=" + root, "--force-depends,architecture", "--install"}, debs...)...)
	for _, tc := range debCases() {
		for name, body := range wantFiles(tc.deb.Name, tc.deb.Version, tc.deb.Files, tc.deb.PayloadSize) {
			got, err := os.ReadFile(filepath.Join(root, name))
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("installed %s: %d bytes, want %d (%v)", name, len(got), len(body), err)
			}
		}
	}
	if out := run(t, "dpkg", "--root="+root, "--verify"); out != "" {
		t.Errorf("dpkg --verify:\n%s", out)
	}
	status := run(t, "dpkg-query", "--root="+root, "--show", "--showformat=${db:Status-Abbrev}${Package}\n")
	for _, n := range names {
		if !strings.Contains(status, "ii "+n+"\n") {
			t.Errorf("dpkg-query --show lacks ii %s:\n%s", n, status)
		}
	}
	runNoisy(t, "dpkg", append([]string{"--root=" + root, "--force-depends", "--remove"}, names...)...)
	if _, err := os.Stat(filepath.Join(root, "usr")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after dpkg --remove, %s/usr: %v, want it gone", root, err)
	}
}

// TestRPMInstall installs every case into a scratch root, checks the files
// with rpm --verify, and erases them again.
func TestRPMInstall(t *testing.T) {
	t.Parallel()
	needRoot(t)
	pkgtest.NeedTool(t, "rpm")
	dir, root := t.TempDir(), t.TempDir()
	var rpms, names []string
	for _, tc := range rpmCases() {
		p, err := tc.rpm.WriteFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		rpms = append(rpms, p)
		names = append(names, tc.rpm.Name)
	}
	// Debian's rpm keeps its database in ~/.rpmdb; HOME differs per run.
	run(t, "rpm", "--root", root, "--dbpath", "/var/lib/rpm", "--initdb")
	// Debian's rpm warns on standard error that apt should install
	// packages, not rpm.
	runNoisy(t, "rpm", append([]string{"--root", root, "--dbpath", "/var/lib/rpm", "--install", "--nodeps", "--nosignature"}, rpms...)...)
	for _, tc := range rpmCases() {
		for name, body := range wantFiles(tc.rpm.Name, tc.rpm.Version, tc.rpm.Files, tc.rpm.PayloadSize) {
			got, err := os.ReadFile(filepath.Join(root, name))
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("installed %s: %d bytes, want %d (%v)", name, len(got), len(body), err)
			}
		}
	}
	// Digest, size, mode, owner and mtime of every file.
	if out := run(t, "rpm", append([]string{"--root", root, "--dbpath", "/var/lib/rpm", "--verify", "--nodeps"}, names...)...); out != "" {
		t.Errorf("rpm --verify:\n%s", out)
	}
	runNoisy(t, "rpm", append([]string{"--root", root, "--dbpath", "/var/lib/rpm", "--erase", "--nodeps"}, names...)...)
	if out, _ := runNoisy(t, "rpm", "--root", root, "--dbpath", "/var/lib/rpm", "--query", "--all"); out != "" {
		t.Errorf("after rpm --erase, installed:\n%s", out)
	}
}

func TestRPMTools(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "rpm")
	pkgtest.NeedTool(t, "rpmkeys")
	pkgtest.NeedTool(t, "rpm2archive")
	for _, tc := range rpmCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p, err := tc.rpm.WriteFile(dir)
			if err != nil {
				t.Fatal(err)
			}
			info := run(t, "rpm", "-qp", "--nosignature", "-i", p)
			for _, want := range []string{
				"Name        : " + tc.rpm.Name + "\n",
				"Version     : " + tc.rpm.Version + "\n",
				"Release     : " + tc.rpm.Release + "\n",
				"Architecture: " + tc.rpm.Arch + "\n",
			} {
				if !strings.Contains(info, want) {
					t.Errorf("rpm -qpi lacks %q:\n%s", want, info)
				}
			}
			evr := tc.rpm.Version + "-" + tc.rpm.Release
			if tc.rpm.Epoch != 0 {
				evr = fmt.Sprintf("%d:%s", tc.rpm.Epoch, evr)
			}
			nevra := run(t, "rpm", "-qp", "--nosignature", "--qf", "%{NAME}-%{EVR}.%{ARCH}", p)
			if want := tc.rpm.Name + "-" + evr + "." + tc.rpm.Arch; nevra != want {
				t.Errorf("rpm -qp --qf NEVRA: %q, want %q", nevra, want)
			}
			provides := run(t, "rpm", "-qp", "--nosignature", "--provides", p)
			if want := tc.rpm.Name + " = " + evr + "\n"; !strings.Contains(provides, want) {
				t.Errorf("rpm -qp --provides lacks %q:\n%s", want, provides)
			}

			sig := run(t, "rpmkeys", "--checksig", "--verbose", p)
			for _, want := range []string{"Header SHA256 digest: OK", "Payload SHA256 digest: OK"} {
				if !strings.Contains(sig, want) {
					t.Errorf("rpmkeys --checksig --verbose lacks %q:\n%s", want, sig)
				}
			}
			if sig := run(t, "rpmkeys", "--checksig", p); sig != p+": digests OK\n" {
				t.Errorf("rpmkeys --checksig: %q, want %q", sig, p+": digests OK\n")
			}

			// rpm2archive unpacks the payload with rpm's own cpio reader.
			run(t, "rpm2archive", p)
			f, err := os.Open(p + ".tgz")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			zr, err := gzip.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			tr := tar.NewReader(zr)
			got := make(map[string][]byte)
			for {
				h, err := tr.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				got[strings.TrimPrefix(h.Name, ".")] = b
			}
			diffFiles(t, got, wantFiles(tc.rpm.Name, tc.rpm.Version, tc.rpm.Files, tc.rpm.PayloadSize))
		})
	}
}

var sink []byte

func BenchmarkDeb(b *testing.B) {
	for _, bc := range []struct {
		name string
		deb  pkgtest.Deb
	}{
		{"9KiB gz", pkgtest.Deb{Name: "bench", Version: "1.0", Arch: "amd64", PayloadSize: 9 << 10}},
		{"9KiB xz", pkgtest.Deb{Name: "bench", Version: "1.0", Arch: "amd64", PayloadSize: 9 << 10, Compression: "xz"}},
		{"9KiB zst", pkgtest.Deb{Name: "bench", Version: "1.0", Arch: "amd64", PayloadSize: 9 << 10, Compression: "zst"}},
		{"1MiB gz", pkgtest.Deb{Name: "bench", Version: "1.0", Arch: "amd64", PayloadSize: 1 << 20}},
		{"1MiB xz", pkgtest.Deb{Name: "bench", Version: "1.0", Arch: "amd64", PayloadSize: 1 << 20, Compression: "xz"}},
		{"1MiB zst", pkgtest.Deb{Name: "bench", Version: "1.0", Arch: "amd64", PayloadSize: 1 << 20, Compression: "zst"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if sink, err = bc.deb.Bytes(); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(sink)))
		})
	}
}

func BenchmarkRPM(b *testing.B) {
	for _, bc := range []struct {
		name string
		rpm  pkgtest.RPM
	}{
		{"9KiB", pkgtest.RPM{Name: "bench", Version: "1.0", Release: "1", Arch: "x86_64", PayloadSize: 9 << 10}},
		{"1MiB", pkgtest.RPM{Name: "bench", Version: "1.0", Release: "1", Arch: "x86_64", PayloadSize: 1 << 20}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if sink, err = bc.rpm.Bytes(); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(sink)))
		})
	}
}
