package systest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Backend starts environments.
type Backend interface {
	Start(ctx context.Context, opts EnvOptions) (Env, error)
}

// Env is one running environment: commands run in it until it is closed.
// Close is idempotent and releases everything the environment holds.
type Env interface {
	Run(ctx context.Context, c Command) error
	Close() error
}

// EnvOptions say what an environment starts from.
type EnvOptions struct {
	// Base is the prepared base system (the chroot back-end).
	Base Base
	// NetNS is the path of an existing network namespace to run in
	// (/run/netns/NAME), set up by the caller; empty, a new one with
	// only loopback, up.
	NetNS string
	// Mounts are host directories or files bound into the environment.
	Mounts []Mount
	// Files are written into the environment before it starts.
	Files []File
	// Proxy, when set, lets the environment fetch from a few hosts
	// through a proxy on its loopback (ProxyAddr); apt is set to use it.
	Proxy *Proxy
	// Hostname is the environment's host name (its own UTS namespace);
	// the host's when empty.
	Hostname string
	// Keep leaves the environment's directory (its changes to the base)
	// in place when it is closed, for debugging; the processes and mounts
	// go all the same.
	Keep bool
}

// Mount binds a host path into an environment.
type Mount struct {
	Source   string // host path
	Target   string // absolute path in the environment
	ReadOnly bool
}

// File is a file written into an environment before it starts.
type File struct {
	Path string // absolute path in the environment
	Data []byte
	Mode uint32 // permission bits; 0644 when zero
}

// Command is one command run in an environment: an argument vector,
// never a shell string.
type Command struct {
	Args   []string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Env is the command's whole environment; a default PATH, HOME and
	// locale when nil.
	Env []string
	// Dir is the working directory in the environment; / when empty.
	Dir string
	// Timeout bounds the command; when it passes, the command and every
	// process of the environment are killed (the environment is dead).
	Timeout time.Duration
	// Background makes Run return once the command has started (a
	// server a later command talks to); it runs until it ends or the
	// environment is closed, its output still going to Stdout and
	// Stderr. Timeout and ctx do not apply to it. Only the chroot
	// back-end supports it.
	Background bool
}

// DefaultEnv is a command's environment when its Env is nil.
var DefaultEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root", "LC_ALL=C.UTF-8", "DEBIAN_FRONTEND=noninteractive", "TERM=dumb"}

// ExitError is a command that ran and exited with a status other than 0.
type ExitError struct {
	Args []string
	Code int
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("%s: exit status %d", strings.Join(e.Args, " "), e.Code)
}

// ErrDead is returned by Run on an environment whose processes were
// killed (a command's time limit passed, or it was closed).
var ErrDead = errors.New("systest: environment is dead")

// ErrTimeout is returned by Run when a command's time limit passed.
var ErrTimeout = errors.New("systest: command timed out")

// maxOutput bounds what Output keeps of a command's output.
const maxOutput = 16 << 20

// Output runs args in e and returns its standard output; a failure's
// error carries the end of its standard error.
func Output(ctx context.Context, e Env, timeout time.Duration, args ...string) ([]byte, error) {
	var out, errb limitedBuffer
	out.max, errb.max = maxOutput, 64<<10
	err := e.Run(ctx, Command{Args: args, Stdout: &out, Stderr: &errb, Timeout: timeout})
	if err != nil {
		if s := strings.TrimSpace(errb.String()); s != "" {
			err = fmt.Errorf("%w: %s", err, tail(s, 2000))
		}
		return out.Bytes(), err
	}
	return out.Bytes(), nil
}

// limitedBuffer keeps at most max bytes and drops the rest.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room < len(p) {
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
