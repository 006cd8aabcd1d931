package repo

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/cavaliergopher/rpm"
)

// rpmMeta is what primary.xml, filelists.xml and other.xml say about one
// RPM, read from its headers the way createrepo_c 0.17 reads them
// (src/parsehdr.c, cr_package_from_header). Strings are valid UTF-8 and
// free of the control characters XML cannot carry.
type rpmMeta struct {
	Name    string `json:"name"`
	Epoch   uint32 `json:"epoch"`
	Version string `json:"version"`
	Release string `json:"release"`
	Arch    string `json:"arch"`

	Summary     string `json:"summary"`
	Description string `json:"description"`
	Packager    string `json:"packager"`
	URL         string `json:"url"`
	License     string `json:"license"`
	Vendor      string `json:"vendor"`
	Group       string `json:"group"`
	BuildHost   string `json:"buildhost"`
	SourceRPM   string `json:"sourcerpm"`

	BuildTime int64 `json:"build_time"`
	// FileTime is when the package was stored in the repository
	// (createrepo_c uses the file's mtime).
	FileTime      int64 `json:"file_time,omitempty"`
	InstalledSize int64 `json:"installed_size"`
	ArchiveSize   int64 `json:"archive_size"`
	// HeaderStart and HeaderEnd are the byte range of the main header,
	// which dnf fetches alone for some operations.
	HeaderStart int64 `json:"header_start"`
	HeaderEnd   int64 `json:"header_end"`

	Provides    []rpmDep `json:"provides,omitempty"`
	Requires    []rpmDep `json:"requires,omitempty"`
	Conflicts   []rpmDep `json:"conflicts,omitempty"`
	Obsoletes   []rpmDep `json:"obsoletes,omitempty"`
	Suggests    []rpmDep `json:"suggests,omitempty"`
	Enhances    []rpmDep `json:"enhances,omitempty"`
	Recommends  []rpmDep `json:"recommends,omitempty"`
	Supplements []rpmDep `json:"supplements,omitempty"`

	Files      []rpmFile      `json:"files,omitempty"`
	Changelogs []rpmChangelog `json:"changelogs,omitempty"` // oldest first
}

// rpmDep is one dependency entry as repodata writes it: Flags is "" or one
// of LT, GT, EQ, LE, GE; Epoch, Ver and Rel are empty when absent.
type rpmDep struct {
	Name  string `json:"name"`
	Flags string `json:"flags,omitempty"`
	Epoch string `json:"epoch,omitempty"`
	Ver   string `json:"ver,omitempty"`
	Rel   string `json:"rel,omitempty"`
	Pre   bool   `json:"pre,omitempty"`
}

// rpmFile is one file of a package; Type is "", "dir" or "ghost".
type rpmFile struct {
	Path string `json:"path"`
	Type string `json:"type,omitempty"`
}

type rpmChangelog struct {
	Author string `json:"author"`
	Date   int64  `json:"date"`
	Text   string `json:"text"`
}

// nvra is the package's file name without ".rpm".
func (m *rpmMeta) nvra() string {
	return m.Name + "-" + m.Version + "-" + m.Release + "." + m.Arch
}

// key is the identity of a package in a repository: name, version,
// release and architecture. The epoch is left out on purpose: the pool
// file is named by NVRA as everywhere in the RPM world, and two packages
// that differ only in epoch are a packaging mistake that must be refused
// (or replaced explicitly) rather than published side by side.
func (m *rpmMeta) key() string { return m.nvra() }

// poolPath is Packages/<first letter of the name, lower case>/<nvra>.rpm.
func (m *rpmMeta) poolPath() string {
	return "Packages/" + strings.ToLower(m.Name[:1]) + "/" + m.nvra() + ".rpm"
}

// Limits from rpm's hdrblobVerifyLengths (lib/header.c): a header with more
// tags or data than this is refused by rpm itself.
const (
	rpmLeadSize       = 96
	rpmIntroSize      = 16
	rpmSigMaxTags     = 32
	rpmSigMaxData     = 64 << 20
	rpmHdrMaxTags     = 0xffff
	rpmHdrMaxData     = 0x0fffffff
	rpmChangelogLimit = 10 // createrepo_c's DEFAULT_CHANGELOG_LIMIT (src/cmd_parser.h)
)

// Signature header tags (rpmtag.h, RPMSIGTAG_*).
const (
	rpmSigSHA1            = 269
	rpmSigLongSize        = 270
	rpmSigLongArchiveSize = 271
	rpmSigSHA256          = 273
	rpmSigSize            = 1000
	rpmSigPayloadSize     = 1007
)

// Header tags (rpmtag.h, RPMTAG_*).
const (
	rpmTagLongArchiveSize  = 271
	rpmTagName             = 1000
	rpmTagVersion          = 1001
	rpmTagRelease          = 1002
	rpmTagEpoch            = 1003
	rpmTagSummary          = 1004
	rpmTagDescription      = 1005
	rpmTagBuildTime        = 1006
	rpmTagBuildHost        = 1007
	rpmTagSize             = 1009
	rpmTagVendor           = 1011
	rpmTagLicense          = 1014
	rpmTagPackager         = 1015
	rpmTagGroup            = 1016
	rpmTagURL              = 1020
	rpmTagArch             = 1022
	rpmTagOldFilenames     = 1027
	rpmTagFileModes        = 1030
	rpmTagFileFlags        = 1037
	rpmTagSourceRPM        = 1044
	rpmTagArchiveSize      = 1046
	rpmTagChangelogTime    = 1080
	rpmTagChangelogName    = 1081
	rpmTagChangelogText    = 1082
	rpmTagSourcePackage    = 1106
	rpmTagDirIndexes       = 1116
	rpmTagBasenames        = 1117
	rpmTagDirnames         = 1118
	rpmTagLongSize         = 5009
	rpmTagHeaderSignatures = 62
	rpmTagHeaderImmutable  = 63
	rpmTagHeaderImage      = 61
)

// Dependency flags (rpmds.h, RPMSENSE_*).
const (
	rpmSensePrereq     = 1 << 6
	rpmSenseScriptPre  = 1 << 9
	rpmSenseScriptPost = 1 << 10
	rpmSenseMissingOK  = 1 << 19
	rpmSenseStrong     = 1 << 27
)

const (
	rpmFileGhost = 1 << 6 // RPMFILE_GHOST
	rpmModeDir   = 0o040000
	rpmModeFmt   = 0o170000
)

// rpmDepKind names the dependency lists in the order createrepo_c reads
// them (dep_items in parsehdr.c): provides first, so that requires can be
// checked against them.
type rpmDepKind int

const (
	depProvides rpmDepKind = iota
	depConflicts
	depObsoletes
	depRequires
	depSuggests
	depEnhances
	depRecommends
	depSupplements
	depOldSuggests // SUSE/Mageia legacy weak deps; Debian builds createrepo_c with them
	depOldEnhances
)

var rpmDepTags = []struct {
	kind                 rpmDepKind
	name, flags, version int
}{
	{depProvides, 1047, 1112, 1113},
	{depConflicts, 1054, 1053, 1055},
	{depObsoletes, 1090, 1114, 1115},
	{depRequires, 1049, 1048, 1050},
	{depSuggests, 5049, 5051, 5050},
	{depEnhances, 5055, 5057, 5056},
	{depRecommends, 5046, 5048, 5047},
	{depSupplements, 5052, 5054, 5053},
	{depOldSuggests, 1156, 1158, 1157},
	{depOldEnhances, 1159, 1161, 1160},
}

// What rpmbuild accepts (build/parsePreamble.c: rpmCharCheck and
// ALLOWED_CHARS_*), without the macro characters. A version or release
// with '-' or a name with '/' would make the file name ambiguous or
// escape the pool.
var (
	rpmNameRE    = regexp.MustCompile(`^[A-Za-z0-9_+][A-Za-z0-9_+.-]*$`)
	rpmVersionRE = regexp.MustCompile(`^[A-Za-z0-9._+~^]+$`)
	rpmArchRE    = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
)

// rpmLayout is where the parts of an RPM file are.
type rpmLayout struct {
	sigStart, hdrStart, hdrEnd int64
}

// parseRPM reads the metadata of an RPM of size bytes. It checks the file's
// layout itself before the parsing library sees it (every header inside the
// file and within rpm's own limits, the tag data neither overlapping nor
// running out of its header, the header's digest, and the header+payload
// size the signature header records against the file's size), so a crafted
// file can neither make it allocate more than a small multiple of the
// file's size nor panic, and a truncated or padded file is refused.
// Source RPMs are refused: a repository serves binary packages.
func parseRPM(r io.ReaderAt, size int64) (m *rpmMeta, err error) {
	lay, raw, err := readRPMHeaders(r, size)
	if err != nil {
		return nil, err
	}
	defer func() {
		// The checks above should keep the library on safe ground; a
		// panic in it still means a corrupt package, not a bug of ours.
		if p := recover(); p != nil {
			m, err = nil, fmt.Errorf("corrupt .rpm: %v", p)
		}
	}()
	pkg, err := rpm.Read(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("corrupt .rpm: %w", err)
	}
	if err := checkRPMSizes(&pkg.Signature, raw, lay, size); err != nil {
		return nil, err
	}
	if pkg.Lead.Type != 0 || pkg.Header.GetTag(rpmTagSourcePackage) != nil {
		return nil, errors.New("a source RPM: only binary RPMs can be published")
	}
	m, err = newRPMMeta(&pkg.Signature, &pkg.Header)
	if err != nil {
		return nil, err
	}
	m.HeaderStart, m.HeaderEnd = lay.hdrStart, lay.hdrEnd
	return m, nil
}

// readRPMHeaders checks the lead and the two headers' structure and returns
// where they are and their bytes (lead, signature header with its padding,
// main header).
func readRPMHeaders(r io.ReaderAt, size int64) (rpmLayout, []byte, error) {
	var lay rpmLayout
	var lead [rpmLeadSize]byte
	n, err := r.ReadAt(lead[:min(size, rpmLeadSize)], 0)
	if n < 4 || !bytes.Equal(lead[:4], []byte{0xed, 0xab, 0xee, 0xdb}) {
		if err != nil && err != io.EOF {
			return lay, nil, fmt.Errorf("read .rpm lead: %w", err)
		}
		return lay, nil, errors.New("not an .rpm: no RPM lead")
	}
	if size < rpmLeadSize+rpmIntroSize {
		return lay, nil, fmt.Errorf("truncated .rpm: only %d bytes", size)
	}
	if n < rpmLeadSize {
		return lay, nil, fmt.Errorf("read .rpm lead: %w", err)
	}
	if lead[4] != 3 && lead[4] != 4 {
		return lay, nil, fmt.Errorf("unsupported .rpm: format version %d", lead[4])
	}
	lay.sigStart = rpmLeadSize
	sigLen, err := headerLen(r, lay.sigStart, size, rpmSigMaxTags, rpmSigMaxData, "signature header")
	if err != nil {
		return lay, nil, err
	}
	lay.hdrStart = lay.sigStart + sigLen + (8-sigLen%8)%8
	hdrLen, err := headerLen(r, lay.hdrStart, size, rpmHdrMaxTags, rpmHdrMaxData, "header")
	if err != nil {
		return lay, nil, err
	}
	lay.hdrEnd = lay.hdrStart + hdrLen
	// Everything read below is inside the file: the allocation is bounded
	// by its size.
	raw := make([]byte, lay.hdrEnd)
	if _, err := r.ReadAt(raw, 0); err != nil {
		return lay, nil, fmt.Errorf("read .rpm headers: %w", err)
	}
	if err := checkHeaderIndex(raw[lay.sigStart:lay.sigStart+sigLen], "signature header"); err != nil {
		return lay, nil, err
	}
	if err := checkHeaderIndex(raw[lay.hdrStart:lay.hdrEnd], "header"); err != nil {
		return lay, nil, err
	}
	return lay, raw, nil
}

// headerLen reads the intro of the header at off and returns the header's
// length (intro, index and data), checked against rpm's limits and the
// file's size.
func headerLen(r io.ReaderAt, off, size int64, maxTags, maxData uint32, what string) (int64, error) {
	if off+rpmIntroSize > size {
		return 0, fmt.Errorf("truncated .rpm: %s at offset %d, file has %d bytes", what, off, size)
	}
	var intro [rpmIntroSize]byte
	if _, err := r.ReadAt(intro[:], off); err != nil {
		return 0, fmt.Errorf("read .rpm %s: %w", what, err)
	}
	if !bytes.Equal(intro[:8], []byte{0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0}) {
		return 0, fmt.Errorf("corrupt .rpm: bad %s magic at offset %d", what, off)
	}
	tags, data := binary.BigEndian.Uint32(intro[8:]), binary.BigEndian.Uint32(intro[12:])
	if tags == 0 || tags > maxTags {
		return 0, fmt.Errorf("corrupt .rpm: %s has %d tags (at most %d)", what, tags, maxTags)
	}
	if data > maxData {
		return 0, fmt.Errorf("corrupt .rpm: %s has %d bytes of data (at most %d)", what, data, maxData)
	}
	n := rpmIntroSize + 16*int64(tags) + int64(data)
	if off+n > size {
		return 0, fmt.Errorf("truncated .rpm: %s needs %d bytes at offset %d, file has %d", what, n, off, size)
	}
	return n, nil
}

// checkHeaderIndex applies rpm's hdrblobVerifyInfo checks to a header (intro
// included): known types, counts and offsets inside the data, alignment,
// NUL-terminated strings, and no entry overlapping the one before it. With
// them, decoding every entry allocates in proportion to the data's size.
func checkHeaderIndex(h []byte, what string) error {
	tags := int(binary.BigEndian.Uint32(h[8:]))
	index, data := h[rpmIntroSize:rpmIntroSize+16*tags], h[rpmIntroSize+16*tags:]
	dl := int64(len(data))
	var prevEnd int64
	for i := range tags {
		e := index[16*i : 16*i+16]
		tag := binary.BigEndian.Uint32(e)
		typ := binary.BigEndian.Uint32(e[4:])
		off := int64(binary.BigEndian.Uint32(e[8:]))
		count := int64(binary.BigEndian.Uint32(e[12:]))
		bad := func(why string) error {
			return fmt.Errorf("corrupt .rpm: %s tag %d: %s", what, tag, why)
		}
		if i == 0 && (tag == rpmTagHeaderImage || tag == rpmTagHeaderSignatures || tag == rpmTagHeaderImmutable) {
			// The region tag's trailer sits at the end of the data.
			if typ != uint32(rpm.TagTypeBinary) || count != 16 || off+16 > dl {
				return bad("bad region")
			}
			continue
		}
		if count == 0 || count > dl {
			return bad(fmt.Sprintf("count %d out of range", count))
		}
		if off >= dl {
			return bad(fmt.Sprintf("offset %d out of range", off))
		}
		if off < prevEnd {
			return bad("data overlaps the previous tag's")
		}
		var n int64
		switch rpm.TagType(typ) {
		case rpm.TagTypeChar, rpm.TagTypeInt8, rpm.TagTypeBinary:
			n = count
		case rpm.TagTypeInt16:
			n = 2 * count
		case rpm.TagTypeInt32:
			n = 4 * count
		case rpm.TagTypeInt64:
			n = 8 * count
		case rpm.TagTypeString, rpm.TagTypeStringArray, rpm.TagTypeI18NString:
			if rpm.TagType(typ) == rpm.TagTypeString && count != 1 {
				return bad("string with more than one value")
			}
			end := off
			for range count {
				j := bytes.IndexByte(data[end:], 0)
				if j < 0 {
					return bad("string runs past the data")
				}
				end += int64(j) + 1
			}
			n = end - off
		default:
			return bad(fmt.Sprintf("unknown type %d", typ))
		}
		if align := n / count; rpm.TagType(typ) >= rpm.TagTypeInt16 && rpm.TagType(typ) <= rpm.TagTypeInt64 && off%align != 0 {
			return bad("misaligned data")
		}
		if off+n > dl {
			return bad("data runs past the header")
		}
		prevEnd = off + n
	}
	return nil
}

// checkRPMSizes compares the header+payload size the signature header
// records with the file's size, and the header with its digest.
func checkRPMSizes(sig *rpm.Header, raw []byte, lay rpmLayout, size int64) error {
	want, ok := tagInt(sig, rpmSigLongSize)
	if !ok {
		want, ok = tagInt(sig, rpmSigSize)
	}
	if !ok {
		return errors.New("corrupt .rpm: the signature header records no size, the file cannot be checked for completeness")
	}
	have := size - lay.hdrStart
	hdrLen := lay.hdrEnd - lay.hdrStart
	switch {
	case want > have:
		return fmt.Errorf("truncated .rpm: header and payload are %d bytes, file has %d after the signature header", want, have)
	case want < have:
		return fmt.Errorf("corrupt .rpm: %d bytes after the end of the payload", have-want)
	case want <= hdrLen:
		return errors.New("truncated .rpm: no payload")
	}
	hdr := raw[lay.hdrStart:lay.hdrEnd]
	if d := sig.GetTag(rpmSigSHA256); d != nil {
		sum := sha256.Sum256(hdr)
		if d.String() != hex.EncodeToString(sum[:]) {
			return errors.New("corrupt .rpm: header SHA256 digest mismatch")
		}
	} else if d := sig.GetTag(rpmSigSHA1); d != nil {
		sum := sha1.Sum(hdr)
		if d.String() != hex.EncodeToString(sum[:]) {
			return errors.New("corrupt .rpm: header SHA1 digest mismatch")
		}
	}
	return nil
}

// tagInt returns the first value of an integer tag.
func tagInt(h *rpm.Header, tag int) (int64, bool) {
	v := h.GetTag(tag).Int64Slice()
	if len(v) == 0 {
		return 0, false
	}
	return v[0], true
}

// rpmTags reads typed values, remembering the first tag found with a type
// other than the one rpm gives it.
type rpmTags struct {
	h   *rpm.Header
	err error
}

func (t *rpmTags) wrongType(tag int, want string) {
	if t.err == nil {
		t.err = fmt.Errorf("corrupt .rpm: tag %d is not %s", tag, want)
	}
}

// strs returns a string array tag's values; ok is false when it is absent.
func (t *rpmTags) strs(tag int) (v []string, ok bool) {
	tg := t.h.GetTag(tag)
	if tg == nil {
		return nil, false
	}
	v = tg.StringSlice()
	if v == nil {
		t.wrongType(tag, "a string")
		return nil, false
	}
	return v, true
}

// str is headerGetString: the first value of a string tag, "" if absent.
func (t *rpmTags) str(tag int) string {
	v, _ := t.strs(tag)
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func (t *rpmTags) ints(tag int) (v []int64, ok bool) {
	tg := t.h.GetTag(tag)
	if tg == nil {
		return nil, false
	}
	v = tg.Int64Slice()
	if v == nil {
		t.wrongType(tag, "a number")
		return nil, false
	}
	return v, true
}

// num is headerGetNumber: the first value of an integer tag, 0 if absent.
func (t *rpmTags) num(tag int) (int64, bool) {
	v, ok := t.ints(tag)
	if !ok || len(v) == 0 {
		return 0, false
	}
	return v[0], true
}

// newRPMMeta builds the metadata from the headers as createrepo_c's
// cr_package_from_header does.
func newRPMMeta(sig, hdr *rpm.Header) (*rpmMeta, error) {
	t := &rpmTags{h: hdr}
	st := &rpmTags{h: sig}
	m := &rpmMeta{
		Name:        t.str(rpmTagName),
		Version:     t.str(rpmTagVersion),
		Release:     t.str(rpmTagRelease),
		Arch:        t.str(rpmTagArch),
		Summary:     t.str(rpmTagSummary),
		Description: t.str(rpmTagDescription),
		Packager:    t.str(rpmTagPackager),
		URL:         t.str(rpmTagURL),
		License:     t.str(rpmTagLicense),
		Vendor:      t.str(rpmTagVendor),
		Group:       t.str(rpmTagGroup),
		BuildHost:   t.str(rpmTagBuildHost),
		SourceRPM:   t.str(rpmTagSourceRPM),
	}
	epoch, _ := t.num(rpmTagEpoch)
	m.Epoch = uint32(epoch)
	m.BuildTime, _ = t.num(rpmTagBuildTime)
	// LONGSIZE and LONGARCHIVESIZE fall back to the 32-bit tags (rpm's
	// tagexts.c get64); rpm merges the signature header's size tags into
	// the header first (lib/package.c headerMergeLegacySigs).
	var ok bool
	if m.InstalledSize, ok = t.num(rpmTagLongSize); !ok {
		m.InstalledSize, _ = t.num(rpmTagSize)
	}
	for _, s := range []struct {
		t   *rpmTags
		tag int
	}{{st, rpmSigLongArchiveSize}, {t, rpmTagLongArchiveSize}, {st, rpmSigPayloadSize}, {t, rpmTagArchiveSize}} {
		if m.ArchiveSize, ok = s.t.num(s.tag); ok {
			break
		}
	}
	files, err := rpmFiles(t)
	if err != nil {
		return nil, err
	}
	m.Files = files
	rpmDeps(t, m)
	m.Changelogs = rpmChangelogs(t, rpmChangelogLimit)
	if t.err != nil {
		return nil, t.err
	}
	if st.err != nil {
		return nil, st.err
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	m.toUTF8()
	return m, nil
}

// rpmFiles lists the files as createrepo_c does: only when the header has
// names, directory indexes, flags and modes, as many as the shortest list.
func rpmFiles(t *rpmTags) ([]rpmFile, error) {
	bases, okB := t.strs(rpmTagBasenames)
	dirs, okD := t.strs(rpmTagDirnames)
	idx, okI := t.ints(rpmTagDirIndexes)
	if !okB {
		// Packages from before rpm 4 list whole names; rpm converts them
		// (compressFilelist) before anyone reads the header.
		old, ok := t.strs(rpmTagOldFilenames)
		if !ok {
			return nil, nil
		}
		dirIdx := map[string]int64{}
		bases, dirs, idx = nil, nil, nil
		for _, name := range old {
			i := strings.LastIndexByte(name, '/') + 1
			d, ok := dirIdx[name[:i]]
			if !ok {
				d = int64(len(dirs))
				dirIdx[name[:i]] = d
				dirs = append(dirs, name[:i])
			}
			bases = append(bases, name[i:])
			idx = append(idx, d)
		}
		okB, okD, okI = true, true, true
	}
	flags, okF := t.ints(rpmTagFileFlags)
	modes, okM := t.ints(rpmTagFileModes)
	if !okB || !okI || !okF || !okM {
		return nil, nil
	}
	if !okD {
		dirs = nil
	}
	n := min(len(bases), len(idx), len(flags), len(modes))
	files := make([]rpmFile, 0, n)
	for i := range n {
		if idx[i] < 0 || idx[i] >= int64(len(dirs)) {
			return nil, fmt.Errorf("corrupt .rpm: file %q has directory index %d of %d", bases[i], idx[i], len(dirs))
		}
		f := rpmFile{Path: dirs[idx[i]] + bases[i]}
		switch {
		case modes[i]&rpmModeFmt == rpmModeDir:
			f.Type = "dir"
		case flags[i]&rpmFileGhost != 0:
			f.Type = "ghost"
		}
		files = append(files, f)
	}
	return files, nil
}

// isPrimaryFile is createrepo_c's cr_is_primary (src/misc.h): the files
// listed in primary.xml, which yum and dnf resolve file requires against
// without fetching filelists. Anything with "bin/" anywhere counts, as
// every createrepo and yum version expects.
func isPrimaryFile(name string) bool {
	return strings.HasPrefix(name, "/etc/") || name == "/usr/lib/sendmail" || strings.Contains(name, "bin/")
}

// rpmDeps fills the dependency lists following parsehdr.c: requires on
// rpmlib(...), on the package's own primary files and on exactly what it
// provides are dropped, as are repeated requires; only the highest
// libc.so.6 require is kept (last); legacy weak dependencies are mapped
// to the new ones as Debian's build (ENABLE_LEGACY_WEAKDEPS) does.
func rpmDeps(t *rpmTags, m *rpmMeta) {
	var files map[string]bool // built on the first file require
	provided := map[string]bool{}
	type seenReq struct {
		flags, version string
		pre            bool
	}
	requires := map[string]seenReq{}
	for _, dt := range rpmDepTags {
		names, ok1 := t.strs(dt.name)
		flags, ok2 := t.ints(dt.flags)
		versions, ok3 := t.strs(dt.version)
		if !ok1 || !ok2 || !ok3 {
			continue
		}
		var libc *rpmDep
		for i := range min(len(names), len(flags), len(versions)) {
			name, fl, full := names[i], flags[i], versions[i]
			flagStr := rpmFlagString(fl)
			nfv := name + flagStr + full
			pre := false
			if dt.kind == depRequires {
				if strings.HasPrefix(name, "rpmlib(") {
					continue
				}
				if strings.HasPrefix(name, "/") && isPrimaryFile(name) {
					if files == nil {
						files = make(map[string]bool, len(m.Files))
						for _, f := range m.Files {
							files[f.Path] = true
						}
					}
					if files[name] {
						continue
					}
				}
				if provided[nfv] {
					continue
				}
				pre = fl&(rpmSensePrereq|rpmSenseScriptPre|rpmSenseScriptPost) != 0
				if s, ok := requires[name]; ok && s == (seenReq{flagStr, full, pre}) {
					continue
				}
			}
			epoch, ver, rel, ok := splitEVR(full)
			if !ok {
				// createrepo_c warns and skips a dependency whose epoch
				// is not a number.
				continue
			}
			d := rpmDep{Name: name, Flags: flagStr, Epoch: epoch, Ver: ver, Rel: rel}
			switch dt.kind {
			case depProvides:
				provided[nfv] = true
				m.Provides = append(m.Provides, d)
			case depConflicts:
				m.Conflicts = append(m.Conflicts, d)
			case depObsoletes:
				m.Obsoletes = append(m.Obsoletes, d)
			case depRequires:
				if fl&rpmSenseMissingOK != 0 {
					m.Recommends = append(m.Recommends, d)
					break
				}
				d.Pre = pre
				if strings.HasPrefix(name, "libc.so.6") {
					if libc == nil || compareLibcDep(libc.Name, name) == 2 {
						libc = &d
					}
					break
				}
				m.Requires = append(m.Requires, d)
				requires[name] = seenReq{flagStr, full, pre}
			case depSuggests:
				m.Suggests = append(m.Suggests, d)
			case depEnhances:
				m.Enhances = append(m.Enhances, d)
			case depRecommends:
				m.Recommends = append(m.Recommends, d)
			case depSupplements:
				m.Supplements = append(m.Supplements, d)
			case depOldSuggests:
				if fl&rpmSenseStrong != 0 {
					m.Recommends = append(m.Recommends, d)
				} else {
					m.Suggests = append(m.Suggests, d)
				}
			case depOldEnhances:
				if fl&rpmSenseStrong != 0 {
					m.Supplements = append(m.Supplements, d)
				} else {
					m.Enhances = append(m.Enhances, d)
				}
			}
		}
		if libc != nil {
			m.Requires = append(m.Requires, *libc)
		}
	}
}

// rpmFlagString is cr_flag_to_str (src/misc.c).
func rpmFlagString(flags int64) string {
	switch flags & 0xf {
	case 2:
		return "LT"
	case 4:
		return "GT"
	case 8:
		return "EQ"
	case 10:
		return "LE"
	case 12:
		return "GE"
	}
	return ""
}

// splitEVR is cr_str_to_evr (src/misc.c): "[epoch:]version[-release]",
// the epoch "0" when not given. ok is false for a non-numeric epoch.
func splitEVR(s string) (epoch, version, release string, ok bool) {
	if s == "" {
		return "", "", "", true
	}
	rest := s
	epoch = "0"
	if e, r, found := strings.Cut(s, ":"); found {
		if !isStrtolNumber(e) {
			return "", "", "", false
		}
		if e != "" {
			epoch = e
		}
		rest = r
	}
	version, release, _ = strings.Cut(rest, "-")
	return epoch, version, release, true
}

// isStrtolNumber reports whether strtol(s, &end, 10) consumes all of s.
func isStrtolNumber(s string) bool {
	if s == "" {
		return true
	}
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// compareLibcDep is cr_compare_dependency (src/parsehdr.c) for two
// libc.so.6 requires: 2 when the second names a higher GLIBC version.
func compareLibcDep(a, b string) int {
	if a == b {
		return 0
	}
	va, vb := strings.IndexByte(a, '('), strings.IndexByte(b, '(')
	switch {
	case va < 0 && vb < 0:
		return 0
	case va < 0:
		return 2
	case vb < 0:
		return 1
	}
	ea, eb := strings.IndexByte(a[va:], ')'), strings.IndexByte(b[vb:], ')')
	switch {
	case ea < 0 && eb < 0:
		return -1
	case ea < 0:
		return 2
	case eb < 0:
		return 1
	}
	ea, eb = va+ea, vb+eb
	va, vb = va+1, vb+1
	switch {
	case va == ea && vb == eb:
		return 0
	case va == ea:
		return 2
	case vb == eb:
		return 1
	}
	for va < len(a) && (a[va] < '0' || a[va] > '9') {
		va++
	}
	for vb < len(b) && (b[vb] < '0' || b[vb] > '9') {
		vb++
	}
	switch {
	case va > ea && vb > eb:
		return 0
	case va > ea:
		return 2
	case vb > eb:
		return 1
	}
	switch rpm.CompareVersions(a[va:ea], b[vb:eb]) {
	case -1:
		return 2
	case 1:
		return 1
	}
	return 0
}

// rpmChangelogs returns the first limit changelog entries (the newest),
// oldest first, with createrepo_c's adjustments: trailing spaces cut from
// the author, and entries with the same time made distinct by moving the
// newer ones one second later.
func rpmChangelogs(t *rpmTags, limit int) []rpmChangelog {
	times, ok1 := t.ints(rpmTagChangelogTime)
	names, ok2 := t.strs(rpmTagChangelogName)
	texts, ok3 := t.strs(rpmTagChangelogText)
	if !ok1 || !ok2 || !ok3 {
		return nil
	}
	var out []rpmChangelog
	var last int64
	for i := range min(len(times), len(names), len(texts), limit) {
		author := names[i]
		for len(author) > 1 && author[len(author)-1] == ' ' {
			author = author[:len(author)-1]
		}
		out = append(out, rpmChangelog{Author: author, Date: times[i], Text: texts[i]})
		if times[i] == last {
			tm := times[i]
			for j := len(out) - 2; j >= 0 && out[j].Date == tm; j-- {
				out[j].Date++
				tm++
			}
		} else {
			last = times[i]
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// validate refuses what cannot be a file name in the pool and the control
// characters that createrepo_c refuses (cr_Package_contains_forbidden_control_chars).
func (m *rpmMeta) validate() error {
	for _, f := range []struct {
		what, v string
		re      *regexp.Regexp
	}{
		{"name", m.Name, rpmNameRE},
		{"version", m.Version, rpmVersionRE},
		{"release", m.Release, rpmVersionRE},
		{"arch", m.Arch, rpmArchRE},
	} {
		if !f.re.MatchString(f.v) || !safeComponent(f.v) || strings.Contains(f.v, "..") {
			return fmt.Errorf("bad %s %q in the RPM header", f.what, f.v)
		}
	}
	var bad string
	check := func(what, v string) {
		if bad == "" && hasControlChars(v) {
			bad = what
		}
	}
	for _, f := range [][2]string{
		{"summary", m.Summary}, {"description", m.Description}, {"packager", m.Packager},
		{"url", m.URL}, {"license", m.License}, {"vendor", m.Vendor}, {"group", m.Group},
		{"buildhost", m.BuildHost}, {"sourcerpm", m.SourceRPM},
	} {
		check(f[0], f[1])
	}
	for _, deps := range m.depLists() {
		for _, d := range *deps.list {
			check(deps.name, d.Name+d.Epoch+d.Ver+d.Rel)
		}
	}
	for _, f := range m.Files {
		check("file name", f.Path)
	}
	for _, c := range m.Changelogs {
		check("changelog", c.Author+c.Text)
	}
	if bad != "" {
		return fmt.Errorf("%s: control characters that repodata cannot carry", bad)
	}
	return nil
}

// hasControlChars is cr_hascontrollchars: below 32 except tab, LF and CR.
func hasControlChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 32 && c != '\t' && c != '\n' && c != '\r' {
			return true
		}
	}
	return false
}

type depList struct {
	name string // the element in primary.xml, without "rpm:"
	list *[]rpmDep
}

// depLists are the dependency lists in the order primary.xml has them.
func (m *rpmMeta) depLists() []depList {
	return []depList{
		{"provides", &m.Provides},
		{"requires", &m.Requires},
		{"conflicts", &m.Conflicts},
		{"obsoletes", &m.Obsoletes},
		{"suggests", &m.Suggests},
		{"enhances", &m.Enhances},
		{"recommends", &m.Recommends},
		{"supplements", &m.Supplements},
	}
}

// toUTF8 converts the strings that are not UTF-8 from Latin-1, as
// createrepo_c does when writing XML (cr_latin1_to_utf8), and drops the
// two characters XML 1.0 forbids that are valid UTF-8.
func (m *rpmMeta) toUTF8() {
	for _, p := range []*string{&m.Summary, &m.Description, &m.Packager, &m.URL,
		&m.License, &m.Vendor, &m.Group, &m.BuildHost, &m.SourceRPM} {
		*p = xmlText(*p)
	}
	for _, deps := range m.depLists() {
		for i := range *deps.list {
			d := &(*deps.list)[i]
			d.Name, d.Epoch, d.Ver, d.Rel = xmlText(d.Name), xmlText(d.Epoch), xmlText(d.Ver), xmlText(d.Rel)
		}
		// createrepo_c writes no entry for an empty name.
		*deps.list = deleteEmptyDeps(*deps.list)
	}
	for i := range m.Files {
		m.Files[i].Path = xmlText(m.Files[i].Path)
	}
	for i := range m.Changelogs {
		c := &m.Changelogs[i]
		c.Author, c.Text = xmlText(c.Author), xmlText(c.Text)
	}
}

func deleteEmptyDeps(ds []rpmDep) []rpmDep {
	out := ds[:0]
	for _, d := range ds {
		if d.Name != "" {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func xmlText(s string) string {
	if utf8.ValidString(s) {
		if !strings.ContainsAny(s, "\uFFFE\uFFFF") {
			return s
		}
		return strings.Map(func(r rune) rune {
			if r == 0xFFFE || r == 0xFFFF {
				return -1
			}
			return r
		}, s)
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 32 && c != '\t' && c != '\n' && c != '\r':
		case c < 0x80:
			b.WriteByte(c)
		case c < 0xc0:
			// A C1 control: probably cp1252, not Latin-1; createrepo_c
			// skips it.
		default:
			b.WriteRune(rune(c))
		}
	}
	return b.String()
}
