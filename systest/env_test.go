package systest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/pkgtest"
	"github.com/sluice-ci/sluice/systest/netlab"
)

// testSpec is the base every test of the package uses: one base for DEB
// and RPM, so that the first `go test` prepares one (about 20-40 s with a
// near mirror).
var testSpec = BaseSpec{Name: "sluice-test", Suite: "bookworm", RPM: true}

// testCacheDir is where tests keep prepared bases, outside the repository
// and between runs: $SLUICE_TEST_CACHE, or sluice-test under the user's
// cache directory.
func testCacheDir(t testing.TB) string {
	if d := os.Getenv("SLUICE_TEST_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(d, "sluice-test")
}

var baseOnce struct {
	sync.Mutex
	b   Base
	err error
}

// needBase returns the prepared test base, preparing it on first use.
func needBase(t testing.TB) Base {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("environments need root, and CI runs as root")
		}
		t.Skip("environments need root")
	}
	for _, tool := range []string{"mmdebstrap", "unshare", "nsenter", "ip", "mount"} {
		pkgtest.NeedTool(t, tool)
	}
	baseOnce.Lock()
	defer baseOnce.Unlock()
	if baseOnce.b.Dir == "" && baseOnce.err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		start := time.Now()
		baseOnce.b, baseOnce.err = NewBases(testCacheDir(t), testLog()).Prepare(ctx, testSpec, false)
		t.Logf("base %s ready in %s", testSpec.Name, time.Since(start).Round(time.Millisecond))
	}
	if baseOnce.err != nil {
		t.Fatal(baseOnce.err)
	}
	return baseOnce.b
}

func testLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// nsIDs are the namespaces of a running environment, as links of /proc.
type nsIDs map[string]string

// envNamespaces returns the namespaces of e and holds each open until
// the test ends: a namespace freed could otherwise get its number again
// for another test's environment, and look leaked.
func envNamespaces(t *testing.T, e *ChrootEnv) nsIDs {
	t.Helper()
	ids := nsIDs{}
	for _, ns := range []string{"pid_for_children", "mnt", "net", "uts", "ipc"} {
		p := "/proc/" + strconv.Itoa(e.InitPID()) + "/ns/" + ns
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		l, err := os.Readlink(p)
		if err != nil {
			t.Fatal(err)
		}
		ids[ns] = l
	}
	self, _ := os.Readlink("/proc/self/ns/net")
	if ids["net"] == self {
		t.Fatal("the environment shares the host's network namespace")
	}
	return ids
}

// checkNoLeaks checks that nothing of a closed environment is left: no
// process in its namespaces, no mount naming its directory, no
// directory.
func checkNoLeaks(t *testing.T, ids nsIDs, dir string) {
	t.Helper()
	procs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		for ns, id := range ids {
			if ns == "pid_for_children" {
				ns = "pid"
			}
			if l, err := os.Readlink("/proc/" + p.Name() + "/ns/" + ns); err == nil && l == id {
				stat, _ := os.ReadFile("/proc/" + p.Name() + "/stat")
				t.Errorf("process %s (%s) is left in the environment's %s namespace", p.Name(), stat, ns)
			}
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), dir) {
		t.Errorf("mounts left:\n%s", mi)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s left: %v", dir, err)
	}
}

func runOut(t *testing.T, e Env, args ...string) string {
	t.Helper()
	out, err := Output(t.Context(), e, time.Minute, args...)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return string(out)
}

func TestEnv(t *testing.T) {
	t.Parallel()
	b := needBase(t)
	for _, copyMode := range []bool{false, true} {
		name := "overlay"
		if copyMode {
			name = "copy"
		}
		t.Run(name, func(t *testing.T) {
			c := NewChroot(t.TempDir(), testLog())
			c.NoOverlay = copyMode
			start := time.Now()
			hostFile := filepath.Join(t.TempDir(), "data")
			if err := os.WriteFile(hostFile, []byte("from the host\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			e, err := c.StartChroot(t.Context(), EnvOptions{Base: b, Hostname: "node-1.sluice.test",
				Mounts: []Mount{{Source: filepath.Dir(hostFile), Target: "/srv/host", ReadOnly: true}},
				Files:  []File{{Path: "/etc/sluice/hello", Data: []byte("hi\n")}}})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("started in %s (overlay %v)", time.Since(start).Round(time.Microsecond), e.Overlay())
			if e.Overlay() == copyMode {
				t.Fatalf("overlay = %v", e.Overlay())
			}
			ids := envNamespaces(t, e)
			dir := e.Dir()
			if got := runOut(t, e, "cat", "/proc/1/cmdline"); got != "/bin/sleep\x00infinity\x00" {
				t.Errorf("PID 1 is %q", got)
			}
			if got := runOut(t, e, "ls", "/dev/pts"); !strings.Contains(got, "ptmx") {
				t.Errorf("/dev/pts: %q", got)
			}
			if got := runOut(t, e, "cat", "/proc/sys/kernel/hostname"); got != "node-1.sluice.test\n" {
				t.Errorf("host name %q", got)
			}
			if h, _ := os.Hostname(); h == "node-1.sluice.test" {
				t.Error("the host's name was changed")
			}
			if got := runOut(t, e, "cat", "/srv/host/data", "/etc/sluice/hello"); got != "from the host\nhi\n" {
				t.Errorf("mount and file: %q", got)
			}
			if err := e.Run(t.Context(), Command{Args: []string{"touch", "/srv/host/x"}}); err == nil {
				t.Error("a read-only mount was written")
			}
			// Interfaces: loopback alone, and up.
			if got := runOut(t, e, "cat", "/proc/net/dev"); strings.Count(got, ":") != 1 || !strings.Contains(got, "lo:") {
				t.Errorf("interfaces:\n%s", got)
			}
			runOut(t, e, "touch", "/root/made-here")
			if _, err := os.Stat(filepath.Join(b.Root(), "root/made-here")); err == nil {
				t.Fatal("the environment wrote into its base")
			}
			var in bytes.Buffer
			in.WriteString("stdin reaches the command\n")
			var out bytes.Buffer
			if err := e.Run(t.Context(), Command{Args: []string{"cat"}, Stdin: &in, Stdout: &out, Dir: "/tmp"}); err != nil || out.String() != "stdin reaches the command\n" {
				t.Errorf("stdin: %q %v", out.String(), err)
			}
			for dir, want := range map[string]string{"": "/\n", "/usr/share": "/usr/share\n"} {
				var pwd bytes.Buffer
				if err := e.Run(t.Context(), Command{Args: []string{"/bin/pwd", "-P"}, Dir: dir, Stdout: &pwd}); err != nil || pwd.String() != want {
					t.Errorf("working directory %q: %q %v", dir, pwd.String(), err)
				}
			}
			err = e.Run(t.Context(), Command{Args: []string{"false"}})
			var exit *ExitError
			if !errors.As(err, &exit) || exit.Code != 1 {
				t.Errorf("false: %v", err)
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			checkNoLeaks(t, ids, dir)
		})
	}
}

// TestEnvTimeout runs a command that hangs and leaves a process in a
// session of its own: the time limit kills both, and the environment.
func TestEnvTimeout(t *testing.T) {
	t.Parallel()
	b := needBase(t)
	e, err := NewChroot(t.TempDir(), testLog()).StartChroot(t.Context(), EnvOptions{Base: b})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ids := envNamespaces(t, e)
	err = e.Run(t.Context(), Command{Args: []string{"/bin/sh", "-c", "setsid sleep 1000 & exec sleep 1000"}, Timeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("hung command: %v", err)
	}
	if err := e.Run(t.Context(), Command{Args: []string{"true"}}); !errors.Is(err, ErrDead) {
		t.Fatalf("after the timeout: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoLeaks(t, ids, e.Dir())
}

// TestEnvEscape tries what a hostile maintainer script might: each
// attempt fails or stays inside.
func TestEnvEscape(t *testing.T) {
	t.Parallel()
	b := needBase(t)
	e, err := NewChroot(t.TempDir(), testLog()).StartChroot(t.Context(), EnvOptions{Base: b})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ids := envNamespaces(t, e)
	marker := "sluice-escape-" + strconv.Itoa(os.Getpid())
	hostPath := filepath.Join(os.TempDir(), marker)
	defer os.Remove(hostPath)
	for _, c := range []struct {
		name   string
		args   []string
		inside bool // may succeed: it stays inside
	}{
		{"mount", []string{"unshare", "--mount", "true"}, false},
		{"chroot", []string{"chroot", "/", "true"}, false},
		{"mknod", []string{"mknod", "/root/disk", "b", "254", "0"}, false},
		{"sysrq", []string{"/bin/sh", "-c", "echo h > /proc/sysrq-trigger"}, false},
		{"sysctl", []string{"/bin/sh", "-c", "echo 1 > /proc/sys/vm/drop_caches"}, false},
		{"hostname", []string{"/bin/sh", "-c", "echo escaped > /proc/sys/kernel/hostname"}, false},
		{"proc-1-root", []string{"/bin/sh", "-c", "echo x > /proc/1/root" + hostPath}, true},
		{"kill-all", []string{"/bin/sh", "-c", "kill -9 -1"}, true}, // the namespace's processes, not the host's
	} {
		err := e.Run(t.Context(), Command{Args: c.args, Timeout: 30 * time.Second})
		t.Logf("%s: %v", c.name, err)
		var exit *ExitError
		if !c.inside && !errors.As(err, &exit) {
			t.Errorf("%s: %v, want a refusal", c.name, err)
		}
	}
	if _, err := os.Stat(hostPath); err == nil {
		t.Error("a write through /proc/1/root reached the host")
	}
	if h, _ := os.Hostname(); h == "escaped" {
		t.Error("the host's name was changed")
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoLeaks(t, ids, e.Dir())
}

// TestEnvKeepResume keeps an environment, enters it again with its
// files, and removes it.
func TestEnvKeepResume(t *testing.T) {
	t.Parallel()
	b := needBase(t)
	for _, copyMode := range []bool{false, true} {
		t.Run(map[bool]string{false: "overlay", true: "copy"}[copyMode], func(t *testing.T) {
			t.Parallel()
			c := NewChroot(t.TempDir(), testLog())
			c.NoOverlay = copyMode
			testKeepResume(t, c, b)
		})
	}
}

func testKeepResume(t *testing.T, c *Chroot, b Base) {
	e, err := c.StartChroot(t.Context(), EnvOptions{Base: b, Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	runOut(t, e, "/bin/sh", "-c", "echo kept > /root/state")
	id := e.ID()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	kept, err := c.Kept()
	if err != nil || len(kept) != 1 || kept[id].IsZero() {
		t.Fatalf("kept: %v %v", kept, err)
	}
	r, err := c.Resume(t.Context(), id, EnvOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ids := envNamespaces(t, r)
	if got := runOut(t, r, "cat", "/root/state"); got != "kept\n" {
		t.Errorf("resumed: %q", got)
	}
	if err := c.Remove(t.Context(), id); err == nil {
		t.Error("an environment in use was removed")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	checkNoLeaks(t, ids, r.Dir())
	if _, err := c.Resume(t.Context(), "../etc", EnvOptions{}); err == nil {
		t.Error("a path was taken for an environment ID")
	}
}

// TestEnvNamedNetNS runs an environment in a network namespace made
// with ip netns, as multi-node tests hand them over: it is joined, not
// made, and outlives the environment.
func TestEnvNamedNetNS(t *testing.T) {
	t.Parallel()
	b := needBase(t)
	name := "sluice-systest-" + strconv.Itoa(os.Getpid())
	hostRun(t, "", "ip", "netns", "add", name)
	defer hostRun(t, "", "ip", "netns", "delete", name)
	hostRun(t, "", "ip", "-n", name, "link", "add", "sl0", "type", "veth", "peer", "name", "sl1")
	e, err := NewChroot(t.TempDir(), testLog()).StartChroot(t.Context(), EnvOptions{Base: b, NetNS: "/run/netns/" + name})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got := runOut(t, e, "cat", "/proc/net/dev"); !strings.Contains(got, "sl0:") {
		t.Errorf("the environment is not in %s:\n%s", name, got)
	}
	ids := envNamespaces(t, e)
	delete(ids, "net") // the named namespace is the caller's
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoLeaks(t, ids, e.Dir())
	if _, err := os.Stat("/run/netns/" + name); err != nil {
		t.Errorf("the named namespace went with the environment: %v", err)
	}
	if _, err := NewChroot(t.TempDir(), testLog()).StartChroot(t.Context(), EnvOptions{Base: b, NetNS: "/run/netns/none-such"}); err == nil {
		t.Error("a missing namespace was accepted")
	}
}

// TestEnvResumeLinks resumes a kept environment whose /tmp a package
// replaced with a link to the host's /etc: the mount is refused, not made
// on the host.
func TestEnvResumeLinks(t *testing.T) {
	t.Parallel()
	b := needBase(t)
	c := NewChroot(t.TempDir(), testLog())
	e, err := c.StartChroot(t.Context(), EnvOptions{Base: b, Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	id := e.ID()
	e.Close()
	upper := filepath.Join(e.Dir(), "upper")
	os.RemoveAll(filepath.Join(upper, "tmp"))
	if err := os.Symlink("/etc", filepath.Join(upper, "tmp")); err != nil {
		t.Fatal(err)
	}
	r, err := c.Resume(t.Context(), id, EnvOptions{})
	if err == nil {
		r.Close()
		t.Fatal("a mount point that is a link was used")
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(l); len(f) > 4 && (f[4] == "/etc" || strings.HasPrefix(f[4], e.Dir())) {
			t.Errorf("mount left: %s", l)
		}
	}
	if err := c.Remove(t.Context(), id); err != nil {
		t.Fatal(err)
	}
}

// TestEnvBackground starts a server in the background and talks to it
// over the environment's loopback; closing the environment ends it.
func TestEnvBackground(t *testing.T) {
	t.Parallel()
	b := needBase(t)
	e, err := NewChroot(t.TempDir(), testLog()).StartChroot(t.Context(), EnvOptions{Base: b})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ids := envNamespaces(t, e)
	var out bytes.Buffer
	// A server of the base's own: python3 (dnf's) listens on loopback.
	if err := e.Run(t.Context(), Command{Args: []string{"python3", "-m", "http.server", "--bind", "127.0.0.1", "8080", "--directory", "/etc"},
		Background: true, Stderr: &out}); err != nil {
		t.Fatal(err)
	}
	var got string
	for i := 0; i < 200 && !strings.Contains(got, "debian_version"); i++ {
		o, _ := Output(t.Context(), e, 10*time.Second, "python3", "-c", "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:8080/').read().decode())")
		got = string(o)
		if !strings.Contains(got, "debian_version") {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !strings.Contains(got, "debian_version") {
		t.Fatalf("the background server did not answer: %q\n%s", got, out.String())
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoLeaks(t, ids, e.Dir())
}

// TestEnvTwoNodes runs two environments in a lab's network (package
// netlab): a server on one node answers a client on the other, by name.
func TestEnvTwoNodes(t *testing.T) {
	t.Parallel()
	b := needBase(t)
	lab, err := netlab.New(t.Context(), testLog(), []string{"server", "client"})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	c := NewChroot(t.TempDir(), testLog())
	envs := map[string]*ChrootEnv{}
	for _, name := range []string{"server", "client"} {
		n, _ := lab.Node(name)
		e, err := c.StartChroot(t.Context(), EnvOptions{Base: b, NetNS: n.Path, Hostname: name,
			Files: []File{{Path: "/etc/hosts", Data: lab.Hosts()}}})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		envs[name] = e
	}
	if err := envs["server"].Run(t.Context(), Command{Args: []string{"python3", "-m", "http.server", "--bind", "0.0.0.0", "8080", "--directory", "/etc"},
		Background: true}); err != nil {
		t.Fatal(err)
	}
	var got string
	for i := 0; i < 200 && !strings.Contains(got, "debian_version"); i++ {
		o, _ := Output(t.Context(), envs["client"], 10*time.Second, "python3", "-c",
			"import urllib.request;print(urllib.request.urlopen('http://server:8080/', timeout=5).read().decode())")
		if got = string(o); !strings.Contains(got, "debian_version") {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !strings.Contains(got, "debian_version") {
		t.Fatalf("the client did not reach the server: %q", got)
	}
	ids := []nsIDs{envNamespaces(t, envs["server"]), envNamespaces(t, envs["client"])}
	for i, name := range []string{"server", "client"} {
		delete(ids[i], "net") // the lab's
		if err := envs[name].Close(); err != nil {
			t.Fatal(err)
		}
		checkNoLeaks(t, ids[i], envs[name].Dir())
	}
}

// TestEnvProxy fetches through the environment's proxy from a server on
// the host's loopback, which the environment cannot reach itself; a host
// not allowed is refused.
func TestEnvProxy(t *testing.T) {
	t.Parallel()
	b := needBase(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "from the host's mirror "+r.URL.Path)
	}))
	defer srv.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "secret") }))
	defer other.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	e, err := NewChroot(t.TempDir(), testLog()).StartChroot(t.Context(), EnvOptions{Base: b, Proxy: &Proxy{Allow: []string{host}}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ids := envNamespaces(t, e)
	fetch := func(url string, proxy bool) (string, error) {
		env := slices.Clone(DefaultEnv)
		if proxy {
			env = append(env, "http_proxy=http://"+ProxyAddr)
		}
		var out bytes.Buffer
		err := e.Run(t.Context(), Command{Args: []string{"python3", "-c",
			"import sys,urllib.request;print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())", url},
			Env: env, Stdout: &out, Timeout: time.Minute})
		return out.String(), err
	}
	if got, err := fetch(srv.URL+"/pool/x.deb", true); err != nil || got != "from the host's mirror /pool/x.deb\n" {
		t.Errorf("through the proxy: %q %v", got, err)
	}
	if got, err := fetch(other.URL+"/", true); err == nil || strings.Contains(got, "secret") {
		t.Errorf("a host not allowed: %q %v", got, err)
	}
	if got, err := fetch(srv.URL+"/", false); err == nil {
		t.Errorf("the host's loopback reached without the proxy: %q", got)
	}
	if got := runOut(t, e, "cat", proxyAPTConf); !strings.Contains(got, ProxyAddr) {
		t.Errorf("apt's proxy: %q", got)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoLeaks(t, ids, e.Dir())
}
