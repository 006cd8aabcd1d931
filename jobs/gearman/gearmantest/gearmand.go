// Package gearmantest runs a real gearmand (Debian's gearman-job-server)
// on a free loopback port for tests and benchmarks.
package gearmantest

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
	"sync"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/proc"
)

// Server is a running gearmand.
type Server struct {
	// Addr is 127.0.0.1:PORT.
	Addr string
	dir  string
	port int

	mu     sync.Mutex
	cancel context.CancelFunc
	exited chan error
	stderr *bytes.Buffer
}

// Start runs gearmand on a free loopback port, its log under dir.
func Start(dir string) (*Server, error) {
	if _, err := exec.LookPath("gearmand"); err != nil {
		return nil, err
	}
	for try := 0; ; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir, port: port}
		err = s.start()
		if err == nil {
			return s, nil
		}
		if try >= 3 {
			return nil, err
		}
	}
}

func (s *Server) start() error {
	bin, err := exec.LookPath("gearmand")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := proc.Command(ctx, bin, "--listen=127.0.0.1", "--port="+strconv.Itoa(s.port),
		"--log-file="+filepath.Join(s.dir, "gearmand.log"), "--verbose=WARNING", "--threads=2")
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		cancel()
		return fmt.Errorf("start gearmand: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.mu.Lock()
	s.cancel, s.exited, s.stderr = cancel, exited, stderr
	s.mu.Unlock()
	for range 500 {
		if c, err := net.Dial("tcp", s.Addr); err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-exited:
			exited <- err
			cancel()
			return fmt.Errorf("gearmand on %s exited: %v: %s", s.Addr, err, stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	s.Stop()
	return fmt.Errorf("gearmand on %s did not start: %s", s.Addr, stderr)
}

// Stop kills gearmand (its process group) and waits for it.
func (s *Server) Stop() {
	s.mu.Lock()
	cancel, exited := s.cancel, s.exited
	s.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	err := <-exited
	exited <- err
}

// Restart kills gearmand and starts it again on the same port: its
// queue is lost, as after a crash.
func (s *Server) Restart() error {
	s.Stop()
	var err error
	for range 50 {
		if err = s.start(); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// New starts a gearmand for the test and stops it when the test ends. A
// missing gearmand skips the test, or fails it under CI=true.
func New(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("gearmand"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("gearmand not found (Debian package gearman-job-server)")
		}
		t.Skip("gearmand not found (Debian package gearman-job-server)")
	}
	s, err := Start(t.TempDir())
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			t.Skip("gearmand not found")
		}
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}
