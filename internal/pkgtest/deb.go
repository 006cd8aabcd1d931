package pkgtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// maintainer is the Maintainer of every Deb and the Packager of every RPM.
const maintainer = "Sluice Tests <tests@example.org>"

// Deb describes a synthetic binary .deb.
type Deb struct {
	Name, Version, Arch string // Arch e.g. "amd64" or "all"
	Source              string // optional Source: field ("" = none)
	Depends             string // optional Depends: field
	// Description is optional; the default is "synthetic test package NAME".
	// Lines after the first are written as " line" continuation lines, an
	// empty line as " .".
	Description string
	// Extra holds further control fields, in order, e.g. {"Section", "utils"},
	// {"Priority", "optional"}, {"Homepage", "https://example.org"}.
	Extra [][2]string
	// Files maps paths such as "/usr/share/NAME/data" to contents. The
	// default is one file, /usr/share/doc/NAME/README, with a line of text.
	Files map[string][]byte
	// PayloadSize, if > 0, adds /usr/share/NAME/payload with this many
	// incompressible bytes from [Payload], seeded from Name and Version.
	PayloadSize int
	// Compression is "gz" (the default), "xz" or "zst", for both control.tar
	// and data.tar.
	Compression string
	// RawControl, when set, is written as the control file as it is, with
	// no check of it or of the other fields: a hostile package for tests of
	// what reads packages. Name, Version and Arch still name the payload.
	RawControl string
}

var (
	// debName and debVersion follow Debian Policy §5.6.1 and §5.6.12.
	debName    = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	debVersion = regexp.MustCompile(`^(?:[0-9]+:)?[0-9][A-Za-z0-9.+~-]*$`)
	debArch    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	debField   = regexp.MustCompile(`^[A-Za-z0-9][!-9;-~]*$`) // deb822: printable, no colon
)

// debOwnFields are the control fields Deb writes itself, in the order
// dpkg-gencontrol uses; Extra may not repeat them.
var debOwnFields = []string{"Package", "Source", "Version", "Architecture", "Maintainer", "Installed-Size", "Depends", "Description"}

// Bytes returns the .deb file contents. It is deterministic: the same Deb
// gives the same bytes (mtimes 2024-01-01 UTC, uid and gid 0, fixed ar dates).
func (d Deb) Bytes() ([]byte, error) {
	b, err := d.build()
	if err != nil {
		return nil, fmt.Errorf("pkgtest: deb %s: %w", d.ident(), err)
	}
	return b, nil
}

// WriteFile writes Bytes() to dir/<Name>_<Version without epoch>_<Arch>.deb
// and returns the path.
func (d Deb) WriteFile(dir string) (string, error) {
	b, err := d.Bytes()
	if err != nil {
		return "", err
	}
	p, err := writeFile(dir, d.fileName(), b)
	if err != nil {
		return "", fmt.Errorf("pkgtest: deb %s: %w", d.ident(), err)
	}
	return p, nil
}

// fileName is the name Debian gives the package's file.
func (d Deb) fileName() string {
	v := d.Version
	if _, after, ok := strings.Cut(v, ":"); ok {
		v = after
	}
	return d.Name + "_" + v + "_" + d.Arch + ".deb"
}

// ident names the package in errors, however incomplete it is.
func (d Deb) ident() string {
	return strconv.Quote(d.Name + "_" + d.Version + "_" + d.Arch)
}

func (d Deb) validate() error {
	for _, f := range []struct {
		name, value string
		re          *regexp.Regexp
	}{
		{"Name", d.Name, debName},
		{"Version", d.Version, debVersion},
		{"Arch", d.Arch, debArch},
	} {
		if f.value == "" {
			return fmt.Errorf("%s: empty", f.name)
		}
		if !f.re.MatchString(f.value) {
			return fmt.Errorf("%s %q: does not match %s", f.name, f.value, f.re)
		}
	}
	for _, f := range []struct{ name, value string }{{"Source", d.Source}, {"Depends", d.Depends}} {
		if strings.ContainsAny(f.value, "\r\n") {
			return fmt.Errorf("%s %q: more than one line", f.name, f.value)
		}
	}
	if strings.HasPrefix(d.Description, "\n") {
		return errors.New("Description: empty first line")
	}
	seen := make(map[string]bool)
	for _, f := range debOwnFields {
		seen[strings.ToLower(f)] = true
	}
	for _, kv := range d.Extra {
		switch k, v := kv[0], kv[1]; {
		case !debField.MatchString(k):
			return fmt.Errorf("Extra field %q: not a field name", k)
		case seen[strings.ToLower(k)]:
			return fmt.Errorf("Extra field %q: given twice or set by Deb", k)
		case strings.TrimSpace(v) == "" || strings.ContainsAny(v, "\r\n"):
			return fmt.Errorf("Extra field %s value %q: not one non-empty line", k, v)
		default:
			seen[strings.ToLower(k)] = true
		}
	}
	if d.PayloadSize < 0 {
		return fmt.Errorf("PayloadSize %d: negative", d.PayloadSize)
	}
	return nil
}

// compressor compresses whole tar archives for the members of one .deb,
// reusing its encoder for the second: setting one up costs more than
// compressing a small package.
type compressor struct {
	ext string // of the member names: "gz" in control.tar.gz
	gz  *gzip.Writer
	zst *zstd.Encoder
}

func (d Deb) compressor() (*compressor, error) {
	switch d.Compression {
	case "", "gz":
		return &compressor{ext: "gz"}, nil
	case "xz", "zst":
		return &compressor{ext: d.Compression}, nil
	}
	return nil, fmt.Errorf("Compression %q: not gz, xz or zst", d.Compression)
}

func (c *compressor) compress(src []byte) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(len(src)/2 + 64)
	switch c.ext {
	case "gz":
		// No name and mtime 0 in the gzip header: deterministic.
		if c.gz == nil {
			c.gz = gzip.NewWriter(&b)
		} else {
			c.gz.Reset(&b)
		}
		if _, err := c.gz.Write(src); err != nil {
			return nil, err
		}
		if err := c.gz.Close(); err != nil {
			return nil, err
		}
	case "xz":
		// The default 8 MiB dictionary makes the writer allocate some
		// 20 MiB; one the size of the input compresses as well.
		dict := min(max(len(src), 4096), 8<<20)
		w, err := xz.WriterConfig{DictCap: dict, CheckSum: xz.CRC64}.NewWriter(&b)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	case "zst":
		if c.zst == nil {
			// One goroutine and EncodeAll of the whole input: the output
			// depends on the input alone, and the frame records its size.
			enc, err := zstd.NewWriter(nil,
				zstd.WithEncoderConcurrency(1),
				zstd.WithEncoderLevel(zstd.SpeedFastest),
				zstd.WithLowerEncoderMem(true))
			if err != nil {
				return nil, err
			}
			c.zst = enc
		}
		return c.zst.EncodeAll(src, b.Bytes()), nil
	}
	return b.Bytes(), nil
}

// close releases the encoders.
func (c *compressor) close() {
	if c.zst != nil {
		c.zst.Close()
	}
}

func (d Deb) build() ([]byte, error) {
	if d.RawControl != "" {
		d.Name, d.Version = "raw", "1"
	} else if err := d.validate(); err != nil {
		return nil, err
	}
	comp, err := d.compressor()
	if err != nil {
		return nil, err
	}
	defer comp.close()
	files, err := payloadFiles(d.Name, d.Version, d.Files, d.PayloadSize)
	if err != nil {
		return nil, err
	}

	data, err := dataTar(files)
	if err != nil {
		return nil, fmt.Errorf("data.tar: %w", err)
	}
	if data, err = comp.compress(data); err != nil {
		return nil, fmt.Errorf("data.tar.%s: %w", comp.ext, err)
	}
	ctl := d.control(files)
	if d.RawControl != "" {
		ctl = []byte(d.RawControl)
	}
	control, err := controlTar(ctl, md5sums(files))
	if err != nil {
		return nil, fmt.Errorf("control.tar: %w", err)
	}
	if control, err = comp.compress(control); err != nil {
		return nil, fmt.Errorf("control.tar.%s: %w", comp.ext, err)
	}

	// The ar format of deb(5): a global header, then members each with a
	// 60-byte header, padded to an even length.
	var b bytes.Buffer
	b.Grow(8 + 3*60 + 4 + len(control) + len(data) + 2)
	b.WriteString("!<arch>\n")
	arMember(&b, "debian-binary", []byte("2.0\n"))
	arMember(&b, "control.tar."+comp.ext, control)
	arMember(&b, "data.tar."+comp.ext, data)
	return b.Bytes(), nil
}

// control returns the control file, fields in dpkg-gencontrol's order.
func (d Deb) control(files []file) []byte {
	var size int64
	for _, f := range files {
		size += int64(len(f.body))
	}
	var b strings.Builder
	field := func(k, v string) {
		if v != "" {
			b.WriteString(k + ": " + v + "\n")
		}
	}
	field("Package", d.Name)
	field("Source", d.Source)
	field("Version", d.Version)
	field("Architecture", d.Arch)
	field("Maintainer", maintainer)
	field("Installed-Size", strconv.FormatInt((size+1023)/1024, 10))
	field("Depends", d.Depends)
	for _, kv := range d.Extra {
		field(kv[0], kv[1])
	}
	desc := strings.TrimRight(d.Description, "\n")
	if desc == "" {
		desc = "synthetic test package " + d.Name
	}
	synopsis, rest, _ := strings.Cut(desc, "\n")
	b.WriteString("Description: " + synopsis + "\n")
	if rest != "" {
		for line := range strings.SplitSeq(rest, "\n") {
			if strings.TrimSpace(line) == "" {
				line = "."
			}
			b.WriteString(" " + line + "\n")
		}
	}
	return []byte(b.String())
}

// md5sums returns the DEBIAN/md5sums file that dpkg --verify reads.
func md5sums(files []file) []byte {
	var b bytes.Buffer
	for _, f := range files {
		sum := md5.Sum(f.body)
		b.WriteString(hex.EncodeToString(sum[:]) + "  " + f.name[1:] + "\n")
	}
	return b.Bytes()
}

// tarWriter writes the entries dpkg-deb --build would: GNU format, "./"
// names, root ownership, fixed mtimes.
type tarWriter struct{ *tar.Writer }

func (w tarWriter) dir(name string) error {
	return w.WriteHeader(&tar.Header{
		Typeflag: tar.TypeDir,
		Name:     name,
		Mode:     0o755,
		Uname:    "root",
		Gname:    "root",
		ModTime:  epoch,
		Format:   tar.FormatGNU,
	})
}

func (w tarWriter) file(name string, body []byte) error {
	err := w.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Size:     int64(len(body)),
		Mode:     0o644,
		Uname:    "root",
		Gname:    "root",
		ModTime:  epoch,
		Format:   tar.FormatGNU,
	})
	if err != nil {
		return err
	}
	_, err = w.Write(body)
	return err
}

func controlTar(control, md5sums []byte) ([]byte, error) {
	var b bytes.Buffer
	w := tarWriter{tar.NewWriter(&b)}
	if err := w.dir("./"); err != nil {
		return nil, err
	}
	if err := w.file("./control", control); err != nil {
		return nil, err
	}
	if err := w.file("./md5sums", md5sums); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func dataTar(files []file) ([]byte, error) {
	size := 1024
	for _, f := range files {
		size += 1024 + len(f.body)
	}
	dirs := parentDirs(files)
	var b bytes.Buffer
	b.Grow(size + 512*len(dirs))
	w := tarWriter{tar.NewWriter(&b)}
	if err := w.dir("./"); err != nil {
		return nil, err
	}
	// Both lists are sorted; merge them so that each directory comes before
	// its contents and the order is the same on every run.
	i := 0
	for _, f := range files {
		for ; i < len(dirs) && dirs[i] < f.name; i++ {
			if err := w.dir("." + dirs[i] + "/"); err != nil {
				return nil, err
			}
		}
		if err := w.file("."+f.name, f.body); err != nil {
			return nil, err
		}
	}
	for ; i < len(dirs); i++ {
		if err := w.dir("." + dirs[i] + "/"); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// arMember appends one member to an ar archive. Names have no "/"
// terminator, as dpkg-deb writes them.
func arMember(b *bytes.Buffer, name string, data []byte) {
	fmt.Fprintf(b, "%-16s%-12d%-6d%-6d%-8o%-10d`\n", name, epoch.Unix(), 0, 0, 0o100644, len(data))
	b.Write(data)
	if len(data)%2 == 1 {
		b.WriteByte('\n')
	}
}
