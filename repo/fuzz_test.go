package repo

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// Seeds beyond these are in testdata/fuzz/<target>.

func FuzzParseDeb(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzParseDeb (gz, xz and zst members).
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseDeb(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		// What parses must be safe to use as a path.
		if err := m.validate(); err != nil {
			t.Fatalf("parseDeb returned metadata that does not validate: %v", err)
		}
		if !safeRelPath(m.poolPath("main")) {
			t.Fatalf("unsafe pool path %q", m.poolPath("main"))
		}
	})
}

func FuzzParseRPM(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzParseRPM.
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseRPM(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for _, s := range []string{m.Name, m.Version, m.Release, m.Arch} {
			if !safeComponent(s) {
				t.Fatalf("parseRPM accepted unsafe %q", s)
			}
		}
	})
}

func FuzzParseRelease(f *testing.F) {
	f.Add([]byte("Origin: o\nDate: Mon, 23 Nov 2026 10:00:00 +0000\nAcquire-By-Hash: yes\nSHA256:\n " +
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0 main/binary-amd64/Packages\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rel, err := parseRelease(data)
		if err != nil {
			return
		}
		for _, fl := range rel.files {
			if !safeRelPath(fl.name) || fl.size < 0 {
				t.Fatalf("parseRelease accepted %+v", fl)
			}
		}
	})
}

// FuzzControlStanza checks that a control file that validates comes out of
// writeStanza with the same fields and values: nothing a package says can
// add, drop or change a field of the index.
func FuzzControlStanza(f *testing.F) {
	f.Add([]byte("Package: hello\nVersion: 1:2.0-1\nArchitecture: amd64\nDescription: short\n long\n .\n more\n"))
	f.Add([]byte("Package: a+b\nVersion: 1\nArchitecture: all\nDepends: x (>= 1), y | z\nX-Thing: \n  indented\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fields, err := parseControl(data)
		if err != nil {
			return
		}
		m := &debMeta{Fields: fields}
		for _, fl := range fields {
			switch fl[0] {
			case "Package":
				m.Package, m.Source = fl[1], fl[1]
			case "Version":
				m.Version = fl[1]
			case "Architecture":
				m.Arch = fl[1]
			}
		}
		if m.validate() != nil {
			return
		}
		var b bytes.Buffer
		writeStanza(&b, &entry{Pool: "pool/x.deb", Size: 1, SHA256: "00", Deb: m})
		got, err := parseControl(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
		if err != nil {
			t.Fatalf("stanza does not parse: %v\n%s", err, b.String())
		}
		want := append(slices.Clone(fields), [2]string{"Filename", "pool/x.deb"}, [2]string{"Size", "1"}, [2]string{"SHA256", "00"})
		sortFields := func(fs [][2]string) {
			slices.SortFunc(fs, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
		}
		sortFields(got)
		sortFields(want)
		if !slices.Equal(got, want) {
			t.Fatalf("fields changed:\n got %q\nwant %q", got, want)
		}
	})
}
