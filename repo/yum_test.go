package repo

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/pkgtest"
)

// rpmTestNow is the fixed clock of the test repositories.
var rpmTestNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newTestRPM(root string, k *Key) *RPM {
	r := NewRPM(root, k, discard)
	r.now = func() time.Time { return rpmTestNow }
	return r
}

// sampleRPMs vary what repodata shows: epochs, versioned relations, rich
// and file dependencies, files in primary and not, noarch and x86_64,
// multi-line and non-ASCII text.
func sampleRPMs() []pkgtest.RPM {
	return []pkgtest.RPM{
		{Name: "hello", Version: "1.0", Release: "1", Arch: "x86_64", Epoch: 2,
			Summary: "Say hello", Description: "Line one.\nLine two & <three>.\n\nGrüße, 世界.",
			Requires:  []string{"/bin/sh", "glibc >= 2.17", "hello-data = 2:1.0-1", "/etc/hello.conf", "/usr/share/hello/x", "(foo or bar)"},
			Provides:  []string{"hello-cmd", "webserver = 3"},
			Conflicts: []string{"other < 2"}, Obsoletes: []string{"oldhello <= 0.9"},
			Files: map[string][]byte{"/etc/hello.conf": []byte("x"), "/usr/bin/hello": []byte("bin"),
				"/usr/share/hello/x": []byte("y"), "/opt/sbin/z": nil}},
		{Name: "hello-data", Version: "1.0", Release: "1", Arch: "noarch", Epoch: 2, PayloadSize: 40000},
		{Name: "libfoo", Version: "2.0~rc1", Release: "3.el9", Arch: "x86_64", License: "LGPL-2.1-or-later",
			Requires: []string{"rpmlib(CompressedFileNames) <= 3.0.4-1", "libc.so.6()(64bit)", "libc.so.6(GLIBC_2.2.5)(64bit)",
				"libc.so.6(GLIBC_2.17)(64bit)", "foo-cap = 1.0", "bar >= 1", "bar >= 1", "/usr/sbin/foo-helper", "/usr/lib/sendmail"},
			Provides: []string{"libfoo.so.1()(64bit)", "foo-cap = 1.0"},
			Files: map[string][]byte{"/usr/lib64/libfoo.so.1": []byte("elf"), "/usr/sbin/foo-helper": []byte("#!"),
				"/usr/lib/sendmail": []byte("mta"), "/opt/foo/bin/tool": []byte("t"), "/usr/share/doc/libfoo/NEWS": []byte("news")}},
		{Name: "gcc-c++", Version: "13.2.1", Release: "1", Arch: "x86_64", Requires: []string{"libfoo >= 2.0~rc1-3.el9", "hello-cmd"}},
		{Name: "Zeta", Version: "0.1^git1", Release: "0.1", Arch: "noarch", Group: "Development/Tools", URL: "https://example.org/zeta?a=1&b=2"},
	}
}

func writeRPMs(t testing.TB, dir string, rpms []pkgtest.RPM) []string {
	t.Helper()
	var paths []string
	for _, r := range rpms {
		p, err := r.WriteFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// publishSample publishes sampleRPMs into a new repository signed with k.
func publishSample(t testing.TB, k *Key) (root string) {
	t.Helper()
	root = t.TempDir()
	in := writeRPMs(t, t.TempDir(), sampleRPMs())
	if _, err := newTestRPM(root, k).Publish(t.Context(), in, PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	return root
}

// readRepodata reads the uncompressed XML of one kind that repomd.xml names.
func readRepodata(t testing.TB, root, kind string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var md repomdDoc
	if err := xml.Unmarshal(data, &md); err != nil {
		t.Fatal(err)
	}
	for _, d := range md.Data {
		if d.Type != kind {
			continue
		}
		f, err := os.Open(filepath.Join(root, filepath.FromSlash(d.Location.Href)))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	t.Fatalf("%s: repomd.xml has no %s", root, kind)
	return nil
}

type primaryDoc struct {
	Count    int              `xml:"packages,attr"`
	Packages []primaryPackage `xml:"package"`
}

type filelistsDoc struct {
	Count    int                `xml:"packages,attr"`
	Packages []filelistsPackage `xml:"package"`
}

type filelistsPackage struct {
	PkgID   string     `xml:"pkgid,attr"`
	Name    string     `xml:"name,attr"`
	Arch    string     `xml:"arch,attr"`
	Version xmlVersion `xml:"version"`
	Files   []xmlFile  `xml:"file"`
}

func (p *filelistsPackage) id() string { return p.PkgID }

type otherDoc struct {
	Count    int            `xml:"packages,attr"`
	Packages []otherPackage `xml:"package"`
}

type otherPackage struct {
	PkgID      string     `xml:"pkgid,attr"`
	Name       string     `xml:"name,attr"`
	Arch       string     `xml:"arch,attr"`
	Version    xmlVersion `xml:"version"`
	Changelogs []struct {
		Author string `xml:"author,attr"`
		Date   int64  `xml:"date,attr"`
		Text   string `xml:",chardata"`
	} `xml:"changelog"`
}

func (p *otherPackage) id() string { return p.PkgID }

func decodeXML(t testing.TB, data []byte, v any) {
	t.Helper()
	if err := xml.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

// byPkgID maps each package of a decoded document (as JSON, which
// reflect.DeepEqual and error messages both handle well) by its checksum.
func byPkgID[P any](t testing.TB, pkgs []P, id func(*P) string) map[string]string {
	t.Helper()
	out := make(map[string]string, len(pkgs))
	for i := range pkgs {
		b, err := json.MarshalIndent(&pkgs[i], "", " ")
		if err != nil {
			t.Fatal(err)
		}
		out[id(&pkgs[i])] = string(b)
	}
	return out
}

func comparePackages(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for id, w := range want {
		if g, ok := got[id]; !ok {
			t.Errorf("%s: package %s missing", what, id)
		} else if g != w {
			t.Errorf("%s: package %s differs:\n--- sluice\n%s\n--- createrepo_c\n%s", what, id, g, w)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("%s: package %s not in createrepo_c's", what, id)
		}
	}
}

// rpmbuildRich builds testdata/rpm/rich.spec with rpmbuild: a package with
// what synthetic ones cannot carry (directories, ghost and config files,
// weak and scriptlet dependencies, rpmlib() requires, a changelog longer
// than createrepo_c keeps with two entries of one day, and a signature
// header with room reserved for signatures).
func rpmbuildRich(t testing.TB) string {
	t.Helper()
	rpmbuild := pkgtest.NeedTool(t, "rpmbuild")
	spec, err := filepath.Abs(filepath.Join("testdata", "rpm", "rich.spec"))
	if err != nil {
		t.Fatal(err)
	}
	top := t.TempDir()
	out, err := run(t.Context(), top, rpmbuild, "--define", "_topdir "+top, "--define", "_build_id_links none",
		"--define", "_buildhost sluice-test", "--quiet", "-bb", spec)
	if err != nil {
		t.Fatalf("rpmbuild: %v\n%s", err, out)
	}
	return filepath.Join(top, "RPMS", "noarch", "rich-3.1-2.noarch.rpm")
}

// TestRPMParityWithCreaterepo runs createrepo_c on the packages sluice
// published (the same signed bytes) and compares every package entry of
// primary, filelists and other, all but the file time (createrepo_c
// takes the file's mtime).
func TestRPMParityWithCreaterepo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		inputs func(t *testing.T) []string
	}{
		{"synthetic", func(t *testing.T) []string { return writeRPMs(t, t.TempDir(), sampleRPMs()) }},
		{"rpmbuild", func(t *testing.T) []string { return []string{rpmbuildRich(t)} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			createrepo := pkgtest.NeedTool(t, "createrepo_c")
			in := tt.inputs(t)
			root := t.TempDir()
			if _, err := newTestRPM(root, mustKey(t)).Publish(t.Context(), in, PublishOptions{}); err != nil {
				t.Fatal(err)
			}
			cr := t.TempDir()
			copyTree(t, filepath.Join(root, "Packages"), filepath.Join(cr, "Packages"))
			if out, err := run(t.Context(), cr, createrepo, "--no-database", "."); err != nil {
				t.Fatalf("createrepo_c: %v\n%s", err, out)
			}
			compareRepodata(t, root, cr, len(in))
		})
	}
}

func compareRepodata(t *testing.T, root, cr string, n int) {
	var ours, theirs primaryDoc
	decodeXML(t, readRepodata(t, root, "primary"), &ours)
	decodeXML(t, readRepodata(t, cr, "primary"), &theirs)
	if ours.Count != n || ours.Count != theirs.Count || len(ours.Packages) != ours.Count {
		t.Errorf("primary.xml: %d (%d) packages, createrepo_c %d, want %d", ours.Count, len(ours.Packages), theirs.Count, n)
	}
	for _, doc := range []*primaryDoc{&ours, &theirs} {
		for i := range doc.Packages {
			doc.Packages[i].Time.File = 0
		}
	}
	primaryID := func(p *primaryPackage) string { return p.Checksum.Value }
	comparePackages(t, "primary", byPkgID(t, ours.Packages, primaryID), byPkgID(t, theirs.Packages, primaryID))

	var oursF, theirsF filelistsDoc
	decodeXML(t, readRepodata(t, root, "filelists"), &oursF)
	decodeXML(t, readRepodata(t, cr, "filelists"), &theirsF)
	if oursF.Count != theirsF.Count {
		t.Errorf("filelists.xml: %d packages, createrepo_c %d", oursF.Count, theirsF.Count)
	}
	comparePackages(t, "filelists", byPkgID(t, oursF.Packages, (*filelistsPackage).id), byPkgID(t, theirsF.Packages, (*filelistsPackage).id))

	var oursO, theirsO otherDoc
	decodeXML(t, readRepodata(t, root, "other"), &oursO)
	decodeXML(t, readRepodata(t, cr, "other"), &theirsO)
	if oursO.Count != theirsO.Count {
		t.Errorf("other.xml: %d packages, createrepo_c %d", oursO.Count, theirsO.Count)
	}
	comparePackages(t, "other", byPkgID(t, oursO.Packages, (*otherPackage).id), byPkgID(t, theirsO.Packages, (*otherPackage).id))
}

func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// rpmdb makes an rpm database that trusts k.
func rpmdb(t testing.TB, rpmkeys string, k *Key) string {
	t.Helper()
	db := t.TempDir()
	pub := filepath.Join(t.TempDir(), "key.asc")
	writePublic(t, k, pub)
	if out, err := run(t.Context(), db, rpmkeys, "--dbpath", db, "--import", pub); err != nil {
		t.Fatalf("rpmkeys --import: %v\n%s", err, out)
	}
	return db
}

func poolFiles(t testing.TB, root string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "Packages", "*", "*.rpm"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no packages in %s: %v", root, err)
	}
	return files
}

// TestRPMChecksig checks every published package with rpm's own
// verification, trusting the repository's key and then another one.
func TestRPMChecksig(t *testing.T) {
	t.Parallel()
	synthetic := func(t *testing.T) []string { return writeRPMs(t, t.TempDir(), sampleRPMs()) }
	tests := []struct {
		name   string
		key    func() (*Key, error)
		algo   string
		inputs func(t *testing.T) []string
	}{
		{"rsa4096", rsaTestKey, "RSA/SHA256", synthetic},
		{"ed25519", testKey, "EdDSA/SHA256", synthetic},
		// rpmbuild reserves room in the signature header: the signed
		// package keeps its size and header range.
		{"ed25519 rpmbuild", testKey, "EdDSA/SHA256", func(t *testing.T) []string { return []string{rpmbuildRich(t)} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rpmkeys := pkgtest.NeedTool(t, "rpmkeys")
			in := tt.inputs(t)
			k, err := tt.key()
			if err != nil {
				t.Fatal(err)
			}
			root := t.TempDir()
			if _, err := newTestRPM(root, k).Publish(t.Context(), in, PublishOptions{}); err != nil {
				t.Fatal(err)
			}
			other, err := newTestKey(Ed25519)
			if err != nil {
				t.Fatal(err)
			}
			trusted, untrusted := rpmdb(t, rpmkeys, k), rpmdb(t, rpmkeys, other)
			keyID := strings.ToLower(k.Fingerprint()[len(k.Fingerprint())-8:])
			published := poolFiles(t, root)
			if len(published) != len(in) {
				t.Fatalf("%d packages published, want %d", len(published), len(in))
			}
			if strings.Contains(tt.name, "rpmbuild") {
				a, errA := os.Stat(in[0])
				b, errB := os.Stat(published[0])
				if errA != nil || errB != nil || a.Size() != b.Size() {
					t.Errorf("signing into reserved space changed the size: %v %v", a, b)
				}
			}
			for _, p := range published {
				out, err := run(t.Context(), root, rpmkeys, "--dbpath", trusted, "--checksig", "-v", p)
				for _, want := range []string{
					fmt.Sprintf("Header V4 %s Signature, key ID %s: OK", tt.algo, keyID),
					fmt.Sprintf("\n    V4 %s Signature, key ID %s: OK", tt.algo, keyID),
					"Header SHA256 digest: OK", "Payload SHA256 digest: OK",
				} {
					if !strings.Contains(out, want) {
						t.Errorf("%s: rpmkeys --checksig -v does not say %q:\n%s", p, want, out)
					}
				}
				if err != nil || strings.Contains(out, "NOT OK") || strings.Contains(out, "NOKEY") {
					t.Errorf("%s: rpmkeys --checksig: %v\n%s", p, err, out)
				}
				out, err = run(t.Context(), root, rpmkeys, "--dbpath", untrusted, "--checksig", p)
				if err == nil || !strings.Contains(out, "SIGNATURES NOT OK") {
					t.Errorf("%s: rpmkeys --checksig with another key: %v\n%s", p, err, out)
				}
			}
		})
	}
}

// dnfEnv is a dnf configuration with an empty installroot and its own
// cache, trusting only what the repository's gpgkey names.
type dnfEnv struct {
	dnf, conf, root string
}

func newDnfEnv(t testing.TB, dnf, repoRoot, gpgKey string) *dnfEnv {
	t.Helper()
	dir := t.TempDir()
	reposd := filepath.Join(dir, "repos.d")
	if err := os.MkdirAll(reposd, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "dnf.conf")
	mainConf := fmt.Sprintf("[main]\nreposdir=%s\ncachedir=%s\ngpgcheck=1\nrepo_gpgcheck=1\nkeepcache=0\n",
		reposd, filepath.Join(dir, "cache"))
	repo := fmt.Sprintf("[sluice]\nname=sluice test\nbaseurl=file://%s\nenabled=1\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file://%s\nmetadata_expire=0\n",
		repoRoot, gpgKey)
	if err := os.WriteFile(conf, []byte(mainConf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(reposd, "sluice.repo"), []byte(repo), 0o644); err != nil {
		t.Fatal(err)
	}
	return &dnfEnv{dnf: dnf, conf: conf, root: filepath.Join(dir, "root")}
}

// run runs dnf against the empty installroot: --releasever because there is
// no system-release package to take it from, -y to accept the gpgkey.
func (e *dnfEnv) run(ctx context.Context, args ...string) (string, error) {
	base := []string{"-c", e.conf, "--installroot", e.root, "--releasever=1", "--noplugins",
		"--setopt=install_weak_deps=False", "-y"}
	return run(ctx, filepath.Dir(e.conf), e.dnf, append(base, args...)...)
}

// TestRPMDnf has dnf read a published repository with gpgcheck and
// repo_gpgcheck, and refuse one whose repomd.xml or packages do not match
// their signatures.
func TestRPMDnf(t *testing.T) {
	t.Parallel()
	dnf := pkgtest.NeedTool(t, "dnf")
	k := mustKey(t)
	root := publishSample(t, k)
	keyFile := filepath.Join(root, PublicKeyFile)

	t.Run("reads", func(t *testing.T) {
		t.Parallel()
		env := newDnfEnv(t, dnf, root, keyFile)
		if out, err := env.run(t.Context(), "makecache"); err != nil {
			t.Fatalf("dnf makecache: %v\n%s", err, out)
		}
		out, err := env.run(t.Context(), "repoquery", "--repo", "sluice")
		if err != nil {
			t.Fatalf("dnf repoquery: %v\n%s", err, out)
		}
		for _, p := range sampleRPMs() {
			if nevra := fmt.Sprintf("%s-%d:%s-%s.%s", p.Name, p.Epoch, p.Version, p.Release, p.Arch); !strings.Contains(out, nevra) {
				t.Errorf("dnf repoquery does not list %s:\n%s", nevra, out)
			}
		}
		dest := t.TempDir()
		if out, err := env.run(t.Context(), "install", "--downloadonly", "--destdir", dest, "hello-data"); err != nil {
			t.Fatalf("dnf install --downloadonly: %v\n%s", err, out)
		}
		got, err := os.ReadFile(filepath.Join(dest, "hello-data-1.0-1.noarch.rpm"))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(root, "Packages/h/hello-data-1.0-1.noarch.rpm"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Error("dnf downloaded other bytes than the published package")
		}
	})

	t.Run("refuses changed repomd.xml", func(t *testing.T) {
		t.Parallel()
		bad := t.TempDir()
		copyTree(t, root, bad)
		md := filepath.Join(bad, "repodata", "repomd.xml")
		data, err := os.ReadFile(md)
		if err != nil {
			t.Fatal(err)
		}
		// One byte: a digit of the revision, so the XML stays valid.
		i := bytes.Index(data, []byte("<revision>")) + len("<revision>")
		data[i] = "12"[(data[i]-'0')%2]
		if err := os.WriteFile(md, data, 0o644); err != nil {
			t.Fatal(err)
		}
		env := newDnfEnv(t, dnf, bad, filepath.Join(bad, PublicKeyFile))
		out, err := env.run(t.Context(), "makecache")
		if err == nil || !strings.Contains(out, "repomd.xml GPG signature verification error") {
			t.Errorf("dnf makecache accepted a changed repomd.xml: %v\n%s", err, out)
		}
	})

	t.Run("refuses packages signed by another key", func(t *testing.T) {
		t.Parallel()
		// repomd.xml signed by the trusted key, the packages by another.
		other, err := newTestKey(Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		bad := publishSample(t, other)
		md, err := os.ReadFile(filepath.Join(bad, "repodata", "repomd.xml"))
		if err != nil {
			t.Fatal(err)
		}
		var asc bytes.Buffer
		if err := k.DetachSign(&asc, bytes.NewReader(md)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bad, "repodata", "repomd.xml.asc"), asc.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		env := newDnfEnv(t, dnf, bad, keyFile)
		if out, err := env.run(t.Context(), "makecache"); err != nil {
			t.Fatalf("dnf makecache: %v\n%s", err, out)
		}
		out, err := env.run(t.Context(), "install", "--downloadonly", "--destdir", t.TempDir(), "hello-data")
		if err == nil || !strings.Contains(out, "GPG check FAILED") {
			t.Errorf("dnf accepted a package signed by an unknown key: %v\n%s", err, out)
		}
	})
}

// TestRPMPublishSemantics adds to, replaces in and refuses changes to one
// repository, checking that a refused publish changes nothing.
func TestRPMPublishSemantics(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	k := mustKey(t)
	root := t.TempDir()
	repo := newTestRPM(root, k)
	kr := keyring(t, k)
	in := t.TempDir()
	first := writeRPMs(t, in, sampleRPMs()[:2])

	sum, err := repo.Publish(ctx, first, PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Added != 2 || sum.Packages != 2 || sum.Generation != 1 {
		t.Errorf("first publish: %+v", sum)
	}

	// Adding keeps what is there.
	more := writeRPMs(t, t.TempDir(), sampleRPMs()[2:])
	if sum, err = repo.Publish(ctx, more, PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if sum.Added != 3 || sum.Packages != 5 {
		t.Errorf("second publish: %+v", sum)
	}
	assertPrimary(t, root, "Zeta", "gcc-c++", "hello", "hello-data", "libfoo") // by NVRA, bytewise
	if probs := verifyRPM(ctx, root, kr, false); len(probs) > 0 {
		t.Fatalf("verify: %v", probs)
	}

	// Republishing the same files changes nothing.
	before := treeHash(t, root)
	if sum, err = repo.Publish(ctx, append(first, more...), PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if sum.Unchanged != 5 || sum.Added+sum.Replaced != 0 || sum.Generation != 2 {
		t.Errorf("republish: %+v", sum)
	}
	if treeHash(t, root) != before {
		t.Error("republishing the same packages changed the repository")
	}

	// Same NEVRA, other bytes.
	changed := sampleRPMs()[1]
	changed.Description = "rebuilt"
	changedPath := writeRPMs(t, t.TempDir(), []pkgtest.RPM{changed})
	_, err = repo.Publish(ctx, changedPath, PublishOptions{})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), changedPath[0]) {
		t.Errorf("publish of a changed package: %v, want ErrConflict naming %s", err, changedPath[0])
	}
	if treeHash(t, root) != before {
		t.Error("a refused publish changed the repository")
	}
	if sum, err = repo.Publish(ctx, changedPath, PublishOptions{Replace: true}); err != nil {
		t.Fatal(err)
	}
	if sum.Replaced != 1 || sum.Packages != 5 {
		t.Errorf("replace: %+v", sum)
	}
	var doc primaryDoc
	decodeXML(t, readRepodata(t, root, "primary"), &doc)
	for _, p := range doc.Packages {
		if p.Name == "hello-data" && p.Description != "rebuilt" {
			t.Errorf("hello-data not replaced: %q", p.Description)
		}
	}
	if probs := verifyRPM(ctx, root, kr, false); len(probs) > 0 {
		t.Fatalf("verify after replace: %v", probs)
	}
}

func assertPrimary(t testing.TB, root string, names ...string) {
	t.Helper()
	var doc primaryDoc
	decodeXML(t, readRepodata(t, root, "primary"), &doc)
	var got []string
	for _, p := range doc.Packages {
		got = append(got, p.Name)
	}
	if !reflect.DeepEqual(got, names) {
		t.Errorf("primary.xml lists %q, want %q", got, names)
	}
}

// TestRPMRefusesBadInput publishes bad files next to good ones: each
// publish fails naming the bad file and leaves the repository as it was.
func TestRPMRefusesBadInput(t *testing.T) {
	t.Parallel()
	root := publishSample(t, mustKey(t))
	before := treeHash(t, root)
	good := rpmBytes(t, pkgtest.RPM{Name: "newgood", Version: "1", Release: "1", Arch: "x86_64", PayloadSize: 3000})
	tests := []struct {
		name, file string
		data       []byte
		want       string
	}{
		{"truncated", "cut-1-1.x86_64.rpm", good[:len(good)-100], "truncated .rpm"},
		{"not an rpm", "text-1-1.x86_64.rpm", []byte("#!/bin/sh\necho not a package\n"), "not an .rpm"},
		{"slash in name", "evil-1-1.x86_64.rpm", setRPMString(t, good, rpmTagName, "../evil"), `bad name "../evil"`},
		{"dot-dot in name", "dots-1-1.x86_64.rpm", rpmBytes(t, pkgtest.RPM{Name: "a..b", Version: "1", Release: "1", Arch: "x86_64"}), `bad name "a..b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: each case checks the one repository is unchanged.
			dir := t.TempDir()
			bad := filepath.Join(dir, tt.file)
			if err := os.WriteFile(bad, tt.data, 0o644); err != nil {
				t.Fatal(err)
			}
			goodPath := filepath.Join(dir, "newgood-1-1.x86_64.rpm")
			if err := os.WriteFile(goodPath, good, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := newTestRPM(root, mustKey(t)).Publish(t.Context(), []string{goodPath, bad}, PublishOptions{})
			if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("publish: %v; want an error naming %s and saying %q", err, bad, tt.want)
			}
			if treeHash(t, root) != before {
				t.Error("a refused publish changed the repository")
			}
		})
	}
}

// TestRPMVerifyFindsProblems breaks a published repository in each way and
// checks that verifyRPM names what broke.
func TestRPMVerifyFindsProblems(t *testing.T) {
	t.Parallel()
	k := mustKey(t)
	kr := keyring(t, k)
	tmpl := publishSample(t, k)
	if probs := verifyRPM(t.Context(), tmpl, kr, false); len(probs) > 0 {
		t.Fatalf("verify of a good repository: %v", probs)
	}
	const pkg = "Packages/l/libfoo-2.0~rc1-3.el9.x86_64.rpm"
	primaryHref := func(root string) string {
		m, _ := filepath.Glob(filepath.Join(root, "repodata", "*-primary.xml.gz"))
		rel, _ := filepath.Rel(root, m[0])
		return rel
	}
	tests := []struct {
		name   string
		damage func(t *testing.T, root string)
		path   func(root string) string
		want   string
	}{
		{"flipped byte in a package", func(t *testing.T, root string) { flipByte(t, filepath.Join(root, pkg), -10) },
			func(string) string { return pkg }, "sha256"},
		{"flipped byte in a package header", func(t *testing.T, root string) { flipByte(t, filepath.Join(root, pkg), 2000) },
			func(string) string { return pkg }, "signature"},
		{"missing package", func(t *testing.T, root string) {
			if err := os.Remove(filepath.Join(root, pkg)); err != nil {
				t.Fatal(err)
			}
		}, func(string) string { return pkg }, "no such file"},
		{"bad repomd signature", func(t *testing.T, root string) {
			other, err := newTestKey(Ed25519)
			if err != nil {
				t.Fatal(err)
			}
			md, _ := os.ReadFile(filepath.Join(root, "repodata", "repomd.xml"))
			var asc bytes.Buffer
			if err := other.DetachSign(&asc, bytes.NewReader(md)); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "repodata", "repomd.xml.asc"), asc.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}, func(string) string { return "repodata/repomd.xml.asc" }, "signature"},
		{"changed primary.xml.gz", func(t *testing.T, root string) { flipByte(t, filepath.Join(root, primaryHref(root)), 30) },
			primaryHref, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			copyTree(t, tmpl, root)
			tt.damage(t, root)
			probs := verifyRPM(t.Context(), root, kr, false)
			want := filepath.ToSlash(tt.path(root))
			found := false
			for _, p := range probs {
				if p.Path == want && strings.Contains(p.Err.Error(), tt.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("verifyRPM = %v; want a problem with %s saying %q", probs, want, tt.want)
			}
		})
	}
}

// BenchmarkRPMAddOne adds one package to a repository of 2,000: parse and
// sign one package, read the state, write repodata for all.
func BenchmarkRPMAddOne(b *testing.B) {
	k, err := testKey()
	if err != nil {
		b.Fatal(err)
	}
	root, in := b.TempDir(), b.TempDir()
	var paths []string
	for i := range 2000 {
		p, err := pkgtest.RPM{Name: fmt.Sprintf("pkg%04d", i), Version: "1.0", Release: "1", Arch: "x86_64",
			Requires: []string{"/bin/sh", "glibc >= 2.17"}, Files: map[string][]byte{
				"/usr/bin/tool" + fmt.Sprint(i): []byte("x"), "/usr/share/doc/pkg/README" + fmt.Sprint(i): []byte("y")}}.WriteFile(in)
		if err != nil {
			b.Fatal(err)
		}
		paths = append(paths, p)
	}
	repo := newTestRPM(root, k)
	if _, err := repo.Publish(b.Context(), paths, PublishOptions{}); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		b.StopTimer()
		p, err := pkgtest.RPM{Name: fmt.Sprintf("new%06d", i), Version: "1.0", Release: "1", Arch: "x86_64"}.WriteFile(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		i++
		b.StartTimer()
		if _, err := repo.Publish(b.Context(), []string{p}, PublishOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
