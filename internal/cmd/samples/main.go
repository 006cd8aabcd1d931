// Command samples makes the git repositories that `make run` builds and
// publishes: one per sample source package of builder/testdata/src, each
// with its tree committed on the branch main.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluice-ci/sluice/internal/gittest"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: samples SRCDIR OUTDIR")
		os.Exit(2)
	}
	if err := write(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "samples:", err)
		os.Exit(1)
	}
}

func write(src, out string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dst := filepath.Join(out, e.Name())
		if _, err := os.Stat(dst); err == nil {
			continue // made by an earlier run
		}
		if _, err := (gittest.Repo{}).Commit(filepath.Join(src, e.Name()), dst); err != nil {
			return fmt.Errorf("%s: %w", e.Name(), err)
		}
	}
	return nil
}
