// Command samples writes the small sample packages that `make run`
// publishes: a few .debs under OUT/deb and RPMs under OUT/rpm.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluice-ci/sluice/internal/pkgtest"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: samples OUTDIR")
		os.Exit(2)
	}
	if err := write(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "samples:", err)
		os.Exit(1)
	}
}

func write(out string) error {
	debs := []pkgtest.Deb{
		{Name: "sluice-hello", Version: "1.0-1", Arch: "all", Description: "sample package published by make run\nIt holds one README file.",
			Extra: [][2]string{{"Section", "misc"}, {"Priority", "optional"}}},
		{Name: "sluice-hello-data", Version: "1.0-1", Arch: "amd64", Source: "sluice-hello", Depends: "sluice-hello (= 1.0-1)", PayloadSize: 4096},
	}
	rpms := []pkgtest.RPM{
		{Name: "sluice-hello", Version: "1.0", Release: "1", Arch: "noarch", Summary: "sample package published by make run"},
		{Name: "sluice-hello-data", Version: "1.0", Release: "1", Arch: "x86_64", Requires: []string{"sluice-hello = 1.0-1"}, PayloadSize: 4096},
	}
	for _, d := range debs {
		if err := os.MkdirAll(filepath.Join(out, "deb"), 0o755); err != nil {
			return err
		}
		if _, err := d.WriteFile(filepath.Join(out, "deb")); err != nil {
			return err
		}
	}
	for _, r := range rpms {
		if err := os.MkdirAll(filepath.Join(out, "rpm"), 0o755); err != nil {
			return err
		}
		if _, err := r.WriteFile(filepath.Join(out, "rpm")); err != nil {
			return err
		}
	}
	return nil
}
