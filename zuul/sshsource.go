package zuul

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHConfig says how SSHSource reaches Gerrit's SSH daemon. Zero
// durations take the defaults named beside them.
type SSHConfig struct {
	// User is the Gerrit account; it needs the Stream Events capability.
	User string
	// Addr is host:port, e.g. review.example.org:29418.
	Addr string
	// KeyFile is the account's private key (OpenSSH or PEM format, not
	// protected by a passphrase). Signer, when set, is used instead.
	KeyFile string
	Signer  ssh.Signer
	// KnownHostsFile is an OpenSSH known_hosts file that must hold the
	// server's key under Addr's name. HostKey, when set instead, is the
	// only key the server may present (a pinned key, or a test server's).
	// There is no way to skip the host key check.
	KnownHostsFile string
	HostKey        ssh.PublicKey
	// Dial opens the connection; nil means a TCP dial of Addr. Tests give
	// an in-memory one.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// ConnectTimeout bounds the dial and the SSH handshake (30s).
	ConnectTimeout time.Duration
	// KeepaliveInterval is how often the connection is probed with a
	// keepalive@openssh.com request (15s); without a reply within
	// KeepaliveTimeout (30s) the connection is taken for dead and closed.
	KeepaliveInterval time.Duration
	KeepaliveTimeout  time.Duration
	// MinBackoff and MaxBackoff bound the wait before reconnecting (1s,
	// 2m). The wait doubles with each failed attempt, up to MaxBackoff,
	// and is drawn at random from its upper half (jitter).
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// StableAfter is how long a stream must have run for the next
	// reconnection to start again from MinBackoff (1m).
	StableAfter time.Duration
	// CatchupMargin is how far before the last sign of life the catch-up
	// looks (2m). It must cover the difference between sluice's and
	// Gerrit's clocks, since Gerrit's timestamps are compared with
	// sluice's.
	CatchupMargin time.Duration
	// QueryTimeout bounds each catch-up query (2m).
	QueryTimeout time.Duration
	// Since, when set, makes the first connection catch up from that time
	// too (say, the last event seen before sluice restarted). When zero,
	// the first connection starts from the live stream.
	Since time.Time
}

func (c *SSHConfig) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&c.ConnectTimeout, 30*time.Second)
	set(&c.KeepaliveInterval, 15*time.Second)
	set(&c.KeepaliveTimeout, 30*time.Second)
	set(&c.MinBackoff, time.Second)
	set(&c.MaxBackoff, 2*time.Minute)
	set(&c.StableAfter, time.Minute)
	set(&c.CatchupMargin, 2*time.Minute)
	set(&c.QueryTimeout, 2*time.Minute)
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
}

// SSHSource follows `gerrit stream-events` over SSH, reconnecting for as
// long as it runs.
//
// A dead connection is noticed by keepalives. After a lost connection it
// reconnects after a capped, jittered exponential back-off. On every
// connection but the first (and on the first too when SSHConfig.Since is
// set), once the new stream has started, it catches up on what happened
// while it was away by running
//
//	gerrit query --format json --current-patch-set --all-approvals --comments
//	  --dependencies --submit-records [--start N] 'status:open -age:<S>s'
//
// where S covers the time since the last sign of life of the previous
// stream (a line or a keepalive reply) plus CatchupMargin, and, for each
// open change it returns, sends before any live event, oldest first:
//
//   - patchset-created for the current patch set, if it was created since
//     the last sign of life minus CatchupMargin (the "cut-off");
//   - comment-added for each review message on the current patch set
//     ("Patch Set N: ...") posted since the cut-off, with the message as
//     Comment, its author as Account and that author's current votes
//     granted at the same second as Approvals;
//   - comment-added for each other group of current votes granted since
//     the cut-off by one account at one second, with no Comment.
//
// Approval.Old is never known for these. A "dropped-output" event
// (Gerrit's queue for this client overflowed) triggers the same catch-up
// from the line before it. What is not synthesized: events on older patch
// sets, change-merged, change-abandoned, ref-updated and any other type
// (a merge or an abandon while away is seen when the change is next
// queried), and changes beyond what the query returns.
//
// Events near the cut-off may be sent twice, once live and once
// synthesized; consumers must be idempotent.
type SSHSource struct {
	cfg    SSHConfig
	client *ssh.ClientConfig
	log    *slog.Logger
}

// HostKeyError is a server whose host key is not the expected one, or is
// unknown. SSHSource.Run stops on it rather than retrying.
type HostKeyError struct {
	Addr string
	Err  error
}

func (e *HostKeyError) Error() string {
	return fmt.Sprintf("gerrit ssh %s: host key refused: %v", e.Addr, e.Err)
}

func (e *HostKeyError) Unwrap() error { return e.Err }

// NewSSHSource checks cfg, reads the key and the known hosts file.
func NewSSHSource(cfg SSHConfig, log *slog.Logger) (*SSHSource, error) {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.User == "" {
		return nil, errors.New("gerrit ssh: no user")
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("gerrit ssh: address %q: %w", cfg.Addr, err)
	}
	signer := cfg.Signer
	if signer == nil {
		if cfg.KeyFile == "" {
			return nil, errors.New("gerrit ssh: no private key file")
		}
		b, err := os.ReadFile(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("gerrit ssh: read private key: %w", err)
		}
		signer, err = ssh.ParsePrivateKey(b)
		if _, ok := errors.AsType[*ssh.PassphraseMissingError](err); ok {
			return nil, fmt.Errorf("gerrit ssh: private key %s is protected by a passphrase, which is not supported", cfg.KeyFile)
		}
		if err != nil {
			return nil, fmt.Errorf("gerrit ssh: private key %s: %w", cfg.KeyFile, err)
		}
	}
	var (
		check ssh.HostKeyCallback
		algos []string
	)
	switch {
	case cfg.HostKey != nil && cfg.KnownHostsFile != "":
		return nil, errors.New("gerrit ssh: give a known hosts file or a host key, not both")
	case cfg.HostKey != nil:
		check = ssh.FixedHostKey(cfg.HostKey)
		algos = keyAlgorithms(nil, cfg.HostKey.Type())
	case cfg.KnownHostsFile != "":
		var err error
		check, err = knownhosts.New(cfg.KnownHostsFile)
		if err != nil {
			return nil, fmt.Errorf("gerrit ssh: known hosts: %w", err)
		}
		algos, err = knownAlgorithms(check, cfg.Addr)
		if err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("gerrit ssh: no known hosts file nor host key: the server cannot be checked")
	}
	addr := cfg.Addr
	client := &ssh.ClientConfig{
		User: cfg.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(host string, remote net.Addr, key ssh.PublicKey) error {
			if err := check(host, remote, key); err != nil {
				return &HostKeyError{Addr: addr, Err: err}
			}
			return nil
		},
		HostKeyAlgorithms: algos,
		Timeout:           cfg.ConnectTimeout,
	}
	return &SSHSource{cfg: cfg, client: client, log: log.With("gerrit", cfg.Addr)}, nil
}

// keyAlgorithms adds the host key algorithms that a key of type t verifies.
func keyAlgorithms(algos []string, t string) []string {
	if t == ssh.KeyAlgoRSA {
		return append(algos, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
	}
	return append(algos, t)
}

// knownAlgorithms lists the key types known_hosts holds for addr, so that
// the handshake asks the server for one of those (otherwise a server with
// several keys may offer one that known_hosts lacks, and fail the check).
func knownAlgorithms(check ssh.HostKeyCallback, addr string) ([]string, error) {
	_, probe, _ := ed25519.GenerateKey(crand.Reader)
	signer, err := ssh.NewSignerFromKey(probe)
	if err != nil {
		return nil, fmt.Errorf("gerrit ssh: probe key: %w", err)
	}
	err = check(knownhosts.Normalize(addr), &net.TCPAddr{IP: net.IPv4zero}, signer.PublicKey())
	ke, ok := errors.AsType[*knownhosts.KeyError](err)
	if !ok || len(ke.Want) == 0 {
		return nil, fmt.Errorf("gerrit ssh: known hosts has no key for %s", addr)
	}
	var algos []string
	seen := map[string]bool{}
	for _, k := range ke.Want {
		if t := k.Key.Type(); !seen[t] {
			seen[t] = true
			algos = keyAlgorithms(algos, t)
		}
	}
	return algos, nil
}

// liveness is the last sign of life of a stream: a line or a keepalive
// reply.
type liveness struct{ unixNano atomic.Int64 }

func (l *liveness) mark()           { l.unixNano.Store(time.Now().UnixNano()) }
func (l *liveness) last() time.Time { return time.Unix(0, l.unixNano.Load()) }

// Run follows the stream until ctx ends (it then returns nil) or the
// server's host key is refused (a *HostKeyError).
func (s *SSHSource) Run(ctx context.Context, out chan<- Event) error {
	since := s.cfg.Since
	failures := 0
	for {
		var live liveness
		start := time.Now()
		caughtUp, err := s.stream(ctx, out, since, &live)
		if ctx.Err() != nil {
			return nil
		}
		if hk, ok := errors.AsType[*HostKeyError](err); ok {
			return hk
		}
		if caughtUp {
			// Everything up to the last sign of life was delivered.
			since = live.last()
			if time.Since(start) >= s.cfg.StableAfter {
				failures = 0
			}
		}
		wait := s.backoff(failures)
		failures++
		s.log.Warn("gerrit stream lost", "err", err, "retry_in", wait, "attempt", failures)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// backoff is the wait before reconnection attempt n+1: MinBackoff·2ⁿ capped
// at MaxBackoff, then a random point of its upper half.
func (s *SSHSource) backoff(n int) time.Duration {
	d := s.cfg.MaxBackoff
	if n < 30 {
		d = min(s.cfg.MinBackoff<<n, s.cfg.MaxBackoff)
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// dial connects and authenticates.
func (s *SSHSource) dial(ctx context.Context) (*ssh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	dial := s.cfg.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	conn, err := dial(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("gerrit ssh %s: %w", s.cfg.Addr, err)
	}
	// The handshake takes no context: closing the connection ends it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, s.cfg.Addr, s.client)
	if !stop() {
		if err == nil {
			c.Close()
		}
		return nil, fmt.Errorf("gerrit ssh %s: handshake: %w", s.cfg.Addr, ctx.Err())
	}
	if err != nil {
		conn.Close()
		if hk, ok := errors.AsType[*HostKeyError](err); ok {
			return nil, hk
		}
		return nil, fmt.Errorf("gerrit ssh %s: %w", s.cfg.Addr, err)
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// stream runs one connection: stream-events, the catch-up from since (if
// set), then the live events. caughtUp says that the stream was running
// and the catch-up done, so that everything up to live's last sign of
// life has been sent.
func (s *SSHSource) stream(ctx context.Context, out chan<- Event, since time.Time, live *liveness) (caughtUp bool, err error) {
	client, err := s.dial(ctx)
	if err != nil {
		return false, err
	}
	stop := context.AfterFunc(ctx, func() { client.Close() })
	defer stop()

	var wg sync.WaitGroup
	done := make(chan struct{})
	defer func() {
		close(done)
		client.Close() // ends a keepalive waiting for its reply
		wg.Wait()
	}()
	wg.Go(func() { s.keepalive(client, done, live) })

	sess, err := client.NewSession()
	if err != nil {
		return false, fmt.Errorf("gerrit ssh %s: session: %w", s.cfg.Addr, err)
	}
	defer sess.Close()
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return false, fmt.Errorf("gerrit ssh %s: stream-events: %w", s.cfg.Addr, err)
	}
	stderr := &tailBuffer{max: 4096}
	sess.Stderr = stderr
	// Gerrit subscribes the command before it answers the exec request:
	// from here on no event is lost, it waits in the channel while the
	// catch-up runs.
	if err := sess.Start("gerrit stream-events"); err != nil {
		return false, fmt.Errorf("gerrit ssh %s: stream-events: %w", s.cfg.Addr, err)
	}
	live.mark()
	s.log.Info("gerrit stream connected", "catchup", !since.IsZero())
	if !since.IsZero() {
		if err := s.catchUp(ctx, client, out, since); err != nil {
			return false, err
		}
	}
	caughtUp = true

	prev := time.Now()
	err = readLines(stdout, MaxEventSize, func(n int, line []byte, tooLong bool) error {
		live.mark()
		if tooLong {
			s.log.Warn("gerrit event refused", "line", n, "err", fmt.Sprintf("longer than %d bytes", MaxEventSize))
			return nil
		}
		if len(line) == 0 {
			return nil
		}
		ev, err := ParseEvent(line)
		if u, ok := errors.AsType[*UnsupportedEventError](err); ok && u.Type == DroppedOutput {
			s.log.Warn("gerrit dropped stream events, catching up")
			if err := s.catchUp(ctx, client, out, prev); err != nil {
				return err
			}
			prev = time.Now()
			return nil
		}
		prev = time.Now()
		if err != nil {
			logSkipped(s.log, err, "line", n)
			return nil
		}
		return send(ctx, out, ev)
	})
	if err != nil {
		return true, fmt.Errorf("gerrit ssh %s: stream-events: %w", s.cfg.Addr, err)
	}
	werr := sess.Wait()
	msg := strings.TrimSpace(stderr.String())
	switch {
	case werr != nil && msg != "":
		return true, fmt.Errorf("gerrit ssh %s: stream-events ended: %w: %s", s.cfg.Addr, werr, msg)
	case werr != nil:
		return true, fmt.Errorf("gerrit ssh %s: stream-events ended: %w", s.cfg.Addr, werr)
	}
	return true, fmt.Errorf("gerrit ssh %s: stream-events ended", s.cfg.Addr)
}

// keepalive probes the connection until done; a probe without a reply in
// time closes the client, which ends the stream.
func (s *SSHSource) keepalive(client *ssh.Client, done <-chan struct{}, live *liveness) {
	t := time.NewTicker(s.cfg.KeepaliveInterval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		dead := time.AfterFunc(s.cfg.KeepaliveTimeout, func() {
			s.log.Warn("gerrit keepalive unanswered, closing the connection", "timeout", s.cfg.KeepaliveTimeout)
			client.Close()
		})
		_, _, err := client.SendRequest("keepalive@openssh.com", true, nil)
		dead.Stop()
		if err != nil {
			client.Close()
			return
		}
		live.mark()
	}
}

// tailBuffer keeps the first max bytes written to it: a command's stderr,
// for the error message.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if room := t.max - len(t.b); room > 0 {
		t.b = append(t.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
