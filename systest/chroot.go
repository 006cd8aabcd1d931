package systest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-ci/sluice/internal/proc"
)

// Chroot is the back-end of environments entered with namespaces on
// this machine (see the package documentation).
type Chroot struct {
	workDir string
	log     *slog.Logger
	// NoOverlay makes environments copies of their base even where
	// overlayfs mounts (to test and measure the fallback).
	NoOverlay bool
}

var _ Backend = (*Chroot)(nil)

// NewChroot returns the back-end; environments' directories go under
// workDir.
func NewChroot(workDir string, log *slog.Logger) *Chroot {
	return &Chroot{workDir: workDir, log: log}
}

// ChrootEnv is a running chroot environment.
type ChrootEnv struct {
	id      string
	dir     string // upper/, work/, root/
	changes string // the directory that holds the changes: upper/, or root/ for a copy
	base    Base
	overlay bool
	keep    bool
	resumed bool
	log     *slog.Logger

	holder  *exec.Cmd // unshare: holds the namespaces
	initPID int       // the namespace's PID 1, as the host sees it
	initFD  int       // a pidfd of it: signals never reach a reused PID
	done    chan struct{}
	unlock  func() // the base's shared lock

	bg    sync.WaitGroup // background commands' nsenter
	proxy *proxyServer

	mu     sync.Mutex
	dead   bool
	closed bool
	cerr   error
}

var _ Env = (*ChrootEnv)(nil)

// startTimeout bounds how long an environment takes to start.
const startTimeout = 30 * time.Second

// Start starts an environment on opts.Base.
func (c *Chroot) Start(ctx context.Context, opts EnvOptions) (Env, error) {
	return c.StartChroot(ctx, opts)
}

// StartChroot is Start, returning the concrete environment.
func (c *Chroot) StartChroot(ctx context.Context, opts EnvOptions) (*ChrootEnv, error) {
	b := opts.Base
	if b.Dir == "" {
		return nil, errors.New("chroot: no base")
	}
	for _, m := range opts.Mounts {
		if err := checkEnvPath(m.Target); err != nil {
			return nil, fmt.Errorf("chroot: mount %s: %w", m.Target, err)
		}
	}
	for _, f := range opts.Files {
		if err := checkEnvPath(f.Path); err != nil {
			return nil, fmt.Errorf("chroot: file %s: %w", f.Path, err)
		}
	}
	if err := os.MkdirAll(c.workDir, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lockFile(ctx, b.Dir+".lock", lockShared, true)
	if err != nil {
		return nil, fmt.Errorf("chroot: base %s: %w", b.Spec.Name, err)
	}
	// Held now, it cannot go; it may have gone while we waited (pruned).
	if _, err := os.Stat(filepath.Join(b.Dir, metaFile)); err != nil {
		unlock()
		return nil, fmt.Errorf("chroot: base %s: %w", b.Spec.Name, err)
	}
	dir, err := os.MkdirTemp(c.workDir, "env-")
	if err != nil {
		unlock()
		return nil, err
	}
	e := &ChrootEnv{id: filepath.Base(dir), dir: dir, base: b, keep: opts.Keep, log: c.log, done: make(chan struct{}), unlock: unlock}
	if err := e.start(ctx, c, opts, false); err != nil {
		e.Close()
		return nil, fmt.Errorf("chroot %s: %w", e.id, err)
	}
	return e, nil
}

// envRecord is what an environment's directory says of it (env.json),
// so that a kept one can be entered again.
type envRecord struct {
	Base    string    `json:"base"` // the base's directory
	Overlay bool      `json:"overlay"`
	Created time.Time `json:"created"`
}

// recordFile is the name of an environment's record in its directory.
const recordFile = "env.json"

// ParseEnvRecord reads an environment's record.
func ParseEnvRecord(data []byte) (base string, overlay bool, err error) {
	var r envRecord
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return "", false, fmt.Errorf("environment record: %w", err)
	}
	if !filepath.IsAbs(r.Base) || filepath.Clean(r.Base) != r.Base {
		return "", false, fmt.Errorf("environment record: base %q is not an absolute path", r.Base)
	}
	return r.Base, r.Overlay, nil
}

// Kept lists the environments kept under the back-end's directory: their
// IDs and when they were made.
func (c *Chroot) Kept() (map[string]time.Time, error) {
	entries, err := os.ReadDir(c.workDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "env-") {
			continue
		}
		if info, err := e.Info(); err == nil {
			out[e.Name()] = info.ModTime()
		}
	}
	return out, nil
}

// Remove removes the kept environment id; one in use is refused.
func (c *Chroot) Remove(ctx context.Context, id string) error {
	dir, err := c.keptDir(id)
	if err != nil {
		return err
	}
	unlock, err := lockDir(ctx, dir)
	if err != nil {
		return fmt.Errorf("environment %s: in use: %w", id, err)
	}
	defer unlock()
	return removeAtomic(dir)
}

// dirLockWait is how long taking an environment directory's lock waits:
// a lock just released can still be held for a moment by a child process
// that another goroutine forked before its exec closed the descriptor.
const dirLockWait = 2 * time.Second

// lockDir takes the lock of an environment directory, for one user at a
// time; a directory in use is refused after dirLockWait.
func lockDir(ctx context.Context, dir string) (func(), error) {
	ctx, cancel := context.WithTimeout(ctx, dirLockWait)
	defer cancel()
	unlock, err := lockFile(ctx, filepath.Join(dir, ".lock"), unix.LOCK_EX, true)
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("lock %s: held by another user", filepath.Join(dir, ".lock"))
	}
	return unlock, err
}

func (c *Chroot) keptDir(id string) (string, error) {
	if !strings.HasPrefix(id, "env-") || strings.ContainsAny(id, "/\\") || id != filepath.Base(id) {
		return "", fmt.Errorf("environment %q: not an environment ID", id)
	}
	return filepath.Join(c.workDir, id), nil
}

// Resume starts the kept environment id again, for debugging: new
// namespaces and processes on the files it left. It stays kept when
// closed.
func (c *Chroot) Resume(ctx context.Context, id string, opts EnvOptions) (*ChrootEnv, error) {
	dir, err := c.keptDir(id)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		return nil, fmt.Errorf("environment %s: %w", id, err)
	}
	baseDir, overlay, err := ParseEnvRecord(data)
	if err != nil {
		return nil, fmt.Errorf("environment %s: %w", id, err)
	}
	meta, err := os.ReadFile(filepath.Join(baseDir, metaFile))
	if err != nil {
		return nil, fmt.Errorf("environment %s: its base: %w", id, err)
	}
	b, err := ParseMeta(meta)
	if err != nil {
		return nil, fmt.Errorf("environment %s: its base: %w", id, err)
	}
	b.Dir = baseDir
	unlock, err := lockFile(ctx, baseDir+".lock", unix.LOCK_SH, true)
	if err != nil {
		return nil, err
	}
	e := &ChrootEnv{id: id, dir: dir, base: b, keep: true, resumed: true, log: c.log, done: make(chan struct{}), unlock: unlock}
	opts.Base = b
	cc := *c
	cc.NoOverlay = !overlay
	if err := e.start(ctx, &cc, opts, true); err != nil {
		e.Close()
		return nil, fmt.Errorf("chroot %s: %w", id, err)
	}
	return e, nil
}

// noLinks checks that no component of rel below root is a symbolic link.
func noLinks(root, rel string) error {
	p := root
	for _, part := range strings.Split(rel, "/") {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("mount point %s: /%s is a symbolic link", rel, strings.TrimPrefix(p, root+"/"))
		}
	}
	return nil
}

// checkEnvPath accepts an absolute, clean path that is not /.
func checkEnvPath(p string) error {
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" || strings.ContainsAny(p, "\x00\n") {
		return errors.New("not an absolute, clean path below /")
	}
	return nil
}

// overlaySafe says whether a path can go into overlayfs's mount options.
func overlaySafe(p string) bool { return !strings.ContainsAny(p, ",:\\\n\x00") }

func (e *ChrootEnv) start(ctx context.Context, c *Chroot, opts EnvOptions, resume bool) error {
	if opts.Proxy != nil {
		opts.Files = append(slices.Clone(opts.Files), File{Path: proxyAPTConf,
			Data: []byte("Acquire::http::Proxy \"http://" + ProxyAddr + "/\";\n")})
	}
	root := filepath.Join(e.dir, "root")
	upper, work := filepath.Join(e.dir, "upper"), filepath.Join(e.dir, "work")
	for _, d := range []string{root, upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil && !(resume && errors.Is(err, fs.ErrExist)) {
			return err
		}
	}
	// One user of a directory at a time: Remove and Resume check.
	unlockDir, err := lockDir(ctx, e.dir)
	if err != nil {
		return fmt.Errorf("in use: %w", err)
	}
	prev := e.unlock
	e.unlock = func() { unlockDir(); prev() }
	var mounted []string // host mount points, outermost first
	defer func() {
		// The namespace holds its own copies: the host's go.
		for i := len(mounted) - 1; i >= 0; i-- {
			if err := unix.Unmount(mounted[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				e.log.Warn("env unmount", "env", e.id, "path", mounted[i], "err", err)
			}
		}
	}()
	if !c.NoOverlay && overlaySafe(e.base.Root()) && overlaySafe(e.dir) {
		// Files go into the upper directory before the mount: overlayfs
		// does not promise to see changes made below it while mounted.
		if err := writeEnvFiles(upper, opts.Files); err != nil {
			return err
		}
		data := "lowerdir=" + e.base.Root() + ",upperdir=" + upper + ",workdir=" + work
		if err := unix.Mount("overlay", root, "overlay", 0, data); err == nil {
			e.overlay, e.changes = true, upper
			mounted = append(mounted, root)
		} else {
			e.log.Info("overlayfs refused; copying the base", "env", e.id, "err", err)
		}
	}
	if !e.overlay && resume {
		e.changes = root
	} else if !e.overlay {
		// A reflink where the filesystem has them, else a copy; never
		// hard links, which would let dpkg's in-place writes (logs,
		// status) reach the base.
		if err := run(ctx, 10*time.Minute, nil, "cp", "-a", "--reflink=auto", e.base.Root()+"/.", root); err != nil {
			return err
		}
		e.changes = root
	}
	rec, err := json.Marshal(envRecord{Base: e.base.Dir, Overlay: e.overlay, Created: time.Now().UTC()})
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(e.dir, recordFile), rec, 0o644); err != nil {
		return err
	}
	if !e.overlay {
		// Files first: written into the copy before anything runs.
		if err := writeEnvFiles(root, opts.Files); err != nil {
			return err
		}
	}
	rr, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer rr.Close()
	mount := func(src, rel, fstype string, flags uintptr, data string) error {
		p := filepath.Join(root, rel)
		// The host resolves the mount point: no link on the way may
		// lead it out (a kept environment's files are the package's).
		if err := noLinks(root, rel); err != nil {
			return err
		}
		if err := unix.Mount(src, p, fstype, flags, data); err != nil {
			return fmt.Errorf("mount %s on /%s: %w", src, rel, err)
		}
		if !e.overlay || len(mounted) == 0 {
			mounted = append(mounted, p)
		}
		return nil
	}
	if err := rr.MkdirAll("dev", 0o755); err != nil {
		return err
	}
	if err := mount("tmpfs", "dev", "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=755,size=16m"); err != nil {
		return err
	}
	for _, n := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		f, err := rr.Create("dev/" + n)
		if err != nil {
			return err
		}
		f.Close()
		if err := mount("/dev/"+n, "dev/"+n, "", unix.MS_BIND, ""); err != nil {
			return err
		}
	}
	for _, l := range [][2]string{{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}} {
		if err := rr.Symlink(l[0], "dev/"+l[1]); err != nil {
			return err
		}
	}
	for _, d := range []string{"dev/pts", "dev/shm", "tmp", "proc"} {
		if err := rr.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := mount("tmpfs", "tmp", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return err
	}
	// Terminals of its own (apt's log, env shell): a new devpts instance.
	if err := mount("devpts", "dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return err
	}
	if err := rr.Symlink("pts/ptmx", "dev/ptmx"); err != nil {
		return err
	}
	for _, m := range opts.Mounts {
		rel := strings.TrimPrefix(m.Target, "/")
		fi, err := os.Stat(m.Source)
		if err != nil {
			return fmt.Errorf("mount %s: %w", m.Target, err)
		}
		if fi.IsDir() {
			err = rr.MkdirAll(rel, 0o755)
		} else {
			if err = rr.MkdirAll(filepath.Dir(rel), 0o755); err == nil {
				var f *os.File
				if f, err = rr.OpenFile(rel, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
					f.Close()
				}
			}
		}
		if err != nil {
			return fmt.Errorf("mount %s: %w", m.Target, err)
		}
		// os.Root refused any link that leaves the root on the way.
		if err := mount(m.Source, rel, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		if m.ReadOnly {
			if err := unix.Mount("", filepath.Join(root, rel), "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
				return fmt.Errorf("remount %s read-only: %w", m.Target, err)
			}
		}
	}
	if err := e.startHolder(ctx, root, opts.NetNS); err != nil {
		return err
	}
	if opts.Proxy != nil {
		ns := opts.NetNS
		if ns == "" {
			ns = "/proc/" + strconv.Itoa(e.initPID) + "/ns/net"
		}
		ps, err := startProxy(opts.Proxy, ns, e.log)
		if err != nil {
			return err
		}
		e.proxy = ps
	}
	if opts.Hostname != "" {
		if err := setHostname(e.initPID, opts.Hostname); err != nil {
			return fmt.Errorf("hostname: %w", err)
		}
	}
	return nil
}

// hostnameRE is a host name of RFC 1123 labels.
var hostnameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// setHostname sets the host name in the UTS namespace of pid, from a
// thread of this process that enters it for the moment (a UTS namespace,
// unlike a mount namespace, can be entered by one thread).
func setHostname(pid int, name string) error {
	if len(name) > 64 || !hostnameRE.MatchString(name) {
		return fmt.Errorf("%q: not a host name", name)
	}
	target, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/uts")
	if err != nil {
		return err
	}
	defer target.Close()
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/uts")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer self.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWUTS); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	err = unix.Sethostname([]byte(name))
	if rerr := unix.Setns(int(self.Fd()), unix.CLONE_NEWUTS); rerr != nil {
		// The thread stays locked and dies with its goroutine: it must
		// not run anything else in the environment's namespace.
		return errors.Join(err, rerr)
	}
	runtime.UnlockOSThread()
	return err
}

// startHolder starts the process that holds the namespaces: unshare,
// whose child is the namespace's PID 1 (sleep, chrooted), killed when
// unshare dies.
func (e *ChrootEnv) startHolder(ctx context.Context, root, netns string) error {
	args := []string{"--mount", "--pid", "--uts", "--ipc", "--fork", "--kill-child", "--propagation", "private",
		"--root", root, "--mount-proc"}
	name := "unshare"
	if netns == "" {
		args = append(args, "--net")
	} else {
		if _, err := os.Stat(netns); err != nil {
			return fmt.Errorf("network namespace: %w", err)
		}
		args = append([]string{"--net=" + netns, "--", "unshare"}, args...)
		name = "nsenter"
	}
	args = append(args, "--", "/bin/sleep", "infinity")
	// The holder outlives Start's ctx: it lives until Close.
	cmd := proc.Command(context.WithoutCancel(ctx), name, args...)
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var errb limitedBuffer
	errb.max = 64 << 10
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		return err
	}
	e.holder = cmd
	go func() {
		cmd.Wait()
		close(e.done)
	}()
	deadline := time.Now().Add(startTimeout)
	for {
		// The child has set up its root and /proc once it runs sleep.
		if pid := childOf(cmd.Process.Pid); pid > 0 && isInit(pid) {
			fd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				return fmt.Errorf("pidfd of init %d: %w", pid, err)
			}
			e.initPID, e.initFD = pid, fd
			break
		}
		select {
		case <-e.done:
			return fmt.Errorf("unshare: %s", tail(strings.TrimSpace(errb.String()), 2000))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("unshare: no init after " + startTimeout.String())
		}
	}
	// The init runs, so unshare(2) is done and the namespace has its
	// copy of the mounts: the host's can go (the deferred unmounts).
	if err := e.protectProc(ctx, root); err != nil {
		return fmt.Errorf("read-only /proc: %w", err)
	}
	if netns == "" {
		// Loopback up, with the host's ip in the new network namespace.
		if err := run(ctx, 10*time.Second, nil, "nsenter", "--net=/proc/"+strconv.Itoa(e.initPID)+"/ns/net", "ip", "link", "set", "lo", "up"); err != nil {
			return fmt.Errorf("loopback: %w", err)
		}
	}
	return nil
}

// bounding is the capability bounding set of what runs in an
// environment: what dpkg, rpm and their maintainer scripts need, and not
// what would leave the namespaces (sys_admin: mount; sys_chroot: the
// double-chroot escape; mknod: a disk's device node; sys_module,
// sys_rawio, sys_ptrace, sys_boot, sys_time, net_admin).
const bounding = "-all,+chown,+dac_override,+dac_read_search,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+setfcap," +
	"+net_bind_service,+net_raw,+audit_write,+ipc_lock,+sys_nice,+sys_resource"

// protectProc makes the kernel's global knobs under the environment's
// /proc read-only (in its mount namespace, with the host's mount).
func (e *ChrootEnv) protectProc(ctx context.Context, root string) error {
	for _, p := range []string{"proc/sys", "proc/sysrq-trigger", "proc/irq", "proc/bus"} {
		if _, err := os.Stat("/" + p); err != nil {
			continue // not in this kernel
		}
		path := filepath.Join(root, p)
		ns := "--target=" + strconv.Itoa(e.initPID)
		if err := run(ctx, 10*time.Second, nil, "nsenter", ns, "--mount", "--", "mount", "--bind", path, path); err != nil {
			return err
		}
		if err := run(ctx, 10*time.Second, nil, "nsenter", ns, "--mount", "--", "mount", "-o", "remount,bind,ro", path); err != nil {
			return err
		}
	}
	return nil
}

// isInit says whether pid runs the environment's init yet.
func isInit(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && string(data) == "/bin/sleep\x00infinity\x00"
}

// childOf returns a child of pid, or 0.
func childOf(pid int) int {
	p := strconv.Itoa(pid)
	data, err := os.ReadFile("/proc/" + p + "/task/" + p + "/children")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// writeEnvFiles writes files below dir (the environment's changes).
func writeEnvFiles(dir string, files []File) error {
	if len(files) == 0 {
		return nil
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer r.Close()
	for _, f := range files {
		rel := strings.TrimPrefix(f.Path, "/")
		if err := r.MkdirAll(filepath.Dir(rel), 0o755); err != nil {
			return fmt.Errorf("file %s: %w", f.Path, err)
		}
		mode := fs.FileMode(f.Mode)
		if mode == 0 {
			mode = 0o644
		}
		if err := r.WriteFile(rel, f.Data, mode); err != nil {
			return fmt.Errorf("file %s: %w", f.Path, err)
		}
		if err := r.Chmod(rel, mode); err != nil {
			return err
		}
	}
	return nil
}

// ID names the environment (its directory's name).
func (e *ChrootEnv) ID() string { return e.id }

// Dir is the environment's directory on the host.
func (e *ChrootEnv) Dir() string { return e.dir }

// InitPID is the host's PID of the environment's PID 1.
func (e *ChrootEnv) InitPID() int { return e.initPID }

// Overlay says whether the environment is an overlayfs (else a copy).
func (e *ChrootEnv) Overlay() bool { return e.overlay }

// Run runs c in the environment through nsenter; when its time limit
// passes or ctx ends, every process of the environment is killed.
func (e *ChrootEnv) Run(ctx context.Context, c Command) error {
	if len(c.Args) == 0 {
		return errors.New("chroot: no command")
	}
	e.mu.Lock()
	dead := e.dead
	e.mu.Unlock()
	if dead {
		return fmt.Errorf("env %s: %s: %w", e.id, c.Args[0], ErrDead)
	}
	if c.Timeout > 0 && !c.Background {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	pid := strconv.Itoa(e.initPID)
	// -w: the init's working directory, /; nsenter's --wd=DIR would be
	// resolved outside the root. env(1) of the base changes to Dir.
	args := []string{"--target", pid, "--mount", "--uts", "--ipc", "--net", "--pid", "--root", "-w"}
	cmdArgs := c.Args
	if c.Dir != "" {
		if err := checkEnvPath(c.Dir); err != nil {
			return fmt.Errorf("env %s: dir %q: %w", e.id, c.Dir, err)
		}
		cmdArgs = append([]string{"/usr/bin/env", "--chdir=" + c.Dir, "--"}, c.Args...)
	}
	args = append(append(args, "--", "/usr/bin/setpriv", "--bounding-set", bounding, "--"), cmdArgs...)
	if c.Background {
		// It ends with the environment: Close kills the namespace's
		// init, and waits for this nsenter.
		cmd := proc.Command(context.WithoutCancel(ctx), "nsenter", args...)
		cmd.Env = c.Env
		if cmd.Env == nil {
			cmd.Env = DefaultEnv
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = c.Stdin, c.Stdout, c.Stderr
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("env %s: %s: %w", e.id, c.Args[0], err)
		}
		e.bg.Add(1)
		go func() {
			defer e.bg.Done()
			cmd.Wait()
		}()
		return nil
	}
	cmd := proc.Command(ctx, "nsenter", args...)
	cmd.Env = c.Env
	if cmd.Env == nil {
		cmd.Env = DefaultEnv
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = c.Stdin, c.Stdout, c.Stderr
	group := cmd.Cancel
	cmd.Cancel = func() error {
		// What the command started may have left its process group:
		// the namespace's init takes them all.
		e.kill()
		return group()
	}
	err := cmd.Run()
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("env %s: %s: %w after %s", e.id, c.Args[0], ErrTimeout, c.Timeout)
		}
		return fmt.Errorf("env %s: %s: %w", e.id, c.Args[0], ctx.Err())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if e.isDead() {
			return fmt.Errorf("env %s: %s: %w", e.id, c.Args[0], ErrDead)
		}
		return &ExitError{Args: c.Args, Code: exit.ExitCode()}
	}
	if err != nil {
		return fmt.Errorf("env %s: %s: %w", e.id, c.Args[0], err)
	}
	return nil
}

func (e *ChrootEnv) isDead() bool {
	select {
	case <-e.done:
		e.mu.Lock()
		e.dead = true
		e.mu.Unlock()
		return true
	default:
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dead
}

// kill kills the namespace's init, and with it every process in the
// namespace; the holder, unshare, reaps it and exits.
func (e *ChrootEnv) kill() {
	e.mu.Lock()
	e.dead = true
	e.mu.Unlock()
	if e.initFD > 0 {
		unix.PidfdSendSignal(e.initFD, unix.SIGKILL, nil, 0)
	} else if e.holder != nil && e.holder.Process != nil {
		e.holder.Process.Signal(syscall.SIGKILL)
	}
}

// Close kills every process of the environment, waits until they are
// gone (and with them its namespaces and mounts) and removes its
// directory unless it is kept.
func (e *ChrootEnv) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return e.cerr
	}
	e.closed = true
	e.mu.Unlock()
	e.kill()
	var errs []error
	if e.holder != nil {
		select {
		case <-e.done:
		case <-time.After(10 * time.Second):
			e.holder.Process.Signal(syscall.SIGKILL)
			select {
			case <-e.done:
			case <-time.After(10 * time.Second):
				errs = append(errs, errors.New("holder did not exit"))
			}
		}
	}
	if e.initFD > 0 {
		if !waitGone(e.initFD, 10*time.Second) {
			errs = append(errs, fmt.Errorf("init %d did not exit", e.initPID))
		}
		unix.Close(e.initFD)
	}
	e.bg.Wait() // their processes went with the namespace
	if e.proxy != nil {
		e.proxy.close()
	}
	if e.unlock != nil {
		e.unlock()
	}
	if !e.keep || (e.holder == nil && !e.resumed) {
		if err := os.RemoveAll(e.dir); err != nil {
			errs = append(errs, err)
		}
	}
	e.cerr = errors.Join(errs...)
	if e.cerr != nil {
		e.cerr = fmt.Errorf("env %s: close: %w", e.id, e.cerr)
	}
	return e.cerr
}

// waitGone waits until the process of pidfd fd has exited, for at most d.
func waitGone(fd int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if err == nil && n > 0 {
			return true
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return false
		}
	}
}
