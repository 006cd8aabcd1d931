package netlab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-ci/sluice/internal/pkgtest"
)

// TestMain doubles as the client the tests run inside a node: with
// NETLAB_TEST_DIAL set, the test binary dials that address, prints what
// the server said, and exits.
func TestMain(m *testing.M) {
	if addr := os.Getenv("NETLAB_TEST_DIAL"); addr != "" {
		os.Exit(dial(addr))
	}
	if os.Getenv("NETLAB_TEST_ABANDON") != "" {
		os.Exit(abandon())
	}
	os.Exit(m.Run())
}

func dial(addr string) int {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Print(line)
	return 0
}

// abandon creates a lab and exits without closing it, as a killed worker
// would.
func abandon() int {
	lab, err := New(context.Background(), nil, []string{"left"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(lab.ID)
	return 0
}

// needRoot skips a test that needs namespaces, except under CI=true.
func needRoot(t *testing.T) {
	t.Helper()
	pkgtest.NeedTool(t, "ip")
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("network namespaces need root, and CI runs as root")
		}
		t.Skip("network namespaces need root")
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// inNamespace runs f on an OS thread moved into the namespace at path; the
// thread is thrown away afterwards (the goroutine exits locked).
func inNamespace(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

func TestTwoNodesTalk(t *testing.T) {
	t.Parallel()
	needRoot(t)
	lab, err := New(t.Context(), discard(), []string{"server", "client"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Error(err)
		}
	})
	server, _ := lab.Node("server")
	client, _ := lab.Node("client")
	if !lab.Subnet.Contains(server.Addr) || !lab.Subnet.Contains(client.Addr) || server.Addr == client.Addr {
		t.Fatalf("addresses %v %v outside %v", server.Addr, client.Addr, lab.Subnet)
	}
	if server.Path != "/run/netns/"+server.Namespace {
		t.Fatalf("path %s", server.Path)
	}
	hosts := string(lab.Hosts())
	if !strings.Contains(hosts, server.Addr.String()+"\tserver\n") || !strings.Contains(hosts, client.Addr.String()+"\tclient\n") {
		t.Fatalf("hosts:\n%s", hosts)
	}

	// The server listens inside its node, on its lab address.
	var ln net.Listener
	err = inNamespace(server.Path, func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(server.Addr, 0).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			peer <- err.Error()
			return
		}
		defer c.Close()
		fmt.Fprintf(c, "hello from %s\n", server.Name)
		peer <- c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().String()
	}()

	// The client is this test binary re-run inside the other node.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := client.Command(t.Context(), exe)
	cmd.Env = []string{"NETLAB_TEST_DIAL=" + ln.Addr().String()}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client: %v: %s", err, out)
	}
	if string(out) != "hello from server\n" {
		t.Fatalf("client read %q", out)
	}
	if from := <-peer; from != client.Addr.String() {
		t.Fatalf("server saw a connection from %s, want the client node %s", from, client.Addr)
	}

	// The host's namespace has no way into the lab: its routes do not
	// cover the subnet (chooseSubnet), and the client's address is not
	// one of the host's.
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && lab.Subnet.Overlaps(p) {
			t.Fatalf("host address %s is in the lab subnet %s", a, lab.Subnet)
		}
	}
}

func TestCloseLeavesNothing(t *testing.T) {
	t.Parallel()
	needRoot(t)
	before := hostLinks(t)
	lab, err := New(t.Context(), discard(), []string{"a", "b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := Namespaces(t.Context(), lab.ID)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ns)
	want := []string{"sluice-" + lab.ID, "sluice-" + lab.ID + "-a", "sluice-" + lab.ID + "-b", "sluice-" + lab.ID + "-c"}
	if !slices.Equal(ns, want) {
		t.Fatalf("namespaces %v, want %v", ns, want)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	if err := lab.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	checkGone(t, lab.ID, before)
}

// TestFailedNewCleansUp makes New fail half-way (the third namespace's name
// is taken) and checks it removed what it had made, and only that.
func TestFailedNewCleansUp(t *testing.T) {
	t.Parallel()
	needRoot(t)
	before := hostLinks(t)
	id := fmt.Sprintf("t%07x", time.Now().UnixNano()&0xfffffff)
	taken := "sluice-" + id + "-b"
	if out, err := exec.CommandContext(t.Context(), "ip", "netns", "add", taken).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", taken).Run() })
	_, err := newLab(t.Context(), discard(), id, []string{"a", "b"})
	if err == nil || !strings.Contains(err.Error(), "netns add "+taken) {
		t.Fatalf("error %v, want the failed netns add", err)
	}
	ns, err := Namespaces(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ns, []string{taken}) {
		t.Fatalf("namespaces left %v, want only the one the lab did not create (%s)", ns, taken)
	}
	if out, err := exec.Command("ip", "netns", "delete", taken).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	checkGone(t, id, before)
}

// TestCancelledContext: a lab whose context ends still closes fully.
func TestCancelledContext(t *testing.T) {
	t.Parallel()
	needRoot(t)
	ctx, cancel := context.WithCancel(t.Context())
	lab, err := New(ctx, discard(), []string{"x"})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	checkGone(t, lab.ID, nil)
}

func TestNames(t *testing.T) {
	t.Parallel()
	for _, bad := range [][]string{nil, {"A"}, {"a_b"}, {"-a"}, {"a-"}, {"a", "a"}, {strings.Repeat("a", 33)}, {"a/../b"}} {
		if err := checkNames(bad); err == nil {
			t.Errorf("names %q accepted", bad)
		}
	}
	if err := checkNames([]string{"db", "web-1", "x", strings.Repeat("a", 32)}); err != nil {
		t.Error(err)
	}
}

func hostLinks(t *testing.T) []string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	return names
}

func checkGone(t *testing.T, id string, before []string) {
	t.Helper()
	ns, err := Namespaces(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) > 0 {
		t.Errorf("namespaces left behind: %v", ns)
	}
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "sluice-"+id) {
			t.Errorf("%s/%s left behind", netnsDir, e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(ownerDir, id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("owner record of lab %s left behind (%v)", id, err)
	}
	if before == nil {
		return
	}
	// The lab never creates a link in the host's namespace: no br0, p<N>
	// or eth0 peer may appear there.
	for _, name := range hostLinks(t) {
		if !slices.Contains(before, name) && (name == "br0" || strings.HasPrefix(name, "p") && len(name) <= 4) {
			t.Errorf("link %s appeared in the host namespace", name)
		}
	}
}

func TestSweep(t *testing.T) {
	t.Parallel()
	needRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), exe)
	cmd.Env = []string{"NETLAB_TEST_ABANDON=1", "PATH=" + os.Getenv("PATH")}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("abandoning a lab: %v", err)
	}
	dead := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		for _, name := range []string{"sluice-" + dead, "sluice-" + dead + "-left"} {
			_ = exec.Command("ip", "netns", "delete", name).Run()
		}
	})
	if ns, _ := Namespaces(t.Context(), dead); len(ns) != 2 {
		t.Fatalf("the abandoned lab %s has namespaces %v", dead, ns)
	}

	live, err := New(t.Context(), discard(), []string{"alive"})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()

	swept, err := Sweep(t.Context(), discard())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(swept, dead) || slices.Contains(swept, live.ID) {
		t.Fatalf("swept %v: want %s and not %s", swept, dead, live.ID)
	}
	checkGone(t, dead, nil)
	if _, err := os.Stat(filepath.Join(ownerDir, dead)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("owner record of %s left: %v", dead, err)
	}
	if ns, _ := Namespaces(t.Context(), live.ID); len(ns) != 2 {
		t.Fatalf("sweep touched the live lab: %v", ns)
	}
	if err := live.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(ownerDir, live.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left the owner record: %v", err)
	}
}
