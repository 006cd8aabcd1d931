package systest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHConfig names an existing test host: a Fedora or RHEL machine, a VM,
// anything with sshd.
type SSHConfig struct {
	// Addr is host:port.
	Addr string `yaml:"addr"`
	User string `yaml:"user"`
	// KeyFile is the private key (unencrypted; OpenSSH or PEM format).
	KeyFile string `yaml:"key_file"`
	// KnownHosts is an OpenSSH known_hosts file that must hold the
	// host's key: hosts are never trusted on first use.
	KnownHosts string `yaml:"known_hosts"`
	// Timeout bounds connecting; 30s when zero.
	Timeout time.Duration `yaml:"timeout"`
}

// Validate checks the section.
func (c SSHConfig) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("ssh: addr %q: not host:port", c.Addr)
	}
	switch {
	case c.User == "" || strings.ContainsAny(c.User, " \t\n@:/"):
		return fmt.Errorf("ssh: user %q: not a user name", c.User)
	case c.KeyFile == "":
		return errors.New("ssh: key_file: missing")
	case c.KnownHosts == "":
		return errors.New("ssh: known_hosts: missing (host keys are never accepted unseen)")
	case c.Timeout < 0:
		return errors.New("ssh: timeout: negative")
	}
	return nil
}

// SSH is the back-end of environments on an existing host, over SSH.
// Its environments are the host itself: nothing is fresh, and mounts and
// files of EnvOptions are not supported. A command's time limit is kept
// on the host by timeout(1), which kills the command's process group
// (what left the group survives), and here by ending the session, or
// the connection when the host holds on to it.
type SSH struct {
	cfg    SSHConfig
	client *ssh.ClientConfig
	log    *slog.Logger
}

var _ Backend = (*SSH)(nil)

// NewSSH reads the key and the known hosts of cfg.
func NewSSH(cfg SSHConfig, log *slog.Logger) (*SSH, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pem, err := os.ReadFile(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("ssh: key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return nil, fmt.Errorf("ssh: key %s: %w", cfg.KeyFile, err)
	}
	hostKey, err := knownhosts.New(cfg.KnownHosts)
	if err != nil {
		return nil, fmt.Errorf("ssh: known_hosts: %w", err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &SSH{cfg: cfg, log: log, client: &ssh.ClientConfig{
		User: cfg.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKey, Timeout: cfg.Timeout,
	}}, nil
}

// Start connects to the host.
func (s *SSH) Start(ctx context.Context, opts EnvOptions) (Env, error) {
	if len(opts.Mounts) > 0 || len(opts.Files) > 0 || opts.NetNS != "" {
		return nil, errors.New("ssh: mounts, files and network namespaces are for the chroot back-end")
	}
	d := net.Dialer{Timeout: s.cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", s.cfg.Addr, err)
	}
	conn.SetDeadline(time.Now().Add(s.cfg.Timeout))
	c, chans, reqs, err := ssh.NewClientConn(conn, s.cfg.Addr, s.client)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ssh %s: %w", s.cfg.Addr, err)
	}
	conn.SetDeadline(time.Time{})
	return &SSHEnv{addr: s.cfg.Addr, client: ssh.NewClient(c, chans, reqs)}, nil
}

// SSHEnv is a connection to a test host.
type SSHEnv struct {
	addr   string
	client *ssh.Client
	once   sync.Once
	err    error
}

var _ Env = (*SSHEnv)(nil)

// Run runs c on the host: its arguments quoted one by one for the remote
// shell (never a string of the caller's), its environment set with env(1).
func (e *SSHEnv) Run(ctx context.Context, c Command) error {
	if len(c.Args) == 0 {
		return errors.New("ssh: no command")
	}
	if c.Background {
		return errors.New("ssh: background commands are for the chroot back-end")
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	s, err := e.client.NewSession()
	if err != nil {
		return fmt.Errorf("ssh %s: %w", e.addr, err)
	}
	defer s.Close()
	env := c.Env
	if env == nil {
		env = DefaultEnv
	}
	var argv []string
	if c.Timeout > 0 {
		// The host enforces the limit too: timeout(1) kills the
		// command's process group, which a signal over SSH may not.
		argv = append(argv, "timeout", "-s", "KILL", strconv.FormatFloat(c.Timeout.Seconds(), 'f', 3, 64)+"s")
	}
	argv = append(argv, "env", "-i")
	if c.Dir != "" {
		if err := checkEnvPath(c.Dir); err != nil {
			return fmt.Errorf("ssh %s: dir %q: %w", e.addr, c.Dir, err)
		}
		argv = append(argv, "--chdir="+c.Dir)
	}
	if strings.Contains(c.Args[0], "=") {
		return fmt.Errorf("ssh %s: command %q: env(1) would take it for a variable", e.addr, c.Args[0])
	}
	argv = append(append(argv, env...), c.Args...)
	for _, a := range argv {
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("ssh %s: an argument holds a NUL byte", e.addr)
		}
	}
	s.Stdin, s.Stdout, s.Stderr = c.Stdin, c.Stdout, c.Stderr
	if s.Stdout == nil {
		s.Stdout = io.Discard
	}
	if s.Stderr == nil {
		s.Stderr = io.Discard
	}
	if err := s.Start(QuoteCommand(argv)); err != nil {
		return fmt.Errorf("ssh %s: %w", e.addr, err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		s.Signal(ssh.SIGKILL)
		s.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			// The host keeps the session: the connection goes, and
			// with it the environment.
			e.Close()
			<-done
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("ssh %s: %s: %w after %s", e.addr, c.Args[0], ErrTimeout, c.Timeout)
		}
		return fmt.Errorf("ssh %s: %s: %w", e.addr, c.Args[0], ctx.Err())
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("ssh %s: %s: %w after %s", e.addr, c.Args[0], ErrTimeout, c.Timeout)
	}
	var exit *ssh.ExitError
	if errors.As(err, &exit) {
		return &ExitError{Args: c.Args, Code: exit.ExitStatus()}
	}
	if err != nil {
		return fmt.Errorf("ssh %s: %s: %w", e.addr, c.Args[0], err)
	}
	return nil
}

// Close closes the connection.
func (e *SSHEnv) Close() error {
	e.once.Do(func() {
		if err := e.client.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			e.err = err
		}
	})
	return e.err
}

// QuoteCommand makes one POSIX shell command line of args, each quoted
// so that the remote shell passes it through as one argument, whatever
// it holds.
func QuoteCommand(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
