// Package mirrortest runs a real rsync daemon on a loopback port, with one
// writable, password-protected module, for the tests and benchmarks of
// mirror targets.
package mirrortest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/proc"
)

// User and Password are the module's credentials.
const (
	User     = "sluice"
	Password = "s3cret-test"
)

// Daemon is a running rsync --daemon.
type Daemon struct {
	// Dir is the module's directory: what the daemon serves and what a
	// mirror synced to it holds.
	Dir string
	// URL is the module's rsync URL with the user: rsync://sluice@127.0.0.1:PORT/m/.
	URL string
	// PasswordFile holds Password, mode 0600, for --password-file.
	PasswordFile string
	cancel       context.CancelFunc
	exited       chan error
}

// Start runs rsync --daemon (in its own process group, no chroot, as the
// current user) on a free loopback port, with its files under base.
func Start(base string) (*Daemon, error) {
	bin, err := exec.LookPath("rsync")
	if err != nil {
		return nil, err
	}
	mod := filepath.Join(base, "module")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		return nil, err
	}
	secrets, pwFile := filepath.Join(base, "secrets"), filepath.Join(base, "password")
	if err := os.WriteFile(secrets, []byte(User+":"+Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(pwFile, []byte(Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	for try := 0; ; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		conf := filepath.Join(base, "rsyncd.conf")
		// TCP_NODELAY: without it each exchange waits out a delayed ACK.
		text := fmt.Sprintf(`uid = %d
gid = %d
use chroot = no
reverse lookup = no
socket options = TCP_NODELAY
address = 127.0.0.1
port = %d
pid file = %s
log file = %s
[m]
path = %s
read only = no
auth users = %s
secrets file = %s
`, os.Geteuid(), os.Getegid(), port, filepath.Join(base, "rsyncd.pid"), filepath.Join(base, "rsyncd.log"), mod, User, secrets)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		cmd := proc.Command(ctx, bin, "--daemon", "--no-detach", "--config="+conf)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			cancel()
			return nil, err
		}
		d := &Daemon{Dir: mod, URL: fmt.Sprintf("rsync://%s@127.0.0.1:%d/m/", User, port), PasswordFile: pwFile,
			cancel: cancel, exited: make(chan error, 1)}
		go func() { d.exited <- cmd.Wait() }()
		if d.waitUp(port) {
			return d, nil
		}
		d.Stop()
		if try >= 3 {
			return nil, fmt.Errorf("rsync --daemon did not start: %s", stderr.String())
		}
		// The port was taken in between: another one.
	}
}

// waitUp waits until the daemon accepts connections on port, or exits.
func (d *Daemon) waitUp(port int) bool {
	for range 500 {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			return true
		}
		select {
		case err := <-d.exited:
			d.exited <- err
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	return false
}

// Stop kills the daemon (its process group) and waits for it.
func (d *Daemon) Stop() {
	d.cancel()
	err := <-d.exited
	d.exited <- err
}

// New starts a daemon for the test and stops it when the test ends. A
// missing rsync skips the test, or fails it under CI=true.
func New(t testing.TB) *Daemon {
	t.Helper()
	if _, err := exec.LookPath("rsync"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("rsync not found")
		}
		t.Skip("rsync not found")
	}
	d, err := Start(t.TempDir())
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			t.Skip("rsync not found")
		}
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return d
}
