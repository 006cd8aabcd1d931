package testreport

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/pkgtest"
)

// packet is what the tests encode; the encoder below follows the README,
// independently of the decoder.
type packet struct {
	status    Status
	runnable  bool
	eof       bool
	id        string
	ts        time.Time
	tags      []string
	mime      string
	file      string
	content   []byte
	hasFile   bool
	routeCode string
}

func number(v int) []byte {
	switch {
	case v < 1<<6:
		return []byte{byte(v)}
	case v < 1<<14:
		return []byte{0x40 | byte(v>>8), byte(v)}
	case v < 1<<22:
		return []byte{0x80 | byte(v>>16), byte(v >> 8), byte(v)}
	default:
		return []byte{0xc0 | byte(v>>24), byte(v >> 16), byte(v >> 8), byte(v)}
	}
}

func str(s string) []byte { return append(number(len(s)), s...) }

func (p packet) encode() []byte {
	flags := uint16(0x2000) | uint16(p.status)
	var body []byte
	if !p.ts.IsZero() {
		flags |= 0x0200
		body = binary.BigEndian.AppendUint32(body, uint32(p.ts.Unix()))
		body = append(body, number(p.ts.Nanosecond())...)
	}
	if p.id != "" {
		flags |= 0x0800
		body = append(body, str(p.id)...)
	}
	if p.tags != nil {
		flags |= 0x0080
		body = append(body, number(len(p.tags))...)
		for _, t := range p.tags {
			body = append(body, str(t)...)
		}
	}
	if p.mime != "" {
		flags |= 0x0020
		body = append(body, str(p.mime)...)
	}
	if p.hasFile {
		flags |= 0x0040
		body = append(body, str(p.file)...)
		body = append(body, number(len(p.content))...)
		body = append(body, p.content...)
	}
	if p.routeCode != "" {
		flags |= 0x0400
		body = append(body, str(p.routeCode)...)
	}
	if p.runnable {
		flags |= 0x0100
	}
	if p.eof {
		flags |= 0x0010
	}
	// The length counts itself: find the size that fits.
	total := 1 + 2 + len(body) + 4
	lenBytes := number(total + 1)
	for len(number(total+len(lenBytes))) != len(lenBytes) {
		lenBytes = number(total + len(lenBytes) + 1)
	}
	lenBytes = number(total + len(lenBytes))
	out := []byte{0xb3, byte(flags >> 8), byte(flags)}
	out = append(out, lenBytes...)
	out = append(out, body...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(out))
}

func stream(ps ...packet) []byte {
	var b []byte
	for _, p := range ps {
		b = append(b, p.encode()...)
	}
	return b
}

func TestSubunitREADMEExample(t *testing.T) {
	t.Parallel()
	// "Trivial test foo enumeration packet" from the README.
	raw, _ := hex.DecodeString("b329010c03666f6f08555f1b")
	if got := (packet{status: StatusExists, runnable: true, id: "foo"}).encode(); !bytes.Equal(got, raw) {
		t.Fatalf("test encoder gives %x, README %x", got, raw)
	}
	d := NewSubunitDecoder(bytes.NewReader(raw), nil)
	p, err := d.Next()
	if err != nil {
		t.Fatal(err)
	}
	if p.TestID != "foo" || p.Status != StatusExists || !p.Runnable || p.HasFile || !p.Timestamp.IsZero() {
		t.Fatalf("decoded %+v", p)
	}
	rep, err := ParseSubunit(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Tests) != 1 || rep.Tests[0].Name != "foo" || rep.Tests[0].Outcome != Skip {
		t.Fatalf("report %+v", rep)
	}
}

func TestSubunitNumbers(t *testing.T) {
	t.Parallel()
	for _, v := range []int{0, 63, 64, 16383, 16384, 4194303, 4194304, 1<<30 - 1} {
		got, n := readNumber(number(v))
		if int(got) != v || n != len(number(v)) {
			t.Errorf("number %d: read %d in %d bytes", v, got, n)
		}
	}
	if _, n := readNumber([]byte{0x80, 1}); n != 0 {
		t.Error("a 3-byte number cut to 2 bytes was read")
	}
}

func TestSubunitStream(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 500, time.UTC)
	big := bytes.Repeat([]byte("x"), 70000) // a 3-byte length
	raw := stream(
		packet{status: StatusInProgress, id: "a", ts: t0, runnable: true},
		packet{status: StatusSuccess, id: "a", ts: t0.Add(1500 * time.Millisecond), runnable: true, tags: []string{"worker-0"}},
		packet{status: StatusInProgress, id: "b", ts: t0},
		packet{id: "b", mime: "text/x-traceback", file: "traceback", content: []byte("Traceback:\n  line 3\nAssertionError: 1 != 2\n"), hasFile: true, eof: true},
		packet{status: StatusFail, id: "b", ts: t0.Add(time.Second)},
		packet{status: StatusSkip, id: "c", file: "reason", content: []byte("no network\n"), hasFile: true, eof: true},
		packet{status: StatusXFail, id: "d"},
		packet{status: StatusUXSuccess, id: "e", routeCode: "0/1"},
		packet{status: StatusInProgress, id: "f", ts: t0},
		packet{status: StatusExists, id: "g"},
		packet{file: "stdout", content: []byte("between tests\n"), hasFile: true},
		packet{status: StatusSuccess, id: "h", file: "log", content: big, hasFile: true},
	)
	// Text may precede a packet when it ends with a newline.
	raw = append([]byte("make: entering\n"), raw...)
	rep, err := ParseSubunit(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name    string
		outcome Outcome
		message string
		dur     time.Duration
	}{
		{"a", Pass, "", 1500 * time.Millisecond},
		{"b", Fail, "AssertionError: 1 != 2", time.Second},
		{"c", Skip, "no network", 0},
		{"d", Pass, "expected failure", 0},
		{"e", Fail, "unexpected success", 0},
		{"f", Error, "no final status: the stream ended while the test was in progress", 0},
		{"g", Skip, "enumerated, not run", 0},
		{"h", Pass, "", 0},
	}
	if len(rep.Tests) != len(want) {
		t.Fatalf("%d tests, want %d: %+v", len(rep.Tests), len(want), rep.Tests)
	}
	for i, w := range want {
		got := rep.Tests[i]
		if got.Name != w.name || got.Outcome != w.outcome || got.Message != w.message || got.Duration != w.dur {
			t.Errorf("test %d: got %q %s %q %v, want %q %s %q %v", i, got.Name, got.Outcome, got.Message, got.Duration, w.name, w.outcome, w.message, w.dur)
		}
	}
	if !strings.Contains(rep.Tests[1].Details, "traceback:\nTraceback:") {
		t.Errorf("details of b: %q", rep.Tests[1].Details)
	}
	if h := rep.Tests[7].Details; len(h) > MaxDetails+100 || !strings.HasPrefix(h, "log:\nxxx") {
		t.Errorf("details of h: %d bytes", len(h))
	}
	if rep.Output != "make: entering\nbetween tests\n" {
		t.Errorf("output %q", rep.Output)
	}
	if c := rep.Counts(); c != (Counts{Pass: 3, Fail: 2, Skip: 2, Error: 1}) || rep.Passed() {
		t.Errorf("counts %+v, passed %v", c, rep.Passed())
	}
}

func TestSubunitErrors(t *testing.T) {
	t.Parallel()
	good := packet{status: StatusSuccess, id: "ok"}.encode()
	mutate := func(f func(b []byte) []byte) []byte {
		b := append([]byte(nil), good...)
		return f(b)
	}
	recrc := func(b []byte) []byte {
		n := len(b) - 4
		return binary.BigEndian.AppendUint32(b[:n], crc32.ChecksumIEEE(b[:n]))
	}
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"bad crc", mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), "packet at byte 0: crc32"},
		{"version 1", mutate(func(b []byte) []byte { b[1] = 0x18; return recrc(b) }), "version 0x1"},
		{"reserved bit", mutate(func(b []byte) []byte { b[2] |= 0x08; return recrc(b) }), "reserved flag"},
		{"length too small", mutate(func(b []byte) []byte { b[3] = 5; return b }), "length 5 out of range"},
		{"length too large", []byte{0xb3, 0x20, 0x00, 0xc0, 0x40, 0, 0}, "length 4194304 out of range"},
		{"truncated", good[:len(good)-2], "truncated"},
		{"truncated header", good[:2], "truncated header"},
		{"second packet bad", append(append([]byte{}, good...), mutate(func(b []byte) []byte { b[5] ^= 0xff; return b })...), "packet at byte " + strconv.Itoa(len(good))},
		{"bad utf-8 id", packet{status: StatusSuccess, id: "\xff"}.encode(), "test id is not UTF-8"},
		{"nul in id", packet{status: StatusSuccess, id: "a\x00b"}.encode(), "NUL"},
		{"field past end", mutate(func(b []byte) []byte { b[4] = 60; return recrc(b) }), "need 60 bytes"},
		{"bytes after fields", mutate(func(b []byte) []byte {
			b = append(b[:len(b)-4], 'z', 0, 0, 0, 0)
			b[3]++
			return recrc(b)
		}), "1 bytes after the last field"},
		{"nanoseconds", packet{status: StatusSuccess, id: "x", ts: time.Unix(5, 0)}.encode(), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseSubunit(bytes.NewReader(c.in))
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

// TestSubunitRealTools parses streams written by subunit's own tools
// (Debian's subunit package): subunit-1to2 from a version 1 stream and
// tap2subunit from TAP; the version 2 stream goes back through
// subunit2junitxml to check the JUnit parser against the same tests.
func TestSubunitRealTools(t *testing.T) {
	t.Parallel()
	oneTo2 := pkgtest.NeedTool(t, "subunit-1to2")
	v1 := "time: 2026-11-23 10:00:00.000000Z\ntest: pkg.a\ntime: 2026-11-23 10:00:02.250000Z\nsuccess: pkg.a\n" +
		"test: pkg.b\nfailure: pkg.b [\nTraceback (most recent call last):\nValueError: boom\n]\n" +
		"test: pkg.c\nskip: pkg.c [\nneeds root\n]\n" +
		"test: pkg.d\nxfail: pkg.d\n" +
		"test: pkg.e\nerror: pkg.e [\nRuntimeError: setup\n]\n"
	v2 := run(t, oneTo2, []byte(v1))
	rep, err := ParseSubunit(bytes.NewReader(v2))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Outcome{"pkg.a": Pass, "pkg.b": Fail, "pkg.c": Skip, "pkg.d": Pass, "pkg.e": Fail}
	checkOutcomes(t, "subunit-1to2", rep, want)
	byName := map[string]Result{}
	for _, r := range rep.Tests {
		byName[r.Name] = r
	}
	if r := byName["pkg.a"]; r.Duration != 2250*time.Millisecond {
		t.Errorf("pkg.a lasted %v, want 2.25s", r.Duration)
	}
	if r := byName["pkg.b"]; r.Message != "ValueError: boom" {
		t.Errorf("pkg.b message %q", r.Message)
	}
	if r := byName["pkg.c"]; r.Message != "needs root" {
		t.Errorf("pkg.c message %q", r.Message)
	}

	tap := pkgtest.NeedTool(t, "tap2subunit")
	tapIn := "TAP version 13\n1..3\nok 1 - first\nnot ok 2 - second\nok 3 - third # SKIP no net\n"
	rep, err = ParseSubunit(bytes.NewReader(run(t, tap, []byte(tapIn))))
	if err != nil {
		t.Fatal(err)
	}
	checkOutcomes(t, "tap2subunit", rep, map[string]Outcome{"test 1 - first": Pass, "test 2 - second": Fail, "test 3 - third": Skip})

	junit := pkgtest.NeedTool(t, "subunit2junitxml")
	xml := run(t, junit, v2)
	jrep, err := ParseJUnit(bytes.NewReader(xml))
	if err != nil {
		t.Fatalf("%v\n%s", err, xml)
	}
	// JUnit has no expected failure: subunit2junitxml writes it as a pass.
	// Version 2 has no error status: subunit-1to2 made pkg.e a failure.
	checkOutcomes(t, "subunit2junitxml", jrep, want)
}

func run(t *testing.T, tool string, stdin []byte) []byte {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), tool)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && len(out) == 0 {
		t.Fatalf("%s: %v: %s", tool, err, stderr.Bytes())
	}
	return out
}

func checkOutcomes(t *testing.T, what string, rep *Report, want map[string]Outcome) {
	t.Helper()
	got := map[string]Outcome{}
	for _, r := range rep.Tests {
		got[r.Name] = r.Outcome
	}
	if len(got) != len(want) {
		t.Errorf("%s: tests %v, want %v", what, got, want)
	}
	for name, o := range want {
		if got[name] != o {
			t.Errorf("%s: %s is %q, want %q (all: %v)", what, name, got[name], o, got)
		}
	}
}

func FuzzSubunit(f *testing.F) {
	t0 := time.Unix(1800000000, 12345)
	f.Add([]byte{})
	f.Add(packet{status: StatusExists, runnable: true, id: "foo"}.encode())
	f.Add(stream(
		packet{status: StatusInProgress, id: "a", ts: t0, tags: []string{"x", "y"}},
		packet{status: StatusFail, id: "a", ts: t0, file: "traceback", mime: "text/plain", content: []byte("E\n"), hasFile: true, eof: true, routeCode: "0"},
	))
	f.Add(append([]byte("text\n"), packet{status: StatusSkip, id: "s"}.encode()...))
	f.Fuzz(func(t *testing.T, in []byte) {
		rep, err := ParseSubunit(bytes.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "testreport: subunit: ") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		checkReport(t, rep)
	})
}

func TestSubunitLimits(t *testing.T) {
	t.Parallel()
	// 300 tests with 64 KiB attachments each: past the 16 MiB a report
	// keeps, the later tests keep their outcome and lose their details.
	att := bytes.Repeat([]byte("y"), MaxDetails)
	var raw []byte
	for i := range 300 {
		raw = append(raw, packet{status: StatusFail, id: "t" + strconv.Itoa(i), file: "log", content: att, hasFile: true}.encode()...)
	}
	rep, err := ParseSubunit(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep)
	total := 0
	for _, r := range rep.Tests {
		total += len(r.Details)
		if r.Outcome != Fail {
			t.Fatalf("%s: %s", r.Name, r.Outcome)
		}
	}
	if len(rep.Tests) != 300 || total > maxTotalDetails+300*100 || rep.Tests[299].Details != "" {
		t.Fatalf("%d tests, %d bytes of details kept", len(rep.Tests), total)
	}
	_, err = ParseSubunit(bytes.NewReader(packet{status: StatusSuccess, id: strings.Repeat("x", MaxName+1)}.encode()))
	if err == nil || !strings.Contains(err.Error(), "test id of 4097 bytes") {
		t.Fatalf("long id: %v", err)
	}
}

// FuzzSubunitFields fuzzes the fields of packets whose framing is right:
// random bytes almost never carry a valid CRC32, so FuzzSubunit alone
// would rarely get past it.
func FuzzSubunitFields(f *testing.F) {
	f.Add(uint16(0x2901), []byte("\x03foo"), false)
	f.Add(uint16(0x2b70), []byte("\x00\x00\x00\x05\x00\x01b\x0atext/plain\x09traceback\x05boom\n"), true)
	f.Add(uint16(0x20b3), []byte("\x02\x01a\x01b"), false)
	f.Fuzz(func(t *testing.T, flags uint16, body []byte, twice bool) {
		if len(body) > 1<<16 {
			return
		}
		total := 1 + 2 + len(body) + 4
		lenBytes := number(total + 1)
		if len(number(total+len(lenBytes))) != len(lenBytes) {
			lenBytes = number(total + len(lenBytes) + 1)
		}
		lenBytes = number(total + len(lenBytes))
		pkt := append([]byte{0xb3, byte(flags >> 8), byte(flags)}, lenBytes...)
		pkt = append(pkt, body...)
		pkt = binary.BigEndian.AppendUint32(pkt, crc32.ChecksumIEEE(pkt))
		in := pkt
		if twice {
			in = append(append(append([]byte{}, pkt...), "text\n"...), pkt...)
		}
		rep, err := ParseSubunit(bytes.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "testreport: subunit: packet at byte ") {
				t.Fatalf("error without an offset: %v", err)
			}
			return
		}
		checkReport(t, rep)
	})
}
