package mirror

import (
	"regexp"
	"strings"
)

// step is where a file goes in a two-stage sync.
type step int

const (
	// stepContent: content-addressed or immutable files (packages, APT
	// by-hash indices, checksum-named repodata), copied first, nothing
	// deleted.
	stepContent step = iota + 1
	// stepIndex: APT indices under their plain names (Packages.xz...):
	// mutable, read only by clients that do not fetch by hash.
	stepIndex
	// stepPointer: what a client starts from (InRelease, Release,
	// Release.gpg; repomd.xml and repomd.xml.asc), copied last.
	stepPointer
)

// checksumNamed matches createrepo's unique metadata file names.
var checksumNamed = regexp.MustCompile(`^[0-9a-f]{32,128}-`)

// stepOf returns the step of the file at rel (slash-separated) in a
// repository of format.
func stepOf(format, rel string) step {
	switch format {
	case "deb":
		rest, ok := strings.CutPrefix(rel, "dists/")
		if !ok {
			return stepContent
		}
		dist, file, ok := strings.Cut(rest, "/")
		if !ok || dist == "" {
			return stepIndex
		}
		switch file {
		case "InRelease", "Release", "Release.gpg":
			return stepPointer
		}
		if strings.Contains("/"+file, "/by-hash/") {
			return stepContent
		}
		return stepIndex
	case "rpm":
		name, ok := strings.CutPrefix(rel, "repodata/")
		if !ok || strings.Contains(name, "/") {
			return stepContent
		}
		switch {
		case name == "repomd.xml" || name == "repomd.xml.asc":
			return stepPointer
		case checksumNamed.MatchString(name):
			return stepContent
		}
		return stepIndex
	}
	return stepContent
}

// isEntry reports whether rel is a file a client starts from and the
// target serves exactly one version of: InRelease of each distribution,
// repomd.xml. Two trees serve the same snapshot when these are equal.
func isEntry(format, rel string) bool {
	switch format {
	case "deb":
		rest, ok := strings.CutPrefix(rel, "dists/")
		dist, file, _ := strings.Cut(rest, "/")
		return ok && dist != "" && file == "InRelease"
	case "rpm":
		return rel == "repodata/repomd.xml"
	}
	return false
}

// isPackage reports whether rel is a package file of a repository of
// format.
func isPackage(format, rel string) bool {
	switch format {
	case "deb":
		return strings.HasPrefix(rel, "pool/") && (strings.HasSuffix(rel, ".deb") || strings.HasSuffix(rel, ".udeb"))
	case "rpm":
		return !strings.HasPrefix(rel, "repodata/") && strings.HasSuffix(rel, ".rpm")
	}
	return false
}
