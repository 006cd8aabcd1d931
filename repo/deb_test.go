package repo

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/sluice-ci/sluice/internal/pkgtest"
)

// TestParseDebLeaksNothing parses many zstd packages: each decoder must be
// closed, or its goroutines stay for the life of the process.
func TestParseDebLeaksNothing(t *testing.T) {
	data, err := pkgtest.Deb{Name: "zst", Version: "1", Arch: "all", Compression: "zst"}.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	for range 100 {
		if _, err := parseDeb(bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	if after := runtime.NumGoroutine(); after > before+10 {
		t.Fatalf("%d goroutines before parsing 100 packages, %d after", before, after)
	}
}

func TestParseControl(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"simple", "Package: a\nVersion: 1\n", true},
		{"continuation", "Description: x\n more\n .\n  indented\n", true},
		{"crlf", "Package: a\r\nVersion: 1\r\n", true},
		{"two-paragraphs", "Package: a\n\nPackage: b\n", false},
		{"comment", "# c\nPackage: a\n", false},
		{"no-colon", "Package a\n", false},
		{"leading-continuation", " x\nPackage: a\n", false},
		{"not-utf8", "Package: \xff\n", false},
		{"empty", "\n\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseControl([]byte(tc.in))
			if (err == nil) != tc.ok {
				t.Fatalf("parseControl(%q) err = %v, want ok=%v", tc.in, err, tc.ok)
			}
		})
	}
}
