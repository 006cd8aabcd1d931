package repo

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// stateDir holds, inside a published repository, what sluice needs to add
// to it again without re-reading every package: the package list with the
// metadata parsed from each package, the files waiting for deletion, and the
// publish lock. It is never referenced by the repository's metadata.
const stateDir = ".sluice"

// keepGenerations is how many publishes a file stays after the metadata
// stopped naming it, so that a client that fetched the previous metadata
// can still fetch what it names (apt-ftparchive keeps 3 by-hash files).
const keepGenerations = 3

// entry is one package in a repository.
type entry struct {
	Pool   string `json:"pool"` // slash-separated, relative to the root
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Source is the SHA-256 of the package as it was given; it differs
	// from SHA256 when the stored copy was changed (an RPM signed).
	Source string   `json:"source"`
	Deb    *debMeta `json:"deb,omitempty"`
	RPM    *rpmMeta `json:"rpm,omitempty"`
}

// garbage is a file the metadata stopped naming at generation Gen.
type garbage struct {
	Path string `json:"path"`
	Gen  int    `json:"gen"`
}

// state is what a repository's state file holds.
type state struct {
	Format     string    `json:"format"`
	Scope      string    `json:"scope,omitempty"`
	Generation int       `json:"generation"`
	Packages   []entry   `json:"packages"`
	Garbage    []garbage `json:"garbage,omitempty"`
	// Meta lists the content-addressed metadata files of this generation.
	Meta []string `json:"meta,omitempty"`
}

// readState reads the state of the repository at root, which must be of
// format and scope (for APT, the codename: one directory holds one
// distribution; publish another into a directory of its own).
func readState(root, format, scope string) (*state, error) {
	f, err := os.Open(filepath.Join(root, stateDir, "state.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return &state{Format: format, Scope: scope}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st state
	if err := json.NewDecoder(bufio.NewReader(f)).Decode(&st); err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if st.Format != format {
		return nil, fmt.Errorf("%s holds a %s repository, not %s", root, st.Format, format)
	}
	if st.Scope != scope {
		return nil, fmt.Errorf("%s holds the %s repository %q, not %q: publish that into a directory of its own", root, format, st.Scope, scope)
	}
	return &st, nil
}

// bySource indexes the packages by the checksum of the bytes they were
// published from: the cache of parsed metadata that lets a publish skip
// parsing a package it has seen.
func (st *state) bySource() map[string]*entry {
	m := make(map[string]*entry, len(st.Packages))
	for i := range st.Packages {
		m[st.Packages[i].Source] = &st.Packages[i]
	}
	return m
}

func (st *state) write(root string) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return writeFileAtomic(root, stateDir+"/state.json", data)
}

// retire records files the new generation no longer names and returns those
// retired long enough ago to delete, dropping them from the list. A file
// that the new generation names again is taken off the list.
func (st *state) retire(gone []string, live map[string]bool) (expired []string) {
	for _, p := range gone {
		if !live[p] {
			st.Garbage = append(st.Garbage, garbage{Path: p, Gen: st.Generation})
		}
	}
	kept := st.Garbage[:0]
	for _, g := range st.Garbage {
		switch {
		case live[g.Path]:
		case st.Generation-g.Gen >= keepGenerations:
			expired = append(expired, g.Path)
		default:
			kept = append(kept, g)
		}
	}
	st.Garbage = kept
	return expired
}

// removeFiles deletes files below root (slash-separated names), ignoring
// those already gone.
func removeFiles(root string, names []string) error {
	var errs []error
	for _, n := range names {
		if err := os.Remove(filepath.Join(root, filepath.FromSlash(n))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// input is the size and checksum of a package file given to a publish.
type input struct {
	Size   int64
	SHA256 string
}

// collectInputs expands paths (files, or directories searched recursively
// for files ending in ext) into a sorted list of distinct files.
func collectInputs(paths []string, ext string) ([]string, error) {
	var out []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			out = append(out, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			// A directory of build outputs holds source RPMs too: they
			// do not belong in a binary repository. Named one by one,
			// they are refused with a reason.
			if d.Type().IsRegular() && strings.HasSuffix(d.Name(), ext) && !strings.HasSuffix(d.Name(), ".src.rpm") {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// hashReader returns the size and SHA-256 of what r holds.
func hashReader(r io.Reader) (input, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return input{}, err
	}
	return input{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
