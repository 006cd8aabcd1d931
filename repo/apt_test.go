package repo

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"pault.ag/go/debian/control"

	"github.com/sluice-ci/sluice/internal/pkgtest"
)

// sampleDebs is a varied set: architectures, a Source with a version,
// dependencies, multi-line descriptions, every member compression.
func sampleDebs() []pkgtest.Deb {
	return []pkgtest.Deb{
		{Name: "hello", Version: "1.0-1", Arch: "amd64", Depends: "libc6 (>= 2.17) | libc6-compat, base-files",
			Description: "greets the world\nA longer text,\n\nwith an empty line.",
			Extra:       [][2]string{{"Section", "utils"}, {"Priority", "optional"}, {"Homepage", "https://example.org/hello"}}},
		{Name: "hello-data", Version: "1.0-1", Arch: "all", Source: "hello (1.0-1)", Compression: "xz"},
		{Name: "libhello1", Version: "2:1.0~rc1+b1", Arch: "amd64", Source: "libhello", Compression: "zst",
			Extra: [][2]string{{"Multi-Arch", "same"}, {"X-Custom-Field", "kept as is"}}},
		{Name: "tool", Version: "0.1", Arch: "arm64", PayloadSize: 20000},
	}
}

func writeDebs(t testing.TB, dir string, debs []pkgtest.Deb) []string {
	t.Helper()
	var paths []string
	for _, d := range debs {
		p, err := d.WriteFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// publishDebs publishes debs into a new repository and returns its root.
func publishDebs(t testing.TB, debs []pkgtest.Deb) string {
	t.Helper()
	root, in := t.TempDir(), t.TempDir()
	writeDebs(t, in, debs)
	if _, err := newTestAPT(t, root).Publish(t.Context(), []string{in}, PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	return root
}

func newTestAPT(t testing.TB, root string) *APT {
	t.Helper()
	a, err := NewAPT(root, mustKey(t), APTConfig{Codename: "testing", Origin: "sluice-test", Label: "sluice-test"}, discard)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// aptEnv is a private apt configuration: its own state, cache and sources,
// no system keys, so that only the repository's signed-by key is trusted.
type aptEnv struct {
	t    testing.TB
	dir  string
	opts []string
}

func newAptEnv(t testing.TB, repoRoot, codename, keyFile string) *aptEnv {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"etc/apt/sources.list.d", "etc/apt/preferences.d", "etc/apt/apt.conf.d",
		"etc/apt/trusted.gpg.d", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg", "download"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf("deb [signed-by=%s] file:%s %s main\n", keyFile, repoRoot, codename)
	if err := os.WriteFile(filepath.Join(dir, "etc/apt/sources.list"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return &aptEnv{t: t, dir: dir, opts: []string{
		"-o", "Dir=" + dir,
		"-o", "Dir::Etc=" + filepath.Join(dir, "etc/apt"),
		"-o", "Dir::State::status=" + filepath.Join(dir, "var/lib/dpkg/status"),
		"-o", "Dir::Etc::trusted=" + filepath.Join(dir, "etc/apt/trusted.gpg"),
		"-o", "Dir::Etc::trustedparts=" + filepath.Join(dir, "etc/apt/trusted.gpg.d"),
		"-o", "Debug::NoLocking=1",
		"-o", "APT::Architecture=amd64",
		"-o", "APT::Architectures::=amd64",
		"-o", "APT::Architectures::=arm64",
		"-o", "APT::Sandbox::User=root",
		"-o", "Acquire::Languages=none",
	}}
}

func (e *aptEnv) run(args ...string) (string, error) {
	e.t.Helper()
	return run(e.t.Context(), filepath.Join(e.dir, "download"), "apt-get", append(slices.Clone(e.opts), args...)...)
}

// aptWarnings returns the lines of apt output that warn or err.
func aptWarnings(out string) []string {
	var bad []string
	for l := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(l, "W:") || strings.HasPrefix(l, "E:") || strings.HasPrefix(l, "N:") || strings.HasPrefix(l, "Err:") {
			bad = append(bad, l)
		}
	}
	return bad
}

func TestAPTAptGetTrustsAndFetches(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "apt-get")
	for _, algo := range []Algorithm{RSA4096, Ed25519} {
		t.Run(string(algo), func(t *testing.T) {
			t.Parallel()
			aptGetFetches(t, algo)
		})
	}
}

func aptGetFetches(t *testing.T, algo Algorithm) {
	ctx := t.Context()
	root, in := t.TempDir(), t.TempDir()
	debs := sampleDebs()
	writeDebs(t, in, debs)
	key, err := testKeyFor(algo)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAPT(root, key, APTConfig{Codename: "testing"}, discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(ctx, []string{in}, PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	env := newAptEnv(t, root, "testing", filepath.Join(root, PublicKeyFile))
	out, err := env.run("update")
	if err != nil || len(aptWarnings(out)) > 0 {
		t.Fatalf("apt-get update: %v\n%s", err, out)
	}
	for _, d := range debs {
		spec := d.Name + ":" + d.Arch + "=" + d.Version
		if d.Arch == "all" {
			spec = d.Name + "=" + d.Version
		}
		out, err := env.run("download", spec)
		if err != nil || len(aptWarnings(out)) > 0 {
			t.Fatalf("apt-get download %s: %v\n%s", d.Name, err, out)
		}
	}
	got, _ := filepath.Glob(filepath.Join(env.dir, "download", "*.deb"))
	if len(got) != len(debs) {
		t.Fatalf("apt-get downloaded %d packages, want %d: %v", len(got), len(debs), got)
	}
	published := map[[32]byte]bool{}
	for _, p := range writeDebs(t, t.TempDir(), debs) {
		data, _ := os.ReadFile(p)
		published[sha256.Sum256(data)] = true
	}
	for _, p := range got {
		if data, _ := os.ReadFile(p); !published[sha256.Sum256(data)] {
			t.Errorf("%s: downloaded bytes are not those of a published package", p)
		}
	}
}

func TestAPTAptGetRefusesTampering(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "apt-get")
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, root string)
	}{
		{"InRelease", func(t *testing.T, root string) {
			p := filepath.Join(root, "dists/testing/InRelease")
			data, _ := os.ReadFile(p)
			i := bytes.Index(data, []byte("Label: "))
			flipByte(t, p, i+len("Label: "))
		}},
		{"Packages", func(t *testing.T, root string) {
			// apt fetches the strongest compressed index by hash: change one
			// byte of every copy of the amd64 index.
			dir := filepath.Join(root, "dists/testing/main/binary-amd64")
			filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					flipByte(t, p, -10)
				}
				return err
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := publishDebs(t, sampleDebs()[:2])
			tc.tamper(t, root)
			env := newAptEnv(t, root, "testing", filepath.Join(root, PublicKeyFile))
			out, err := env.run("update")
			if err == nil && len(aptWarnings(out)) == 0 {
				t.Fatalf("apt-get update accepted a tampered %s:\n%s", tc.name, out)
			}
			t.Logf("apt-get update refused:\n%s", strings.Join(aptWarnings(out), "\n"))
			if out, err := env.run("download", "hello"); err == nil {
				t.Fatalf("apt-get download worked from a tampered %s:\n%s", tc.name, out)
			}
		})
	}
}

// stanzas parses a Packages index into Package_Version_Architecture →
// field → value.
func stanzas(t testing.TB, data []byte) map[string]map[string]string {
	t.Helper()
	r, err := control.NewParagraphReader(bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for {
		p, err := r.Next()
		if err != nil {
			break
		}
		key := p.Values["Package"] + "_" + p.Values["Version"] + "_" + p.Values["Architecture"]
		if _, dup := out[key]; dup {
			t.Fatalf("stanza %s twice", key)
		}
		out[key] = p.Values
	}
	return out
}

func TestAPTParityWithAptFtparchive(t *testing.T) {
	t.Parallel()
	pkgtest.NeedTool(t, "apt-ftparchive")
	root, in := t.TempDir(), t.TempDir()
	writeDebs(t, in, sampleDebs())
	if _, err := newTestAPT(t, root).Publish(t.Context(), []string{in}, PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	// apt-ftparchive with the hashes sluice writes (SHA256 only).
	want, err := run(t.Context(), root, "apt-ftparchive",
		"-o", "APT::FTPArchive::MD5=false", "-o", "APT::FTPArchive::SHA1=false", "-o", "APT::FTPArchive::SHA512=false",
		"packages", "pool")
	if err != nil {
		t.Fatalf("apt-ftparchive: %v\n%s", err, want)
	}
	wantStanzas := stanzas(t, []byte(want))
	gotStanzas := map[string]map[string]string{}
	for _, arch := range []string{"amd64", "arm64"} {
		data, err := os.ReadFile(filepath.Join(root, "dists/testing/main/binary-"+arch+"/Packages"))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range stanzas(t, data) {
			gotStanzas[k] = v
		}
	}
	if len(gotStanzas) != len(wantStanzas) {
		t.Fatalf("sluice lists %d packages, apt-ftparchive %d", len(gotStanzas), len(wantStanzas))
	}
	for k, w := range wantStanzas {
		g, ok := gotStanzas[k]
		if !ok {
			t.Errorf("%s: missing in sluice's Packages", k)
			continue
		}
		for f, wv := range w {
			if gv, ok := g[f]; !ok || gv != wv {
				t.Errorf("%s: field %s = %q, apt-ftparchive says %q", k, f, gv, wv)
			}
		}
		for f := range g {
			if _, ok := w[f]; !ok {
				t.Errorf("%s: field %s only in sluice's Packages", k, f)
			}
		}
	}
}

func TestAPTPublishSemantics(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	root, in, in2 := t.TempDir(), t.TempDir(), t.TempDir()
	a := newTestAPT(t, root)
	kr := keyring(t, mustKey(t))
	first := writeDebs(t, in, sampleDebs()[:2])
	sum, err := a.Publish(ctx, first, PublishOptions{})
	if err != nil || sum.Added != 2 || sum.Generation != 1 {
		t.Fatalf("first publish: %+v, %v", sum, err)
	}
	// Adding keeps what is there.
	second := writeDebs(t, in2, sampleDebs()[2:])
	if sum, err = a.Publish(ctx, second, PublishOptions{}); err != nil || sum.Added != 2 || sum.Packages != 4 {
		t.Fatalf("second publish: %+v, %v", sum, err)
	}
	// The same files again: nothing changes, not even the generation.
	before := treeHash(t, root)
	if sum, err = a.Publish(ctx, append(first, second...), PublishOptions{}); err != nil || sum.Unchanged != 4 || sum.Generation != 2 {
		t.Fatalf("republish: %+v, %v", sum, err)
	}
	if treeHash(t, root) != before {
		t.Fatal("republishing the same packages changed the repository")
	}

	// Same identity, other bytes: refused, and nothing changes.
	other := sampleDebs()[0]
	other.Description = "other bytes, same name, version and architecture"
	dir3 := t.TempDir()
	changed := writeDebs(t, dir3, []pkgtest.Deb{other})
	_, err = a.Publish(ctx, changed, PublishOptions{})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), changed[0]) {
		t.Fatalf("conflicting publish: err = %v, want ErrConflict naming %s", err, changed[0])
	}
	if treeHash(t, root) != before {
		t.Fatal("a refused publish changed the repository")
	}
	// With Replace it goes in, under a pool name of its own, and the
	// repository verifies.
	if sum, err = a.Publish(ctx, changed, PublishOptions{Replace: true}); err != nil || sum.Replaced != 1 || sum.Packages != 4 {
		t.Fatalf("replace: %+v, %v", sum, err)
	}
	if probs, err := Verify(ctx, root, kr); err != nil || len(probs) > 0 {
		t.Fatalf("verify after replace: %v %v", probs, err)
	}
	data, _ := os.ReadFile(filepath.Join(root, "dists/testing/main/binary-amd64/Packages"))
	if !bytes.Contains(data, []byte(other.Description[:20])) {
		t.Fatal("Packages does not hold the replacing package")
	}
}

func TestAPTRefusesBadInput(t *testing.T) {
	t.Parallel()
	good, err := sampleDebs()[0].Bytes()
	if err != nil {
		t.Fatal(err)
	}
	bad := func(control string) []byte {
		b, err := pkgtest.Deb{RawControl: control}.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", good[:len(good)-100], "truncated"},
		{"not-a-package", []byte("just some text\n"), "not a .deb"},
		{"empty", nil, "not a .deb"},
		{"slash-in-name", bad("Package: a/b\nVersion: 1\nArchitecture: all\n"), "bad Package"},
		{"dotdot-in-version", bad("Package: ab\nVersion: 1/../../x\nArchitecture: all\n"), "Version"},
		{"dotdot-arch", bad("Package: ab\nVersion: 1\nArchitecture: ..\n"), "Architecture"},
		{"nul", bad("Package: ab\nVersion: 1\nArchitecture: all\nDescription: a\x00b\n"), "Description"},
		{"forged-index-field", bad("Package: ab\nVersion: 1\nArchitecture: all\nFilename: ../../etc/passwd\n"), "Filename"},
		{"no-version", bad("Package: ab\nArchitecture: all\n"), "Version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root, in := t.TempDir(), t.TempDir()
			a := newTestAPT(t, root)
			okPath := writeDebs(t, in, sampleDebs()[1:2])[0]
			if _, err := a.Publish(t.Context(), []string{okPath}, PublishOptions{}); err != nil {
				t.Fatal(err)
			}
			before := treeHash(t, root)
			p := filepath.Join(t.TempDir(), "bad_1_all.deb")
			if err := os.WriteFile(p, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := a.Publish(t.Context(), []string{okPath, p}, PublishOptions{})
			if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.want)) {
				t.Fatalf("err = %v, want an error naming %s and saying %q", err, p, tc.want)
			}
			if treeHash(t, root) != before {
				t.Fatal("a refused publish changed the repository")
			}
		})
	}
}

func TestAPTVerifyFindsProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		tamper func(root string) error
		want   string
	}{
		{"package-byte", func(root string) error {
			return flipFirst(root, "pool/main/h/hello/hello_1.0-1_amd64.deb")
		}, "hello_1.0-1_amd64.deb"},
		{"package-missing", func(root string) error {
			return os.Remove(filepath.Join(root, "pool/main/h/hello/hello_1.0-1_amd64.deb"))
		}, "hello_1.0-1_amd64.deb"},
		{"packages-index", func(root string) error {
			return flipFirst(root, "dists/testing/main/binary-amd64/Packages.gz")
		}, "Packages.gz"},
		{"inrelease-signature", func(root string) error {
			return flipFirst(root, "dists/testing/InRelease")
		}, "InRelease"},
		{"release-gpg", func(root string) error {
			return os.WriteFile(filepath.Join(root, "dists/testing/Release.gpg"), []byte("junk"), 0o644)
		}, "Release.gpg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := publishDebs(t, sampleDebs()[:2])
			kr := keyring(t, mustKey(t))
			if probs, err := Verify(t.Context(), root, kr); err != nil || len(probs) > 0 {
				t.Fatalf("fresh repository: %v %v", probs, err)
			}
			if err := tc.tamper(root); err != nil {
				t.Fatal(err)
			}
			probs, err := Verify(t.Context(), root, kr)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(probs, func(p Problem) bool { return strings.Contains(p.String(), tc.want) }) {
				t.Fatalf("problems %v do not name %s", probs, tc.want)
			}
		})
	}
	t.Run("other-key", func(t *testing.T) {
		t.Parallel()
		root := publishDebs(t, sampleDebs()[:1])
		other, err := newTestKey(Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		probs, err := Verify(t.Context(), root, keyring(t, other))
		if err != nil || len(probs) == 0 {
			t.Fatalf("verify with another key: %v %v, want problems", probs, err)
		}
	})
}

// flipFirst changes one byte of a file in place, past its first headers.
func flipFirst(root, name string) error {
	p := filepath.Join(root, filepath.FromSlash(name))
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	data[min(len(data)-1, 60)] ^= 0x20
	return os.WriteFile(p, data, 0o644)
}

// TestAPTRetiredFilesKeepTheirBytes replaces one package twice: the pool
// file the first replace retired is still served to readers of older
// metadata, so the second must not write other bytes under its name.
func TestAPTRetiredFilesKeepTheirBytes(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	a := newTestAPT(t, root)
	base := pkgtest.Deb{Name: "hello", Version: "1.0", Arch: "amd64"}
	var pools []string
	var firstBytes []byte
	for i, desc := range []string{"first bytes", "second bytes", "third bytes"} {
		d := base
		d.Description = desc
		p := writeDebs(t, t.TempDir(), []pkgtest.Deb{d})
		if _, err := a.Publish(t.Context(), p, PublishOptions{Replace: i > 0}); err != nil {
			t.Fatal(err)
		}
		st, err := readState(root, "deb", "testing")
		if err != nil {
			t.Fatal(err)
		}
		pools = append(pools, st.Packages[0].Pool)
		want, _ := os.ReadFile(p[0])
		if i == 0 {
			firstBytes = want
		}
		for j := range i + 1 {
			data, err := os.ReadFile(filepath.Join(root, pools[j]))
			if err != nil {
				t.Fatalf("after publish %d: pool file of publish %d: %v", i, j, err)
			}
			if j == i && !bytes.Equal(data, want) {
				t.Fatalf("publish %d: pool file %s does not hold the package", i, pools[j])
			}
		}
	}
	if pools[0] == pools[1] || pools[1] == pools[2] || pools[0] == pools[2] {
		t.Fatalf("pool names reused: %q", pools)
	}
	if first, _ := os.ReadFile(filepath.Join(root, pools[0])); !bytes.Equal(first, firstBytes) {
		t.Fatal("the retired pool file no longer holds the bytes older metadata names")
	}
	if probs, err := Verify(t.Context(), root, keyring(t, mustKey(t))); err != nil || len(probs) > 0 {
		t.Fatalf("verify: %v %v", probs, err)
	}
}

// TestAPTLeftoverPoolFile: a file under a pool name that the state does not
// know (left by an interrupted publish) is never overwritten: the package
// takes another name.
func TestAPTLeftoverPoolFile(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	leftover := filepath.Join(root, "pool/main/h/hello/hello_1.0_amd64.deb")
	if err := os.MkdirAll(filepath.Dir(leftover), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(leftover, []byte("half a package"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := writeDebs(t, t.TempDir(), []pkgtest.Deb{{Name: "hello", Version: "1.0", Arch: "amd64"}})
	if _, err := newTestAPT(t, root).Publish(t.Context(), p, PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(leftover); string(data) != "half a package" {
		t.Fatal("the leftover file was overwritten")
	}
	if probs, err := Verify(t.Context(), root, keyring(t, mustKey(t))); err != nil || len(probs) > 0 {
		t.Fatalf("verify: %v %v", probs, err)
	}
}

// TestAPTGolden pins the bytes of Release and Packages for fixed packages
// and a fixed clock: a field written without its newline (as
// "Acquire-By-Hash: yes" once was in another Go implementation) would
// swallow the next one.
func TestAPTGolden(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	a, err := NewAPT(root, mustKey(t), APTConfig{Codename: "golden", Origin: "sluice-golden", ValidFor: 7 * 24 * time.Hour}, discard)
	if err != nil {
		t.Fatal(err)
	}
	a.now = func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) }
	if _, err := a.Publish(t.Context(), writeDebs(t, t.TempDir(), sampleDebs()), PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Release", "main/binary-amd64/Packages", "main/binary-arm64/Packages"} {
		got, err := os.ReadFile(filepath.Join(root, "dists/golden", name))
		if err != nil {
			t.Fatal(err)
		}
		checkGolden(t, filepath.Join("testdata", "apt", strings.ReplaceAll(name, "/", "_")), got)
	}
}

// TestAPTComponentsAndCodenames: packages stay in the component they were
// published into, and Release lists every component; a directory holds one
// codename.
func TestAPTComponentsAndCodenames(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	root := t.TempDir()
	publish := func(cfg APTConfig, debs ...pkgtest.Deb) error {
		a, err := NewAPT(root, mustKey(t), cfg, discard)
		if err != nil {
			t.Fatal(err)
		}
		_, err = a.Publish(ctx, writeDebs(t, t.TempDir(), debs), PublishOptions{})
		return err
	}
	if err := publish(APTConfig{Codename: "testing"}, pkgtest.Deb{Name: "free", Version: "1", Arch: "amd64"}); err != nil {
		t.Fatal(err)
	}
	if err := publish(APTConfig{Codename: "testing", Component: "contrib"}, pkgtest.Deb{Name: "extra", Version: "1", Arch: "amd64"}); err != nil {
		t.Fatal(err)
	}
	rel, _ := os.ReadFile(filepath.Join(root, "dists/testing/Release"))
	if !bytes.Contains(rel, []byte("\nComponents: contrib main\n")) {
		t.Fatalf("Release does not list both components:\n%s", rel)
	}
	for comp, pkg := range map[string]string{"main": "free", "contrib": "extra"} {
		data, _ := os.ReadFile(filepath.Join(root, "dists/testing", comp, "binary-amd64/Packages"))
		if got := stanzas(t, data); len(got) != 1 || got[pkg+"_1_amd64"] == nil {
			t.Errorf("%s lists %v, want only %s", comp, slices.Collect(maps.Keys(got)), pkg)
		}
	}
	if probs, err := Verify(ctx, root, keyring(t, mustKey(t))); err != nil || len(probs) > 0 {
		t.Fatalf("verify: %v %v", probs, err)
	}
	before := treeHash(t, root)
	err := publish(APTConfig{Codename: "stable"}, pkgtest.Deb{Name: "other", Version: "1", Arch: "amd64"})
	if err == nil || !strings.Contains(err.Error(), `"testing"`) {
		t.Fatalf("publishing another codename into the directory: err = %v", err)
	}
	if treeHash(t, root) != before {
		t.Fatal("a refused publish changed the repository")
	}
}
