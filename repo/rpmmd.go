package repo

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"strconv"
	"time"
)

// This file writes and reads repodata, the metadata of a yum/dnf
// repository (https://github.com/rpm-software-management/createrepo_c,
// whose 0.17 output it follows element for element): primary.xml,
// filelists.xml and other.xml, gzipped, and repomd.xml, which names them
// with their checksums.

// XML namespaces of repodata.
const (
	nsCommon    = "http://linux.duke.edu/metadata/common"
	nsRPM       = "http://linux.duke.edu/metadata/rpm"
	nsFilelists = "http://linux.duke.edu/metadata/filelists"
	nsOther     = "http://linux.duke.edu/metadata/other"
	nsRepo      = "http://linux.duke.edu/metadata/repo"
)

const xmlHeader = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

// repodataFile is one compressed metadata file listed in repomd.xml.
type repodataFile struct {
	kind     string // primary, filelists, other
	gz       []byte
	sha256   string // of gz
	openSHA  string // of the XML
	openSize int64
}

// href is the file's content-addressed name, as createrepo_c names it
// (--unique-md-filenames, its default).
func (f *repodataFile) href() string {
	return "repodata/" + f.sha256 + "-" + f.kind + ".xml.gz"
}

func newRepodataFile(kind string, data []byte) (repodataFile, error) {
	gz, err := gzipReproducible(data)
	if err != nil {
		return repodataFile{}, err
	}
	s, o := sha256.Sum256(gz), sha256.Sum256(data)
	return repodataFile{
		kind:     kind,
		gz:       gz,
		sha256:   hex.EncodeToString(s[:]),
		openSHA:  hex.EncodeToString(o[:]),
		openSize: int64(len(data)),
	}, nil
}

// gzipReproducible compresses without a name or a time stamp, so the same
// XML always gives the same bytes (and the same file name).
func gzipReproducible(data []byte) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(len(data) / 4)
	zw, err := gzip.NewWriterLevel(&b, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// xmlWriter writes XML the way libxml2's xmlNodeDump does for createrepo_c.
type xmlWriter struct{ bytes.Buffer }

func (w *xmlWriter) str(s string) { w.WriteString(s) }

func (w *xmlWriter) int(n int64) {
	var b [24]byte
	w.Write(strconv.AppendInt(b[:0], n, 10))
}

// text writes character data: &, <, > and CR escaped.
func (w *xmlWriter) text(s string) {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '\r':
			esc = "&#13;"
		default:
			continue
		}
		w.WriteString(s[last:i])
		w.WriteString(esc)
		last = i + 1
	}
	w.WriteString(s[last:])
}

// attr writes ` name="value"`, escaping what an attribute value cannot
// hold as it is (white space other than blanks would be normalised away).
func (w *xmlWriter) attr(name, v string) {
	w.WriteByte(' ')
	w.WriteString(name)
	w.WriteString(`="`)
	last := 0
	for i := 0; i < len(v); i++ {
		var esc string
		switch v[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '"':
			esc = "&quot;"
		case '\n':
			esc = "&#10;"
		case '\r':
			esc = "&#13;"
		case '\t':
			esc = "&#9;"
		default:
			continue
		}
		w.WriteString(v[last:i])
		w.WriteString(esc)
		last = i + 1
	}
	w.WriteString(v[last:])
	w.WriteByte('"')
}

// elem writes "<indent><name>text</name>\n".
func (w *xmlWriter) elem(indent, name, text string) {
	w.str(indent)
	w.WriteByte('<')
	w.str(name)
	w.WriteByte('>')
	w.text(text)
	w.str("</")
	w.str(name)
	w.str(">\n")
}

func (w *xmlWriter) version(m *rpmMeta) {
	w.str("  <version")
	w.attr("epoch", strconv.FormatUint(uint64(m.Epoch), 10))
	w.attr("ver", m.Version)
	w.attr("rel", m.Release)
	w.str("/>\n")
}

// pkgHead writes `<package pkgid=".." name=".." arch="..">` and the
// version, which filelists and other entries start with.
func (w *xmlWriter) pkgHead(e *entry) {
	w.str("<package")
	w.attr("pkgid", e.SHA256)
	w.attr("name", e.RPM.Name)
	w.attr("arch", e.RPM.Arch)
	w.str(">\n")
	w.version(e.RPM)
}

func (w *xmlWriter) files(indent string, files []rpmFile, primaryOnly bool) {
	for _, f := range files {
		if primaryOnly && !isPrimaryFile(f.Path) {
			continue
		}
		w.str(indent)
		w.str("<file")
		if f.Type != "" {
			w.attr("type", f.Type)
		}
		w.WriteByte('>')
		w.text(f.Path)
		w.str("</file>\n")
	}
}

// primaryXML is primary.xml for packages, in their order.
func primaryXML(packages []entry) []byte {
	w := &xmlWriter{}
	w.Grow(2048 * len(packages))
	w.str(xmlHeader)
	w.str(`<metadata xmlns="` + nsCommon + `" xmlns:rpm="` + nsRPM + `" packages="`)
	w.int(int64(len(packages)))
	w.str("\">\n")
	for i := range packages {
		writePrimaryPackage(w, &packages[i])
	}
	w.str("</metadata>") // no newline, as createrepo_c (XML_PRIMARY_FOOTER)
	return w.Bytes()
}

func writePrimaryPackage(w *xmlWriter, e *entry) {
	m := e.RPM
	w.str("<package type=\"rpm\">\n")
	w.elem("  ", "name", m.Name)
	w.elem("  ", "arch", m.Arch)
	w.version(m)
	w.str(`  <checksum type="sha256" pkgid="YES">`)
	w.str(e.SHA256)
	w.str("</checksum>\n")
	w.elem("  ", "summary", m.Summary)
	w.elem("  ", "description", m.Description)
	w.elem("  ", "packager", m.Packager)
	w.elem("  ", "url", m.URL)
	w.str(`  <time file="`)
	w.int(m.FileTime)
	w.str(`" build="`)
	w.int(m.BuildTime)
	w.str("\"/>\n")
	w.str(`  <size package="`)
	w.int(e.Size)
	w.str(`" installed="`)
	w.int(m.InstalledSize)
	w.str(`" archive="`)
	w.int(m.ArchiveSize)
	w.str("\"/>\n")
	w.str("  <location")
	w.attr("href", e.Pool)
	w.str("/>\n")
	w.str("  <format>\n")
	w.elem("    ", "rpm:license", m.License)
	w.elem("    ", "rpm:vendor", m.Vendor)
	w.elem("    ", "rpm:group", m.Group)
	w.elem("    ", "rpm:buildhost", m.BuildHost)
	w.elem("    ", "rpm:sourcerpm", m.SourceRPM)
	w.str(`    <rpm:header-range start="`)
	w.int(m.HeaderStart)
	w.str(`" end="`)
	w.int(m.HeaderEnd)
	w.str("\"/>\n")
	for _, dl := range m.depLists() {
		deps := *dl.list
		if len(deps) == 0 {
			continue
		}
		w.str("    <rpm:")
		w.str(dl.name)
		w.str(">\n")
		for _, d := range deps {
			w.str("      <rpm:entry")
			w.attr("name", d.Name)
			// createrepo_c writes the version only with a comparison.
			if d.Flags != "" {
				w.attr("flags", d.Flags)
				if d.Epoch != "" {
					w.attr("epoch", d.Epoch)
				}
				if d.Ver != "" {
					w.attr("ver", d.Ver)
				}
				if d.Rel != "" {
					w.attr("rel", d.Rel)
				}
			}
			if d.Pre {
				w.str(` pre="1"`)
			}
			w.str("/>\n")
		}
		w.str("    </rpm:")
		w.str(dl.name)
		w.str(">\n")
	}
	w.files("    ", m.Files, true)
	w.str("  </format>\n</package>\n")
}

// filelistsXML is filelists.xml: every file of every package.
func filelistsXML(packages []entry) []byte {
	w := &xmlWriter{}
	w.Grow(1024 * len(packages))
	w.str(xmlHeader)
	w.str(`<filelists xmlns="` + nsFilelists + `" packages="`)
	w.int(int64(len(packages)))
	w.str("\">\n")
	for i := range packages {
		e := &packages[i]
		w.pkgHead(e)
		w.files("  ", e.RPM.Files, false)
		w.str("</package>\n")
	}
	w.str("</filelists>")
	return w.Bytes()
}

// otherXML is other.xml: the changelogs.
func otherXML(packages []entry) []byte {
	w := &xmlWriter{}
	w.Grow(512 * len(packages))
	w.str(xmlHeader)
	w.str(`<otherdata xmlns="` + nsOther + `" packages="`)
	w.int(int64(len(packages)))
	w.str("\">\n")
	for i := range packages {
		e := &packages[i]
		w.pkgHead(e)
		for _, c := range e.RPM.Changelogs {
			w.str("  <changelog")
			w.attr("author", c.Author)
			w.str(` date="`)
			w.int(c.Date)
			w.str(`">`)
			w.text(c.Text)
			w.str("</changelog>\n")
		}
		w.str("</package>\n")
	}
	w.str("</otherdata>")
	return w.Bytes()
}

// repomdXML lists the metadata files; revision and timestamps are now.
func repomdXML(now time.Time, files []repodataFile) []byte {
	w := &xmlWriter{}
	ts := now.Unix()
	w.str(xmlHeader)
	w.str(`<repomd xmlns="` + nsRepo + `" xmlns:rpm="` + nsRPM + "\">\n")
	w.str("  <revision>")
	w.int(ts)
	w.str("</revision>\n")
	for i := range files {
		f := &files[i]
		w.str("  <data")
		w.attr("type", f.kind)
		w.str(">\n")
		w.str(`    <checksum type="sha256">` + f.sha256 + "</checksum>\n")
		w.str(`    <open-checksum type="sha256">` + f.openSHA + "</open-checksum>\n")
		w.str("    <location")
		w.attr("href", f.href())
		w.str("/>\n")
		w.str("    <timestamp>")
		w.int(ts)
		w.str("</timestamp>\n")
		w.str("    <size>")
		w.int(int64(len(f.gz)))
		w.str("</size>\n")
		w.str("    <open-size>")
		w.int(f.openSize)
		w.str("</open-size>\n")
		w.str("  </data>\n")
	}
	w.str("</repomd>\n")
	return w.Bytes()
}

// The structures below read repodata back (verify, tests). They keep what
// a client relies on.

type repomdDoc struct {
	XMLName  xml.Name     `xml:"repomd"`
	Revision string       `xml:"revision"`
	Data     []repomdData `xml:"data"`
}

type repomdData struct {
	Type         string       `xml:"type,attr"`
	Checksum     xmlChecksum  `xml:"checksum"`
	OpenChecksum *xmlChecksum `xml:"open-checksum"`
	Location     xmlLocation  `xml:"location"`
	Timestamp    int64        `xml:"timestamp"`
	Size         int64        `xml:"size"`
	OpenSize     *int64       `xml:"open-size"`
}

type xmlChecksum struct {
	Type  string `xml:"type,attr"`
	PkgID string `xml:"pkgid,attr,omitempty"`
	Value string `xml:",chardata"`
}

type xmlLocation struct {
	Base string `xml:"http://www.w3.org/XML/1998/namespace base,attr"`
	Href string `xml:"href,attr"`
}

// primaryPackage is a <package> of primary.xml.
type primaryPackage struct {
	Type        string      `xml:"type,attr"`
	Name        string      `xml:"name"`
	Arch        string      `xml:"arch"`
	Version     xmlVersion  `xml:"version"`
	Checksum    xmlChecksum `xml:"checksum"`
	Summary     string      `xml:"summary"`
	Description string      `xml:"description"`
	Packager    string      `xml:"packager"`
	URL         string      `xml:"url"`
	Time        struct {
		File  int64 `xml:"file,attr"`
		Build int64 `xml:"build,attr"`
	} `xml:"time"`
	Size struct {
		Package   int64 `xml:"package,attr"`
		Installed int64 `xml:"installed,attr"`
		Archive   int64 `xml:"archive,attr"`
	} `xml:"size"`
	Location xmlLocation `xml:"location"`
	Format   struct {
		License     string `xml:"license"`
		Vendor      string `xml:"vendor"`
		Group       string `xml:"group"`
		BuildHost   string `xml:"buildhost"`
		SourceRPM   string `xml:"sourcerpm"`
		HeaderRange struct {
			Start int64 `xml:"start,attr"`
			End   int64 `xml:"end,attr"`
		} `xml:"header-range"`
		Provides    []xmlDep  `xml:"provides>entry"`
		Requires    []xmlDep  `xml:"requires>entry"`
		Conflicts   []xmlDep  `xml:"conflicts>entry"`
		Obsoletes   []xmlDep  `xml:"obsoletes>entry"`
		Suggests    []xmlDep  `xml:"suggests>entry"`
		Enhances    []xmlDep  `xml:"enhances>entry"`
		Recommends  []xmlDep  `xml:"recommends>entry"`
		Supplements []xmlDep  `xml:"supplements>entry"`
		Files       []xmlFile `xml:"file"`
	} `xml:"format"`
}

type xmlVersion struct {
	Epoch string `xml:"epoch,attr"`
	Ver   string `xml:"ver,attr"`
	Rel   string `xml:"rel,attr"`
}

type xmlDep struct {
	Name  string `xml:"name,attr"`
	Flags string `xml:"flags,attr"`
	Epoch string `xml:"epoch,attr"`
	Ver   string `xml:"ver,attr"`
	Rel   string `xml:"rel,attr"`
	Pre   string `xml:"pre,attr"`
}

type xmlFile struct {
	Type string `xml:"type,attr"`
	Path string `xml:",chardata"`
}
