package systest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func FuzzParseMeta(f *testing.F) {
	spec := BaseSpec{Name: "bookworm", Suite: "bookworm", Packages: []string{"curl"}}
	good, _ := json.Marshal(Base{Spec: spec, Key: spec.Key(), Created: time.Unix(1793620800, 0).UTC(), Size: 42, Seconds: 3})
	f.Add(good)
	f.Add([]byte(`{"spec":{"name":"../x","suite":"bookworm"},"key":"00","created":"2026-01-01T00:00:00Z","size":1}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseMeta(data)
		if err != nil {
			return
		}
		if b.Spec.Validate() != nil || b.Key != b.Spec.Key() || strings.ContainsAny(b.Spec.Name, "/\x00") {
			t.Fatalf("accepted %+v", b)
		}
	})
}

func FuzzParseProvides(f *testing.F) {
	f.Add([]byte("libc.so.6()(64bit)\nlibc.so.6(GLIBC_2.34)(64bit)\n\n"))
	f.Add([]byte("bad line\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := ParseProvides(data)
		if err != nil {
			return
		}
		for _, p := range ps {
			if !validProvide(p) {
				t.Fatalf("accepted %q", p)
			}
		}
	})
}

func FuzzParseEnvRecord(f *testing.F) {
	f.Add([]byte(`{"base":"/var/lib/sluice/bases/bookworm-0123456789abcdef","overlay":true,"created":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"base":"relative","overlay":false}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		base, _, err := ParseEnvRecord(data)
		if err == nil && (!strings.HasPrefix(base, "/") || strings.Contains(base, "/../")) {
			t.Fatalf("accepted base %q", base)
		}
	})
}

func FuzzParseFileList(f *testing.F) {
	f.Add([]byte("/.\n/usr\n/usr/bin/hello\n(contains no files)\npackage diverts others to: /x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, p := range parseFileList(data) {
			if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\n\x00") {
				t.Fatalf("accepted %q", p)
			}
		}
	})
}
