package mirror

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/repo"
)

// aptReads has a private apt (no system keys, only the repository's
// signed-by key) update from the tree at dir and download each package
// name; it fails the test on any warning.
func aptReads(t *testing.T, dir string, names []string) {
	t.Helper()
	pkgtest.NeedTool(t, "apt-get")
	home := t.TempDir()
	for _, d := range []string{"etc/apt/sources.list.d", "etc/apt/preferences.d", "etc/apt/apt.conf.d",
		"etc/apt/trusted.gpg.d", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg", "download"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(home, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(home, "key.asc")
	writePublicKey(t, key)
	src := fmt.Sprintf("deb [signed-by=%s] file:%s stable main\n", key, dir)
	if err := os.WriteFile(filepath.Join(home, "etc/apt/sources.list"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := []string{
		"-o", "Dir=" + home,
		"-o", "Dir::Etc=" + filepath.Join(home, "etc/apt"),
		"-o", "Dir::State::status=" + filepath.Join(home, "var/lib/dpkg/status"),
		"-o", "Dir::Etc::trusted=" + filepath.Join(home, "etc/apt/trusted.gpg"),
		"-o", "Dir::Etc::trustedparts=" + filepath.Join(home, "etc/apt/trusted.gpg.d"),
		"-o", "Debug::NoLocking=1",
		"-o", "APT::Architecture=amd64",
		"-o", "APT::Sandbox::User=root",
		"-o", "Acquire::Languages=none",
	}
	apt := func(args ...string) string {
		t.Helper()
		out, err := run(t.Context(), filepath.Join(home, "download"), "apt-get", append(slices.Clone(opts), args...)...)
		if err != nil || strings.Contains(out, "\nW:") || strings.Contains(out, "\nE:") || strings.HasPrefix(out, "W:") || strings.HasPrefix(out, "E:") {
			t.Fatalf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	apt("update")
	for _, n := range names {
		apt("download", n)
	}
	got, _ := filepath.Glob(filepath.Join(home, "download", "*.deb"))
	if len(got) != len(names) {
		t.Fatalf("apt-get downloaded %d packages, want %d", len(got), len(names))
	}
}

func writePublicKey(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := mustKey(t).WritePublic(f); err != nil {
		t.Fatal(err)
	}
}

// dnfReads has dnf (gpgcheck and repo_gpgcheck, only the test key
// trusted) list the repository at dir, and rpmkeys check the signature
// of every package file in it.
func dnfReads(t *testing.T, dir string, names []string) {
	t.Helper()
	dnf := pkgtest.NeedTool(t, "dnf")
	rpmkeys := pkgtest.NeedTool(t, "rpmkeys")
	home := t.TempDir()
	key := filepath.Join(home, "key.asc")
	writePublicKey(t, key)
	reposd := filepath.Join(home, "repos.d")
	if err := os.MkdirAll(reposd, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(home, "dnf.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[main]\nreposdir=%s\ncachedir=%s\ngpgcheck=1\nrepo_gpgcheck=1\nkeepcache=0\n",
		reposd, filepath.Join(home, "cache"))), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(reposd, "m.repo"), []byte(fmt.Sprintf(
		"[m]\nname=mirror\nbaseurl=file://%s\nenabled=1\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file://%s\nmetadata_expire=0\n", dir, key)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t.Context(), home, dnf, "-c", conf, "--installroot", filepath.Join(home, "root"), "--releasever=1",
		"--noplugins", "-y", "repoquery", "--repo", "m")
	if err != nil {
		t.Fatalf("dnf repoquery: %v\n%s", err, out)
	}
	for _, n := range names {
		if !strings.Contains(out, n+"-0:1.0-1.x86_64") {
			t.Errorf("dnf repoquery does not list %s:\n%s", n, out)
		}
	}
	db := t.TempDir()
	if out, err := run(t.Context(), db, rpmkeys, "--dbpath", db, "--import", key); err != nil {
		t.Fatalf("rpmkeys --import: %v\n%s", err, out)
	}
	var rpms []string
	for _, n := range names {
		rpms = append(rpms, filepath.Join(dir, "Packages", n[:1], n+"-1.0-1.x86_64.rpm"))
	}
	for _, p := range rpms {
		out, err := run(t.Context(), db, rpmkeys, "--dbpath", db, "--checksig", "-v", p)
		if err != nil || !headerSigOK.MatchString(out) || strings.Contains(out, "NOKEY") {
			t.Errorf("rpmkeys --checksig -v %s: %v\n%s", p, err, out)
		}
	}
}

var headerSigOK = regexp.MustCompile(`Header V4 \S+ Signature, key ID [0-9a-f]+: OK`)

// clientReads has the real client of format read the tree at dir.
func clientReads(t *testing.T, format, dir string, names []string) {
	t.Helper()
	if format == "deb" {
		aptReads(t, dir, names)
	} else {
		dnfReads(t, dir, names)
	}
}

func mustVerify(t *testing.T, dir string) {
	t.Helper()
	probs, err := repo.Verify(t.Context(), dir, keyringOf(t, mustKey(t)))
	if err != nil || len(probs) > 0 {
		t.Fatalf("verify %s: %v %v", dir, probs, err)
	}
}
