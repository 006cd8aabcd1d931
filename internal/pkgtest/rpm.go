package pkgtest

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/rpmpack"
)

// RPM describes a synthetic binary RPM.
type RPM struct {
	Name, Version, Release, Arch string // Arch e.g. "x86_64" or "noarch"
	Epoch                        uint32 // 0 = none
	// Summary, Description, License, URL and Group get defaults when empty.
	Summary, Description, License, URL, Group string
	// Requires, Provides, Conflicts and Obsoletes hold relations like "foo",
	// "foo >= 1.0" or "/bin/sh". The package always provides
	// "Name = [Epoch:]Version-Release".
	Requires, Provides, Conflicts, Obsoletes []string
	// Files maps paths such as "/usr/share/NAME/data" to contents. The
	// default is one file, /usr/share/doc/NAME/README, with a line of text.
	Files map[string][]byte
	// PayloadSize, if > 0, adds /usr/share/NAME/payload with this many
	// incompressible bytes from [Payload], seeded from Name and Version.
	PayloadSize int
	// BuildTime is the build time and the mtime of every file; the default
	// is 2024-01-01 UTC.
	BuildTime time.Time
}

var (
	// rpmName and rpmVersion accept what rpmbuild accepts in a spec file.
	rpmName    = regexp.MustCompile(`^[A-Za-z0-9_+][A-Za-z0-9_+.-]*$`)
	rpmVersion = regexp.MustCompile(`^[A-Za-z0-9._+~^]+$`)
	rpmArch    = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
)

// Bytes returns the .rpm file contents. It is deterministic: the same RPM
// gives the same bytes.
func (r RPM) Bytes() ([]byte, error) {
	b, err := r.build()
	if err != nil {
		return nil, fmt.Errorf("pkgtest: rpm %s: %w", r.ident(), err)
	}
	return b, nil
}

// WriteFile writes Bytes() to dir/<Name>-<Version>-<Release>.<Arch>.rpm and
// returns the path.
func (r RPM) WriteFile(dir string) (string, error) {
	b, err := r.Bytes()
	if err != nil {
		return "", err
	}
	p, err := writeFile(dir, r.Name+"-"+r.Version+"-"+r.Release+"."+r.Arch+".rpm", b)
	if err != nil {
		return "", fmt.Errorf("pkgtest: rpm %s: %w", r.ident(), err)
	}
	return p, nil
}

// ident names the package in errors, however incomplete it is.
func (r RPM) ident() string {
	return strconv.Quote(r.Name + "-" + r.Version + "-" + r.Release + "." + r.Arch)
}

func (r RPM) validate() error {
	for _, f := range []struct {
		name, value string
		re          *regexp.Regexp
	}{
		{"Name", r.Name, rpmName},
		{"Version", r.Version, rpmVersion},
		{"Release", r.Release, rpmVersion},
		{"Arch", r.Arch, rpmArch},
	} {
		if f.value == "" {
			return fmt.Errorf("%s: empty", f.name)
		}
		if !f.re.MatchString(f.value) {
			return fmt.Errorf("%s %q: does not match %s", f.name, f.value, f.re)
		}
	}
	for _, f := range []struct{ name, value string }{
		{"Summary", r.Summary}, {"License", r.License}, {"URL", r.URL}, {"Group", r.Group},
	} {
		if strings.ContainsAny(f.value, "\r\n") {
			return fmt.Errorf("%s %q: more than one line", f.name, f.value)
		}
	}
	if r.PayloadSize < 0 {
		return fmt.Errorf("PayloadSize %d: negative", r.PayloadSize)
	}
	// The header stores the build time as a signed 32-bit count of seconds.
	if t := r.BuildTime; !t.IsZero() && (t.Unix() < 0 || t.Unix() > math.MaxInt32) {
		return fmt.Errorf("BuildTime %s: outside 1970 to 2038", t.Format(time.RFC3339))
	}
	return nil
}

func (r RPM) build() ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	files, err := payloadFiles(r.Name, r.Version, r.Files, r.PayloadSize)
	if err != nil {
		return nil, err
	}
	rels := make(map[string]rpmpack.Relations, 4)
	for _, f := range []struct {
		name string
		list []string
	}{
		{"Requires", r.Requires}, {"Provides", r.Provides}, {"Conflicts", r.Conflicts}, {"Obsoletes", r.Obsoletes},
	} {
		for _, s := range f.list {
			rel, err := parseRelation(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
			rels[f.name] = append(rels[f.name], rel)
		}
	}

	buildTime := r.BuildTime
	if buildTime.IsZero() {
		buildTime = epoch
	}
	m := rpmpack.RPMMetaData{
		Name:        r.Name,
		Version:     r.Version,
		Release:     r.Release,
		Arch:        r.Arch,
		OS:          "linux",
		Epoch:       rpmpack.NoEpoch,
		Summary:     cmp.Or(r.Summary, "synthetic test package "+r.Name),
		Description: cmp.Or(r.Description, "synthetic test package "+r.Name),
		Licence:     cmp.Or(r.License, "MIT"),
		URL:         cmp.Or(r.URL, "https://example.org/"+r.Name),
		Group:       cmp.Or(r.Group, "Unspecified"),
		Packager:    maintainer,
		BuildHost:   "localhost",
		BuildTime:   buildTime,
		// rpmpack compresses with pgzip at level 9 by default; name the
		// level so a change of default does not change our bytes.
		Compressor: "gzip:9",
		Requires:   rels["Requires"],
		Conflicts:  rels["Conflicts"],
		Obsoletes:  rels["Obsoletes"],
	}
	evr := r.Version + "-" + r.Release
	if r.Epoch != 0 {
		m.Epoch = r.Epoch
		evr = strconv.FormatUint(uint64(r.Epoch), 10) + ":" + evr
	}
	p, err := rpmpack.NewRPM(m)
	if err != nil {
		return nil, err
	}
	// NewRPM adds "Name = Version-Release" to Provides, without the epoch
	// that rpmbuild puts there; provide our own instead.
	self := &rpmpack.Relation{Name: r.Name, Version: evr, Sense: rpmpack.SenseEqual}
	p.Provides = rels["Provides"]
	if !containsRelation(p.Provides, self) {
		p.Provides = append(p.Provides, self)
	}

	mtime := uint32(buildTime.Unix())
	for _, f := range files {
		p.AddFile(rpmpack.RPMFile{
			Name:  f.name,
			Body:  f.body,
			Mode:  0o644,
			Owner: "root",
			Group: "root",
			MTime: mtime,
		})
	}
	size := 4096
	for _, f := range files {
		size += len(f.body)
	}
	var b bytes.Buffer
	b.Grow(size + size/64)
	if err := p.Write(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// parseRelation parses "name" or "name OP version", OP one of < <= = == >= >.
// Rich dependencies in parentheses pass through whole, as rpm reads them.
func parseRelation(s string) (*rpmpack.Relation, error) {
	if strings.HasPrefix(s, "(") && strings.HasSuffix(s, ")") {
		return &rpmpack.Relation{Name: s, Sense: rpmpack.SenseAny}, nil
	}
	f := strings.Fields(s)
	switch len(f) {
	case 1:
		return &rpmpack.Relation{Name: f[0], Sense: rpmpack.SenseAny}, nil
	case 3:
		rel := &rpmpack.Relation{Name: f[0], Version: f[2]}
		switch f[1] {
		case "<":
			rel.Sense = rpmpack.SenseLess
		case "<=":
			rel.Sense = rpmpack.SenseLess | rpmpack.SenseEqual
		case "=", "==":
			rel.Sense = rpmpack.SenseEqual
		case ">=":
			rel.Sense = rpmpack.SenseGreater | rpmpack.SenseEqual
		case ">":
			rel.Sense = rpmpack.SenseGreater
		default:
			return nil, fmt.Errorf("relation %q: unknown operator %q", s, f[1])
		}
		return rel, nil
	}
	return nil, fmt.Errorf("relation %q: not \"name\" or \"name OP version\"", s)
}

func containsRelation(rels rpmpack.Relations, r *rpmpack.Relation) bool {
	for _, x := range rels {
		if x.Equal(r) {
			return true
		}
	}
	return false
}
