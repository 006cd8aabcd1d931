package systest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/internal/proc"
)

// startSSHD starts OpenSSH's sshd on a free loopback port with a fresh
// host key and one authorized user key; it returns the back-end's config.
func startSSHD(t *testing.T) SSHConfig {
	t.Helper()
	sshd := "/usr/sbin/sshd"
	if _, err := os.Stat(sshd); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("sshd not found (openssh-server)")
		}
		t.Skip("sshd not found (openssh-server)")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("sshd needs root to log a user in, and CI runs as root")
		}
		t.Skip("sshd needs root to log a user in")
	}
	pkgtest.NeedTool(t, "ssh-keygen")
	dir := t.TempDir()
	for _, k := range []string{"host", "user"} {
		hostRun(t, dir, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k))
	}
	pub, err := os.ReadFile(filepath.Join(dir, "user.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := "ListenAddress 127.0.0.1:" + strconv.Itoa(port) + "\nHostKey " + filepath.Join(dir, "host") +
		"\nAuthorizedKeysFile " + filepath.Join(dir, "authorized_keys") + "\nPidFile none\nUsePAM no\nStrictModes no\n" +
		"PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll("/run/sshd", 0o755) // its privilege separation directory
	ctx, cancel := context.WithCancel(context.Background())
	cmd := proc.Command(ctx, sshd, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	var log bytes.Buffer
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("sshd:\n%s", log.String())
		}
	})
	hostPub, err := os.ReadFile(filepath.Join(dir, "host.pub"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(hostPub))
	known := "[127.0.0.1]:" + strconv.Itoa(port) + " " + f[0] + " " + f[1] + "\n"
	if err := os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(known), 0o600); err != nil {
		t.Fatal(err)
	}
	// Wait until it listens.
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			break
		}
		if i > 500 {
			t.Fatalf("sshd does not listen: %v\n%s", err, log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return SSHConfig{Addr: "127.0.0.1:" + strconv.Itoa(port), User: "root", KeyFile: filepath.Join(dir, "user"),
		KnownHosts: filepath.Join(dir, "known_hosts"), Timeout: 10 * time.Second}
}

// TestSSH runs commands on a real sshd over loopback: arguments that a
// shell would take apart arrive whole, exit statuses and time limits are
// reported, and an unknown host key is refused.
func TestSSH(t *testing.T) {
	t.Parallel()
	cfg := startSSHD(t)
	s, err := NewSSH(cfg, testLog())
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Start(t.Context(), EnvOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	weird := []string{"a b", "it's", `"$HOME"`, "`id`", "$(touch /tmp/sluice-ssh-injected)", "x;y", "\\", "-n", "*", ""}
	var out bytes.Buffer
	if err := e.Run(t.Context(), Command{Args: append([]string{"printf", "[%s]\\n"}, weird...), Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, w := range weird {
		want.WriteString("[" + w + "]\n")
	}
	if out.String() != want.String() {
		t.Errorf("arguments arrived as\n%s\nwant\n%s", out.String(), want.String())
	}
	if _, err := os.Stat("/tmp/sluice-ssh-injected"); err == nil {
		os.Remove("/tmp/sluice-ssh-injected")
		t.Error("an argument was run by the remote shell")
	}
	out.Reset()
	if err := e.Run(t.Context(), Command{Args: []string{"pwd"}, Dir: "/usr", Stdin: strings.NewReader("")}); err != nil {
		t.Error(err)
	}
	if got, err := Output(t.Context(), e, time.Minute, "cat"); err != nil || len(got) != 0 {
		t.Errorf("cat: %q %v", got, err)
	}
	err = e.Run(t.Context(), Command{Args: []string{"sh", "-c", "exit 3"}})
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != 3 {
		t.Errorf("exit 3: %v", err)
	}
	start := time.Now()
	if err := e.Run(t.Context(), Command{Args: []string{"sleep", "100"}, Timeout: 300 * time.Millisecond}); !errors.Is(err, ErrTimeout) {
		t.Errorf("hung command: %v", err)
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("the time limit took %s", time.Since(start))
	}
	// A host whose key is not known is refused.
	other := cfg
	other.KnownHosts = filepath.Join(t.TempDir(), "empty")
	os.WriteFile(other.KnownHosts, nil, 0o600)
	s2, err := NewSSH(other, testLog())
	if err != nil {
		t.Fatal(err)
	}
	if e2, err := s2.Start(t.Context(), EnvOptions{}); err == nil {
		e2.Close()
		t.Error("an unknown host key was accepted")
	}
}

func TestQuoteCommand(t *testing.T) {
	t.Parallel()
	if got := QuoteCommand([]string{"a", "it's", ""}); got != `'a' 'it'\''s' ''` {
		t.Errorf("got %s", got)
	}
}
