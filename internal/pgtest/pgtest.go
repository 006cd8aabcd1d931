// Package pgtest starts throwaway PostgreSQL servers for tests, from the
// server binaries of Debian's postgresql-NN package (the newest version
// under /usr/lib/postgresql, else initdb and postgres from PATH).
//
// [Start] starts a cluster of its own and stops it when its test ends. A
// cluster takes a second or two to start, so a test that needs several
// databases calls Start once and gives each subtest an empty database of
// its own with [NewDatabase]:
//
//	func TestX(t *testing.T) {
//		cluster := pgtest.Start(t)
//		t.Run("a", func(t *testing.T) {
//			t.Parallel()
//			dsn := pgtest.NewDatabase(t, cluster)
//			...
//		})
//	}
//
// There is no cluster shared by the whole test binary: without a TestMain of
// the calling package nothing would stop it, and one start costs under a
// second.
//
// The cluster lives in a directory made by [os.MkdirTemp] (under $TMPDIR),
// not in t.TempDir(), whose parents the user postgres could not enter when
// the test runs as root. Should the test binary die without running its
// cleanups (kill -9), the kernel kills the server with it (Pdeathsig), but
// the directory stays.
//
// A test whose machine lacks PostgreSQL is skipped, except under CI=true,
// where it fails. On Debian the packages are postgresql-15 (or
// postgresql, which depends on the current version) with
// postgresql-common, which makes the user postgres.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sluice-ci/sluice/internal/proc"
)

// Bounds on the server's start and stop.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
	initTimeout  = 2 * time.Minute
)

// readyLine is what the postmaster logs once it accepts connections.
const readyLine = "database system is ready to accept connections"

// Start starts an empty PostgreSQL cluster in a temporary directory,
// listening on a free port of 127.0.0.1 only, with a superuser postgres who
// needs no password and fsync off; it is stopped and removed when t ends.
// Start returns the DSN of the cluster's database postgres. When euid is 0,
// initdb and postgres run as the user postgres, as PostgreSQL refuses to
// run as root.
func Start(t testing.TB) (dsn string) {
	t.Helper()
	bin := findBin(t)
	cred := credential(t)

	base, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the server has stopped.
	t.Cleanup(func() { os.RemoveAll(base) })
	if cred != nil {
		if err := os.Chown(base, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(base, "data")

	ctx, cancel := context.WithTimeout(t.Context(), initTimeout)
	defer cancel()
	initdb := command(ctx, base, cred, filepath.Join(bin, "initdb"),
		"--pgdata="+data, "--username=postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}

	// The port is free when looked at; another process may take it before
	// the server binds it, so a bind failure is tried again.
	for attempt := 1; ; attempt++ {
		port := freePort(t)
		err := startServer(t, bin, base, data, port, cred)
		if err == nil {
			return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
		}
		if !errors.Is(err, errBind) || attempt == 3 {
			t.Fatalf("pgtest: %v", err)
		}
	}
}

// NewDatabase creates an empty database in the cluster of dsn, a DSN that
// [Start] returned, and returns its DSN. The database goes with the
// cluster.
func NewDatabase(t testing.TB, dsn string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	var b [8]byte
	rand.Read(b[:])
	name := "test_" + hex.EncodeToString(b[:])
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// findBin returns the directory of initdb and postgres.
func findBin(t testing.TB) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// The newest version first: "9.6" < "15" < "16".
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(a)), 64)
		vb, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(b)), 64)
		return -cmpFloat(va, vb)
	})
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d
		}
	}
	missing(t, "postgresql not found (no /usr/lib/postgresql/*/bin/{initdb,postgres}, no initdb in PATH)")
	return ""
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// credential returns the user the server runs as: nil for the current one,
// postgres when that is root.
func credential(t testing.TB) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		missing(t, "postgresql not found: running as root and there is no user postgres to run it as (%v)", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("pgtest: user postgres: %v", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// missing skips t, or fails it under CI=true, where every tool the tests
// use is expected.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// command returns a command in its own process group, in dir, with a clean
// environment, run as cred when that is not nil.
func command(ctx context.Context, dir string, cred *syscall.Credential, name string, args ...string) *exec.Cmd {
	cmd := proc.Command(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "TZ=UTC"}
	cmd.SysProcAttr.Credential = cred
	return cmd
}

// errBind says that the server could not listen on its port.
var errBind = errors.New("port taken")

// server is a running postmaster.
type server struct {
	cmd    *exec.Cmd
	log    *logWatch
	cancel context.CancelFunc // kills the process group
	exited chan struct{}      // closed when cmd.Wait returns
}

// startServer starts postgres and waits until it accepts connections; t's
// cleanup stops it.
func startServer(t testing.TB, bin, base, data string, port int, cred *syscall.Credential) error {
	t.Helper()
	// Not t.Context(): that ends before the cleanups run, and the server is
	// to be stopped with SIGINT first.
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{log: newLogWatch(), cancel: cancel, exited: make(chan struct{})}
	// A socket path longer than sun_path (108 bytes) stops the server; TCP
	// is enough for the tests.
	socketDir := base
	if len(base)+len("/.s.PGSQL.65535") >= 108 {
		socketDir = ""
	}
	s.cmd = command(ctx, base, cred, filepath.Join(bin, "postgres"),
		"-D", data,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+socketDir,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=300",
		"-c", "logging_collector=off",
	)
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	// Should the test binary die without its cleanups, the server goes too.
	s.cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := s.cmd.Start(); err != nil {
		cancel()
		return fmt.Errorf("start postgres: %w", err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case <-s.log.ready:
		t.Cleanup(func() { s.stop(t) })
		return nil
	case <-s.exited:
		cancel()
		tail := s.log.tail()
		if strings.Contains(tail, "could not bind") || strings.Contains(tail, "Address already in use") {
			return fmt.Errorf("postgres on port %d: %w\n%s", port, errBind, tail)
		}
		return fmt.Errorf("postgres exited before it accepted connections: %v\n%s", s.cmd.ProcessState, tail)
	case <-timer.C:
		s.stop(t)
		return fmt.Errorf("postgres did not accept connections within %v\n%s", startTimeout, s.log.tail())
	}
}

// stop asks the server for a fast shutdown (SIGINT), and kills its process
// group if it has not stopped in time.
func (s *server) stop(t testing.TB) {
	defer s.cancel()
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-s.exited:
	case <-timer.C:
		t.Logf("pgtest: postgres did not stop within %v; killed", stopTimeout)
		s.cancel()
		<-s.exited
	}
	if t.Failed() {
		t.Logf("pgtest: postgres log:\n%s", s.log.tail())
	}
}

// logWatch keeps the last lines of the server's log and tells when the
// server is ready.
type logWatch struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
	ready   chan struct{}
	isReady bool
}

const keepLines = 200

func newLogWatch() *logWatch { return &logWatch{ready: make(chan struct{})} }

func (w *logWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := string(w.partial[:i])
		w.partial = w.partial[i+1:]
		w.lines = append(w.lines, line)
		if len(w.lines) > keepLines {
			w.lines = w.lines[len(w.lines)-keepLines:]
		}
		if !w.isReady && strings.Contains(line, readyLine) {
			w.isReady = true
			close(w.ready)
		}
	}
	return len(p), nil
}

func (w *logWatch) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n") + string(w.partial)
}

// Store is one of the two databases sluice's store runs on, for tests
// that run on both.
type Store struct {
	Name string
	// DSN makes a fresh database for t and returns its DSN.
	DSN func(t *testing.T) string
}

// Stores are SQLite (a file in a temporary directory) and PostgreSQL (a
// fresh database of a throwaway cluster, or a skip naming what is
// missing, as Start does).
var Stores = []Store{
	{"sqlite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "sluice.db") }},
	{"postgres", func(t *testing.T) string { return NewDatabase(t, Start(t)) }},
}
