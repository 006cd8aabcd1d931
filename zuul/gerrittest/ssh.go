package gerrittest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// StreamBackend is what the fake SSH daemon serves. The SSH source of
// package zuul runs `gerrit stream-events` and, after a reconnection,
// `gerrit query` with the arguments of zuul.CatchUpArgs:
//
//	--format json --current-patch-set --all-approvals --comments
//	--dependencies --submit-records [--start N] 'status:open -age:<S>s'
//
// (the last one is a single argument; -age:<S>s matches changes updated
// in the last S seconds).
type StreamBackend interface {
	// Subscribe returns stream-events JSON lines from now on; cancel stops them.
	Subscribe() (lines <-chan []byte, cancel func())
	// QueryJSON answers `gerrit query --format json ...` with its output lines (the stats line included).
	QueryJSON(args []string) ([][]byte, error)
}

// SSHServer is a fake Gerrit SSH daemon: it accepts the public keys it was
// given, presents a generated Ed25519 host key, and executes exactly two
// commands, `gerrit stream-events` and `gerrit query ...` (its arguments
// split as Gerrit splits a command line: on blanks, with '...' and "..."
// quoting), from a StreamBackend. Any other command gets a message on
// stderr and exit status 1. The daemon subscribes to the backend before
// it accepts the stream-events request, as Gerrit does, so that an event
// made after the client's exec request returned reaches the client.
type SSHServer struct {
	backend    StreamBackend
	config     *ssh.ServerConfig
	hostKey    ssh.PublicKey
	authorized [][]byte

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*fakeConn]struct{}
	commands []string
	closed   bool
	wg       sync.WaitGroup
}

// NewSSHServer starts a fake daemon on 127.0.0.1 at a random port, for
// clients with one of the authorized keys. Close it when done.
func NewSSHServer(backend StreamBackend, authorized ...ssh.PublicKey) (*SSHServer, error) {
	s, err := NewUnstartedSSHServer(backend, authorized...)
	if err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// NewUnstartedSSHServer makes a daemon that listens nowhere until Start;
// DialPipe reaches it without a network (for tests in a synctest bubble,
// where a goroutine blocked on a socket would keep the clock still).
func NewUnstartedSSHServer(backend StreamBackend, authorized ...ssh.PublicKey) (*SSHServer, error) {
	if len(authorized) == 0 {
		return nil, errors.New("gerrittest ssh: no authorized key")
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("gerrittest ssh: host key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("gerrittest ssh: host key: %w", err)
	}
	s := &SSHServer{backend: backend, hostKey: signer.PublicKey(), conns: map[*fakeConn]struct{}{}}
	for _, k := range authorized {
		s.authorized = append(s.authorized, k.Marshal())
	}
	s.config = &ssh.ServerConfig{
		ServerVersion: "SSH-2.0-GerritCodeReview_3.10 (APACHE-SSHD-2.12.0)",
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if slices.ContainsFunc(s.authorized, func(a []byte) bool { return bytes.Equal(a, key.Marshal()) }) {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("gerrittest ssh: key not authorized")
		},
	}
	s.config.AddHostKey(signer)
	return s, nil
}

// Start listens on 127.0.0.1 at a random port.
func (s *SSHServer) Start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("gerrittest ssh: listen: %w", err)
	}
	s.mu.Lock()
	if s.closed || s.ln != nil {
		s.mu.Unlock()
		ln.Close()
		return errors.New("gerrittest ssh: closed or already started")
	}
	s.ln = ln
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.serve(c)
		}
	}()
	return nil
}

// Addr is the daemon's host:port ("" before Start).
func (s *SSHServer) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// HostKey is the daemon's public host key.
func (s *SSHServer) HostKey() ssh.PublicKey { return s.hostKey }

// KnownHostsLine is the line of an OpenSSH known_hosts file for the
// daemon's address and key.
func (s *SSHServer) KnownHostsLine() string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, s.hostKey)
}

// DialPipe connects to the daemon through an in-memory, buffered pipe
// (net.Pipe will not do: both ends of SSH write their version first); its
// signature is that of zuul.SSHConfig.Dial and net.Dialer.DialContext,
// and it ignores its arguments but ctx.
func (s *SSHServer) DialPipe(ctx context.Context, _, _ string) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	client, server := bufferedPipe()
	if !s.serve(server) {
		client.Close()
		return nil, errors.New("gerrittest ssh: closed")
	}
	return client, nil
}

// Commands returns the command lines executed so far, in order.
func (s *SSHServer) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.commands)
}

// DropConnections closes every current connection, as a network failure
// or a Gerrit restart would, and says how many there were. The daemon
// keeps accepting new ones.
func (s *SSHServer) DropConnections() int {
	s.mu.Lock()
	conns := make([]*fakeConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return len(conns)
}

// Stall makes every current connection go silent without closing: the
// daemon neither reads from it nor writes to it any more, as when the
// network drops packets. A client notices only through keepalives. Close
// and DropConnections end stalled connections too.
func (s *SSHServer) Stall() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.stall()
	}
}

// Close stops listening, drops every connection and waits for the
// daemon's goroutines.
func (s *SSHServer) Close() error {
	s.mu.Lock()
	s.closed = true
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	s.DropConnections()
	s.wg.Wait()
	return nil
}

// serve runs the SSH protocol on c in a goroutine; false if the daemon is
// closed.
func (s *SSHServer) serve(c net.Conn) bool {
	fc := &fakeConn{Conn: c, closed: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return false
	}
	s.conns[fc] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.conns, fc)
			s.mu.Unlock()
			fc.Close()
		}()
		sc, chans, reqs, err := ssh.NewServerConn(fc, s.config)
		if err != nil {
			return
		}
		defer sc.Close()
		var wg sync.WaitGroup
		defer wg.Wait()
		// Global requests (keepalive@openssh.com) get a "failure" reply,
		// as from Gerrit's daemon: a reply all the same.
		wg.Go(func() { ssh.DiscardRequests(reqs) })
		for nc := range chans {
			if nc.ChannelType() != "session" {
				nc.Reject(ssh.UnknownChannelType, "only sessions")
				continue
			}
			ch, creqs, err := nc.Accept()
			if err != nil {
				continue
			}
			wg.Go(func() { s.session(ch, creqs) })
		}
	}()
	return true
}

// session serves one session channel: its first exec request.
func (s *SSHServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			// env, pty-req, shell, subsystem: not Gerrit's business here.
			req.Reply(false, nil)
			continue
		}
		var msg struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &msg); err != nil {
			req.Reply(false, nil)
			continue
		}
		s.mu.Lock()
		s.commands = append(s.commands, msg.Command)
		s.mu.Unlock()
		// The rest of the channel's requests are answered "no" while the
		// command runs; gone closes when the channel does.
		gone := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			defer close(gone)
			for r := range reqs {
				r.Reply(false, nil)
			}
		})
		status := s.exec(ch, req, msg.Command, gone)
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
		ch.Close()
		wg.Wait()
		return
	}
}

// exec runs one command line and returns its exit status.
func (s *SSHServer) exec(ch ssh.Channel, req *ssh.Request, line string, gone <-chan struct{}) uint32 {
	args, err := SplitCommand(line)
	switch {
	case err != nil:
		req.Reply(true, nil)
		fmt.Fprintf(ch.Stderr(), "fatal: %v\n", err)
		return 1
	case len(args) == 2 && args[0] == "gerrit" && args[1] == "stream-events":
		lines, cancel := s.backend.Subscribe()
		defer cancel()
		req.Reply(true, nil)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					return 0
				}
				if !bytes.HasSuffix(l, []byte("\n")) {
					l = append(l[:len(l):len(l)], '\n')
				}
				if _, err := ch.Write(l); err != nil {
					return 1
				}
			case <-gone:
				return 1
			}
		}
	case len(args) >= 2 && args[0] == "gerrit" && args[1] == "query":
		req.Reply(true, nil)
		out, err := s.backend.QueryJSON(args[2:])
		if err != nil {
			fmt.Fprintf(ch.Stderr(), "fatal: %v\n", err)
			return 1
		}
		for _, l := range out {
			if _, err := ch.Write(append(l[:len(l):len(l)], '\n')); err != nil {
				return 1
			}
		}
		return 0
	default:
		req.Reply(true, nil)
		fmt.Fprintf(ch.Stderr(), "fatal: %s: not found (the fake Gerrit runs gerrit stream-events and gerrit query only)\n", args0(args))
		return 1
	}
}

func args0(args []string) string {
	if len(args) == 0 {
		return "(empty command)"
	}
	return strings.Join(args[:min(2, len(args))], " ")
}

// SplitCommand splits an SSH command line as Gerrit's daemon does: on
// blanks, with '...' taken as it is and "..." with \" and \\ escapes.
func SplitCommand(line string) ([]string, error) {
	var (
		args  []string
		cur   strings.Builder
		inArg bool
	)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unterminated ' quote")
			}
			cur.WriteString(line[i+1 : i+1+end])
			i += end + 1
			inArg = true
		case c == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && (line[i+1] == '"' || line[i+1] == '\\') {
					i++
				}
				cur.WriteByte(line[i])
			}
			if i >= len(line) {
				return nil, errors.New(`unterminated " quote`)
			}
			inArg = true
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}

// fakeConn is a daemon connection that Stall can silence.
type fakeConn struct {
	net.Conn
	mu      sync.Mutex
	stalled chan struct{} // non-nil once stalled; closed on Close
	closed  chan struct{}
	once    sync.Once
}

func (c *fakeConn) stall() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.closed: // reads and writes fail already
	default:
		if c.stalled == nil {
			c.stalled = make(chan struct{})
		}
	}
}

func (c *fakeConn) wait() error {
	c.mu.Lock()
	st := c.stalled
	c.mu.Unlock()
	if st == nil {
		return nil
	}
	<-st
	return net.ErrClosed
}

func (c *fakeConn) Read(p []byte) (int, error) {
	if err := c.wait(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *fakeConn) Write(p []byte) (int, error) {
	if err := c.wait(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *fakeConn) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		close(c.closed)
		if c.stalled != nil {
			close(c.stalled)
		}
	})
	return c.Conn.Close()
}

// bufferedPipe is a connected pair of in-memory conns whose writes never
// block: each direction is an unbounded buffer.
func bufferedPipe() (net.Conn, net.Conn) {
	a, b := newPipeHalf(), newPipeHalf()
	return &pipeConn{r: a, w: b}, &pipeConn{r: b, w: a}
}

type pipeHalf struct {
	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte
	closed bool
}

func newPipeHalf() *pipeHalf {
	h := &pipeHalf{}
	h.cond = sync.NewCond(&h.mu)
	return h
}

func (h *pipeHalf) close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cond.Broadcast()
}

type pipeConn struct {
	r, w *pipeHalf // read from r, write to w
}

func (c *pipeConn) Read(p []byte) (int, error) {
	h := c.r
	h.mu.Lock()
	defer h.mu.Unlock()
	for len(h.buf) == 0 && !h.closed {
		h.cond.Wait()
	}
	if len(h.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, h.buf)
	h.buf = h.buf[n:]
	return n, nil
}

func (c *pipeConn) Write(p []byte) (int, error) {
	h := c.w
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return 0, net.ErrClosed
	}
	h.buf = append(h.buf, p...)
	h.mu.Unlock()
	h.cond.Broadcast()
	return len(p), nil
}

// Close ends both directions: the peer reads what was written, then EOF.
func (c *pipeConn) Close() error {
	c.r.close()
	c.w.close()
	return nil
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

func (c *pipeConn) LocalAddr() net.Addr  { return pipeAddr{} }
func (c *pipeConn) RemoteAddr() net.Addr { return pipeAddr{} }

var errNoDeadline = errors.New("gerrittest: the in-memory pipe has no deadlines")

func (c *pipeConn) SetDeadline(time.Time) error      { return errNoDeadline }
func (c *pipeConn) SetReadDeadline(time.Time) error  { return errNoDeadline }
func (c *pipeConn) SetWriteDeadline(time.Time) error { return errNoDeadline }
