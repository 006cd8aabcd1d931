package repo

import (
	"fmt"
	"strconv"
	"strings"

	"pault.ag/go/debian/version"
)

// Package is what a binary package says about itself, read and checked as
// a publish reads it, with the checksum of its bytes.
type Package struct {
	Format  string `json:"format"` // "deb" or "rpm"
	Name    string `json:"name"`
	Epoch   uint32 `json:"epoch"`
	Version string `json:"version"` // upstream version
	Release string `json:"release"` // Debian revision or RPM release
	Arch    string `json:"arch"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
}

// Inspect reads the binary package at path (.deb or .rpm, by its name) as a
// publish would, refusing what a publish refuses.
func Inspect(path string) (Package, error) {
	var f format
	switch {
	case strings.HasSuffix(path, ".deb"):
		f = aptFormat{}
	case strings.HasSuffix(path, ".rpm"):
		f = rpmFormat{}
	default:
		return Package{}, fmt.Errorf("inspect %s: not a .deb or .rpm", path)
	}
	e, _, err := readInput(f, nil, path, nil)
	if err != nil {
		return Package{}, fmt.Errorf("inspect: %w", err)
	}
	p := Package{Format: f.name(), Size: e.Size, SHA256: e.SHA256}
	switch {
	case e.Deb != nil:
		v, err := version.Parse(e.Deb.Version)
		if err != nil {
			return Package{}, fmt.Errorf("inspect %s: %w", path, err)
		}
		p.Name, p.Epoch, p.Version, p.Release, p.Arch = e.Deb.Package, uint32(v.Epoch), v.Version, v.Revision, e.Deb.Arch
	case e.RPM != nil:
		p.Name, p.Epoch, p.Version, p.Release, p.Arch = e.RPM.Name, e.RPM.Epoch, e.RPM.Version, e.RPM.Release, e.RPM.Arch
	}
	return p, nil
}

// EVR is the package's version as its format writes it: [epoch:]version[-release].
func (p Package) EVR() string {
	var b strings.Builder
	if p.Epoch > 0 {
		b.WriteString(strconv.FormatUint(uint64(p.Epoch), 10) + ":")
	}
	b.WriteString(p.Version)
	if p.Release != "" {
		b.WriteString("-" + p.Release)
	}
	return b.String()
}
