package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/sluice-ci/sluice/internal/proc"
	"github.com/sluice-ci/sluice/repo"
)

// RsyncConfig configures an [Rsync] target.
type RsyncConfig struct {
	// Dest is the rsync destination of the repository tree:
	// rsync://host[:port]/module/path or host::module/path for an rsync
	// daemon, [user@]host:path over the remote shell, or an absolute path.
	Dest string
	// PasswordFile is the rsync daemon password file (--password-file).
	PasswordFile string
	// PasswordEnv names an environment variable holding the rsync daemon
	// password, handed to rsync as RSYNC_PASSWORD (never as a flag).
	PasswordEnv string
	// RSH is the remote shell command and its arguments for host:path
	// destinations (rsync -e), e.g. ["ssh", "-i", "/etc/sluice/mirror_key"].
	RSH []string
	// Timeout bounds one rsync run (default 1h); IOTimeout is rsync's own
	// --timeout, for a stalled connection (default 5m).
	Timeout, IOTimeout time.Duration
	// ReadbackDir is where Check pulls the target back to, to verify it: a
	// directory of its own for this target, best on the file system of the
	// snapshots (unchanged files are hard links of them).
	ReadbackDir string
	// TraceName names the lock and trace files (default: this host's
	// name), as Debian's ftpsync names them after the mirror host.
	TraceName string
	// Check is how a sync checks the target: CheckFull (the default)
	// compares every file's content with the snapshot's (rsync
	// --checksum: the target reads all it holds); CheckQuick compares
	// the content of the files this sync wrote and of every index and
	// entry file, and the size and mtime of the others. `mirror verify`
	// always reads everything.
	Check string
	// Bin is the rsync program (default "rsync").
	Bin string
}

// Check modes of an [Rsync] target.
const (
	CheckFull  = "full"
	CheckQuick = "quick"
)

// Rsync is a target any rsync can write: an rsync daemon or a host over
// SSH, synced in the order the package comment describes (after Debian's
// ftpsync). Files under a fixed name are always compared by content; for
// an rsync daemon, set "socket options = TCP_NODELAY" on the daemon, or
// each exchange of the protocol waits out a delayed ACK.
type Rsync struct {
	name string
	cfg  RsyncConfig
	log  *slog.Logger

	// lists caches the file lists of snapshots (immutable) by directory.
	lists map[string]map[string]fileInfo
	// written are the files the last Stage sent; extras what the last
	// Check found on the target that the snapshot does not hold.
	written, extras []string
	// pre holds the whole-tree check Stage made before the switch, for
	// Check: of which snapshot, how, what differed (content files only).
	pre struct {
		snap  string
		full  bool
		diffs []string
	}
}

var _ Target = (*Rsync)(nil)

// NewRsync returns the rsync target name.
func NewRsync(name string, cfg RsyncConfig, log *slog.Logger) (*Rsync, error) {
	if err := CheckName("target", name); err != nil {
		return nil, err
	}
	if err := checkDest(cfg.Dest); err != nil {
		return nil, fmt.Errorf("target %s: %w", name, err)
	}
	cfg.Dest = strings.TrimRight(cfg.Dest, "/") + "/"
	if cfg.ReadbackDir == "" || !filepath.IsAbs(cfg.ReadbackDir) {
		return nil, fmt.Errorf("target %s: read-back directory %q is not absolute", name, cfg.ReadbackDir)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Hour
	}
	if cfg.IOTimeout <= 0 {
		cfg.IOTimeout = 5 * time.Minute
	}
	if cfg.Bin == "" {
		cfg.Bin = "rsync"
	}
	switch cfg.Check {
	case "":
		cfg.Check = CheckFull
	case CheckFull, CheckQuick:
	default:
		return nil, fmt.Errorf("target %s: check %q (want %s or %s)", name, cfg.Check, CheckFull, CheckQuick)
	}
	if cfg.TraceName == "" {
		cfg.TraceName, _ = os.Hostname()
	}
	if err := CheckName("trace name", cfg.TraceName); err != nil {
		return nil, fmt.Errorf("target %s: %w (set its trace name)", name, err)
	}
	for _, a := range cfg.RSH {
		// rsync splits -e at blanks and reads quotes: one word each.
		if a == "" || strings.ContainsAny(a, " \t\n\r'\"\\") {
			return nil, fmt.Errorf("target %s: rsh argument %q: empty, or has blanks, quotes or backslashes", name, a)
		}
	}
	if cfg.PasswordEnv != "" && os.Getenv(cfg.PasswordEnv) == "" {
		return nil, fmt.Errorf("target %s: password variable %s is empty", name, cfg.PasswordEnv)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Rsync{name: name, cfg: cfg, log: log, lists: map[string]map[string]fileInfo{}}, nil
}

// list returns the files of a snapshot's tree, listed once.
func (r *Rsync) list(dir string) (map[string]fileInfo, error) {
	if l, ok := r.lists[dir]; ok {
		return l, nil
	}
	l, err := listTree(dir)
	if err != nil {
		return nil, err
	}
	r.lists[dir] = l
	return l, nil
}

// checkDest accepts the destinations rsync reads as such and nothing that
// it could take as an option or that names the local host's files by
// accident.
func checkDest(d string) error {
	switch {
	case d == "":
		return errors.New("no destination")
	case strings.HasPrefix(d, "-"):
		return fmt.Errorf("destination %q starts with '-'", d)
	case strings.ContainsAny(d, "\x00\n\r\t *?[]"):
		return fmt.Errorf("destination %q has blanks or wildcards", d)
	case strings.HasPrefix(d, "rsync://"):
		rest := strings.TrimPrefix(d, "rsync://")
		host, mod, ok := strings.Cut(rest, "/")
		if !ok || host == "" || mod == "" {
			return fmt.Errorf("destination %q: want rsync://host[:port]/module[/path]", d)
		}
	case strings.HasPrefix(d, "/"):
	case strings.Contains(d, ":"):
		host, _, _ := strings.Cut(d, ":")
		if host == "" || strings.Contains(host, "/") {
			return fmt.Errorf("destination %q: want host:path, host::module or an absolute path", d)
		}
	default:
		return fmt.Errorf("destination %q: want rsync://..., host:path, host::module or an absolute path", d)
	}
	for el := range strings.SplitSeq(d, "/") {
		if el == ".." {
			return fmt.Errorf("destination %q has '..'", d)
		}
	}
	return nil
}

// Name implements [Target].
func (r *Rsync) Name() string { return r.name }

// Kind implements [Target].
func (r *Rsync) Kind() string { return "rsync" }

func (r *Rsync) daemon() bool {
	return strings.HasPrefix(r.cfg.Dest, "rsync://") || strings.Contains(r.cfg.Dest, "::")
}

func (r *Rsync) lockName() string { return "Archive-Update-in-Progress-" + r.cfg.TraceName }

// run runs rsync with args (after the common ones) and returns what it
// moved. Its standard output is read for the progress of step.
func (r *Rsync) run(ctx context.Context, step string, total int64, p Progress, args ...string) (Transfer, error) {
	t, _, err := r.runItems(ctx, step, total, p, args...)
	return t, err
}

// runItems is run that also returns rsync's itemized lines ("%i %n") of
// the files it transferred, or would have in a dry run.
func (r *Rsync) runItems(ctx context.Context, step string, total int64, p Progress, args ...string) (Transfer, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	common := []string{"--no-human-readable", "--stats", "--out-format=" + outPrefix + "%i %n",
		"--timeout=" + strconv.Itoa(int(r.cfg.IOTimeout.Seconds()))}
	if r.daemon() {
		// Without it, each exchange of the protocol waits out a delayed
		// ACK (40 ms): 0.1 s a run on loopback.
		common = append(common, "--contimeout=60", "--sockopts=TCP_NODELAY")
		if r.cfg.PasswordFile != "" {
			common = append(common, "--password-file="+r.cfg.PasswordFile)
		}
	} else if len(r.cfg.RSH) > 0 {
		common = append(common, "--rsh="+strings.Join(r.cfg.RSH, " "))
	}
	cmd := proc.Command(ctx, r.cfg.Bin, append(common, args...)...)
	// rsync dies with this process, killed or not: no rsync of an
	// abandoned sync may write on after a restarted one.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	env := []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "HOME=" + os.Getenv("HOME")}
	if r.cfg.PasswordEnv != "" {
		env = append(env, "RSYNC_PASSWORD="+os.Getenv(r.cfg.PasswordEnv))
	}
	for _, k := range []string{"SSH_AUTH_SOCK"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	cmd.Env = env
	var stderr bytes.Buffer
	out := &outputLines{report: func(done int64) { p.report(r.name, step, done, total) }}
	cmd.Stdout, cmd.Stderr = out, &stderr
	// A pulling rsync forks; if one of the two is killed, the other may
	// hold the output open: Wait gives up on it after a moment, and the
	// group goes.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	out.flush()
	p.report(r.name, step, max(out.done, total), total)
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		return Transfer{}, nil, fmt.Errorf("target %s: %s: rsync: %w: %s", r.name, step, err, msg)
	}
	if out.overflow {
		return Transfer{}, nil, fmt.Errorf("target %s: %s: more than %d files itemized", r.name, step, maxItems)
	}
	t, err := ParseStats(out.stats.Bytes())
	if err != nil {
		return Transfer{}, nil, fmt.Errorf("target %s: %s: %w", r.name, step, err)
	}
	return t, out.items, nil
}

// maxItems bounds the itemized lines kept of one rsync run.
const maxItems = 1 << 20

// outputLines reads rsync's standard output: it counts the lines naming
// a transferred file (reporting every 64) and keeps the others, the
// statistics.
type outputLines struct {
	partial  []byte
	stats    bytes.Buffer
	items    []string
	overflow bool
	done     int64
	report   func(done int64)
}

func (o *outputLines) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if len(o.partial) < 1<<20 {
				o.partial = append(o.partial, b...)
			}
			break
		}
		o.line(append(o.partial, b[:i]...))
		o.partial = o.partial[:0]
		b = b[i+1:]
	}
	return n, nil
}

func (o *outputLines) line(l []byte) {
	if item, ok := bytes.CutPrefix(l, []byte(outPrefix)); ok {
		if len(o.items) < maxItems {
			o.items = append(o.items, string(item))
		} else {
			o.overflow = true
		}
		o.done++
		if o.done%64 == 0 {
			o.report(o.done)
		}
		return
	}
	if o.stats.Len() < 1<<20 {
		o.stats.Write(l)
		o.stats.WriteByte('\n')
	}
}

func (o *outputLines) flush() {
	if len(o.partial) > 0 {
		o.line(o.partial)
		o.partial = nil
	}
}

// outPrefix marks the lines of rsync's output that name a transferred file.
const outPrefix = "sluice-file "

// ParseStats reads the counts of rsync --stats --no-human-readable
// output: files transferred, bytes sent and received. All three must be
// there.
func ParseStats(out []byte) (Transfer, error) {
	var t Transfer
	seen := 0
	for line := range strings.SplitSeq(string(out), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "Number of regular files transferred":
			dst = &t.Files
		case "Total bytes sent":
			dst = &t.BytesSent
		case "Total bytes received":
			dst = &t.BytesReceived
		default:
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 {
			return Transfer{}, fmt.Errorf("rsync stats: bad %s %q", k, v)
		}
		*dst = n
		seen++
	}
	if seen != 3 {
		return Transfer{}, errors.New("rsync stats: counts missing from its output")
	}
	return t, nil
}

// scratch makes a temporary directory beside the read-back directory.
func (r *Rsync) scratch() (string, func(), error) {
	parent := filepath.Dir(r.cfg.ReadbackDir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", nil, err
	}
	d, err := os.MkdirTemp(parent, ".rsync-")
	if err != nil {
		return "", nil, err
	}
	return d, func() { os.RemoveAll(d) }, nil
}

// listFile writes names NUL-separated into dir/name, for --files-from.
func listFile(dir, name string, names []string) (string, error) {
	var b bytes.Buffer
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(0)
	}
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, b.Bytes(), 0o644)
}

// Begin implements [Target]: the lock file goes up first, making the
// destination's directory if need be.
func (r *Rsync) Begin(ctx context.Context, snap Snapshot) (func(context.Context) error, error) {
	r.written, r.extras = nil, nil
	r.pre.snap = ""
	dir, clean, err := r.scratch()
	if err != nil {
		return nil, err
	}
	defer clean()
	body := newTrace(snap, time.Now()).Marshal()
	if err := os.WriteFile(filepath.Join(dir, r.lockName()), body, 0o644); err != nil {
		return nil, err
	}
	if _, err := r.run(ctx, "lock", 1, nil, "-lpt", "--ignore-times", "--mkpath", dir+"/"+r.lockName(), r.cfg.Dest); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		dir, clean, err := r.scratch()
		if err != nil {
			return err
		}
		defer clean()
		_, err = r.run(ctx, "unlock", 0, nil, "-r", "--delete", "--filter=+ /"+r.lockName(), "--filter=- *", dir+"/", r.cfg.Dest)
		return err
	}, nil
}

// Served implements [Target]: the snapshot of the trace file.
func (r *Rsync) Served(ctx context.Context) (string, error) {
	t, err := r.trace(ctx)
	if err != nil || t == nil {
		return "", err
	}
	return t.Snapshot, nil
}

// trace pulls the target's trace file; nil if it has none.
func (r *Rsync) trace(ctx context.Context) (*Trace, error) {
	dir, clean, err := r.scratch()
	if err != nil {
		return nil, err
	}
	defer clean()
	rel := traceDir + "/" + r.cfg.TraceName
	if _, err := r.run(ctx, "trace", 0, nil, "-rl", "--filter=+ /project/", "--filter=+ /"+traceDir+"/",
		"--filter=+ /"+rel, "--filter=- *", r.cfg.Dest, dir+"/"); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	t, err := ParseTrace(data)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", r.name, err)
	}
	return &t, nil
}

// Stage implements [Target]: steps 2 and 3 of the order above. Content
// files that keep has with the same size and mtime are taken to be on
// the target already (Check finds it if they are not).
func (r *Rsync) Stage(ctx context.Context, snap Snapshot, keep *Snapshot, thorough bool, ready func() error, p Progress) (Transfer, error) {
	files, err := r.list(snap.Dir)
	if err != nil {
		return Transfer{}, err
	}
	var before map[string]fileInfo
	if keep != nil && !thorough {
		if before, err = r.list(keep.Dir); err != nil {
			return Transfer{}, err
		}
	}
	groups := map[step][]string{}
	for _, n := range sortedNames(files) {
		s := stepOf(snap.Format, n)
		if fi, ok := before[n]; ok && s == stepContent && fi.size == files[n].size && fi.mtime.Equal(files[n].mtime) {
			continue
		}
		groups[s] = append(groups[s], n)
	}
	dir, clean, err := r.scratch()
	if err != nil {
		return Transfer{}, err
	}
	defer clean()
	r.written, r.pre.snap = nil, ""
	var total Transfer
	for _, s := range []struct {
		step  step
		name  string
		extra []string
	}{
		{stepContent, "content", nil},
		{stepIndex, "indices", []string{"--delay-updates"}},
		{stepPointer, "entry files", []string{"--delay-updates"}},
	} {
		if s.step == stepIndex {
			// The whole tree is checked now, while the snapshot is being
			// verified: what differs among the content files (the
			// indices and entry files differ until they are sent), and
			// what the target holds beyond the snapshot. Check adds the
			// indices and entry files once they are there.
			full := thorough || r.cfg.Check == CheckFull
			diffs, extras, t, err := r.wholeTree(ctx, snap, full)
			total.add(t)
			if err != nil {
				return total, err
			}
			r.pre.diffs = slices.DeleteFunc(diffs, func(n string) bool { return stepOf(snap.Format, n) != stepContent })
			r.pre.snap, r.pre.full, r.extras = snap.ID, full, extras
			if ready != nil {
				if err := ready(); err != nil {
					return total, fmt.Errorf("target %s: not switched: %w", r.name, err)
				}
			}
		}
		names := groups[s.step]
		if len(names) == 0 {
			continue
		}
		r.written = append(r.written, names...)
		list, err := listFile(dir, "step"+strconv.Itoa(int(s.step)), names)
		if err != nil {
			return total, err
		}
		args := []string{"-lpt", "--files-from=" + list, "--from0"}
		// Files under a fixed name are compared by content: two versions
		// of an InRelease or a signature often have the same size and
		// mtime second, which rsync's quick check takes as unchanged.
		if thorough || s.step != stepContent {
			args = append(args, "--checksum")
		}
		args = append(args, s.extra...)
		t, err := r.run(ctx, s.name, int64(len(names)), p, append(args, snap.Dir+"/", r.cfg.Dest)...)
		total.add(t)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// protectRules are the filter rules that keep the lock and trace files
// from a deletion, and leave repo's state directory out.
func (r *Rsync) protectRules() string {
	return "P /" + r.lockName() + "\nP /project/\n- /" + stateDirName + "/\n"
}

// Check implements [Target]: a dry run of the sync, which lists what the
// target holds that differs from the snapshot, by content (CheckFull,
// thorough) or by size and mtime plus the content of what this sync wrote
// and of every index and entry file (CheckQuick); and what it holds that
// the snapshot does not, for Switch to delete. After a Stage, the whole
// tree was checked there, before the switch; the indices and entry files,
// and what the sync wrote, are checked now by content.
func (r *Rsync) Check(ctx context.Context, snap Snapshot, thorough bool) ([]repo.Problem, Transfer, error) {
	files, err := r.list(snap.Dir)
	if err != nil {
		return nil, Transfer{}, err
	}
	full := thorough || r.cfg.Check == CheckFull
	var total Transfer
	var diffs []string
	if r.pre.snap == snap.ID && r.pre.full == full {
		diffs = r.pre.diffs
	} else {
		var t Transfer
		diffs, r.extras, t, err = r.wholeTree(ctx, snap, full)
		total.add(t)
		if err != nil || full {
			return problems(diffs), total, err
		}
	}
	seen := map[string]bool{}
	var names []string
	for _, n := range r.written {
		seen[n] = true
		names = append(names, n)
	}
	for _, n := range sortedNames(files) {
		if !seen[n] && stepOf(snap.Format, n) != stepContent {
			names = append(names, n)
		}
	}
	dir, clean, err := r.scratch()
	if err != nil {
		return nil, total, err
	}
	defer clean()
	list, err := listFile(dir, "changed", names)
	if err != nil {
		return nil, total, err
	}
	t, items, err := r.runItems(ctx, "check", 0, nil, "-l", "--dry-run", "--checksum", "--files-from="+list, "--from0", snap.Dir+"/", r.cfg.Dest)
	total.add(t)
	if err != nil {
		return nil, total, err
	}
	more, _, err := ParseItems(items)
	if err != nil {
		return nil, total, fmt.Errorf("target %s: check: %w", r.name, err)
	}
	return problems(append(slices.Clone(diffs), more...)), total, nil
}

func problems(diffs []string) []repo.Problem {
	var probs []repo.Problem
	for _, d := range diffs {
		probs = append(probs, repo.Problem{Path: d, Err: errDiffers})
	}
	return probs
}

// wholeTree is a dry run of the whole sync: the files that differ (by
// checksum with full, else by size and mtime) and the names the target
// holds beyond the snapshot.
func (r *Rsync) wholeTree(ctx context.Context, snap Snapshot, full bool) (diffs, extras []string, t Transfer, err error) {
	dir, clean, err := r.scratch()
	if err != nil {
		return nil, nil, t, err
	}
	defer clean()
	rules := filepath.Join(dir, "rules")
	if err := os.WriteFile(rules, []byte(r.protectRules()), 0o644); err != nil {
		return nil, nil, t, err
	}
	args := []string{"-rl", "--dry-run", "--delete", "--filter=merge " + rules}
	if full {
		args = append(args, "--checksum")
	} else {
		args = append(args, "--times")
	}
	t, items, err := r.runItems(ctx, "check", 0, nil, append(args, snap.Dir+"/", r.cfg.Dest)...)
	if err != nil {
		return nil, nil, t, err
	}
	diffs, extras, err = ParseItems(items)
	if err != nil {
		return nil, nil, t, fmt.Errorf("target %s: check: %w", r.name, err)
	}
	return diffs, extras, t, nil
}

// ParseItems reads rsync's itemized lines ("%i %n", see rsync(1)): the
// files whose content would be transferred (differs, or is missing), and
// the names that would be deleted. Lines that only change attributes, or
// make a directory, are left out; a name must be a clean relative path.
func ParseItems(lines []string) (diffs, deletes []string, err error) {
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "*deleting"); ok {
			name := strings.TrimLeft(rest, " ")
			if !cleanItemName(name) {
				return nil, nil, fmt.Errorf("rsync named %q to delete: not a clean relative path", name)
			}
			deletes = append(deletes, name)
			continue
		}
		code, name, ok := strings.Cut(l, " ")
		if !ok || len(code) != 11 || !cleanItemName(name) {
			return nil, nil, fmt.Errorf("rsync item %q: not an itemized change", l)
		}
		switch code[0] {
		case '.':
			// attributes only
		case '<', '>', 'c', 'h':
			if code[1] != 'd' {
				diffs = append(diffs, name)
			}
		default:
			return nil, nil, fmt.Errorf("rsync item %q: unknown change", l)
		}
	}
	return diffs, deletes, nil
}

// cleanItemName accepts a relative path as rsync prints it (a directory
// with a trailing slash), with no escapes (rsync writes "\#ooo" for an
// unprintable byte), "." or ".." element.
func cleanItemName(n string) bool {
	n = strings.TrimSuffix(n, "/")
	if n == "." {
		return true
	}
	if n == "" || strings.HasPrefix(n, "/") || strings.ContainsAny(n, "\\\x00\n\r") {
		return false
	}
	for el := range strings.SplitSeq(n, "/") {
		if el == "" || el == "." || el == ".." {
			return false
		}
	}
	return true
}

// Switch implements [Target]: step 5 of the order above. Only the
// directories that hold something to delete are walked; nothing is
// walked when nothing is to go.
func (r *Rsync) Switch(ctx context.Context, snap Snapshot, keep *Snapshot) (Transfer, error) {
	dir, clean, err := r.scratch()
	if err != nil {
		return Transfer{}, err
	}
	defer clean()
	var before map[string]fileInfo
	if keep != nil && keep.ID != snap.ID {
		if before, err = r.list(keep.Dir); err != nil {
			return Transfer{}, err
		}
	}
	now, err := r.list(snap.Dir)
	if err != nil {
		return Transfer{}, err
	}
	var rules bytes.Buffer
	rules.WriteString(r.protectRules())
	keptDirs := map[string]bool{}
	for _, n := range sortedNames(before) {
		if _, ok := now[n]; !ok {
			fmt.Fprintf(&rules, "P /%s\n", escapeFilter(n))
			for d := path.Dir(n); d != "."; d = path.Dir(d) {
				keptDirs[d] = true
			}
		}
	}
	parents := map[string]bool{}
	for _, e := range r.extras {
		e = strings.TrimSuffix(e, "/")
		if _, ok := before[e]; ok || keptDirs[e] || e == r.lockName() || e == "project" || strings.HasPrefix(e, "project/") {
			continue
		}
		parents[path.Dir(e)] = true
	}
	var total Transfer
	if len(parents) > 0 {
		included := map[string]bool{}
		for _, p := range slices.Sorted(maps.Keys(parents)) {
			if p == "." {
				rules.WriteString("+ /***\n")
				continue
			}
			var anc []string
			for d := path.Dir(p); d != "."; d = path.Dir(d) {
				anc = append(anc, d)
			}
			slices.Reverse(anc)
			for _, a := range anc {
				if !included[a] {
					included[a] = true
					fmt.Fprintf(&rules, "+ /%s/\n", escapeFilter(a))
				}
			}
			fmt.Fprintf(&rules, "+ /%s/***\n", escapeFilter(p))
		}
		rules.WriteString("- *\n")
		file := filepath.Join(dir, "delete")
		if err := os.WriteFile(file, rules.Bytes(), 0o644); err != nil {
			return Transfer{}, err
		}
		t, err := r.run(ctx, "delete", 0, nil, "-r", "--delete", "--existing", "--ignore-existing",
			"--filter=merge "+file, snap.Dir+"/", r.cfg.Dest)
		t.Files = 0
		total.add(t)
		if err != nil {
			return total, err
		}
	}
	rel := filepath.Join(dir, "tree", traceDir, r.cfg.TraceName)
	if err := os.MkdirAll(filepath.Dir(rel), 0o755); err != nil {
		return total, err
	}
	if err := os.WriteFile(rel, newTrace(snap, time.Now()).Marshal(), 0o644); err != nil {
		return total, err
	}
	t, err := r.run(ctx, "trace", 1, nil, "-rlpt", "--ignore-times", "--delay-updates", "--filter=+ /project/", "--filter=+ /"+traceDir+"/",
		"--filter=+ /"+traceDir+"/"+r.cfg.TraceName, "--filter=- *", filepath.Join(dir, "tree")+"/", r.cfg.Dest)
	t.Files = 0 // not a file of the repository
	total.add(t)
	return total, err
}

// pull brings the target into the read-back directory: every file
// compared by checksum, unchanged ones hard-linked from linkDest when
// given.
func (r *Rsync) pull(ctx context.Context, linkDest string, p Progress) (Transfer, error) {
	if err := os.MkdirAll(r.cfg.ReadbackDir, 0o755); err != nil {
		return Transfer{}, err
	}
	// No -t or -p: a hard link's attributes are the snapshot's own, and
	// the read-back must never change them.
	args := []string{"-rl", "--checksum", "--delete",
		"--filter=- /" + r.lockName(), "--filter=- /" + traceDir + "/", "--filter=- .~tmp~/"}
	if linkDest != "" {
		args = append(args, "--link-dest="+linkDest)
	}
	return r.run(ctx, "read back", 0, p, append(args, r.cfg.Dest, r.cfg.ReadbackDir+"/")...)
}

// escapeFilter escapes the wildcard characters of an rsync filter
// pattern. Snapshot file names come from package names and checksums;
// these never hold them, but a rule must match the name it names.
func escapeFilter(s string) string {
	if !strings.ContainsAny(s, `*?[\`) {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Restore implements [Target]: prev is synced again, every file by
// checksum, and checked; what only failed held is deleted after.
func (r *Rsync) Restore(ctx context.Context, prev, failed Snapshot, p Progress) ([]repo.Problem, Transfer, error) {
	var total Transfer
	t, err := r.Stage(ctx, prev, &failed, true, nil, p)
	total.add(t)
	if err != nil {
		return nil, total, err
	}
	probs, t, err := r.Check(ctx, prev, true)
	total.add(t)
	if err != nil || len(probs) > 0 {
		return probs, total, err
	}
	t, err = r.Switch(ctx, prev, &failed)
	total.add(t)
	return nil, total, err
}

// Verify implements [Target]: the target is read back (only what changed
// since the last read-back moves) and checked.
func (r *Rsync) Verify(ctx context.Context, keyring openpgp.EntityList) (string, []repo.Problem, error) {
	served, err := r.Served(ctx)
	if err != nil {
		return "", nil, err
	}
	if _, err := r.pull(ctx, "", nil); err != nil {
		return served, nil, err
	}
	probs, err := repo.Verify(ctx, r.cfg.ReadbackDir, keyring)
	if err != nil {
		return served, []repo.Problem{{Path: ".", Err: err}}, nil
	}
	return served, probs, nil
}
