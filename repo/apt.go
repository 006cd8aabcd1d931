package repo

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ulikunitz/xz"
)

// APTConfig names an APT repository's suite and what its Release says.
type APTConfig struct {
	Codename  string // dists/<Codename>; required
	Suite     string // defaults to Codename
	Component string // defaults to "main"
	Origin    string // defaults to "sluice"
	Label     string // defaults to Origin
	// Architectures are listed even without packages of their own; the
	// architectures of the packages are always added. Packages of
	// architecture "all" appear in every architecture's index. With no
	// architecture at all, amd64 is used.
	Architectures []string
	// ValidFor, when not zero, writes Valid-Until = Date + ValidFor, which
	// apt enforces: the repository must then be re-signed before it ends.
	ValidFor time.Duration
}

var aptNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// Validate checks the config and fills its defaults.
func (c *APTConfig) Validate() error {
	if c.Suite == "" {
		c.Suite = c.Codename
	}
	if c.Component == "" {
		c.Component = "main"
	}
	if c.Origin == "" {
		c.Origin = "sluice"
	}
	if c.Label == "" {
		c.Label = c.Origin
	}
	for what, v := range map[string]string{"codename": c.Codename, "suite": c.Suite, "component": c.Component} {
		if !aptNameRE.MatchString(v) || len(v) > 100 {
			return fmt.Errorf("apt repository: bad %s %q", what, v)
		}
	}
	for what, v := range map[string]string{"origin": c.Origin, "label": c.Label} {
		if strings.ContainsAny(v, "\n\r") || strings.TrimSpace(v) != v || v == "" {
			return fmt.Errorf("apt repository: bad %s %q", what, v)
		}
	}
	for _, a := range c.Architectures {
		if !debArchRE.MatchString(a) || a == "all" {
			return fmt.Errorf("apt repository: bad architecture %q", a)
		}
	}
	if c.ValidFor < 0 {
		return fmt.Errorf("apt repository: negative validity %s", c.ValidFor)
	}
	return nil
}

// APT writes a signed APT repository (Debian's archive layout) under a
// root directory.
type APT struct {
	root string
	key  *Key
	cfg  APTConfig
	log  *slog.Logger
	now  func() time.Time
}

// NewAPT returns the APT repository at root, signed with key.
func NewAPT(root string, key *Key, cfg APTConfig, log *slog.Logger) (*APT, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &APT{root: root, key: key, cfg: cfg, log: log, now: time.Now}, nil
}

// Publish adds the .deb files in paths (files or directories) to the
// repository and writes its new metadata.
func (a *APT) Publish(ctx context.Context, paths []string, opts PublishOptions) (Summary, error) {
	return publish(ctx, a.root, aptFormat{a}, paths, opts, a.log)
}

type aptFormat struct{ *APT }

func (aptFormat) name() string { return "deb" }
func (aptFormat) ext() string  { return ".deb" }

func (a aptFormat) scope() string { return a.cfg.Codename }

func (aptFormat) parse(f io.ReaderAt, size int64) (entry, error) {
	m, err := parseDeb(f, size)
	if err != nil {
		return entry{}, err
	}
	return entry{Deb: m}, nil
}

func (aptFormat) identity(e *entry) string { return e.Deb.key() }

func (a aptFormat) poolPath(e *entry) string { return e.Deb.poolPath(a.cfg.Component) }

// store copies the package into the pool: from memory when its bytes were
// kept from the read that hashed them, else from the file, hashing what it
// copies. Either way the pool holds the bytes that were checked, whatever
// happens to the input later. (A hard link would be cheaper, but a build
// tool that rewrites its output in place would then change a published
// package.)
func (a aptFormat) store(ctx context.Context, src pkgFile, e entry) (entry, error) {
	err := createFile(a.root, e.Pool, func(w io.Writer) error {
		if src.data != nil {
			_, err := w.Write(src.data)
			return err
		}
		in, err := os.Open(src.path)
		if err != nil {
			return err
		}
		defer in.Close()
		got, err := hashReader(io.TeeReader(ctxReader{ctx, in}, w))
		if err != nil {
			return err
		}
		if got.SHA256 != e.SHA256 {
			return fmt.Errorf("%s changed while it was published", src.path)
		}
		return nil
	})
	return e, err
}

// indexFile is one file listed in Release.
type indexFile struct {
	name   string // relative to dists/<codename>
	data   []byte
	sha256 string
	md5    string
}

func newIndexFile(name string, data []byte) indexFile {
	s, m := sha256.Sum256(data), md5.Sum(data)
	return indexFile{name: name, data: data, sha256: hex.EncodeToString(s[:]), md5: hex.EncodeToString(m[:])}
}

func (a aptFormat) architectures(st *state) []string {
	set := slices.Clone(a.cfg.Architectures)
	for _, e := range st.Packages {
		if e.Deb.Arch != "all" {
			set = append(set, e.Deb.Arch)
		}
	}
	if len(set) == 0 {
		set = append(set, "amd64")
	}
	slices.Sort(set)
	return slices.Compact(set)
}

// components are those of the packages (a package stays in the component
// it was published into) and the one this publish is for.
func (a aptFormat) components(st *state) []string {
	set := []string{a.cfg.Component}
	for _, e := range st.Packages {
		set = append(set, poolComponent(e.Pool))
	}
	slices.Sort(set)
	return slices.Compact(set)
}

// poolComponent is the component of a pool path: pool/<component>/...
func poolComponent(pool string) string {
	c, _, _ := strings.Cut(strings.TrimPrefix(pool, "pool/"), "/")
	return c
}

func (a aptFormat) index(ctx context.Context, st *state) ([]string, error) {
	dist := "dists/" + a.cfg.Codename
	archs := a.architectures(st)
	comps := a.components(st)
	var files []indexFile
	for _, comp := range comps {
		for _, arch := range archs {
			var b bytes.Buffer
			for i := range st.Packages {
				e := &st.Packages[i]
				if poolComponent(e.Pool) == comp && (e.Deb.Arch == arch || e.Deb.Arch == "all") {
					writeStanza(&b, e)
				}
			}
			dir := comp + "/binary-" + arch + "/"
			gz, xzData, err := compressIndex(b.Bytes())
			if err != nil {
				return nil, fmt.Errorf("compress %s: %w", dir+"Packages", err)
			}
			files = append(files,
				newIndexFile(dir+"Packages", b.Bytes()),
				newIndexFile(dir+"Packages.gz", gz),
				newIndexFile(dir+"Packages.xz", xzData))
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	release := a.release(archs, comps, files)
	var inRelease, detached, pub bytes.Buffer
	if err := a.key.ClearSign(&inRelease, release); err != nil {
		return nil, fmt.Errorf("sign InRelease: %w", err)
	}
	if err := a.key.DetachSign(&detached, bytes.NewReader(release)); err != nil {
		return nil, fmt.Errorf("sign Release: %w", err)
	}
	if err := a.key.WritePublic(&pub); err != nil {
		return nil, err
	}
	// The by-hash copies are what apt fetches; the plain index names are
	// for older clients and are switched with the Release files. InRelease
	// holds the whole state in one file and is what apt reads first: it
	// goes last.
	var meta []string
	var addressed, pointers []stagedFile
	for _, f := range files {
		dir := dist + "/" + pathDir(f.name) + "/by-hash/"
		for _, p := range []string{dir + "SHA256/" + f.sha256, dir + "MD5Sum/" + f.md5} {
			addressed = append(addressed, stagedFile{p, f.data})
			meta = append(meta, p)
		}
		pointers = append(pointers, stagedFile{dist + "/" + f.name, f.data})
	}
	pointers = append(pointers,
		stagedFile{PublicKeyFile, pub.Bytes()},
		stagedFile{dist + "/Release", release},
		stagedFile{dist + "/Release.gpg", detached.Bytes()},
		stagedFile{dist + "/InRelease", inRelease.Bytes()})
	if err := commit(a.root, addressed, pointers); err != nil {
		return nil, err
	}
	return meta, nil
}

// PublicKeyFile is the name, at the root of a published repository, of the
// public key that verifies it.
const PublicKeyFile = "signing-key.pub.asc"

func pathDir(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[:i]
	}
	return "."
}

func (a aptFormat) release(archs, comps []string, files []indexFile) []byte {
	now := a.now().UTC()
	var b bytes.Buffer
	fmt.Fprintf(&b, "Origin: %s\n", a.cfg.Origin)
	fmt.Fprintf(&b, "Label: %s\n", a.cfg.Label)
	fmt.Fprintf(&b, "Suite: %s\n", a.cfg.Suite)
	fmt.Fprintf(&b, "Codename: %s\n", a.cfg.Codename)
	fmt.Fprintf(&b, "Date: %s\n", now.Format(time.RFC1123Z))
	if a.cfg.ValidFor > 0 {
		fmt.Fprintf(&b, "Valid-Until: %s\n", now.Add(a.cfg.ValidFor).Format(time.RFC1123Z))
	}
	fmt.Fprintf(&b, "Architectures: %s\n", strings.Join(archs, " "))
	fmt.Fprintf(&b, "Components: %s\n", strings.Join(comps, " "))
	b.WriteString("Acquire-By-Hash: yes\n")
	b.WriteString("MD5Sum:\n")
	for _, f := range files {
		fmt.Fprintf(&b, " %s %16d %s\n", f.md5, len(f.data), f.name)
	}
	b.WriteString("SHA256:\n")
	for _, f := range files {
		fmt.Fprintf(&b, " %s %16d %s\n", f.sha256, len(f.data), f.name)
	}
	return b.Bytes()
}

// compressIndex returns data as gzip and xz, both reproducible (no name, no
// time stamp), compressed at the same time.
func compressIndex(data []byte) (gz, xzData []byte, err error) {
	var xzErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		var x bytes.Buffer
		xw, err := xz.NewWriter(&x)
		if err == nil {
			_, err = xw.Write(data)
		}
		if err == nil {
			err = xw.Close()
		}
		xzData, xzErr = x.Bytes(), err
	})
	gz, err = gzipReproducible(data)
	wg.Wait()
	if err = errors.Join(err, xzErr); err != nil {
		return nil, nil, err
	}
	return gz, xzData, nil
}
