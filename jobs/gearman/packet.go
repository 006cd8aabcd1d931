// Package gearman speaks the Gearman protocol (gearmand's PROTOCOL file):
// the binary packets of clients and workers, with the client and worker
// sides over several job servers with reconnection, and the text admin
// protocol's status and workers commands. Everything a server sends is
// untrusted input: sizes are bounded before anything is allocated, and
// every packet is checked against its type's arguments.
package gearman

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Magic codes: requests go to the job server, responses come from it.
var (
	magicReq = [4]byte{0, 'R', 'E', 'Q'}
	magicRes = [4]byte{0, 'R', 'E', 'S'}
)

// Type is a packet type.
type Type uint32

// The packet types of the binary protocol.
const (
	CanDo           Type = 1
	CantDo          Type = 2
	ResetAbilities  Type = 3
	PreSleep        Type = 4
	Noop            Type = 6
	SubmitJob       Type = 7
	JobCreated      Type = 8
	GrabJob         Type = 9
	NoJob           Type = 10
	JobAssign       Type = 11
	WorkStatus      Type = 12
	WorkComplete    Type = 13
	WorkFail        Type = 14
	GetStatus       Type = 15
	EchoReq         Type = 16
	EchoRes         Type = 17
	SubmitJobBG     Type = 18
	Error           Type = 19
	StatusRes       Type = 20
	SubmitJobHigh   Type = 21
	SetClientID     Type = 22
	CanDoTimeout    Type = 23
	AllYours        Type = 24
	WorkException   Type = 25
	OptionReq       Type = 26
	OptionRes       Type = 27
	WorkData        Type = 28
	WorkWarning     Type = 29
	GrabJobUniq     Type = 30
	JobAssignUniq   Type = 31
	SubmitJobHighBG Type = 32
	SubmitJobLow    Type = 33
	SubmitJobLowBG  Type = 34
)

// args is the number of arguments of each type; the last one may hold
// NUL bytes (it is the opaque data of the types that carry some).
var args = map[Type]int{
	CanDo: 1, CantDo: 1, ResetAbilities: 0, PreSleep: 0, Noop: 0,
	SubmitJob: 3, JobCreated: 1, GrabJob: 0, NoJob: 0, JobAssign: 3,
	WorkStatus: 3, WorkComplete: 2, WorkFail: 1, GetStatus: 1,
	EchoReq: 1, EchoRes: 1, SubmitJobBG: 3, Error: 2, StatusRes: 5,
	SubmitJobHigh: 3, SetClientID: 1, CanDoTimeout: 2, AllYours: 0,
	WorkException: 2, OptionReq: 1, OptionRes: 1, WorkData: 2, WorkWarning: 2,
	GrabJobUniq: 0, JobAssignUniq: 4, SubmitJobHighBG: 3, SubmitJobLow: 3, SubmitJobLowBG: 3,
}

var names = map[Type]string{
	CanDo: "CAN_DO", CantDo: "CANT_DO", ResetAbilities: "RESET_ABILITIES", PreSleep: "PRE_SLEEP", Noop: "NOOP",
	SubmitJob: "SUBMIT_JOB", JobCreated: "JOB_CREATED", GrabJob: "GRAB_JOB", NoJob: "NO_JOB", JobAssign: "JOB_ASSIGN",
	WorkStatus: "WORK_STATUS", WorkComplete: "WORK_COMPLETE", WorkFail: "WORK_FAIL", GetStatus: "GET_STATUS",
	EchoReq: "ECHO_REQ", EchoRes: "ECHO_RES", SubmitJobBG: "SUBMIT_JOB_BG", Error: "ERROR", StatusRes: "STATUS_RES",
	SubmitJobHigh: "SUBMIT_JOB_HIGH", SetClientID: "SET_CLIENT_ID", CanDoTimeout: "CAN_DO_TIMEOUT", AllYours: "ALL_YOURS",
	WorkException: "WORK_EXCEPTION", OptionReq: "OPTION_REQ", OptionRes: "OPTION_RES", WorkData: "WORK_DATA",
	WorkWarning: "WORK_WARNING", GrabJobUniq: "GRAB_JOB_UNIQ", JobAssignUniq: "JOB_ASSIGN_UNIQ",
	SubmitJobHighBG: "SUBMIT_JOB_HIGH_BG", SubmitJobLow: "SUBMIT_JOB_LOW", SubmitJobLowBG: "SUBMIT_JOB_LOW_BG",
}

func (t Type) String() string {
	if n, ok := names[t]; ok {
		return n
	}
	return fmt.Sprintf("TYPE_%d", uint32(t))
}

// MaxSize bounds the data of a packet read: 16 MiB, far above any stage
// run's argument or result, far below what a hostile server could make
// a reader allocate.
const MaxSize = 16 << 20

// Packet is one binary packet.
type Packet struct {
	Req  bool // \0REQ (to the server), else \0RES (from it)
	Type Type
	Args [][]byte
}

// ErrPacket is wrapped by every error about malformed packet bytes.
var ErrPacket = errors.New("gearman: malformed packet")

// MarshalBinary encodes p: a 12-byte header, then the arguments joined
// by NUL.
func (p Packet) MarshalBinary() ([]byte, error) {
	n, ok := args[p.Type]
	if !ok {
		return nil, fmt.Errorf("encode %s: %w: unknown type", p.Type, ErrPacket)
	}
	if len(p.Args) != n {
		return nil, fmt.Errorf("encode %s: %w: %d arguments, want %d", p.Type, ErrPacket, len(p.Args), n)
	}
	size := 0
	for i, a := range p.Args {
		if i < n-1 && bytes.IndexByte(a, 0) >= 0 {
			return nil, fmt.Errorf("encode %s: %w: NUL in argument %d", p.Type, ErrPacket, i)
		}
		size += len(a)
	}
	if n > 1 {
		size += n - 1
	}
	if size > MaxSize {
		return nil, fmt.Errorf("encode %s: %w: %d bytes, more than %d", p.Type, ErrPacket, size, MaxSize)
	}
	b := make([]byte, 12, 12+size)
	if p.Req {
		copy(b, magicReq[:])
	} else {
		copy(b, magicRes[:])
	}
	binary.BigEndian.PutUint32(b[4:], uint32(p.Type))
	binary.BigEndian.PutUint32(b[8:], uint32(size))
	for i, a := range p.Args {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, a...)
	}
	return b, nil
}

// ReadPacket reads one packet from r. The size is checked against
// MaxSize before the data is read; the magic, the type and the number
// of arguments are checked. A stream that ends cleanly before a packet
// gives io.EOF.
func ReadPacket(r io.Reader) (Packet, error) {
	var h [12]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Packet{}, fmt.Errorf("read packet header: %w", err)
		}
		return Packet{}, err
	}
	return readBody(r, h)
}

func readBody(r io.Reader, h [12]byte) (Packet, error) {
	var p Packet
	switch [4]byte(h[:4]) {
	case magicReq:
		p.Req = true
	case magicRes:
	default:
		return p, fmt.Errorf("read packet: %w: magic %q", ErrPacket, h[:4])
	}
	p.Type = Type(binary.BigEndian.Uint32(h[4:]))
	n, ok := args[p.Type]
	if !ok {
		return p, fmt.Errorf("read packet: %w: unknown type %d", ErrPacket, uint32(p.Type))
	}
	size := binary.BigEndian.Uint32(h[8:])
	if size > MaxSize {
		return p, fmt.Errorf("read packet %s: %w: %d bytes, more than %d", p.Type, ErrPacket, size, MaxSize)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(r, data); err != nil {
		return p, fmt.Errorf("read packet %s: %w", p.Type, noEOF(err))
	}
	a, err := split(data, n)
	if err != nil {
		return p, fmt.Errorf("read packet %s: %w", p.Type, err)
	}
	p.Args = a
	return p, nil
}

// split cuts data into n arguments: n-1 NUL-terminated, the last the rest.
func split(data []byte, n int) ([][]byte, error) {
	if n == 0 {
		if len(data) != 0 {
			return nil, fmt.Errorf("%w: %d bytes of data where none belong", ErrPacket, len(data))
		}
		return nil, nil
	}
	out := make([][]byte, 0, n)
	for range n - 1 {
		i := bytes.IndexByte(data, 0)
		if i < 0 {
			return nil, fmt.Errorf("%w: %d arguments, want %d", ErrPacket, len(out)+1, n)
		}
		out = append(out, data[:i:i])
		data = data[i+1:]
	}
	return append(out, data), nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// req is a request packet of type t with args.
func req(t Type, a ...[]byte) Packet { return Packet{Req: true, Type: t, Args: a} }
