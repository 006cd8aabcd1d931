package systest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-ci/sluice/internal/proc"
)

// DefaultMirror is the Debian mirror a base is prepared from when its
// definition names none.
const DefaultMirror = "http://deb.debian.org/debian"

// BaseSpec defines a base system: what `sluice env prepare NAME` builds.
type BaseSpec struct {
	// Name names the base in config and on the command line.
	Name string `yaml:"name" json:"name"`
	// Suite is the Debian codename (bookworm).
	Suite string `yaml:"suite" json:"suite"`
	// Variant is mmdebstrap's variant: apt (Essential packages and apt,
	// the default) or minbase (also the Priority: required ones).
	Variant string `yaml:"variant" json:"variant,omitempty"`
	// Packages are more Debian packages to include.
	Packages []string `yaml:"packages" json:"packages,omitempty"`
	// Mirror is the Debian mirror; DefaultMirror when empty.
	Mirror string `yaml:"mirror" json:"mirror,omitempty"`
	// RPM makes a base for RPM packages: Debian's rpm and dnf, an rpmdb
	// in /var/lib/rpm, and a generated package that provides what the
	// base holds (see the package documentation).
	RPM bool `yaml:"rpm" json:"rpm,omitempty"`
}

var (
	baseNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	suiteRE    = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)
	debNameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]{1,100}$`)
)

// Validate checks a definition; its strings reach mmdebstrap's command line.
func (b BaseSpec) Validate() error {
	switch {
	case !baseNameRE.MatchString(b.Name):
		return fmt.Errorf("base %q: name: not [a-z0-9][a-z0-9._-]*", b.Name)
	case !suiteRE.MatchString(b.Suite):
		return fmt.Errorf("base %s: suite %q: not a Debian codename", b.Name, b.Suite)
	case b.Variant != "" && b.Variant != "apt" && b.Variant != "minbase":
		return fmt.Errorf("base %s: variant %q: not apt or minbase", b.Name, b.Variant)
	}
	for _, p := range b.Packages {
		if !debNameRE.MatchString(p) {
			return fmt.Errorf("base %s: package %q: not a Debian package name", b.Name, p)
		}
	}
	if b.Mirror != "" {
		u, err := url.Parse(b.Mirror)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			strings.ContainsAny(b.Mirror, " \t\n\"'") {
			return fmt.Errorf("base %s: mirror %q: not an http(s) URL without credentials", b.Name, b.Mirror)
		}
	}
	return nil
}

// normal returns the definition with defaults filled in and packages
// sorted: what the key hashes.
func (b BaseSpec) normal() BaseSpec {
	if b.Variant == "" {
		b.Variant = "apt"
	}
	if b.Mirror == "" {
		b.Mirror = DefaultMirror
	}
	p := slices.Clone(b.Packages)
	if b.RPM {
		p = append(p, "rpm", "dnf")
	}
	slices.Sort(p)
	b.Packages = slices.Compact(p)
	return b
}

// baseFormat changes whenever what Prepare makes of a definition
// changes, so that bases made before are prepared again.
const baseFormat = "sluice base v2\n"

// Key is the hash of the definition that names its prepared copy: a
// changed definition is a new key, prepared again.
func (b BaseSpec) Key() string {
	data, _ := json.Marshal(b.normal())
	sum := sha256.Sum256(append([]byte(baseFormat), data...))
	return hex.EncodeToString(sum[:8])
}

// Base is a prepared base system.
type Base struct {
	Spec    BaseSpec  `json:"spec"`
	Key     string    `json:"key"`
	Created time.Time `json:"created"`
	// Size is the bytes of its files.
	Size int64 `json:"size"`
	// Seconds is how long it took to prepare.
	Seconds float64 `json:"seconds"`
	// Dir is the base's directory; its system is Dir/root.
	Dir string `json:"-"`
}

// Root is the base's system root.
func (b Base) Root() string { return filepath.Join(b.Dir, "root") }

// metaFile is the name of a base's metadata, beside its root.
const metaFile = "meta.json"

// ParseMeta reads a base's metadata file.
func ParseMeta(data []byte) (Base, error) {
	var b Base
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return Base{}, fmt.Errorf("base metadata: %w", err)
	}
	if err := b.Spec.Validate(); err != nil {
		return Base{}, fmt.Errorf("base metadata: %w", err)
	}
	if b.Key != b.Spec.Key() {
		return Base{}, fmt.Errorf("base metadata: key %q is not its definition's %s", b.Key, b.Spec.Key())
	}
	if b.Created.IsZero() || b.Size < 0 {
		return Base{}, errors.New("base metadata: no creation time, or a negative size")
	}
	return b, nil
}

// Bases is a cache of prepared bases under one directory: DIR/NAME-KEY/
// holds root/ and meta.json, DIR/NAME-KEY.lock is held shared by each
// environment running on it and exclusively while it is prepared or
// pruned.
type Bases struct {
	dir string
	log *slog.Logger
	// Timeout bounds mmdebstrap.
	Timeout time.Duration
}

// NewBases returns the cache under dir.
func NewBases(dir string, log *slog.Logger) *Bases {
	return &Bases{dir: dir, log: log, Timeout: 30 * time.Minute}
}

// Dir is the cache's directory.
func (c *Bases) Dir() string { return c.dir }

func (c *Bases) path(spec BaseSpec) string {
	return filepath.Join(c.dir, spec.Name+"-"+spec.Key())
}

// Get returns the prepared base of spec, or an error wrapping
// fs.ErrNotExist when it is not prepared.
func (c *Bases) Get(spec BaseSpec) (Base, error) {
	if err := spec.Validate(); err != nil {
		return Base{}, err
	}
	return c.read(c.path(spec))
}

func (c *Bases) read(dir string) (Base, error) {
	data, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return Base{}, fmt.Errorf("base %s: %w", filepath.Base(dir), err)
	}
	b, err := ParseMeta(data)
	if err != nil {
		return Base{}, fmt.Errorf("base %s: %w", filepath.Base(dir), err)
	}
	b.Dir = dir
	return b, nil
}

// Prepare returns the base of spec, preparing it first when the cache
// does not hold it (or force is set). Two preparers of one base take
// turns: the second finds the first's.
func (c *Bases) Prepare(ctx context.Context, spec BaseSpec, force bool) (Base, error) {
	if err := spec.Validate(); err != nil {
		return Base{}, err
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return Base{}, err
	}
	dir := c.path(spec)
	unlock, err := lockFile(ctx, dir+".lock", unix.LOCK_EX, true)
	if err != nil {
		return Base{}, fmt.Errorf("base %s: %w", spec.Name, err)
	}
	defer unlock()
	if b, err := c.read(dir); err == nil && !force {
		return b, nil
	}
	tmp, err := os.MkdirTemp(c.dir, ".tmp-"+spec.Name+"-")
	if err != nil {
		return Base{}, err
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	c.log.Info("base preparing", "base", spec.Name, "key", spec.Key())
	if err := c.build(ctx, spec, filepath.Join(tmp, "root")); err != nil {
		return Base{}, fmt.Errorf("base %s: %w", spec.Name, err)
	}
	size, err := treeSize(filepath.Join(tmp, "root"))
	if err != nil {
		return Base{}, fmt.Errorf("base %s: %w", spec.Name, err)
	}
	b := Base{Spec: spec, Key: spec.Key(), Created: time.Now().UTC().Truncate(time.Second), Size: size,
		Seconds: time.Since(start).Seconds()}
	meta, err := jsonMarshal(b)
	if err != nil {
		return Base{}, err
	}
	if err := writeAtomic(filepath.Join(tmp, metaFile), append(meta, '\n'), 0o644); err != nil {
		return Base{}, err
	}
	if force {
		if err := removeAtomic(dir); err != nil {
			return Base{}, fmt.Errorf("base %s: remove old copy: %w", spec.Name, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return Base{}, fmt.Errorf("base %s: %w", spec.Name, err)
	}
	b.Dir = dir
	c.log.Info("base prepared", "base", spec.Name, "key", b.Key, "bytes", size, "seconds", b.Seconds)
	return b, nil
}

// build runs mmdebstrap into root and finishes the system.
func (c *Bases) build(ctx context.Context, spec BaseSpec, root string) error {
	n := spec.normal()
	args := []string{"--variant=" + n.Variant, "--mode=root", "--skip=cleanup/apt/lists", "--quiet"}
	if len(n.Packages) > 0 {
		args = append(args, "--include="+strings.Join(n.Packages, ","))
	}
	args = append(args, "--", n.Suite, root, n.Mirror)
	if err := run(ctx, c.Timeout, nil, "mmdebstrap", args...); err != nil {
		return err
	}
	// Services are never started in an environment (invoke-rc.d asks
	// policy-rc.d; 101 is "action forbidden").
	if err := writeAtomic(filepath.Join(root, "usr/sbin/policy-rc.d"), []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
		return err
	}
	if n.RPM {
		return c.finishRPM(ctx, root)
	}
	return nil
}

// List returns the prepared bases, by name then creation.
func (c *Bases) List() ([]Base, error) {
	entries, err := os.ReadDir(c.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Base
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := c.read(filepath.Join(c.dir, e.Name()))
		if err != nil {
			c.log.Warn("base unreadable", "dir", e.Name(), "err", err)
			continue
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b Base) int {
		if r := strings.Compare(a.Spec.Name, b.Spec.Name); r != 0 {
			return r
		}
		return a.Created.Compare(b.Created)
	})
	return out, nil
}

// Prune removes the bases created before now-olderThan that no
// environment is using, and leftovers of interrupted preparations; it
// returns the bases it removed.
func (c *Bases) Prune(ctx context.Context, olderThan time.Duration, now time.Time) ([]Base, error) {
	bases, err := c.List()
	if err != nil {
		return nil, err
	}
	var removed []Base
	for _, b := range bases {
		if !b.Created.Before(now.Add(-olderThan)) {
			continue
		}
		unlock, err := lockFile(ctx, b.Dir+".lock", unix.LOCK_EX, false)
		if err != nil {
			c.log.Info("base in use; kept", "base", b.Spec.Name, "key", b.Key)
			continue
		}
		err = removeAtomic(b.Dir)
		if err == nil {
			os.Remove(b.Dir + ".lock")
		}
		unlock()
		if err != nil {
			return removed, fmt.Errorf("base %s: %w", b.Spec.Name, err)
		}
		removed = append(removed, b)
	}
	entries, _ := os.ReadDir(c.dir)
	for _, e := range entries {
		info, err := e.Info()
		if strings.HasPrefix(e.Name(), ".tmp-") && err == nil && info.ModTime().Before(now.Add(-24*time.Hour)) {
			os.RemoveAll(filepath.Join(c.dir, e.Name()))
		}
	}
	return removed, nil
}

// lockFile takes an flock on path; wait says whether to wait for it (in
// steps, so that ctx can end the wait).
func lockFile(ctx context.Context, path string, how int, wait bool) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || !wait {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// removeAtomic makes dir disappear at once (renamed aside), then removes it.
func removeAtomic(dir string) error {
	aside := filepath.Join(filepath.Dir(dir), ".tmp-del-"+filepath.Base(dir)+"-"+fmt.Sprint(time.Now().UnixNano()))
	if err := os.Rename(dir, aside); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return os.RemoveAll(aside)
}

// treeSize sums the sizes of the regular files below root.
func treeSize(root string) (int64, error) {
	var n int64
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}

// writeAtomic writes data to path through a temporary file in the same
// directory, synced, then renamed.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// run runs a host tool with a time limit, its output kept for the error.
func run(ctx context.Context, timeout time.Duration, stdin io.Reader, name string, args ...string) error {
	_, err := output(ctx, timeout, stdin, name, args...)
	return err
}

// output runs a host tool with a time limit and returns its standard output.
func output(ctx context.Context, timeout time.Duration, stdin io.Reader, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := proc.Command(ctx, name, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8", "HOME=/root", "TMPDIR=" + os.TempDir()}
	cmd.Stdin = stdin
	var out, errb limitedBuffer
	out.max, errb.max = maxOutput, 256<<10
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w after %s", name, ErrTimeout, timeout)
		}
		return nil, fmt.Errorf("%s: %w: %s", name, err, tail(strings.TrimSpace(errb.String()), 4000))
	}
	return out.Bytes(), nil
}

// lockShared is how an environment holds its base.
const lockShared = unix.LOCK_SH

// jsonMarshal is the metadata's encoding.
func jsonMarshal(b Base) ([]byte, error) { return json.MarshalIndent(b, "", "  ") }
