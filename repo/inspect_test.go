package repo

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-ci/sluice/internal/pkgtest"
)

func TestInspect(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	deb, err := pkgtest.Deb{Name: "hello", Version: "2:1.2-3~c5.p1", Arch: "amd64"}.WriteFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	rpm, err := pkgtest.RPM{Name: "hello", Version: "1.2", Release: "3~c5.p1", Arch: "x86_64", Epoch: 2}.WriteFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want Package
	}{
		{deb, Package{Format: "deb", Name: "hello", Epoch: 2, Version: "1.2", Release: "3~c5.p1", Arch: "amd64"}},
		{rpm, Package{Format: "rpm", Name: "hello", Epoch: 2, Version: "1.2", Release: "3~c5.p1", Arch: "x86_64"}},
	} {
		got, err := Inspect(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got.SHA256 == "" || got.Size == 0 {
			t.Fatalf("%s: no checksum or size: %+v", tc.path, got)
		}
		got.SHA256, got.Size = "", 0
		if got != tc.want {
			t.Errorf("Inspect(%s) = %+v, want %+v", filepath.Base(tc.path), got, tc.want)
		}
		if got.EVR() != "2:1.2-3~c5.p1" {
			t.Errorf("EVR = %q", got.EVR())
		}
	}
	bad := filepath.Join(dir, "bad.deb")
	os.WriteFile(bad, []byte("junk"), 0o644)
	if _, err := Inspect(bad); err == nil {
		t.Fatal("Inspect accepted junk")
	}
}
