package mirror

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStepOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		format, rel string
		want        step
	}{
		{"deb", "pool/main/h/hello/hello_1.0_amd64.deb", stepContent},
		{"deb", "signing-key.pub.asc", stepContent},
		{"deb", "dists/stable/InRelease", stepPointer},
		{"deb", "dists/stable/Release", stepPointer},
		{"deb", "dists/stable/Release.gpg", stepPointer},
		{"deb", "dists/stable/main/binary-amd64/Packages.xz", stepIndex},
		{"deb", "dists/stable/main/binary-amd64/Release", stepIndex},
		{"deb", "dists/stable/main/binary-amd64/by-hash/SHA256/0a1b", stepContent},
		{"deb", "dists/stable/main/by-hash/MD5Sum/0a1b", stepContent},
		{"deb", "dists/Release", stepIndex},
		{"rpm", "Packages/h/hello-1.0-1.x86_64.rpm", stepContent},
		{"rpm", "repodata/repomd.xml", stepPointer},
		{"rpm", "repodata/repomd.xml.asc", stepPointer},
		{"rpm", "repodata/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef-primary.xml.gz", stepContent},
		{"rpm", "repodata/primary.xml.gz", stepIndex},
	} {
		if got := stepOf(tc.format, tc.rel); got != tc.want {
			t.Errorf("stepOf(%s, %s) = %d, want %d", tc.format, tc.rel, got, tc.want)
		}
	}
}

func TestParseStats(t *testing.T) {
	t.Parallel()
	out := "\nNumber of files: 12 (reg: 10, dir: 2)\nNumber of regular files transferred: 3\nTotal file size: 100 bytes\n" +
		"Total bytes sent: 1234\nTotal bytes received: 56\n\nsent 1234 bytes  received 56 bytes\n"
	got, err := ParseStats([]byte(out))
	if err != nil || got != (Transfer{Files: 3, BytesSent: 1234, BytesReceived: 56}) {
		t.Fatalf("ParseStats = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "Total bytes sent: 1,234\nTotal bytes received: 1\nNumber of regular files transferred: 1\n",
		"Total bytes sent: -1\nTotal bytes received: 1\nNumber of regular files transferred: 1\n"} {
		if _, err := ParseStats([]byte(bad)); err == nil {
			t.Errorf("ParseStats(%q) accepted", bad)
		}
	}
}

func TestTraceRoundTrip(t *testing.T) {
	t.Parallel()
	tr := Trace{Date: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Started: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC),
		Host: "h\nFormat: rpm", User: "u", Repo: "hello", Format: "deb", Snapshot: "0001"}
	got, err := ParseTrace(tr.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	tr.Host = "h?Format: rpm"
	if !got.Date.Equal(tr.Date) || !got.Started.Equal(tr.Started) {
		t.Fatalf("round trip: %+v, want %+v", got, tr)
	}
	got.Date, got.Started = tr.Date, tr.Started
	if got != tr {
		t.Fatalf("round trip: %+v, want %+v", got, tr)
	}
	for _, bad := range []string{"", "Date: x\n", "Snapshot: ../x\nDate: Fri, 02 Jan 2026 03:04:05 +0000\nRepository: r\nFormat: deb\n"} {
		if _, err := ParseTrace([]byte(bad)); err == nil {
			t.Errorf("ParseTrace(%q) accepted", bad)
		}
	}
}

func TestCheckDest(t *testing.T) {
	t.Parallel()
	for d, ok := range map[string]bool{
		"rsync://127.0.0.1:873/m/": true, "rsync://h/m": true, "host::m/path": true, "user@host:/srv/m": true, "/srv/mirror": true,
		"": false, "-e sh": false, "rsync://h": false, "relative/path": false, "/srv/../etc": false, "host:/a b": false, "rsync://h/m/*": false,
	} {
		if err := checkDest(d); (err == nil) != ok {
			t.Errorf("checkDest(%q) = %v", d, err)
		}
	}
}

func FuzzParseStats(f *testing.F) {
	f.Add([]byte("Number of regular files transferred: 3\nTotal bytes sent: 1234\nTotal bytes received: 56\n"))
	f.Add([]byte("Total bytes sent: 99999999999999999999\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := ParseStats(data)
		if err == nil && (tr.Files < 0 || tr.BytesSent < 0 || tr.BytesReceived < 0) {
			t.Fatalf("negative counts accepted: %+v", tr)
		}
	})
}

func FuzzParseTrace(f *testing.F) {
	f.Add(Trace{Date: time.Unix(0, 0), Repo: "r", Format: "rpm", Snapshot: "1"}.Marshal())
	f.Add([]byte("Date: Fri, 02 Jan 2026 03:04:05 +0000\nRepository: r\nFormat: deb\nSnapshot: ..\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := ParseTrace(data)
		if err != nil {
			return
		}
		if CheckName("snapshot", tr.Snapshot) != nil || CheckName("repository", tr.Repo) != nil {
			t.Fatalf("unsafe names accepted: %+v", tr)
		}
		again, err := ParseTrace(tr.Marshal())
		if err != nil || again.Snapshot != tr.Snapshot || again.Repo != tr.Repo {
			t.Fatalf("round trip: %+v %v", again, err)
		}
	})
}

func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"repo":"hello","format":"deb","targets":{"t":{"kind":"local","served":"0001"}}}`))
	f.Add([]byte(`{"repo":"hello","format":"rpm","targets":{"../x":{}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseState(data)
		if err != nil {
			return
		}
		for name, ts := range s.Targets {
			if CheckName("target", name) != nil || ts == nil || (ts.Served != "" && CheckName("snapshot", ts.Served) != nil) {
				t.Fatalf("unsafe state accepted: %q %+v", name, ts)
			}
		}
	})
}

func TestParseItems(t *testing.T) {
	t.Parallel()
	diffs, deletes, err := ParseItems([]string{
		">f+++++++++ pool/main/h/hello/hello_1.0_amd64.deb",
		">fc.t...... dists/stable/InRelease",
		".d..t...... dists/",
		"cd+++++++++ pool/main/n/",
		".f...p..... signing-key.pub.asc",
		"*deleting   dists/stable/main/binary-amd64/by-hash/SHA256/0a1b",
		"*deleting   pool/main/o/old/",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(diffs, []string{"pool/main/h/hello/hello_1.0_amd64.deb", "dists/stable/InRelease"}) ||
		!slices.Equal(deletes, []string{"dists/stable/main/binary-amd64/by-hash/SHA256/0a1b", "pool/main/o/old/"}) {
		t.Fatalf("ParseItems: %q %q", diffs, deletes)
	}
	for _, bad := range []string{"*deleting   ../etc/passwd", "*deleting   /etc", ">f+++++++++ a/../b", "short", ">f+++++++++ a\\#012b", "?f+++++++++ x"} {
		if _, _, err := ParseItems([]string{bad}); err == nil {
			t.Errorf("ParseItems(%q) accepted", bad)
		}
	}
}

func FuzzParseItems(f *testing.F) {
	f.Add(">f+++++++++ pool/a.deb\n*deleting   pool/b.deb\n.d..t...... dists/")
	f.Add("*deleting   ../x")
	f.Fuzz(func(t *testing.T, data string) {
		diffs, deletes, err := ParseItems(strings.Split(data, "\n"))
		if err != nil {
			return
		}
		for _, n := range append(diffs, deletes...) {
			if !cleanItemName(n) || strings.Contains(n, "..") && slices.Contains(strings.Split(n, "/"), "..") {
				t.Fatalf("unclean name %q accepted", n)
			}
		}
	})
}
