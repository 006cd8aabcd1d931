package systest

import (
	"bytes"
	"crypto"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/internal/proc"
)

// testDeb is a binary package with maintainer scripts, built with
// dpkg-deb.
type testDeb struct {
	name, version, depends  string
	postinst, prerm, postrm string
	files                   map[string]string
}

func (d testDeb) build(t *testing.T, out string) string {
	t.Helper()
	tree := filepath.Join(t.TempDir(), d.name)
	control := "Package: " + d.name + "\nVersion: " + d.version + "\nArchitecture: all\nMaintainer: Sluice Tests <tests@example.org>\n" +
		"Description: install test package " + d.name + "\n"
	if d.depends != "" {
		control += "Depends: " + d.depends + "\n"
	}
	files := map[string]string{"DEBIAN/control": control}
	for k, v := range d.files {
		files[strings.TrimPrefix(k, "/")] = v
	}
	for name, body := range map[string]string{"postinst": d.postinst, "prerm": d.prerm, "postrm": d.postrm} {
		if body != "" {
			files["DEBIAN/"+name] = "#!/bin/sh\n" + body + "\n"
		}
	}
	for p, body := range files {
		full := filepath.Join(tree, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(p, "DEBIAN/post") || strings.HasPrefix(p, "DEBIAN/pre") {
			mode = 0o755
		}
		if err := os.WriteFile(full, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	deb := filepath.Join(out, d.name+"_"+d.version+"_all.deb")
	hostRun(t, "", "dpkg-deb", "--root-owner-group", "-Zgzip", "--build", tree, deb)
	return deb
}

func hostRun(t *testing.T, dir, name string, args ...string) []byte {
	t.Helper()
	cmd := proc.Command(t.Context(), name, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, errb.String())
	}
	return out.Bytes()
}

var testKey struct {
	sync.Mutex
	e   *openpgp.Entity
	pub []byte
}

// signingKey is one throwaway key for every test repository.
func signingKey(t *testing.T) (*openpgp.Entity, []byte) {
	testKey.Lock()
	defer testKey.Unlock()
	if testKey.e == nil {
		cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, DefaultHash: crypto.SHA256}
		e, err := openpgp.NewEntity("sluice systest", "", "systest@example.org", cfg)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Serialize(w); err != nil {
			t.Fatal(err)
		}
		w.Close()
		testKey.e, testKey.pub = e, b.Bytes()
	}
	return testKey.e, testKey.pub
}

// aptRepo publishes debs into a signed APT repository with
// apt-ftparchive, InRelease clearsigned.
func aptRepo(t *testing.T, debs []string) Repo {
	t.Helper()
	pkgtest.NeedTool(t, "apt-ftparchive")
	pkgtest.NeedTool(t, "dpkg-deb")
	dir := t.TempDir()
	pool := filepath.Join(dir, "pool", "main")
	if err := os.MkdirAll(pool, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range debs {
		data, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pool, filepath.Base(d)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "dists", "sluice-test", "main", "binary-amd64")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "Packages"), hostRun(t, dir, "apt-ftparchive", "packages", "pool"), 0o644); err != nil {
		t.Fatal(err)
	}
	rel := hostRun(t, dir, "apt-ftparchive", "-o", "APT::FTPArchive::Release::Origin=sluice", "-o", "APT::FTPArchive::Release::Suite=sluice-test",
		"-o", "APT::FTPArchive::Release::Codename=sluice-test", "-o", "APT::FTPArchive::Release::Components=main",
		"-o", "APT::FTPArchive::Release::Architectures=amd64", "release", "dists/sluice-test")
	e, pub := signingKey(t)
	var signed bytes.Buffer
	w, err := clearsign.Encode(&signed, e.PrivateKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(rel)
	w.Close()
	if err := os.WriteFile(filepath.Join(dir, "dists", "sluice-test", "InRelease"), signed.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	return Repo{Format: "deb", Dir: dir, Key: pub, Suite: "sluice-test", Component: "main", Origin: "sluice"}
}

// TestInstallDeb runs the install test on packages that behave and on
// packages that do not: each is an outcome, and nothing of their
// environments is left.
func TestInstallDeb(t *testing.T) {
	t.Parallel()
	b := needBase(t)
	marker := filepath.Join(os.TempDir(), "sluice-install-escape-"+strconv.Itoa(os.Getpid()))
	defer os.Remove(marker)
	pkgs := []testDeb{
		{name: "sluice-good", version: "1.0-1", files: map[string]string{"/usr/share/sluice-good/data": "data\n"},
			postinst: "set -e\n[ \"$1\" = configure ] && mkdir -p /var/lib/sluice-good\nexit 0",
			postrm:   "set -e\n[ \"$1\" = purge ] && rm -rf /var/lib/sluice-good\nexit 0"},
		{name: "sluice-needs-good", version: "2.0", depends: "sluice-good (>= 1.0)"},
		{name: "sluice-leaky", version: "1.0", postinst: "mkdir -p /var/lib/sluice-leaky && echo x > /var/lib/sluice-leaky/state"},
		{name: "sluice-bad-postinst", version: "1.0", postinst: "echo broken >&2; exit 1"},
		{name: "sluice-bad-prerm", version: "1.0", prerm: "exit 1"},
		{name: "sluice-hangs", version: "1.0", postinst: "setsid sleep 1000 & sleep 1000"},
		{name: "sluice-missing-dep", version: "1.0", depends: "sluice-not-anywhere"},
		{name: "sluice-escapes", version: "1.0", postinst: "unshare --mount true && touch /escaped-mount\n" +
			"chroot / true && touch /escaped-chroot\n" +
			"mknod /dev/sluice-disk b 254 0 && touch /escaped-mknod\n" +
			"echo x > /proc/1/root" + marker + " && touch /escaped-proc\n" +
			"echo 1 > /proc/sys/vm/drop_caches && touch /escaped-sysctl\nexit 0"},
	}
	out := t.TempDir()
	var debs []string
	for _, p := range pkgs {
		debs = append(debs, p.build(t, out))
	}
	repo := aptRepo(t, debs)
	want := map[string]struct {
		outcome, step string
		left          []string
	}{
		"sluice-good":         {Passed, "", nil},
		"sluice-needs-good":   {Passed, "", nil},
		"sluice-leaky":        {Failed, "leftovers", []string{"/var/lib/sluice-leaky", "/var/lib/sluice-leaky/state"}},
		"sluice-bad-postinst": {Failed, "install", nil},
		"sluice-bad-prerm":    {Failed, "remove", nil},
		"sluice-hangs":        {Failed, "install", nil},
		"sluice-missing-dep":  {Failed, "install", nil},
		"sluice-escapes":      {Passed, "", nil}, // every attempt refused: nothing escaped-* left
	}
	c := NewChroot(t.TempDir(), testLog())
	for _, p := range pkgs {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			var ids nsIDs
			var dir string
			timeout := 2 * time.Minute
			if p.name == "sluice-hangs" {
				timeout = 3 * time.Second
			}
			rep, err := InstallTest(t.Context(), c, b, repo, PackageRef{Name: p.name, Version: p.version, Arch: "all"},
				InstallOptions{StepTimeout: timeout, Started: func(e *ChrootEnv) { ids, dir = envNamespaces(t, e), e.Dir() }})
			if err != nil {
				t.Fatal(err)
			}
			w := want[p.name]
			if rep.Outcome != w.outcome || rep.Step != w.step || !slices.Equal(rep.Leftovers, w.left) {
				t.Errorf("outcome %s at %q (%s), leftovers %v; want %s at %q, %v\n%s", rep.Outcome, rep.Step, rep.Reason, rep.Leftovers,
					w.outcome, w.step, w.left, rep.Log)
			}
			if p.name == "sluice-missing-dep" && !strings.Contains(rep.Reason, missingDepHint) {
				t.Errorf("missing dependency: %s", rep.Reason)
			}
			if p.name == "sluice-hangs" && !strings.Contains(rep.Reason, "timed out") {
				t.Errorf("hang: %s", rep.Reason)
			}
			checkNoLeaks(t, ids, dir)
			var steps []string
			for _, s := range rep.Steps {
				steps = append(steps, s.Name+"="+s.Duration.Round(time.Millisecond).String())
			}
			t.Logf("%s: %s in %s: %s", p.name, rep.Outcome, rep.Duration.Round(time.Millisecond), strings.Join(steps, " "))
		})
	}
	// With the mirror's door open (the proxy), the same package passes
	// as offline: the proxy's apt setting is no leftover.
	t.Run("mirror", func(t *testing.T) {
		t.Parallel()
		rep, err := InstallTest(t.Context(), c, b, repo, PackageRef{Name: "sluice-good", Version: "1.0-1"}, InstallOptions{Mirror: true})
		if err != nil || rep.Outcome != Passed {
			t.Errorf("%s at %q: %s %v\n%s", rep.Outcome, rep.Step, rep.Reason, err, rep.Log)
		}
	})
	// The project's check script: run with the package's name, its
	// status decides.
	for name, script := range map[string]string{"passes": "#!/bin/sh\ntest -s /usr/share/$1/data\n", "fails": "#!/bin/sh\necho no >&2\nexit 3\n"} {
		t.Run("check-"+name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "check")
			if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			rep, err := InstallTest(t.Context(), c, b, repo, PackageRef{Name: "sluice-good", Version: "1.0-1"}, InstallOptions{Check: path})
			if err != nil {
				t.Fatal(err)
			}
			if (name == "passes") != (rep.Outcome == Passed) || (name == "fails" && rep.Step != "check") {
				t.Errorf("%s at %q: %s\n%s", rep.Outcome, rep.Step, rep.Reason, rep.Log)
			}
		})
	}
	t.Cleanup(func() {
		if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a maintainer script wrote %s on the host", marker)
		}
	})
}

func TestLeftovers(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	if err := os.MkdirAll(filepath.Join(base, "usr", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := map[string]fs.FileMode{"/etc": fs.ModeDir, "/etc/apt/sources.list.d/x.sources": 0}
	after := map[string]fs.FileMode{
		"/etc": fs.ModeDir, "/etc/apt/sources.list.d/x.sources": 0,
		"/usr": fs.ModeDir, "/usr/bin": fs.ModeDir, // copied up: the base has them
		"/usr/bin/gone":           fs.ModeDevice | fs.ModeCharDevice | fs.ModeIrregular, // a whiteout
		"/var/lib/pkg":            fs.ModeDir,
		"/var/lib/pkg/state":      0,
		"/var/log/pkg.log":        0, // a log: ignored
		"/var/cache/pkg/own-file": 0, // ignored, but the package's own
	}
	got := Leftovers(before, after, base, []string{"/var/cache/pkg/own-file"})
	want := []string{"/var/cache/pkg/own-file", "/var/lib/pkg", "/var/lib/pkg/state"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
