package repo

// Release repositories: a series of immutable, signed snapshots under one
// directory R, the live one named by a symlink.
//
//	R/snapshots/ID/          one complete signed repository (APT: dists/,
//	                         pool/; RPM: repodata/, Packages/), its package
//	                         files hard links into R/pool-store, and its
//	                         manifest in .sluice/snapshot.json
//	R/snapshots/.tmp-*       a snapshot being built (never listed)
//	R/snapshots/.trash-*     a snapshot being pruned (never listed)
//	R/pool-store/sha256/xx/<sha256>
//	                         every package file ever published, named by
//	                         the SHA-256 of its bytes as served (RPMs signed)
//	R/current -> snapshots/ID
//	                         switched by renaming a new symlink over it
//	R/.sluice/lock           one publish, rollback or prune at a time
//
// A snapshot ID is the publication's sequence number, six decimal digits
// (000001, 000002, ...): IDs sort in publication order as strings, and a
// release repository holds at most 999,999 snapshots. A snapshot is
// renamed into snapshots/ whole, then current is switched: a crash between
// the two leaves a complete snapshot that current does not name, which
// the next publish (starting from current) leaves as it is. Snapshots
// stay until a prune removes them (see [ReleaseDir.Prune]); the newest
// always stays, so an ID is never given twice.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	rpmlib "github.com/cavaliergopher/rpm"
	"pault.ag/go/debian/version"
)

// Names inside a release repository's directory.
const (
	// ReleaseCurrent is the symlink to the live snapshot, relative to the
	// release repository's directory; it points at "snapshots/ID".
	ReleaseCurrent = "current"
	// ReleaseSnapshots is the directory of the snapshots.
	ReleaseSnapshots = "snapshots"
	// ReleasePool is the content-addressed store the snapshots' package
	// files are hard links of.
	ReleasePool = "pool-store"
	// SnapshotManifest is, inside a snapshot, the file that lists its
	// packages with their provenance. No repository metadata names it; a
	// mirror may copy it or leave it out.
	SnapshotManifest = ".sluice/snapshot.json"
)

// DefaultKeep is how many versions of each package (name and
// architecture) a release repository keeps when its config does not say.
const DefaultKeep = 5

// maxSnapshotID is the last snapshot ID that still sorts as a string.
const maxSnapshotID = 999999

// ErrBadPackage is returned by a release publish given a file that is not
// a package it can publish (unreadable, malformed, or two files of one
// identity with other bytes): nothing was published.
var ErrBadPackage = errors.New("not a package that can be published")

// ErrNoSnapshot is returned when a release repository has no such
// snapshot, or no current one.
var ErrNoSnapshot = errors.New("release repository: no such snapshot")

var (
	snapshotIDRE  = regexp.MustCompile(`^[0-9]{6}$`)
	releaseNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+~-]*$`)
	hex64RE       = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ValidSnapshotID reports whether id has the form of a snapshot ID.
func ValidSnapshotID(id string) bool { return snapshotIDRE.MatchString(id) }

// ValidReleaseName reports whether name may name a release repository: it
// is one path element and one word.
func ValidReleaseName(name string) bool {
	return releaseNameRE.MatchString(name) && len(name) <= 200
}

// ReleaseConfig describes a release repository.
type ReleaseConfig struct {
	// Name names the repository in logs and errors.
	Name string
	// Format is "deb" or "rpm".
	Format string
	// Keep is how many versions of each package (name and architecture)
	// a new snapshot keeps, newest first; DefaultKeep when 0.
	Keep int
	// APT is the distribution an APT release repository is (deb only).
	APT APTConfig
}

// Validate checks the config and fills its defaults.
func (c *ReleaseConfig) Validate() error {
	if !ValidReleaseName(c.Name) {
		return fmt.Errorf("release repository: bad name %q", c.Name)
	}
	if c.Keep == 0 {
		c.Keep = DefaultKeep
	}
	if c.Keep < 1 || c.Keep > 1000 {
		return fmt.Errorf("release repository %s: keep %d is not 1 to 1000", c.Name, c.Keep)
	}
	switch c.Format {
	case "deb":
		if err := c.APT.Validate(); err != nil {
			return fmt.Errorf("release repository %s: %w", c.Name, err)
		}
	case "rpm":
	default:
		return fmt.Errorf("release repository %s: format %q is not deb or rpm", c.Name, c.Format)
	}
	return nil
}

// Provenance says where a package in a release repository comes from:
// the build record that made its bytes and the commit, on the release
// branch, it was built from.
type Provenance struct {
	Record  string `json:"record"`
	Project string `json:"project"`
	Commit  string `json:"commit"`
	Branch  string `json:"branch"`
	// URL is the repository the branch was read from.
	URL string `json:"url,omitempty"`
}

// Prover decides whether a package may enter a release repository (the
// provenance rule). Prove is given the package as it was built: its SHA256
// is that of the bytes the build made (for an RPM, before the release
// repository signed it). It returns the proof, or an error saying why
// there is none.
type Prover interface {
	Prove(ctx context.Context, pkg Package) (Provenance, error)
}

// BuiltOpener opens the bytes a build made, by their SHA-256. When the
// Prover given to an audit implements it, the audit also checks that each
// signed RPM holds exactly the header and payload of the package that was
// built (only the signature header differs).
type BuiltOpener interface {
	OpenBuilt(sha256 string) (io.ReadCloser, error)
}

// Refusal is a package a publish refused, and why.
type Refusal struct {
	Path    string
	Package Package
	Err     error
}

// RefusedError is returned by a publish that refused packages: nothing was
// published.
type RefusedError struct {
	Repo    string
	Refused []Refusal
}

// Error lists the refused packages and why.
func (e *RefusedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "release %s: %d packages refused, nothing published", e.Repo, len(e.Refused))
	for _, r := range e.Refused {
		fmt.Fprintf(&b, "; %s: %v", filepath.Base(r.Path), r.Err)
	}
	return b.String()
}

// Snapshot is one snapshot of a release repository.
type Snapshot struct {
	ID string
	// Parent is the snapshot this one was made from ("" for the first).
	Parent  string
	Created time.Time
	Format  string
	// Dir is the snapshot's directory: a complete repository.
	Dir      string
	Packages []SnapshotPackage
}

// SnapshotPackage is one package of a snapshot.
type SnapshotPackage struct {
	// Package is the package as served: Size and SHA256 are those of the
	// file in the snapshot.
	Package
	// Path is the file, slash-separated, relative to the snapshot.
	Path string
	// Source is the SHA-256 of the bytes the build made: the same as
	// SHA256 for a .deb, that of the unsigned package for an RPM.
	Source string
	// Since is the snapshot the package entered in.
	Since      string
	Provenance Provenance
}

// Identity is the package's name, version and architecture: unique in a
// snapshot.
func (p SnapshotPackage) Identity() string { return p.Name + "_" + p.EVR() + "_" + p.Arch }

// releaseEntry is one package in a snapshot's manifest.
type releaseEntry struct {
	entry
	Since      string     `json:"since"`
	Provenance Provenance `json:"provenance"`
}

// snapshotManifest is a snapshot's .sluice/snapshot.json.
type snapshotManifest struct {
	ID       string         `json:"id"`
	Parent   string         `json:"parent,omitempty"`
	Name     string         `json:"name"`
	Format   string         `json:"format"`
	Scope    string         `json:"scope,omitempty"`
	Created  time.Time      `json:"created"`
	Keep     int            `json:"keep"`
	Packages []releaseEntry `json:"packages"`
}

// ReleaseDir is the directory of a release repository: what can be read
// and switched without its signing key.
type ReleaseDir string

// SnapshotDir is the directory of snapshot id.
func (d ReleaseDir) SnapshotDir(id string) string {
	return filepath.Join(string(d), ReleaseSnapshots, id)
}

// Snapshots returns the complete snapshots, oldest first. A snapshot being
// built is not listed.
func (d ReleaseDir) Snapshots() ([]Snapshot, error) {
	ents, err := os.ReadDir(filepath.Join(string(d), ReleaseSnapshots))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", d, err)
	}
	var out []Snapshot
	for _, e := range ents {
		if !e.IsDir() || !ValidSnapshotID(e.Name()) {
			continue
		}
		s, err := d.Snapshot(e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Snapshot reads snapshot id.
func (d ReleaseDir) Snapshot(id string) (Snapshot, error) {
	m, err := d.manifest(id)
	if err != nil {
		return Snapshot{}, err
	}
	return m.snapshot(d.SnapshotDir(id)), nil
}

// CurrentID returns the ID of the live snapshot; an error wrapping
// ErrNoSnapshot when nothing was published yet.
func (d ReleaseDir) CurrentID() (string, error) {
	target, err := os.Readlink(filepath.Join(string(d), ReleaseCurrent))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("release %s: current: %w", d, ErrNoSnapshot)
	}
	if err != nil {
		return "", fmt.Errorf("release %s: current: %w", d, err)
	}
	id, ok := strings.CutPrefix(target, ReleaseSnapshots+"/")
	if !ok || !ValidSnapshotID(id) {
		return "", fmt.Errorf("release %s: current points at %q, not at %s/ID", d, target, ReleaseSnapshots)
	}
	return id, nil
}

// Current reads the live snapshot; an error wrapping ErrNoSnapshot when
// nothing was published yet.
func (d ReleaseDir) Current() (Snapshot, error) {
	id, err := d.CurrentID()
	if err != nil {
		return Snapshot{}, err
	}
	return d.Snapshot(id)
}

// maxManifestSize bounds a snapshot manifest.
const maxManifestSize = 1 << 30

func (d ReleaseDir) manifest(id string) (*snapshotManifest, error) {
	if !ValidSnapshotID(id) {
		return nil, fmt.Errorf("release %s: %q is not a snapshot ID", d, id)
	}
	f, err := os.Open(filepath.Join(d.SnapshotDir(id), filepath.FromSlash(SnapshotManifest)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("release %s: snapshot %s: %w", d, id, ErrNoSnapshot)
	}
	if err != nil {
		return nil, fmt.Errorf("release %s: snapshot %s: %w", d, id, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("release %s: snapshot %s: %w", d, id, err)
	}
	m, err := parseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("release %s: snapshot %s: %w", d, id, err)
	}
	if m.ID != id {
		return nil, fmt.Errorf("release %s: snapshot %s: manifest names snapshot %q", d, id, m.ID)
	}
	return m, nil
}

// parseManifest decodes and checks a snapshot manifest: every name in it
// is used as a path, so nothing is trusted.
func parseManifest(data []byte) (*snapshotManifest, error) {
	if len(data) > maxManifestSize {
		return nil, fmt.Errorf("manifest larger than %d bytes", maxManifestSize)
	}
	var m snapshotManifest
	if err := decodeJSONStrict(data, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if !ValidSnapshotID(m.ID) || (m.Parent != "" && (!ValidSnapshotID(m.Parent) || m.Parent >= m.ID)) {
		return nil, fmt.Errorf("manifest: bad snapshot IDs %q (parent %q)", m.ID, m.Parent)
	}
	if !ValidReleaseName(m.Name) {
		return nil, fmt.Errorf("manifest: bad name %q", m.Name)
	}
	if m.Format != "deb" && m.Format != "rpm" {
		return nil, fmt.Errorf("manifest: bad format %q", m.Format)
	}
	paths := make(map[string]bool, len(m.Packages))
	ids := make(map[string]bool, len(m.Packages))
	for i := range m.Packages {
		e := &m.Packages[i]
		if err := e.check(m.Format); err != nil {
			return nil, fmt.Errorf("manifest: package %d: %w", i, err)
		}
		if paths[e.Pool] {
			return nil, fmt.Errorf("manifest: %s listed twice", e.Pool)
		}
		paths[e.Pool] = true
		id := e.identity()
		if ids[id] {
			return nil, fmt.Errorf("manifest: %s listed twice", id)
		}
		ids[id] = true
		if !ValidSnapshotID(e.Since) || e.Since > m.ID {
			return nil, fmt.Errorf("manifest: %s: bad snapshot %q it entered in", id, e.Since)
		}
	}
	return &m, nil
}

func (e *releaseEntry) check(format string) error {
	if !safeRelPath(e.Pool) || strings.HasPrefix(e.Pool, ".") {
		return fmt.Errorf("bad path %q", e.Pool)
	}
	if !hex64RE.MatchString(e.SHA256) || !hex64RE.MatchString(e.Source) || e.Size < 0 {
		return fmt.Errorf("%s: bad size or checksums", e.Pool)
	}
	switch {
	case format == "deb" && e.Deb != nil && e.RPM == nil:
		if err := e.Deb.validate(); err != nil {
			return fmt.Errorf("%s: %w", e.Pool, err)
		}
	case format == "rpm" && e.RPM != nil && e.Deb == nil:
		if err := e.RPM.validate(); err != nil {
			return fmt.Errorf("%s: %w", e.Pool, err)
		}
	default:
		return fmt.Errorf("%s: not a %s package", e.Pool, format)
	}
	return nil
}

// identity is the package's identity within its format.
func (e *releaseEntry) identity() string {
	if e.Deb != nil {
		return e.Deb.key()
	}
	return e.RPM.key()
}

func (m *snapshotManifest) snapshot(dir string) Snapshot {
	s := Snapshot{ID: m.ID, Parent: m.Parent, Created: m.Created, Format: m.Format, Dir: dir,
		Packages: make([]SnapshotPackage, 0, len(m.Packages))}
	for i := range m.Packages {
		e := &m.Packages[i]
		p := entryPackage(&e.entry)
		p.Size, p.SHA256 = e.Size, e.SHA256
		s.Packages = append(s.Packages, SnapshotPackage{Package: p, Path: e.Pool, Source: e.Source,
			Since: e.Since, Provenance: e.Provenance})
	}
	return s
}

// entryPackage is the Package an entry describes (Size and SHA256 left to
// the caller: served or built bytes).
func entryPackage(e *entry) Package {
	var p Package
	switch {
	case e.Deb != nil:
		p.Format, p.Name, p.Arch = "deb", e.Deb.Package, e.Deb.Arch
		if v, err := version.Parse(e.Deb.Version); err == nil {
			p.Epoch, p.Version, p.Release = uint32(v.Epoch), v.Version, v.Revision
		} else {
			p.Version = e.Deb.Version
		}
	case e.RPM != nil:
		p.Format, p.Name, p.Epoch, p.Version, p.Release, p.Arch = "rpm", e.RPM.Name, e.RPM.Epoch, e.RPM.Version, e.RPM.Release, e.RPM.Arch
	}
	return p
}

// Release publishes into a release repository: each publish makes a new
// snapshot, signed with its key, and switches current to it.
type Release struct {
	dir ReleaseDir
	key *Key
	cfg ReleaseConfig
	log *slog.Logger
	now func() time.Time
	// fail, when set (tests), is called at each step of building a
	// snapshot and stops the publish with its error.
	fail func(step string) error
}

// NewRelease returns the release repository in dir, signed with key.
func NewRelease(dir string, key *Key, cfg ReleaseConfig, log *slog.Logger) (*Release, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Release{dir: ReleaseDir(dir), key: key, cfg: cfg, log: log, now: time.Now}, nil
}

// Dir is the repository's directory.
func (r *Release) Dir() ReleaseDir { return r.dir }

// ReleaseSummary says what a publish did.
type ReleaseSummary struct {
	// Snapshot is the new snapshot, or the current one when nothing was
	// new (Created false).
	Snapshot Snapshot
	Created  bool
	// Added are the packages new to the repository; Unchanged counts
	// those given that the current snapshot holds already; Pruned are
	// those the retention rule left out of the new snapshot.
	Added     []SnapshotPackage
	Unchanged int
	Pruned    []SnapshotPackage
}

func (r *Release) format(root string) format {
	switch r.cfg.Format {
	case "deb":
		return aptFormat{&APT{root: root, key: r.key, cfg: r.cfg.APT, log: r.log, now: r.now}}
	default:
		return rpmFormat{&RPM{root: root, key: r.key, log: r.log, now: r.now}}
	}
}

func (r *Release) scope() string {
	if r.cfg.Format == "deb" {
		return r.cfg.APT.Codename
	}
	return ""
}

func (r *Release) step(name string) error {
	if r.fail == nil {
		return nil
	}
	return r.fail(name)
}

// Publish makes a new snapshot: the current one plus the packages in paths
// (files, or directories searched for the format's packages), keeping the
// newest Keep versions of each package, and switches current to it.
//
// Every package must be proven by prover (the provenance rule); a package
// with the identity of one already published but other bytes is refused
// (ErrConflict). A refusal publishes nothing (*RefusedError). Everything is
// read and checked before anything is written; the snapshot is built under
// snapshots/.tmp-*, its metadata written last, renamed into place whole,
// and only then is current switched. A publish that fails leaves current
// and the list of snapshots as they were. The first publish checks its
// packages before it makes the repository's directory, so that one
// refused leaves no directory behind.
func (r *Release) Publish(ctx context.Context, paths []string, prover Prover) (sum ReleaseSummary, err error) {
	if prover == nil {
		return sum, fmt.Errorf("release %s: no provenance check", r.cfg.Name)
	}
	root := string(r.dir)
	var first *publishPlan
	if _, err := os.Lstat(root); errors.Is(err, fs.ErrNotExist) {
		// Nothing to lock yet: check against the empty repository.
		first, err = r.plan(ctx, r.emptyManifest(), paths, prover)
		if err != nil {
			return sum, err
		}
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return sum, fmt.Errorf("release %s: %w", r.cfg.Name, err)
	}
	unlock, err := lockDir(root)
	if err != nil {
		return sum, err
	}
	defer unlock()
	r.dir.removeLeftovers()

	cur, err := r.currentManifest()
	if err != nil {
		return sum, err
	}
	p := first
	if p == nil || cur.ID != "" {
		// Not a first publish, or another one came first.
		if p, err = r.plan(ctx, cur, paths, prover); err != nil {
			return sum, err
		}
	}
	sum.Unchanged = p.unchanged
	changes := p.changes
	if len(changes) == 0 && cur.ID != "" {
		sum.Snapshot = cur.snapshot(r.dir.SnapshotDir(cur.ID))
		r.log.Info("release unchanged", "repo", r.cfg.Name, "snapshot", cur.ID, "packages", len(cur.Packages))
		return sum, nil
	}
	if cur.ID == "" {
		defer func() {
			if err != nil {
				r.dir.removeUnpublished()
			}
		}()
	}
	// Made under the lock: a failed first publish removes them.
	for _, d := range []string{filepath.Join(root, ReleaseSnapshots), filepath.Join(root, ReleasePool)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return sum, fmt.Errorf("release %s: %w", r.cfg.Name, err)
		}
	}
	id, err := r.nextID()
	if err != nil {
		return sum, err
	}
	// Store the new packages (RPMs signed) in the pool.
	stored := make([]releaseEntry, len(changes))
	errs := make([]error, len(changes))
	err = forEach(ctx, len(changes), func(i int) {
		stored[i], errs[i] = r.store(ctx, changes[i].src, changes[i].e)
	})
	if err == nil {
		err = errors.Join(errs...)
	}
	if err != nil {
		return sum, fmt.Errorf("release %s: %w", r.cfg.Name, err)
	}

	all := slices.Clone(cur.Packages)
	for _, e := range stored {
		e.Since = id
		all = append(all, e)
	}
	kept, pruned := r.retain(all)
	m := &snapshotManifest{ID: id, Parent: cur.ID, Name: r.cfg.Name, Format: r.cfg.Format, Scope: r.scope(),
		Created: r.now().UTC().Truncate(time.Second), Keep: r.cfg.Keep, Packages: kept}
	if err := r.build(ctx, m); err != nil {
		return sum, err
	}
	if err := r.switchCurrent(id); err != nil {
		// The snapshot is complete and listed; current still names the
		// previous one.
		return sum, err
	}
	sum.Snapshot, sum.Created = m.snapshot(r.dir.SnapshotDir(id)), true
	for _, p := range sum.Snapshot.Packages {
		if p.Since == id {
			sum.Added = append(sum.Added, p)
		}
	}
	pm := &snapshotManifest{ID: id, Format: m.Format, Packages: pruned}
	sum.Pruned = pm.snapshot("").Packages
	r.log.Info("release published", "repo", r.cfg.Name, "format", r.cfg.Format, "snapshot", id,
		"packages", len(kept), "added", len(sum.Added), "pruned", len(pruned))
	return sum, nil
}

// publishPlan is what a publish found to do: the packages to add, proven,
// and how many of those given the repository holds already.
type publishPlan struct {
	changes   []publishChange
	unchanged int
}

type publishChange struct {
	src pkgFile
	e   releaseEntry
}

// emptyManifest is the manifest of a repository with no snapshot.
func (r *Release) emptyManifest() *snapshotManifest {
	return &snapshotManifest{Format: r.cfg.Format, Scope: r.scope()}
}

// plan reads and checks the packages in paths against cur, the manifest
// of the current snapshot, and has prover prove each new one. It writes
// nothing.
func (r *Release) plan(ctx context.Context, cur *snapshotManifest, paths []string, prover Prover) (*publishPlan, error) {
	f := r.format("")
	files, err := collectInputs(paths, f.ext())
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", r.cfg.Name, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("release %s: no %s files in %q", r.cfg.Name, f.ext(), paths)
	}
	known := make(map[string]*entry, len(cur.Packages))
	byID := make(map[string]*releaseEntry, len(cur.Packages))
	for i := range cur.Packages {
		known[cur.Packages[i].Source] = &cur.Packages[i].entry
		byID[cur.Packages[i].identity()] = &cur.Packages[i]
	}
	incoming, data, err := readInputs(ctx, f, known, files)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("release %s: %w: %w", r.cfg.Name, ErrBadPackage, err)
	}

	p := &publishPlan{}
	var refused []Refusal
	seen := map[string]int{}
	for i := range incoming {
		e := releaseEntry{entry: incoming[i]}
		id := e.identity()
		if j, ok := seen[id]; ok {
			if incoming[j].Source != e.Source {
				return nil, fmt.Errorf("release %s: %s and %s are both %s with other bytes: %w", r.cfg.Name, files[j], files[i], id, ErrBadPackage)
			}
			p.unchanged++
			continue
		}
		seen[id] = i
		if old, ok := byID[id]; ok {
			if old.Source == e.Source {
				p.unchanged++
				continue
			}
			return nil, fmt.Errorf("release %s: package %s (%s): %w", r.cfg.Name, files[i], id, ErrConflict)
		}
		pkg := entryPackage(&e.entry)
		pkg.Size, pkg.SHA256 = e.Size, e.Source
		prov, err := prover.Prove(ctx, pkg)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			refused = append(refused, Refusal{Path: files[i], Package: pkg, Err: err})
			continue
		}
		e.Provenance = prov
		p.changes = append(p.changes, publishChange{src: pkgFile{files[i], data[i]}, e: e})
	}
	if len(refused) > 0 {
		return nil, &RefusedError{Repo: r.cfg.Name, Refused: refused}
	}
	return p, nil
}

// currentManifest reads the live snapshot's manifest, or an empty one.
func (r *Release) currentManifest() (*snapshotManifest, error) {
	id, err := r.dir.CurrentID()
	if errors.Is(err, ErrNoSnapshot) {
		return &snapshotManifest{Format: r.cfg.Format, Scope: r.scope()}, nil
	}
	if err != nil {
		return nil, err
	}
	m, err := r.dir.manifest(id)
	if err != nil {
		return nil, err
	}
	if m.Format != r.cfg.Format || m.Scope != r.scope() {
		return nil, fmt.Errorf("release %s: %s holds a %s repository %q, not %s %q", r.cfg.Name, r.dir, m.Format, m.Scope, r.cfg.Format, r.scope())
	}
	return m, nil
}

// nextID is one past the highest snapshot ID there is.
func (r *Release) nextID() (string, error) {
	ents, err := os.ReadDir(filepath.Join(string(r.dir), ReleaseSnapshots))
	if err != nil {
		return "", fmt.Errorf("release %s: %w", r.cfg.Name, err)
	}
	last := 0
	for _, e := range ents {
		if ValidSnapshotID(e.Name()) {
			n, _ := strconv.Atoi(e.Name())
			last = max(last, n)
		}
	}
	if last >= maxSnapshotID {
		return "", fmt.Errorf("release %s: snapshot IDs used up (%d)", r.cfg.Name, maxSnapshotID)
	}
	return fmt.Sprintf("%06d", last+1), nil
}

// removeLeftovers removes what an interrupted publish or prune left:
// snapshots being built or removed, symlinks being switched, pool files
// being written. The caller holds the lock.
func (d ReleaseDir) removeLeftovers() {
	root := string(d)
	for _, pat := range []string{
		filepath.Join(root, ReleaseSnapshots, ".tmp-*"),
		filepath.Join(root, ReleaseSnapshots, trashPrefix+"*"),
		filepath.Join(root, ".tmp-current-*"),
		filepath.Join(root, ReleasePool, "tmp", "*"),
	} {
		old, _ := filepath.Glob(pat)
		for _, p := range old {
			os.RemoveAll(p)
		}
	}
}

// removeUnpublished removes, after a first publish failed, the snapshots
// directory and the pool it began to fill, unless a snapshot made it into
// snapshots/ (a publish that failed only to switch current): then the
// repository was published. What stays is the directory and its lock,
// which [ReleaseDir.Published] does not count. The caller holds the lock.
func (d ReleaseDir) removeUnpublished() {
	if d.Published() {
		return
	}
	os.RemoveAll(filepath.Join(string(d), ReleasePool))
	os.RemoveAll(filepath.Join(string(d), ReleaseSnapshots))
}

// Published reports whether anything was published into the repository:
// it has a snapshot or a current link. A directory that a failed first
// publish left (its lock alone) is not.
func (d ReleaseDir) Published() bool {
	if _, err := os.Lstat(filepath.Join(string(d), ReleaseCurrent)); err == nil {
		return true
	}
	ents, _ := os.ReadDir(filepath.Join(string(d), ReleaseSnapshots))
	for _, e := range ents {
		if ValidSnapshotID(e.Name()) {
			return true
		}
	}
	return false
}

// poolStorePath is where the bytes with this SHA-256 are kept, relative to
// the repository's directory.
func poolStorePath(sha string) string {
	return ReleasePool + "/sha256/" + sha[:2] + "/" + sha
}

// store writes a new package into the pool (an RPM signed), under a
// temporary name, then renames it to the SHA-256 of what was written. The
// entry returned describes the stored bytes.
func (r *Release) store(ctx context.Context, src pkgFile, e releaseEntry) (releaseEntry, error) {
	root := string(r.dir)
	f := r.format(filepath.Join(root, ReleasePool))
	tmp := "tmp/" + e.Source[:16] + "-" + randomHex()
	e.Pool = tmp
	stored, err := f.store(ctx, src, e.entry)
	if err != nil {
		os.Remove(filepath.Join(root, ReleasePool, filepath.FromSlash(tmp)))
		return e, fmt.Errorf("store %s: %w", src.path, err)
	}
	tmpPath := filepath.Join(root, ReleasePool, filepath.FromSlash(tmp))
	dst := filepath.Join(root, filepath.FromSlash(poolStorePath(stored.SHA256)))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		os.Remove(tmpPath)
		return e, err
	}
	if _, err := os.Stat(dst); err == nil {
		// The same bytes are there already (content-addressed).
		os.Remove(tmpPath)
	} else if err := os.Rename(tmpPath, dst); err != nil {
		os.Remove(tmpPath)
		return e, fmt.Errorf("store %s: %w", src.path, err)
	}
	e.entry = stored
	e.Pool = f.poolPath(&e.entry)
	return e, nil
}

func randomHex() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// packageKey groups the versions of one package: name and architecture.
func (e *releaseEntry) packageKey() string {
	if e.Deb != nil {
		return e.Deb.Package + "\x00" + e.Deb.Arch
	}
	return e.RPM.Name + "\x00" + e.RPM.Arch
}

// compareVersions orders two versions of one package, as dpkg or rpm does.
func compareVersions(a, b *releaseEntry) int {
	if a.Deb != nil {
		va, errA := version.Parse(a.Deb.Version)
		vb, errB := version.Parse(b.Deb.Version)
		if errA != nil || errB != nil {
			return strings.Compare(a.Deb.Version, b.Deb.Version)
		}
		return version.Compare(va, vb)
	}
	return rpmlib.Compare(rpmVersion{a.RPM}, rpmVersion{b.RPM})
}

// rpmVersion is an rpmMeta as the version the rpm library compares.
type rpmVersion struct{ m *rpmMeta }

func (v rpmVersion) Epoch() int      { return int(v.m.Epoch) }
func (v rpmVersion) Version() string { return v.m.Version }
func (v rpmVersion) Release() string { return v.m.Release }

// retain applies the retention rule: the newest Keep versions of each
// package. Both lists come back sorted by identity.
func (r *Release) retain(all []releaseEntry) (kept, pruned []releaseEntry) {
	groups := map[string][]releaseEntry{}
	for _, e := range all {
		k := e.packageKey()
		groups[k] = append(groups[k], e)
	}
	for _, g := range groups {
		slices.SortStableFunc(g, func(a, b releaseEntry) int {
			return cmp.Or(-compareVersions(&a, &b), strings.Compare(b.Since, a.Since))
		})
		n := min(len(g), r.cfg.Keep)
		kept = append(kept, g[:n]...)
		pruned = append(pruned, g[n:]...)
	}
	byID := func(a, b releaseEntry) int { return strings.Compare(a.identity(), b.identity()) }
	slices.SortFunc(kept, byID)
	slices.SortFunc(pruned, byID)
	return kept, pruned
}

// build writes snapshot m under a temporary name in snapshots/: the
// package files as hard links into the pool, then the signed metadata,
// then the manifest, and renames it to its ID. On an error it removes what
// it wrote; nothing was visible.
func (r *Release) build(ctx context.Context, m *snapshotManifest) (err error) {
	root := string(r.dir)
	tmp, err := os.MkdirTemp(filepath.Join(root, ReleaseSnapshots), ".tmp-"+m.ID+"-")
	if err != nil {
		return fmt.Errorf("release %s: %w", r.cfg.Name, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
			err = fmt.Errorf("release %s: snapshot %s: %w", r.cfg.Name, m.ID, err)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	st := &state{Format: m.Format, Scope: m.Scope, Generation: 1}
	for i := range m.Packages {
		e := &m.Packages[i]
		if err := ctx.Err(); err != nil {
			return err
		}
		dst := filepath.Join(tmp, filepath.FromSlash(e.Pool))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := linkOrCopy(filepath.Join(root, filepath.FromSlash(poolStorePath(e.SHA256))), dst); err != nil {
			return fmt.Errorf("link %s: %w", e.Pool, err)
		}
		st.Packages = append(st.Packages, e.entry)
	}
	if err := r.step("linked"); err != nil {
		return err
	}
	if _, err := r.format(tmp).index(ctx, st); err != nil {
		return err
	}
	if err := r.step("indexed"); err != nil {
		return err
	}
	doc, err := jsonMarshal(m)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(tmp, SnapshotManifest, doc); err != nil {
		return err
	}
	if err := r.step("manifest"); err != nil {
		return err
	}
	if err := os.Rename(tmp, r.dir.SnapshotDir(m.ID)); err != nil {
		return err
	}
	return syncDir(filepath.Join(root, ReleaseSnapshots))
}

// linkOrCopy makes dst a hard link of src, or a copy where the filesystem
// cannot link.
func linkOrCopy(src, dst string) error {
	err := os.Link(src, dst)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// switchCurrent points current at snapshot id: a new symlink renamed over
// the old one, so a reader finds the old target or the new one.
func (r *Release) switchCurrent(id string) error {
	return switchCurrent(string(r.dir), id)
}

func switchCurrent(root, id string) error {
	tmp := filepath.Join(root, ".tmp-current-"+randomHex())
	if err := os.Symlink(ReleaseSnapshots+"/"+id, tmp); err != nil {
		return fmt.Errorf("release %s: switch to %s: %w", root, id, err)
	}
	if err := os.Rename(tmp, filepath.Join(root, ReleaseCurrent)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("release %s: switch to %s: %w", root, id, err)
	}
	if err := syncDir(root); err != nil {
		return fmt.Errorf("release %s: switch to %s: %w", root, id, err)
	}
	return nil
}

// Rollback switches current to snapshot id, which must be complete. A
// snapshot that was pruned is refused with an error that says so (and
// wraps ErrNoSnapshot).
func (d ReleaseDir) Rollback(ctx context.Context, id string) error {
	if err := d.rollbackTarget(id); err != nil {
		return err
	}
	unlock, err := lockDir(string(d))
	if err != nil {
		return err
	}
	defer unlock()
	// Again under the lock: a prune may have removed it meanwhile.
	if err := d.rollbackTarget(id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return switchCurrent(string(d), id)
}

// rollbackTarget checks that snapshot id can be made current.
func (d ReleaseDir) rollbackTarget(id string) error {
	_, err := d.manifest(id)
	if errors.Is(err, ErrNoSnapshot) && d.pruned(id) {
		return fmt.Errorf("release %s: rollback: snapshot %s was pruned; only snapshots still listed can be made current: %w", d, id, ErrNoSnapshot)
	}
	return err
}

// SnapshotDiff is what changed from one snapshot to another.
type SnapshotDiff struct {
	// Added and Removed are packages (name, version, architecture) only
	// the second or only the first snapshot holds; Changed are those both
	// hold with other bytes (second snapshot's).
	Added, Removed, Changed []SnapshotPackage
}

// DiffSnapshots compares snapshot a with snapshot b.
func DiffSnapshots(a, b Snapshot) SnapshotDiff {
	var d SnapshotDiff
	inA := map[string]SnapshotPackage{}
	for _, p := range a.Packages {
		inA[p.Identity()] = p
	}
	inB := map[string]bool{}
	for _, p := range b.Packages {
		inB[p.Identity()] = true
		old, ok := inA[p.Identity()]
		switch {
		case !ok:
			d.Added = append(d.Added, p)
		case old.SHA256 != p.SHA256:
			d.Changed = append(d.Changed, p)
		}
	}
	for _, p := range a.Packages {
		if !inB[p.Identity()] {
			d.Removed = append(d.Removed, p)
		}
	}
	return d
}

// AuditFinding is one package (or snapshot) that fails the audit.
type AuditFinding struct {
	Snapshot string
	Path     string // "" for the snapshot as a whole
	Err      error
}

// String is the finding as "SNAPSHOT/PATH: reason".
func (f AuditFinding) String() string {
	if f.Path == "" {
		return f.Snapshot + ": " + f.Err.Error()
	}
	return f.Snapshot + "/" + f.Path + ": " + f.Err.Error()
}

// AuditSummary counts what an audit checked.
type AuditSummary struct {
	Snapshots, Packages int
}

// Audit proves again every package of every snapshot: the snapshot
// verifies against keyring (signatures, sizes, checksums), each package
// file has the size and SHA-256 its manifest records, a .deb is the bytes
// that were built and an RPM (when prover is a BuiltOpener) their header
// and payload, and prover accepts the bytes it was built as. It returns
// every finding; err is for a repository that cannot be read.
func (d ReleaseDir) Audit(ctx context.Context, keyring openpgp.EntityList, prover Prover) ([]AuditFinding, AuditSummary, error) {
	var sum AuditSummary
	if prover == nil {
		return nil, sum, fmt.Errorf("release %s: audit: no provenance check", d)
	}
	snaps, err := d.Snapshots()
	if err != nil {
		return nil, sum, err
	}
	var out []AuditFinding
	proofs := map[string]error{} // by Source: a package is proven once
	for _, s := range snaps {
		sum.Snapshots++
		probs, err := Verify(ctx, s.Dir, keyring)
		if err != nil {
			out = append(out, AuditFinding{Snapshot: s.ID, Err: err})
		}
		for _, p := range probs {
			out = append(out, AuditFinding{Snapshot: s.ID, Path: p.Path, Err: p.Err})
		}
		for _, p := range s.Packages {
			if err := ctx.Err(); err != nil {
				return out, sum, err
			}
			sum.Packages++
			if err := checkServed(s.Dir, p); err != nil {
				out = append(out, AuditFinding{Snapshot: s.ID, Path: p.Path, Err: err})
			} else if err := checkBuilt(s.Dir, p, prover); err != nil {
				out = append(out, AuditFinding{Snapshot: s.ID, Path: p.Path, Err: err})
			}
			perr, done := proofs[p.Source]
			if !done {
				built := p.Package
				built.SHA256 = p.Source
				_, perr = prover.Prove(ctx, built)
				if perr != nil && ctx.Err() != nil {
					return out, sum, ctx.Err()
				}
				proofs[p.Source] = perr
			}
			if perr != nil {
				out = append(out, AuditFinding{Snapshot: s.ID, Path: p.Path, Err: fmt.Errorf("provenance: %w", perr)})
			}
		}
	}
	return out, sum, nil
}

// checkServed checks that a snapshot's package file is what its manifest
// records.
func checkServed(dir string, p SnapshotPackage) error {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(p.Path)))
	if err != nil {
		return err
	}
	defer f.Close()
	got, err := hashReader(f)
	if err != nil {
		return err
	}
	if got.Size != p.Size || got.SHA256 != p.SHA256 {
		return fmt.Errorf("file is %d bytes with SHA-256 %s, manifest says %d bytes with %s", got.Size, got.SHA256, p.Size, p.SHA256)
	}
	return nil
}

// decodeJSONStrict decodes one JSON value, refusing unknown fields and
// anything after it.
func decodeJSONStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// checkBuilt checks that a package as served is the package as built: the
// same bytes for a .deb; for an RPM, when the built bytes can be opened,
// the same bytes after the signature header.
func checkBuilt(dir string, p SnapshotPackage, prover Prover) error {
	if p.Format == "deb" {
		if p.SHA256 != p.Source {
			return fmt.Errorf("served bytes (sha256 %s) are not those built (sha256 %s)", p.SHA256, p.Source)
		}
		return nil
	}
	bo, ok := prover.(BuiltOpener)
	if !ok {
		return nil
	}
	served, err := rpmContentFile(filepath.Join(dir, filepath.FromSlash(p.Path)))
	if err != nil {
		return err
	}
	rc, err := bo.OpenBuilt(p.Source)
	if err != nil {
		return fmt.Errorf("built package (sha256 %s): %w", p.Source, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxBuiltRPM+1))
	if err != nil {
		return fmt.Errorf("built package (sha256 %s): %w", p.Source, err)
	}
	if len(data) > maxBuiltRPM {
		return fmt.Errorf("built package (sha256 %s): larger than %d bytes", p.Source, maxBuiltRPM)
	}
	built, err := rpmContent(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return fmt.Errorf("built package (sha256 %s): %w", p.Source, err)
	}
	if served != built {
		return fmt.Errorf("header and payload (sha256 %s) are not those of the package built (sha256 %s)", served, built)
	}
	return nil
}

// maxBuiltRPM bounds the built RPM an audit reads into memory.
const maxBuiltRPM = 4 << 30

func rpmContentFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	return rpmContent(f, fi.Size())
}

// rpmContent is the SHA-256 of an RPM's main header and payload: what
// signing leaves as it is.
func rpmContent(r io.ReaderAt, size int64) (string, error) {
	lay, _, err := readRPMHeaders(r, size)
	if err != nil {
		return "", err
	}
	in, err := hashReader(io.NewSectionReader(r, lay.hdrStart, size-lay.hdrStart))
	if err != nil {
		return "", err
	}
	return in.SHA256, nil
}
