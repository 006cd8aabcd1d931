package repo

import (
	"archive/tar"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"pault.ag/go/debian/deb"
	"pault.ag/go/debian/version"
)

// debMeta is what a Packages stanza needs from a .deb: its identity and its
// control fields, in the order the package gives them.
type debMeta struct {
	Package string      `json:"package"`
	Version string      `json:"version"`
	Arch    string      `json:"arch"`
	Source  string      `json:"source"` // source package name
	Fields  [][2]string `json:"fields"`
}

// Debian policy 5.6.1 (package names) and 5.6.8 (architecture names).
var (
	debNameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	debArchRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	debFieldRE = regexp.MustCompile(`^[!-9;-~][!-9;-~]*$`) // policy 5.1: printable ASCII but ':' and space, not starting with '#' or '-'
)

// maxControlSize bounds the control member we are willing to read.
const maxControlSize = 4 << 20

// parseDeb reads the control data of a .deb of size bytes. It checks the ar
// layout first (every member inside the file, nothing after the last one),
// so a truncated or padded package is refused before the library reads it.
func parseDeb(r io.ReaderAt, size int64) (m *debMeta, err error) {
	if err := checkArLayout(r, size); err != nil {
		return nil, err
	}
	defer func() {
		// The archive library is not hardened against every malformed
		// archive; a panic in it means a corrupt package, not a bug of ours.
		if p := recover(); p != nil {
			m, err = nil, fmt.Errorf("corrupt package: %v", p)
		}
	}()
	ar, err := deb.LoadAr(r)
	if err != nil {
		return nil, fmt.Errorf("not a readable .deb: %w", err)
	}
	var ctl []byte
	for {
		e, err := ar.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not a readable .deb: %w", err)
		}
		switch {
		case strings.HasPrefix(e.Name, "control.tar"):
			if ctl, err = readControlMember(e); err != nil {
				return nil, fmt.Errorf("member %s: %w", e.Name, err)
			}
		case strings.HasPrefix(e.Name, "data.tar"):
			if err := checkTarMember(e); err != nil {
				return nil, fmt.Errorf("member %s: %w", e.Name, err)
			}
		}
	}
	if ctl == nil {
		return nil, errors.New("not a .deb: no control file in control.tar")
	}
	fields, err := parseControl(ctl)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	m = &debMeta{Fields: fields}
	for _, f := range fields {
		switch f[0] {
		case "Package":
			m.Package = f[1]
		case "Version":
			m.Version = f[1]
		case "Architecture":
			m.Arch = f[1]
		case "Source":
			m.Source, _, _ = strings.Cut(f[1], " ")
		}
	}
	if m.Source == "" {
		m.Source = m.Package
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// Bounds on reading a control.tar: its decompressed size, and the memory a
// decompressor may take (xz dictionary, zstd window).
const (
	maxControlTar    = 64 << 20
	maxDecoderMemory = 16 << 20
	maxZstdMemory    = 2 * maxDecoderMemory
)

// decompressor returns a reader of the decompressed bytes of r, compressed
// as the member name's extension says, and a function that frees it. It
// does not use pault.ag/go/debian's decompressors: they pass unknown
// extensions through as if uncompressed, never close the zstd decoder
// (whose goroutines then leak, one set per package) and do not bound
// their memory.
func decompressor(name string, r io.Reader) (io.Reader, func(), error) {
	switch ext := path.Ext(name); ext {
	case ".tar":
		return r, func() {}, nil
	case ".gz":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() { zr.Close() }, nil
	case ".xz":
		xr, err := xz.ReaderConfig{DictCap: maxDecoderMemory}.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return xr, func() {}, nil
	case ".zst":
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxDecoderMemory), zstd.WithDecoderMaxMemory(maxZstdMemory))
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	case ".bz2":
		return bzip2.NewReader(r), func() {}, nil
	default:
		return nil, nil, fmt.Errorf("unknown compression %q", ext)
	}
}

// readControlMember returns the control file of a control.tar member.
func readControlMember(e *deb.ArEntry) ([]byte, error) {
	r, free, err := decompressor(e.Name, e.Data)
	if err != nil {
		return nil, err
	}
	defer free()
	tr := tar.NewReader(io.LimitReader(r, maxControlTar))
	for {
		h, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("no control file: %w", err)
		}
		if path.Clean(h.Name) != "control" {
			continue
		}
		if h.Size > maxControlSize {
			return nil, fmt.Errorf("control file of %d bytes", h.Size)
		}
		return io.ReadAll(io.LimitReader(tr, maxControlSize))
	}
}

// checkTarMember checks that a data.tar member starts as its name says: the
// magic number of its compression, or a tar header. Reading further would
// cost a decompression of the payload on every publish; apt-ftparchive reads
// no further either, and dpkg checks the whole payload when it installs.
func checkTarMember(e *deb.ArEntry) error {
	magic := map[string][]byte{
		".gz": {0x1f, 0x8b}, ".xz": {0xfd, '7', 'z', 'X', 'Z', 0}, ".zst": {0x28, 0xb5, 0x2f, 0xfd},
		".bz2": []byte("BZh"), ".lzma": {0x5d, 0, 0},
	}
	ext := filepath.Ext(e.Name)
	want, off := magic[ext], int64(0)
	if ext == ".tar" {
		want, off = []byte("ustar"), 257
	}
	if want == nil {
		return errors.New("unknown compression")
	}
	got := make([]byte, len(want))
	if _, err := e.Data.ReadAt(got, off); err != nil || !bytes.Equal(got, want) {
		return fmt.Errorf("does not start as a %s file", strings.TrimPrefix(ext, "."))
	}
	return nil
}

// parseControl reads a binary package's control file (deb822, one
// paragraph) keeping every value as written: the text after the colon and
// each continuation line, so that Packages can repeat it exactly, as
// apt-ftparchive does. (pault.ag/go/debian's parser folds multi-line values
// in a way that cannot be written back.) It refuses what dpkg refuses:
// comments, lines with no colon, a continuation with no field, more than one
// paragraph.
func parseControl(data []byte) ([][2]string, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("not UTF-8 text")
	}
	text := strings.TrimRight(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	var fields [][2]string
	for i, line := range strings.Split(text, "\n") {
		switch {
		case line == "" || strings.TrimSpace(line) == "":
			return nil, fmt.Errorf("line %d: more than one paragraph", i+1)
		case line[0] == ' ' || line[0] == '\t':
			if len(fields) == 0 {
				return nil, fmt.Errorf("line %d: continuation line with no field", i+1)
			}
			fields[len(fields)-1][1] += "\n" + strings.TrimRight(line, " \t")
		case line[0] == '#':
			return nil, fmt.Errorf("line %d: comment", i+1)
		default:
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				return nil, fmt.Errorf("line %d: no colon in %q", i+1, line)
			}
			fields = append(fields, [2]string{name, strings.TrimSpace(value)})
		}
	}
	if len(fields) == 0 {
		return nil, errors.New("empty")
	}
	return fields, nil
}

func (m *debMeta) validate() error {
	if !debNameRE.MatchString(m.Package) {
		return fmt.Errorf("control: bad Package %q", m.Package)
	}
	if !debNameRE.MatchString(m.Source) {
		return fmt.Errorf("control: bad Source %q", m.Source)
	}
	if !debArchRE.MatchString(m.Arch) {
		return fmt.Errorf("control: bad Architecture %q", m.Arch)
	}
	v, err := version.Parse(m.Version)
	if err != nil {
		return fmt.Errorf("control: bad Version %q: %w", m.Version, err)
	}
	if !safeComponent(v.StringWithoutEpoch()) || strings.ContainsAny(m.Version, " \t\n") {
		return fmt.Errorf("control: Version %q cannot be part of a file name", m.Version)
	}
	seen := make(map[string]bool, len(m.Fields))
	for _, f := range m.Fields {
		k, v := f[0], f[1]
		if (k == "Package" || k == "Version" || k == "Architecture" || k == "Source") && strings.Contains(v, "\n") {
			return fmt.Errorf("control: field %s spans lines", k)
		}
		if !debFieldRE.MatchString(k) || k[0] == '#' || k[0] == '-' {
			return fmt.Errorf("control: bad field name %q", k)
		}
		lk := strings.ToLower(k)
		if seen[lk] {
			return fmt.Errorf("control: field %s given twice", k)
		}
		seen[lk] = true
		if !utf8.ValidString(v) || strings.ContainsAny(v, "\x00\r") {
			return fmt.Errorf("control: field %s holds bytes that are not UTF-8 text", k)
		}
		if isIndexField(lk) {
			return fmt.Errorf("control: field %s belongs to the archive, not to a package", k)
		}
	}
	return nil
}

// isIndexField names the fields that the archive writes into Packages; a
// package that carries them itself would forge them.
func isIndexField(lower string) bool {
	switch lower {
	case "filename", "size", "md5sum", "sha1", "sha256", "sha512", "description-md5":
		return true
	}
	return false
}

// checkArLayout walks the headers of an ar archive and checks that the
// members tile the file exactly.
func checkArLayout(r io.ReaderAt, size int64) error {
	var magic [8]byte
	if _, err := r.ReadAt(magic[:], 0); err != nil || string(magic[:]) != "!<arch>\n" {
		return errors.New("not a .deb: no ar archive header")
	}
	off := int64(8)
	var names []string
	for off < size {
		var h [60]byte
		if _, err := r.ReadAt(h[:], off); err != nil {
			return fmt.Errorf("truncated .deb: member header at offset %d", off)
		}
		if h[58] != '`' || h[59] != '\n' {
			return fmt.Errorf("corrupt .deb: bad member header at offset %d", off)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(h[48:58])), 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("corrupt .deb: bad member size at offset %d", off)
		}
		names = append(names, strings.TrimSuffix(strings.TrimSpace(string(h[:16])), "/"))
		end := off + 60 + n
		if end > size {
			return fmt.Errorf("truncated .deb: member %q needs %d bytes, file has %d", names[len(names)-1], end, size)
		}
		off = end + n%2
	}
	if off > size+1 {
		return errors.New("truncated .deb: missing padding after the last member")
	}
	if len(names) < 3 || names[0] != "debian-binary" ||
		!strings.HasPrefix(names[1], "control.tar") || !slices.ContainsFunc(names[2:], func(s string) bool { return strings.HasPrefix(s, "data.tar") }) {
		return fmt.Errorf("not a .deb: members are %q, want debian-binary, control.tar*, data.tar*", names)
	}
	return nil
}

// poolPath is where a .deb goes: pool/<component>/<prefix>/<source>/<file>.
func (m *debMeta) poolPath(component string) string {
	prefix := m.Source[:1]
	if strings.HasPrefix(m.Source, "lib") && len(m.Source) > 3 {
		prefix = m.Source[:4]
	}
	v, _ := version.Parse(m.Version)
	return fmt.Sprintf("pool/%s/%s/%s/%s_%s_%s.deb", component, prefix, m.Source, m.Package, v.StringWithoutEpoch(), m.Arch)
}

// key is the identity of a binary package in an APT repository.
func (m *debMeta) key() string { return m.Package + "_" + m.Version + "_" + m.Arch }

// fieldOrder is the order apt-ftparchive writes fields in (apt's
// TFRewritePackageOrder); other fields follow in the package's order.
var fieldOrder = []string{
	"Package", "Package-Type", "Architecture", "Subarchitecture", "Version",
	"Revision", "Package-Revision", "Package_Revision", "Kernel-Version",
	"Built-Using", "Built-For-Profiles", "Multi-Arch", "Status", "Priority",
	"Class", "Essential", "Installer-Menu-Item", "Section", "Source", "Origin",
	"Maintainer", "Original-Maintainer", "Bugs", "Config-Version", "Conffiles",
	"Triggers-Awaited", "Triggers-Pending", "Installed-Size", "Provides",
	"Pre-Depends", "Depends", "Recommends", "Recommended", "Suggests",
	"Optional", "Conflicts", "Breaks", "Replaces", "Enhances", "Filename",
	"MSDOS-Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512",
	"Homepage", "Description", "Tag", "Task",
}

var fieldRank = func() map[string]int {
	m := make(map[string]int, len(fieldOrder))
	for i, f := range fieldOrder {
		m[strings.ToLower(f)] = i
	}
	return m
}()

// writeStanza writes the Packages stanza of e, found at e.Pool.
func writeStanza(b *bytes.Buffer, e *entry) {
	m := e.Deb
	fields := make([][2]string, 0, len(m.Fields)+3)
	fields = append(fields, m.Fields...)
	fields = append(fields,
		[2]string{"Filename", e.Pool},
		[2]string{"Size", strconv.FormatInt(e.Size, 10)},
		[2]string{"SHA256", e.SHA256})
	slices.SortStableFunc(fields, func(a, b [2]string) int {
		ra, oka := fieldRank[strings.ToLower(a[0])]
		rb, okb := fieldRank[strings.ToLower(b[0])]
		switch {
		case oka && okb:
			return ra - rb
		case oka:
			return -1
		case okb:
			return 1
		}
		return 0
	})
	for _, f := range fields {
		b.WriteString(f[0])
		b.WriteString(":")
		writeFieldValue(b, f[1])
	}
	b.WriteString("\n")
}

// writeFieldValue writes a value as the package wrote it: the text after
// the colon, then its continuation lines.
func writeFieldValue(b *bytes.Buffer, v string) {
	if v != "" && v[0] != '\n' {
		b.WriteString(" ")
	}
	b.WriteString(v)
	b.WriteString("\n")
}
