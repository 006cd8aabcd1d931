package gearman

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

// The packets of the protocol document's examples, byte for byte.
func TestPacketBytes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		p    Packet
		hex  string
	}{
		// PROTOCOL: "Client -> Server: CAN_DO, reverse".
		{"can_do", req(CanDo, []byte("reverse")), "00524551" + "00000001" + "00000007" + hex.EncodeToString([]byte("reverse"))},
		{"grab_job_uniq", req(GrabJobUniq), "00524551" + "0000001e" + "00000000"},
		{"submit_job", req(SubmitJob, []byte("reverse"), nil, []byte("test")),
			"00524551" + "00000007" + "0000000d" + hex.EncodeToString([]byte("reverse\x00\x00test"))},
		{"job_created", Packet{Type: JobCreated, Args: [][]byte{[]byte("H:lap:1")}},
			"00524553" + "00000008" + "00000007" + hex.EncodeToString([]byte("H:lap:1"))},
		{"work_complete", Packet{Type: WorkComplete, Args: [][]byte{[]byte("H:lap:1"), []byte("tset")}},
			"00524553" + "0000000d" + "0000000c" + hex.EncodeToString([]byte("H:lap:1\x00tset"))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.p.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(b); got != tc.hex {
				t.Fatalf("encoded %s\nwant    %s", got, tc.hex)
			}
			p, err := ReadPacket(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if p.Req != tc.p.Req || p.Type != tc.p.Type || len(p.Args) != len(tc.p.Args) {
				t.Fatalf("read back %+v, want %+v", p, tc.p)
			}
			for i := range p.Args {
				if !bytes.Equal(p.Args[i], tc.p.Args[i]) {
					t.Errorf("argument %d: %q, want %q", i, p.Args[i], tc.p.Args[i])
				}
			}
		})
	}
}

// The last argument is opaque: it may hold NUL bytes; the others may
// not.
func TestPacketNULs(t *testing.T) {
	t.Parallel()
	data := []byte("a\x00b\x00\x00c")
	b, err := Packet{Type: WorkData, Args: [][]byte{[]byte("H:x:1"), data}}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	p, err := ReadPacket(bytes.NewReader(b))
	if err != nil || !bytes.Equal(p.Args[1], data) {
		t.Fatalf("%q %v", p.Args, err)
	}
	if _, err := req(SubmitJob, []byte("f\x00g"), nil, nil).MarshalBinary(); !errors.Is(err, ErrPacket) {
		t.Errorf("NUL in a function name encoded: %v", err)
	}
	if _, err := req(SubmitJob, []byte("f")).MarshalBinary(); !errors.Is(err, ErrPacket) {
		t.Errorf("SUBMIT_JOB with one argument encoded: %v", err)
	}
}

// Bad bytes from a server: each is a clear error, and nothing big is
// allocated for a size the stream does not hold.
func TestReadPacketRefuses(t *testing.T) {
	t.Parallel()
	h := func(magic string, typ, size uint32) []byte {
		b := []byte(magic)
		return append(b, byte(typ>>24), byte(typ>>16), byte(typ>>8), byte(typ), byte(size>>24), byte(size>>16), byte(size>>8), byte(size))
	}
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"magic", h("\x00XYZ", 8, 0), "magic"},
		{"text", []byte("status\n\x00\x00\x00\x00\x00"), "magic"},
		{"unknown type", h("\x00RES", 99, 0), "unknown type 99"},
		{"type 0", h("\x00RES", 0, 0), "unknown type 0"},
		{"too big", h("\x00RES", uint32(WorkData), MaxSize+1), "more than"},
		{"4 GiB", h("\x00RES", uint32(WorkData), 0xffffffff), "more than"},
		{"short body", append(h("\x00RES", uint32(JobCreated), 10), "H:1"...), "unexpected EOF"},
		{"short header", []byte("\x00RES\x00\x00"), "unexpected EOF"},
		{"missing argument", append(h("\x00RES", uint32(WorkComplete), 3), "H:1"...), "1 arguments, want 2"},
		{"data on NOOP", append(h("\x00RES", uint32(Noop), 1), 'x'), "where none belong"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadPacket(bytes.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
		})
	}
	if _, err := ReadPacket(bytes.NewReader(nil)); err != io.EOF {
		t.Errorf("empty stream: %v, want io.EOF", err)
	}
}

func TestParseAdmin(t *testing.T) {
	t.Parallel()
	st, err := ParseStatus(strings.NewReader("sluice:build.deb\t3\t1\t2\nsluice:lint\t0\t0\t1\n.\n"))
	if err != nil || len(st) != 2 || st[0] != (FunctionStatus{Function: "sluice:build.deb", Queued: 3, Running: 1, Workers: 2}) {
		t.Fatalf("status: %+v %v", st, err)
	}
	ws, err := ParseWorkers(strings.NewReader("12 127.0.0.1 w1 : sluice:build.deb sluice:lint\n13 ::1 - :\n.\n"))
	if err != nil || len(ws) != 2 || ws[0].ClientID != "w1" || len(ws[0].Functions) != 2 || ws[1].Addr != "::1" || len(ws[1].Functions) != 0 {
		t.Fatalf("workers: %+v %v", ws, err)
	}
	for _, bad := range []string{"f\t1\t2\n.\n", "f\tx\t0\t0\n.\n", "f\t1\t0\t0\n", "ERR UNKNOWN_COMMAND Unknown+server+command\n", "1 a b c\n.\n"} {
		_, err1 := ParseStatus(strings.NewReader(bad))
		_, err2 := ParseWorkers(strings.NewReader(bad))
		if err1 == nil && err2 == nil {
			t.Errorf("%q parsed as both", bad)
		}
	}
}

func FuzzReadPacket(f *testing.F) {
	for _, p := range []Packet{
		{Type: JobAssignUniq, Args: [][]byte{[]byte("H:lap:1"), []byte("sluice:build.deb"), []byte("b/s/1"), []byte(`{"x":1}`)}},
		{Type: WorkStatus, Args: [][]byte{[]byte("H:lap:1"), []byte("1"), []byte("2")}},
		{Type: Error, Args: [][]byte{[]byte("ERR"), []byte("bad")}},
		{Type: Noop},
	} {
		b, err := p.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := ReadPacket(bytes.NewReader(in))
		if err != nil {
			return
		}
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("read %+v, which does not encode: %v", p, err)
		}
		if !bytes.Equal(b, in[:len(b)]) {
			t.Fatalf("re-encoded %x, read from %x", b, in)
		}
		if p.Type == WorkStatus && !p.Req {
			event(p) // must not panic on any numbers
		}
		if p.Type == StatusRes {
			parseStatusRes(p)
		}
	})
}

func FuzzParseAdmin(f *testing.F) {
	f.Add("sluice:build.deb\t3\t1\t2\n.\n")
	f.Add("12 127.0.0.1 w1 : sluice:build.deb sluice:lint\n.\n")
	f.Fuzz(func(t *testing.T, in string) {
		if st, err := ParseStatus(strings.NewReader(in)); err == nil {
			for _, s := range st {
				if s.Function == "" || s.Queued < 0 || s.Running < 0 || s.Workers < 0 {
					t.Fatalf("status line %+v from %q", s, in)
				}
			}
		}
		if ws, err := ParseWorkers(strings.NewReader(in)); err == nil {
			for _, w := range ws {
				if w.Addr == "" || w.ClientID == "" {
					t.Fatalf("workers line %+v from %q", w, in)
				}
			}
		}
	})
}
