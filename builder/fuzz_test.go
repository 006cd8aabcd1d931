package builder

import (
	"bytes"
	"strings"
	"testing"
)

// Fuzz targets for every parser of bytes that come from a change: the
// Debian changelog, the spec's Release line, the output of
// dpkg-checkbuilddeps, and the refs and URLs a request names.

func FuzzDebParseChangelog(f *testing.F) {
	f.Add([]byte("hello (1:1.2-3) unstable; urgency=medium\n\n  * Initial.\n\n -- A B <a@b.org>  Mon, 23 Nov 2026 12:00:00 +0000\n"))
	f.Add([]byte("x (1) UNRELEASED; urgency=low\n -- <>  x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := debParseChangelog(data)
		if err != nil {
			return
		}
		// Source and version go into file names; the distributions (one
		// or more, separated by spaces) into a new changelog entry.
		for _, s := range []string{e.Source, e.Version} {
			if s == "" || strings.ContainsAny(s, "/\x00\n ") || strings.Contains(s, "..") {
				t.Fatalf("unsafe field %q from %q", s, data)
			}
		}
		if e.Distribution == "" || strings.ContainsAny(e.Distribution, "\x00\n;") {
			t.Fatalf("unsafe distribution %q from %q", e.Distribution, data)
		}
	})
}

func FuzzRPMRewriteRelease(f *testing.F) {
	f.Add([]byte("Name: x\nVersion: 1\nRelease: 3%{?dist}\n%description\nx\n"))
	f.Add([]byte("Release:\t1\r\n"))
	f.Fuzz(func(t *testing.T, spec []byte) {
		out, err := rpmRewriteRelease(spec, 12345, 2)
		if err != nil {
			return
		}
		// Only the Release value changes: what comes before and after it
		// is kept byte for byte.
		if len(out) <= len(spec) || !bytes.Contains(out, []byte("~c12345.p2")) {
			t.Fatalf("rewrite of %q gave %q", spec, out)
		}
	})
}

func FuzzDebParseCheckBuildDeps(f *testing.F) {
	f.Add("dpkg-checkbuilddeps: error: Unmet build dependencies: a (>= 1) b | c\n")
	f.Add("dpkg-checkbuilddeps: error: Build conflicts: x\n")
	f.Fuzz(func(t *testing.T, out string) {
		unmet, conflicts, err := debParseCheckBuildDeps(out)
		if err != nil {
			return
		}
		for _, d := range append(unmet, conflicts...) {
			if strings.TrimSpace(d) == "" {
				t.Fatalf("empty dependency from %q", out)
			}
		}
	})
}

func FuzzSourceRef(f *testing.F) {
	f.Add("refs/changes/45/12345/2", "samples/hello")
	f.Add("main", "x")
	f.Add("../../etc", "../x")
	f.Fuzz(func(t *testing.T, ref, project string) {
		if r, err := parseSourceRef(ref); err == nil && r.name != "" {
			if strings.Contains(r.name, "..") || strings.ContainsAny(r.name, " \x00\\:?*[~^") {
				t.Fatalf("parseSourceRef accepted %q", ref)
			}
		}
		if validSourceProject(project) == nil && (strings.HasPrefix(project, "/") || strings.Contains(project, "..")) {
			t.Fatalf("validSourceProject accepted %q", project)
		}
	})
}
