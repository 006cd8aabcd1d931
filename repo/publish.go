package repo

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrConflict is returned when a package has the identity of one already
// in the repository (name, version, architecture) but other bytes, and the
// publish was not asked to replace it.
var ErrConflict = errors.New("a different package with the same name, version and architecture is already published")

// PublishOptions are the choices of one publish.
type PublishOptions struct {
	// Replace lets a package replace the published one of the same name,
	// version and architecture when their bytes differ.
	Replace bool
}

// Summary says what a publish did.
type Summary struct {
	Added      int // packages new to the repository
	Replaced   int // packages that replaced one with the same identity
	Unchanged  int // packages given that were already published as they are
	Packages   int // packages in the repository after the publish
	Generation int // the repository's generation after the publish
}

// format is what a repository format adds to the common publish steps.
type format interface {
	name() string
	// scope names what one directory of this format holds (for APT, its
	// codename), "" when it holds one repository whatever the options.
	scope() string
	ext() string
	// parse reads a package and returns its entry (metadata only; the
	// caller fills Size and SHA256 of the input).
	parse(r io.ReaderAt, size int64) (entry, error)
	// identity is the key under which a package is unique in a repository.
	identity(e *entry) string
	// poolPath is where a package goes, relative to the root.
	poolPath(e *entry) string
	// store writes the package from src into the pool at e.Pool (a new
	// name) and returns the entry of the stored bytes.
	store(ctx context.Context, src pkgFile, e entry) (entry, error)
	// index writes the repository metadata for st.Packages: every
	// content-addressed file first, the files clients start from last,
	// each atomically. It returns the content-addressed files it relies on.
	index(ctx context.Context, st *state) (meta []string, err error)
}

// publish runs the steps common to every format: lock, read the state, read
// the new packages (parsing only those not seen before), check them against
// the repository, store them, write the metadata, retire old files.
func publish(ctx context.Context, root string, f format, paths []string, opts PublishOptions, log *slog.Logger) (sum Summary, err error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return sum, fmt.Errorf("publish %s: %w", root, err)
	}
	unlock, err := lockDir(root)
	if err != nil {
		return sum, err
	}
	defer unlock()
	st, err := readState(root, f.name(), f.scope())
	if err != nil {
		return sum, fmt.Errorf("publish %s: %w", root, err)
	}
	files, err := collectInputs(paths, f.ext())
	if err != nil {
		return sum, fmt.Errorf("publish %s: %w", root, err)
	}
	if len(files) == 0 {
		return sum, fmt.Errorf("publish %s: no %s files in %q", root, f.ext(), paths)
	}
	incoming, data, err := readInputs(ctx, f, st.bySource(), files)
	if err != nil {
		return sum, fmt.Errorf("publish %s: %w", root, err)
	}

	// Check everything before writing anything: a refused publish changes
	// nothing.
	byID := make(map[string]int, len(st.Packages))
	byPool := make(map[string]bool, len(st.Packages))
	for i := range st.Packages {
		byID[f.identity(&st.Packages[i])] = i
		byPool[st.Packages[i].Pool] = true
	}
	for _, g := range st.Garbage {
		// Retired files are still served to readers of older metadata:
		// a new package must not take their names.
		byPool[g.Path] = true
	}
	type change struct {
		src pkgFile
		e   entry
		old int // index in st.Packages being replaced, or -1
		k   int // which poolName e.Pool is
	}
	var changes []change
	seen := make(map[string]int)
	for i, e := range incoming {
		id := f.identity(&e)
		if j, ok := seen[id]; ok {
			if incoming[j].Source != e.Source {
				return sum, fmt.Errorf("publish %s: %s and %s are both %s with other bytes", root, files[j], files[i], id)
			}
			sum.Unchanged++
			continue
		}
		seen[id] = i
		old, exists := byID[id]
		switch {
		case exists && st.Packages[old].Source == e.Source:
			sum.Unchanged++
			continue
		case exists && !opts.Replace:
			return sum, fmt.Errorf("publish %s: package %s (%s): %w (use --replace)", root, files[i], id, ErrConflict)
		case !exists:
			old = -1
		}
		// The usual pool name may be taken by the bytes being replaced or
		// by retired ones, which readers of the current or an older
		// metadata still fetch: then the package gets a name of its own.
		var k int
		for k = 0; byPool[poolName(f.poolPath(&e), e.Source, k)]; k++ {
		}
		e.Pool = poolName(f.poolPath(&e), e.Source, k)
		byPool[e.Pool] = true
		changes = append(changes, change{src: pkgFile{files[i], data[i]}, e: e, old: old, k: k})
	}
	if len(changes) == 0 && st.Generation > 0 {
		sum.Packages, sum.Generation = len(st.Packages), st.Generation
		log.Info("repo unchanged", "repo", root, "packages", sum.Packages)
		return sum, nil
	}

	// Store new packages; on failure remove what this publish created.
	var created []string
	defer func() {
		if err != nil {
			removeFiles(root, created)
		}
	}()
	stored := make([]entry, len(changes))
	errs := make([]error, len(changes))
	err = forEach(ctx, len(changes), func(i int) {
		c := changes[i]
		stored[i], errs[i] = f.store(ctx, c.src, c.e)
		// A file under the chosen name that the state does not know is
		// left by an interrupted publish, or named by metadata whose state
		// was not written: never overwrite it, take the next name.
		for errors.Is(errs[i], fs.ErrExist) && c.k < maxPoolNames {
			c.k++
			c.e.Pool = poolName(f.poolPath(&c.e), c.e.Source, c.k)
			stored[i], errs[i] = f.store(ctx, c.src, c.e)
		}
		if errs[i] != nil {
			errs[i] = fmt.Errorf("publish %s: store %s: %w", root, changes[i].src.path, errs[i])
		}
	})
	for i := range stored {
		if errs[i] == nil && stored[i].Pool != "" {
			created = append(created, stored[i].Pool)
		}
	}
	if err == nil {
		err = errors.Join(errs...)
	}
	if err != nil {
		return sum, err
	}
	var gone []string
	for i, c := range changes {
		if c.old >= 0 {
			gone = append(gone, st.Packages[c.old].Pool)
			st.Packages[c.old] = stored[i]
			sum.Replaced++
		} else {
			st.Packages = append(st.Packages, stored[i])
			sum.Added++
		}
	}
	slices.SortFunc(st.Packages, func(a, b entry) int {
		return cmp.Or(strings.Compare(f.identity(&a), f.identity(&b)), strings.Compare(a.Pool, b.Pool))
	})

	st.Generation++
	prevMeta := st.Meta
	meta, err := f.index(ctx, st)
	if err != nil {
		// index writes content-addressed files and then switches the
		// entry files; before the switch nothing a reader sees changed.
		return sum, fmt.Errorf("publish %s: %w", root, err)
	}
	// From here the new generation is live: do not undo the pool files.
	created = nil
	st.Meta = meta
	live := make(map[string]bool, len(st.Packages)+len(meta))
	for _, e := range st.Packages {
		live[e.Pool] = true
	}
	for _, m := range meta {
		live[m] = true
	}
	gone = append(gone, prevMeta...)
	expired := st.retire(gone, live)
	if err := st.write(root); err != nil {
		return sum, fmt.Errorf("publish %s: write state: %w", root, err)
	}
	if err := removeFiles(root, expired); err != nil {
		log.Warn("repo old files not removed", "repo", root, "err", err)
	}
	sum.Packages, sum.Generation = len(st.Packages), st.Generation
	log.Info("repo published", "repo", root, "format", f.name(), "generation", st.Generation,
		"packages", sum.Packages, "added", sum.Added, "replaced", sum.Replaced)
	return sum, nil
}

// maxPoolNames bounds the names tried for one package in the pool.
const maxPoolNames = 100

// poolName is the k-th name a package may take in the pool: its usual name,
// then a directory named by its checksum beside it, then that name with a
// number.
func poolName(usual, sha string, k int) string {
	dir, base := path.Split(usual)
	switch k {
	case 0:
		return usual
	case 1:
		return dir + sha[:16] + "/" + base
	}
	return dir + sha[:16] + "-" + strconv.Itoa(k) + "/" + base
}

// readInputs hashes every file and parses those whose bytes the repository
// does not hold already, on all cores. data[i] holds the bytes of a new
// package that was small enough to read into memory, within a budget, so
// that storing it needs no second read.
func readInputs(ctx context.Context, f format, known map[string]*entry, files []string) (out []entry, data [][]byte, err error) {
	out = make([]entry, len(files))
	data = make([][]byte, len(files))
	errs := make([]error, len(files))
	var budget atomic.Int64
	budget.Store(keepInMemory)
	err = forEach(ctx, len(files), func(i int) {
		out[i], data[i], errs[i] = readInput(f, known, files[i], &budget)
	})
	if err != nil {
		return nil, nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return out, data, nil
}

// forEach calls fn(0) … fn(n-1) on as many goroutines as there are cores,
// and stops handing out work when ctx ends.
func forEach(ctx context.Context, n int, fn func(i int)) error {
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return ctx.Err()
}

// smallPackage is the size up to which a package is read into memory once,
// then hashed and parsed from there; larger ones are hashed as a stream and
// parsed from the file. keepInMemory bounds the bytes of new packages kept
// from that read until they are stored.
const (
	smallPackage = 4 << 20
	keepInMemory = 512 << 20
)

// pkgFile is a package given to a publish: its path, and the bytes that
// were hashed when they were kept in memory (nil: read the file again, and
// check it).
type pkgFile struct {
	path string
	data []byte
}

func readInput(f format, known map[string]*entry, path string, budget *atomic.Int64) (e entry, data []byte, err error) {
	fh, err := os.Open(path)
	if err != nil {
		return e, nil, err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return e, nil, err
	}
	if !fi.Mode().IsRegular() {
		return e, nil, fmt.Errorf("package %s: not a regular file", path)
	}
	var in input
	var r io.ReaderAt = fh
	if size := fi.Size(); size <= smallPackage {
		// One byte more than the size tells a file that grew meanwhile.
		buf := make([]byte, size+1)
		n, err := io.ReadFull(fh, buf)
		if err != io.ErrUnexpectedEOF && err != io.EOF {
			return e, nil, fmt.Errorf("package %s: changed while it was read", path)
		}
		data = buf[:n]
		sum := sha256.Sum256(data)
		in = input{Size: int64(n), SHA256: hex.EncodeToString(sum[:])}
		r = bytes.NewReader(data)
	} else if in, err = hashReader(fh); err != nil {
		return e, nil, fmt.Errorf("package %s: %w", path, err)
	}
	if k, ok := known[in.SHA256]; ok {
		e = *k
		e.Pool = ""
		return e, nil, nil
	}
	e, err = f.parse(r, in.Size)
	if err != nil {
		return e, nil, fmt.Errorf("package %s: %w", path, err)
	}
	e.Size, e.SHA256, e.Source = in.Size, in.SHA256, in.SHA256
	if data != nil && (budget == nil || budget.Add(-int64(len(data))) < 0) {
		data = nil
	}
	return e, data, nil
}
