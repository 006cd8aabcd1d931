package gerrittest

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// lineBackend is a StreamBackend of fixed query answers and a feed of
// stream lines.
type lineBackend struct {
	mu         sync.Mutex
	feed       chan []byte
	subscribed chan struct{}
	queries    [][]string
}

func (b *lineBackend) Subscribe() (<-chan []byte, func()) {
	b.subscribed <- struct{}{}
	return b.feed, func() {}
}

func (b *lineBackend) QueryJSON(args []string) ([][]byte, error) {
	b.mu.Lock()
	b.queries = append(b.queries, args)
	b.mu.Unlock()
	if slices.Contains(args, "bad") {
		return nil, errors.New("Unsupported operator bad")
	}
	return [][]byte{[]byte(`{"project":"p"}`), []byte(`{"type":"stats","rowCount":1}`)}, nil
}

func newKey(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func dial(t *testing.T, srv *SSHServer, key ssh.Signer) (*ssh.Client, error) {
	t.Helper()
	return ssh.Dial("tcp", srv.Addr(), &ssh.ClientConfig{
		User:            "sluice",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: ssh.FixedHostKey(srv.HostKey()),
	})
}

// run executes cmd and returns stdout, stderr and the exit status.
func run(t *testing.T, c *ssh.Client, cmd string) (string, string, int) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out, errb strings.Builder
	s.Stdout, s.Stderr = &out, &errb
	err = s.Run(cmd)
	if ee, ok := errors.AsType[*ssh.ExitError](err); ok {
		return out.String(), errb.String(), ee.ExitStatus()
	}
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return out.String(), errb.String(), 0
}

func TestSSHServer(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	b := &lineBackend{feed: make(chan []byte), subscribed: make(chan struct{}, 1)}
	srv, err := NewSSHServer(b, key.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !strings.HasPrefix(srv.Addr(), "127.0.0.1:") || !strings.HasPrefix(srv.KnownHostsLine(), "[127.0.0.1]:") {
		t.Errorf("address %s, known hosts line %s", srv.Addr(), srv.KnownHostsLine())
	}
	c, err := dial(t, srv, key)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	t.Run("query", func(t *testing.T) {
		out, _, st := run(t, c, `gerrit query --format json --start 5 'status:open -age:90s'`)
		if st != 0 || out != "{\"project\":\"p\"}\n{\"type\":\"stats\",\"rowCount\":1}\n" {
			t.Errorf("status %d, output %q", st, out)
		}
		b.mu.Lock()
		got := b.queries[len(b.queries)-1]
		b.mu.Unlock()
		if !slices.Equal(got, []string{"--format", "json", "--start", "5", "status:open -age:90s"}) {
			t.Errorf("query args %q", got)
		}
	})
	t.Run("query error", func(t *testing.T) {
		_, errs, st := run(t, c, "gerrit query bad")
		if st != 1 || !strings.Contains(errs, "Unsupported operator bad") {
			t.Errorf("status %d, stderr %q", st, errs)
		}
	})
	for _, cmd := range []string{"ls -l", "gerrit stream-events --subscribe x", "gerrit review 1,1 --verified +1", "", "gerrit 'unterminated"} {
		t.Run("refuse "+cmd, func(t *testing.T) {
			_, errs, st := run(t, c, cmd)
			if st != 1 || !strings.HasPrefix(errs, "fatal: ") {
				t.Errorf("status %d, stderr %q", st, errs)
			}
		})
	}
	t.Run("stream-events", func(t *testing.T) {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stdout, err := s.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start("gerrit stream-events"); err != nil {
			t.Fatal(err)
		}
		<-b.subscribed
		r := bufio.NewReader(stdout)
		for _, line := range []string{`{"type":"a"}`, `{"type":"b"}` + "\n"} {
			b.feed <- []byte(line)
			got, err := r.ReadString('\n')
			if err != nil || got != strings.TrimSuffix(line, "\n")+"\n" {
				t.Errorf("line %q, %v", got, err)
			}
		}
		if n := srv.DropConnections(); n != 1 {
			t.Errorf("dropped %d connections", n)
		}
		if _, err := io.ReadAll(r); err != nil {
			t.Errorf("after the drop: %v", err)
		}
	})
	want := []string{`gerrit query --format json --start 5 'status:open -age:90s'`, "gerrit query bad", "ls -l"}
	if got := srv.Commands(); len(got) < 3 || !slices.Equal(got[:3], want) {
		t.Errorf("commands %q", got)
	}
}

func TestSSHServerRefusesKey(t *testing.T) {
	t.Parallel()
	b := &lineBackend{feed: make(chan []byte), subscribed: make(chan struct{}, 1)}
	srv, err := NewSSHServer(b, newKey(t).PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if c, err := dial(t, srv, newKey(t)); err == nil {
		c.Close()
		t.Fatal("an unknown key was accepted")
	}
}

func TestSplitCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line string
		want []string
		err  bool
	}{
		{"gerrit stream-events", []string{"gerrit", "stream-events"}, false},
		{"  gerrit \t query  a ", []string{"gerrit", "query", "a"}, false},
		{`gerrit query 'status:open -age:5s'`, []string{"gerrit", "query", "status:open -age:5s"}, false},
		{`a "b \"c\" \\ d" e`, []string{"a", `b "c" \ d`, "e"}, false},
		{`a'b c'd`, []string{"ab cd"}, false},
		{`''`, []string{""}, false},
		{"", nil, false},
		{"a 'b", nil, true},
		{`a "b`, nil, true},
	}
	for _, tt := range tests {
		got, err := SplitCommand(tt.line)
		if (err != nil) != tt.err || !slices.Equal(got, tt.want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", tt.line, got, err, tt.want)
		}
	}
}
