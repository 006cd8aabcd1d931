package testreport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Subunit version 2 constants, from the "Version 2" section of the subunit
// README.
const (
	subunitSignature = 0xb3
	subunitVersion   = 0x2
	// MaxPacket is the largest subunit packet, signature and CRC included.
	MaxPacket = 4<<20 - 1

	flagTestID    = 0x0800
	flagRouteCode = 0x0400
	flagTimestamp = 0x0200
	flagRunnable  = 0x0100
	flagTags      = 0x0080
	flagFile      = 0x0040
	flagMIME      = 0x0020
	flagEOF       = 0x0010
	flagReserved  = 0x0008
	statusMask    = 0x0007
)

// Status is the test status of a subunit packet.
type Status uint8

// The test statuses of subunit version 2.
const (
	StatusUndefined  Status = iota // no test status in the packet
	StatusExists                   // the test exists (enumeration)
	StatusInProgress               // the test started
	StatusSuccess
	StatusUXSuccess // unexpected success
	StatusSkip
	StatusFail
	StatusXFail // expected failure
)

var statusNames = [...]string{"undefined", "exists", "inprogress", "success", "uxsuccess", "skip", "fail", "xfail"}

// String returns the status as subunit's tools name it.
func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", s)
}

// Packet is one decoded subunit version 2 packet.
type Packet struct {
	// Offset is the byte offset of the packet's signature in the stream.
	Offset    int64
	Status    Status
	Runnable  bool
	EOF       bool // the last packet of the file named by FileName
	TestID    string
	Timestamp time.Time // zero when the packet has none
	Tags      []string
	MIME      string
	FileName  string
	File      []byte
	HasFile   bool
	RouteCode string
}

// SubunitDecoder reads the packets of a subunit version 2 stream. Bytes
// between packets (the protocol allows packets to be embedded in text,
// starting at the start of the stream, after a packet or after a newline)
// are handed to the text function given to NewSubunitDecoder.
type SubunitDecoder struct {
	r    *bufio.Reader
	off  int64
	buf  []byte
	text func([]byte)
}

// NewSubunitDecoder returns a decoder reading r. text, if not nil,
// receives the bytes found outside packets; the slice is only valid during
// the call.
func NewSubunitDecoder(r io.Reader, text func([]byte)) *SubunitDecoder {
	return &SubunitDecoder{r: bufio.NewReaderSize(r, 64<<10), text: text}
}

// Next returns the next packet, or io.EOF at the end of the stream. A
// malformed packet is an error naming its byte offset; the decoder cannot
// be used after an error.
func (d *SubunitDecoder) Next() (*Packet, error) {
	for {
		b, err := d.r.Peek(1)
		if err == io.EOF {
			return nil, io.EOF
		}
		if err != nil {
			return nil, fmt.Errorf("testreport: subunit: read at byte %d: %w", d.off, err)
		}
		if b[0] == subunitSignature {
			return d.packet()
		}
		if err := d.skipLine(); err != nil {
			return nil, err
		}
	}
}

// skipLine consumes text up to and including the next newline.
func (d *SubunitDecoder) skipLine() error {
	for {
		chunk, err := d.r.ReadSlice('\n')
		d.off += int64(len(chunk))
		if d.text != nil && len(chunk) > 0 {
			d.text(chunk)
		}
		switch {
		case err == nil, err == io.EOF:
			return nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return fmt.Errorf("testreport: subunit: read at byte %d: %w", d.off, err)
		}
	}
}

func (d *SubunitDecoder) packet() (*Packet, error) {
	start := d.off
	fail := func(format string, args ...any) error {
		return fmt.Errorf("testreport: subunit: packet at byte %d: %s", start, fmt.Sprintf(format, args...))
	}
	head, err := d.r.Peek(4)
	if len(head) < 4 {
		return nil, fail("truncated header (%v)", eofErr(err))
	}
	flags := binary.BigEndian.Uint16(head[1:3])
	if v := flags >> 12; v != subunitVersion {
		return nil, fail("version %#x, want %#x", v, subunitVersion)
	}
	if flags&flagReserved != 0 {
		return nil, fail("reserved flag bit 3 set")
	}
	lenSize := int(head[3]>>6) + 1
	head, err = d.r.Peek(3 + lenSize)
	if len(head) < 3+lenSize {
		return nil, fail("truncated length (%v)", eofErr(err))
	}
	length, _ := readNumber(head[3:])
	minLen := 3 + lenSize + 4
	if length < uint32(minLen) || length > MaxPacket {
		return nil, fail("length %d out of range [%d, %d]", length, minLen, MaxPacket)
	}
	if cap(d.buf) < int(length) {
		d.buf = make([]byte, length)
	}
	pkt := d.buf[:length]
	n, err := io.ReadFull(d.r, pkt)
	d.off += int64(n)
	if err != nil {
		return nil, fail("truncated: %d of %d bytes (%v)", n, length, eofErr(err))
	}
	body, sum := pkt[:length-4], binary.BigEndian.Uint32(pkt[length-4:])
	if got := crc32.ChecksumIEEE(body); got != sum {
		return nil, fail("crc32 %08x, packet says %08x", got, sum)
	}
	p := &Packet{
		Offset:   start,
		Status:   Status(flags & statusMask),
		Runnable: flags&flagRunnable != 0,
		EOF:      flags&flagEOF != 0,
	}
	f := fields{b: body[3+lenSize:], base: 3 + lenSize}
	if flags&flagTimestamp != 0 {
		secs := f.uint32()
		nanos := f.number()
		if f.err == nil && nanos >= 1e9 {
			f.err = fmt.Errorf("timestamp nanoseconds %d out of range", nanos)
		}
		p.Timestamp = time.Unix(int64(secs), int64(nanos)).UTC()
	}
	if flags&flagTestID != 0 {
		p.TestID = f.string("test id")
	}
	if flags&flagTags != 0 {
		count := f.number()
		if f.err == nil && int(count) > len(f.b) {
			f.err = fmt.Errorf("%d tags in %d bytes", count, len(f.b))
		}
		for i := 0; f.err == nil && i < int(count); i++ {
			p.Tags = append(p.Tags, f.string("tag"))
		}
	}
	if flags&flagMIME != 0 {
		p.MIME = f.string("mime type")
	}
	if flags&flagFile != 0 {
		p.HasFile = true
		p.FileName = f.string("file name")
		p.File = f.bytes("file content")
	}
	if flags&flagRouteCode != 0 {
		p.RouteCode = f.string("route code")
	}
	if f.err == nil && len(f.b) > 0 {
		f.err = fmt.Errorf("%d bytes after the last field", len(f.b))
	}
	if f.err != nil {
		return nil, fail("at packet byte %d: %v", f.pos(), f.err)
	}
	if p.HasFile {
		p.File = append([]byte(nil), p.File...) // d.buf is reused
	}
	return p, nil
}

func eofErr(err error) error {
	if err == nil || err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readNumber decodes a subunit variable-length number: the top two bits of
// the first byte give the number of bytes (1 to 4), the rest is the value,
// most significant byte first. It returns the value and its size, or size
// 0 when b is too short.
func readNumber(b []byte) (uint32, int) {
	if len(b) == 0 {
		return 0, 0
	}
	size := int(b[0]>>6) + 1
	if len(b) < size {
		return 0, 0
	}
	v := uint32(b[0] & 0x3f)
	for _, c := range b[1:size] {
		v = v<<8 | uint32(c)
	}
	return v, size
}

// fields reads the optional fields of a packet body; the first error
// sticks.
type fields struct {
	b    []byte
	base int // offset of b[0] in the packet
	read int
	err  error
}

func (f *fields) pos() int { return f.base + f.read }

func (f *fields) take(n int, what string) []byte {
	if f.err != nil {
		return nil
	}
	if n > len(f.b) {
		f.err = fmt.Errorf("%s: need %d bytes, %d left", what, n, len(f.b))
		return nil
	}
	out := f.b[:n]
	f.b = f.b[n:]
	f.read += n
	return out
}

func (f *fields) uint32() uint32 {
	b := f.take(4, "timestamp seconds")
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (f *fields) number() uint32 {
	if f.err != nil {
		return 0
	}
	v, n := readNumber(f.b)
	if n == 0 {
		f.err = errors.New("truncated number")
		return 0
	}
	f.take(n, "number")
	return v
}

func (f *fields) bytes(what string) []byte {
	n := f.number()
	if f.err != nil {
		return nil
	}
	return f.take(int(n), what)
}

func (f *fields) string(what string) string {
	b := f.bytes(what)
	if f.err != nil {
		return ""
	}
	if !utf8.Valid(b) {
		f.err = fmt.Errorf("%s is not UTF-8", what)
		return ""
	}
	for _, c := range b {
		if c == 0 {
			f.err = fmt.Errorf("%s holds a NUL byte", what)
			return ""
		}
	}
	return string(b)
}

// subunitTest is one test id being assembled from its packets.
type subunitTest struct {
	id          string
	status      Status
	start, end  time.Time
	attachments []attachment
	kept        int
	total       *int // attachment bytes kept over all tests
}

type attachment struct {
	name string
	text strings.Builder
}

func (t *subunitTest) attach(name string, data []byte) {
	var a *attachment
	for i := range t.attachments {
		if t.attachments[i].name == name {
			a = &t.attachments[i]
		}
	}
	if a == nil {
		if t.kept+len(name) > MaxDetails || *t.total+len(name) > maxTotalDetails {
			return
		}
		t.attachments = append(t.attachments, attachment{name: name})
		a = &t.attachments[len(t.attachments)-1]
		t.kept += len(name)
		*t.total += len(name)
	}
	room := min(MaxDetails-t.kept, maxTotalDetails-*t.total)
	if len(data) > room {
		data = data[:max(room, 0)]
	}
	a.text.Write(data)
	t.kept += len(data)
	*t.total += len(data)
}

func (t *subunitTest) find(name string) string {
	for i := range t.attachments {
		if t.attachments[i].name == name {
			return t.attachments[i].text.String()
		}
	}
	return ""
}

// ParseSubunit reads a subunit version 2 stream and assembles the status
// events of each test id into one result per test, in the order the tests
// first appear. success and xfail pass, fail and uxsuccess fail, skip
// skips; a test only enumerated (exists) is reported skipped and one still
// in progress at the end of the stream as an error. Attachments of a test
// become its Details ("reason" gives a skip's message, the last line of
// "traceback" a failure's); text outside packets and attachments without a
// test id go to Output.
func ParseSubunit(r io.Reader) (*Report, error) {
	var out strings.Builder
	keepOut := func(b []byte) {
		if room := maxOutput - out.Len(); room > 0 {
			out.Write(b[:min(len(b), room)])
		}
	}
	d := NewSubunitDecoder(r, keepOut)
	tests := map[string]*subunitTest{}
	var order []*subunitTest
	var total int
	for {
		p, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if p.TestID == "" {
			if p.HasFile {
				keepOut(p.File)
			}
			continue
		}
		t := tests[p.TestID]
		if t == nil {
			if len(order) == MaxTests {
				return nil, fmt.Errorf("testreport: subunit: packet at byte %d: more than %d tests", p.Offset, MaxTests)
			}
			if len(p.TestID) > MaxName {
				return nil, fmt.Errorf("testreport: subunit: packet at byte %d: test id of %d bytes, more than %d", p.Offset, len(p.TestID), MaxName)
			}
			t = &subunitTest{id: p.TestID, total: &total}
			tests[p.TestID] = t
			order = append(order, t)
		}
		if p.HasFile && len(p.File) > 0 {
			t.attach(p.FileName, p.File)
		}
		switch p.Status {
		case StatusUndefined:
		case StatusExists:
			if t.status == StatusUndefined {
				t.status = StatusExists
			}
		case StatusInProgress:
			t.status = StatusInProgress
			t.start, t.end = p.Timestamp, time.Time{}
		default:
			t.status = p.Status
			t.end = p.Timestamp
		}
	}
	b := newBudget()
	rep := &Report{Format: Subunit}
	for _, t := range order {
		if t.status == StatusUndefined {
			for _, a := range t.attachments {
				keepOut([]byte(a.text.String()))
			}
			continue
		}
		res := Result{Name: t.id}
		switch t.status {
		case StatusSuccess:
			res.Outcome = Pass
		case StatusXFail:
			res.Outcome, res.Message = Pass, "expected failure"
		case StatusFail:
			res.Outcome = Fail
			if tb := t.find("traceback"); tb != "" {
				res.Message = lastLine(tb)
			} else if len(t.attachments) > 0 {
				res.Message = firstLine(t.attachments[0].text.String())
			}
		case StatusUXSuccess:
			res.Outcome, res.Message = Fail, "unexpected success"
		case StatusSkip:
			res.Outcome, res.Message = Skip, firstLine(t.find("reason"))
		case StatusExists:
			res.Outcome, res.Message = Skip, "enumerated, not run"
		case StatusInProgress:
			res.Outcome, res.Message = Error, "no final status: the stream ended while the test was in progress"
		}
		if !t.start.IsZero() && !t.end.IsZero() && !t.end.Before(t.start) {
			res.Duration = t.end.Sub(t.start)
		}
		var details strings.Builder
		for _, a := range t.attachments {
			fmt.Fprintf(&details, "%s:\n%s\n", a.name, strings.TrimRight(a.text.String(), "\n"))
		}
		res.Message = b.keep(res.Message, 1<<10)
		res.Details = b.keep(details.String(), MaxDetails)
		rep.Tests = append(rep.Tests, res)
	}
	rep.Output = clean(out.String())
	return rep, nil
}
