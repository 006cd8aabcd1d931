package repo

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluice-ci/sluice/internal/pkgtest"
)

// TestReadersNeverSeeAMix runs 20 publishes into one repository, one of them
// fed a corrupt package, while a reader verifies the repository the way a
// client reads it, over and over. Every read must find a consistent, signed
// repository: the old one or the new one.
func TestReadersNeverSeeAMix(t *testing.T) {
	t.Parallel()
	const publishes, corruptAt = 20, 7
	for _, format := range []string{"deb", "rpm"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			root := t.TempDir()
			kr := keyring(t, mustKey(t))
			var batches [][]string
			for i := range publishes {
				dir := t.TempDir()
				var paths []string
				for j := range 1 + i%3 {
					name := fmt.Sprintf("pkg%02d-%d", i, j)
					var p string
					var err error
					if format == "deb" {
						p, err = pkgtest.Deb{Name: name, Version: "1.0", Arch: "amd64", PayloadSize: 2000 * (j + 1)}.WriteFile(dir)
					} else {
						p, err = pkgtest.RPM{Name: name, Version: "1.0", Release: "1", Arch: "x86_64", PayloadSize: 2000 * (j + 1)}.WriteFile(dir)
					}
					if err != nil {
						t.Fatal(err)
					}
					paths = append(paths, p)
				}
				if i == corruptAt {
					data, _ := os.ReadFile(paths[0])
					if err := os.WriteFile(paths[0], data[:len(data)/2], 0o644); err != nil {
						t.Fatal(err)
					}
				}
				batches = append(batches, paths)
			}
			var publish func([]string) error
			var check func() []Problem
			if format == "deb" {
				a := newTestAPT(t, root)
				publish = func(p []string) error { _, err := a.Publish(ctx, p, PublishOptions{}); return err }
				check = func() []Problem {
					r, err := os.OpenRoot(root)
					if err != nil {
						return []Problem{{root, err}}
					}
					defer r.Close()
					return verifyAPT(ctx, r, "dists/testing", kr, true)
				}
			} else {
				rr := NewRPM(root, mustKey(t), discard)
				publish = func(p []string) error { _, err := rr.Publish(ctx, p, PublishOptions{}); return err }
				check = func() []Problem { return verifyRPM(ctx, root, kr, true) }
			}
			if err := publish(batches[0]); err != nil {
				t.Fatal(err)
			}
			var done atomic.Int64
			var reads, stale atomic.Int64
			var wg sync.WaitGroup
			wg.Go(func() {
				for done.Load() < publishes-1 {
					c0 := done.Load()
					probs := check()
					c1 := done.Load()
					switch {
					case len(probs) == 0:
						reads.Add(1)
					case c1-c0 >= keepGenerations:
						// The read took so long that the files it started
						// from were retired, as they may be.
						stale.Add(1)
					default:
						t.Errorf("reader saw an inconsistent repository after %d publishes: %v", c1, probs)
						return
					}
				}
			})
			for i := 1; i < publishes; i++ {
				err := publish(batches[i])
				if (i == corruptAt) != (err != nil) {
					t.Errorf("publish %d: err = %v", i, err)
				}
				done.Add(1)
			}
			wg.Wait()
			t.Logf("%d consistent reads, %d stale, during %d publishes", reads.Load(), stale.Load(), publishes)
			if reads.Load() == 0 {
				t.Fatal("the reader never completed a read")
			}
			if probs, err := Verify(ctx, root, kr); err != nil || len(probs) > 0 {
				t.Fatalf("final verify: %v %v", probs, err)
			}
		})
	}
}
