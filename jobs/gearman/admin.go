package gearman

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

// Limits of an admin response: a line and the number of lines.
const (
	maxAdminLine  = 64 << 10
	maxAdminLines = 100000
)

// ErrAdmin is wrapped by every error about a malformed admin response.
var ErrAdmin = errors.New("gearman: malformed admin response")

// FunctionStatus is a line of the admin status command.
type FunctionStatus struct {
	Function string
	Queued   int // jobs queued or running
	Running  int
	Workers  int // connected workers that can do it
}

// WorkerInfo is a line of the admin workers command.
type WorkerInfo struct {
	FD        int
	Addr      string
	ClientID  string // "-" when the worker set none
	Functions []string
}

// adminLines reads lines up to the terminating ".", bounded.
func adminLines(r io.Reader) ([]string, error) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 4096), maxAdminLine)
	var lines []string
	for s.Scan() {
		l := s.Text()
		if l == "." {
			return lines, nil
		}
		if strings.HasPrefix(l, "ERR ") {
			return nil, fmt.Errorf("%w: %s", ErrServer, l)
		}
		if len(lines) == maxAdminLines {
			return nil, fmt.Errorf("%w: more than %d lines", ErrAdmin, maxAdminLines)
		}
		lines = append(lines, l)
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAdmin, err)
	}
	return nil, fmt.Errorf("%w: no terminating line: %w", ErrAdmin, io.ErrUnexpectedEOF)
}

// ParseStatus parses the answer to "status": FUNCTION\tTOTAL\tRUNNING\tWORKERS
// lines, then ".".
func ParseStatus(r io.Reader) ([]FunctionStatus, error) {
	lines, err := adminLines(r)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	out := make([]FunctionStatus, 0, len(lines))
	for i, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) != 4 || f[0] == "" {
			return nil, fmt.Errorf("status line %d: %w: %q", i+1, ErrAdmin, l)
		}
		var n [3]int
		for j := range n {
			v, err := strconv.Atoi(f[j+1])
			if err != nil || v < 0 {
				return nil, fmt.Errorf("status line %d: %w: count %q", i+1, ErrAdmin, f[j+1])
			}
			n[j] = v
		}
		out = append(out, FunctionStatus{Function: f[0], Queued: n[0], Running: n[1], Workers: n[2]})
	}
	return out, nil
}

// ParseWorkers parses the answer to "workers": FD ADDRESS CLIENT-ID :
// FUNCTION... lines, then ".".
func ParseWorkers(r io.Reader) ([]WorkerInfo, error) {
	lines, err := adminLines(r)
	if err != nil {
		return nil, fmt.Errorf("workers: %w", err)
	}
	out := make([]WorkerInfo, 0, len(lines))
	for i, l := range lines {
		// An IPv6 address has colons of its own: the separator is the
		// fourth field.
		f := strings.Fields(l)
		if len(f) < 4 || f[3] != ":" {
			return nil, fmt.Errorf("workers line %d: %w: %q", i+1, ErrAdmin, l)
		}
		fd, err := strconv.Atoi(f[0])
		if err != nil || fd < 0 {
			return nil, fmt.Errorf("workers line %d: %w: fd %q", i+1, ErrAdmin, f[0])
		}
		out = append(out, WorkerInfo{FD: fd, Addr: f[1], ClientID: f[2], Functions: f[4:]})
	}
	return out, nil
}

// adminCommand sends a text command to the server at addr and parses
// the answer with parse.
func adminCommand[T any](ctx context.Context, addr, cmd string, parse func(io.Reader) (T, error)) (T, error) {
	var zero T
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return zero, fmt.Errorf("gearman %s: admin %s: %w", addr, cmd, err)
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	if _, err := nc.Write([]byte(cmd + "\n")); err != nil {
		return zero, fmt.Errorf("gearman %s: admin %s: %w", addr, cmd, err)
	}
	v, err := parse(io.LimitReader(nc, int64(maxAdminLines)*64))
	if err != nil {
		return zero, fmt.Errorf("gearman %s: admin %w", addr, err)
	}
	return v, nil
}

// AdminStatus runs the admin command status on the server at addr.
func AdminStatus(ctx context.Context, addr string) ([]FunctionStatus, error) {
	return adminCommand(ctx, addr, "status", ParseStatus)
}

// AdminWorkers runs the admin command workers on the server at addr.
func AdminWorkers(ctx context.Context, addr string) ([]WorkerInfo, error) {
	return adminCommand(ctx, addr, "workers", ParseWorkers)
}
