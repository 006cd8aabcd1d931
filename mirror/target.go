package mirror

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/sluice-ci/sluice/repo"
)

// Target is one mirror of a release repository. A [Syncer] drives it
// through one transaction: Begin, Stage, Check (Stage again by content if
// the check fails), then Switch; or Restore when the new snapshot cannot
// be made to check, or does not verify itself.
type Target interface {
	// Name is the target's name in the configuration.
	Name() string
	// Kind is "local" or "rsync".
	Kind() string
	// Begin takes the target for one sync (a lock on it) and returns what
	// gives it back.
	Begin(ctx context.Context, snap Snapshot) (end func(context.Context) error, err error)
	// Served returns the ID of the snapshot the target serves, read from
	// the target ("" for none).
	Served(ctx context.Context) (string, error)
	// Stage puts snap on the target; keep is the snapshot it served
	// before, if any: the files snap shares with it (same path, size and
	// mtime) need not move. With thorough, every file is sent again where
	// its content differs. Before it replaces anything a client starts
	// from, it calls ready, which waits for the snapshot's own
	// verification and returns its error.
	Stage(ctx context.Context, snap Snapshot, keep *Snapshot, thorough bool, ready func() error, p Progress) (Transfer, error)
	// Check reads back what the target holds and compares it with snap:
	// every file of snap must be there with snap's bytes. Together with
	// the snapshot's own verification (repo.Verify), this is the target
	// passing repo.Verify. With thorough, every file's content is read.
	Check(ctx context.Context, snap Snapshot, thorough bool) ([]repo.Problem, Transfer, error)
	// Switch makes snap the snapshot served, once checked, and retires
	// what neither snap nor keep holds.
	Switch(ctx context.Context, snap Snapshot, keep *Snapshot) (Transfer, error)
	// Restore puts the target back on prev after failed could not be made
	// to check, and checks it.
	Restore(ctx context.Context, prev, failed Snapshot, p Progress) ([]repo.Problem, Transfer, error)
	// Verify reads the whole target back as it is now and checks it with
	// repo.Verify itself; served is the snapshot it serves.
	Verify(ctx context.Context, keyring openpgp.EntityList) (served string, probs []repo.Problem, err error)
}

// errDiffers is a Check problem: a file of the target is not the
// snapshot's.
var errDiffers = errors.New("missing, or differs from the snapshot")

// Transfer counts what a step moved.
type Transfer struct {
	Files         int64 `json:"files"`          // files written on the target
	BytesSent     int64 `json:"bytes_sent"`     // bytes sent to the target (rsync: its count)
	BytesReceived int64 `json:"bytes_received"` // bytes read back from the target
}

func (t *Transfer) add(o Transfer) {
	t.Files += o.Files
	t.BytesSent += o.BytesSent
	t.BytesReceived += o.BytesReceived
}

// Progress receives how far a step of a target's sync is: done of total
// files. A nil Progress is allowed.
type Progress func(target, step string, done, total int64)

func (p Progress) report(target, step string, done, total int64) {
	if p != nil {
		p(target, step, done, total)
	}
}

// Trace is what a target's trace file says: who synced which snapshot
// there, and when (after Debian's ftpsync, project/trace/<host>).
type Trace struct {
	Date     time.Time // when the sync ended
	Started  time.Time
	Host     string
	User     string
	Repo     string
	Format   string
	Snapshot string
}

// traceDir is where targets keep their trace files, as Debian mirrors do.
const traceDir = "project/trace"

// maxTraceSize bounds a trace file read back from a target.
const maxTraceSize = 4096

func newTrace(snap Snapshot, started time.Time) Trace {
	host, _ := os.Hostname()
	name := strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return Trace{Date: time.Now().UTC(), Started: started.UTC(), Host: host, User: name,
		Repo: snap.Repo, Format: snap.Format, Snapshot: snap.ID}
}

// Marshal returns the trace file's text: deb822-like "Key: value" lines.
func (t Trace) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Date: %s\n", t.Date.UTC().Format(time.RFC1123Z))
	if !t.Started.IsZero() {
		fmt.Fprintf(&b, "Date-Started: %s\n", t.Started.UTC().Format(time.RFC1123Z))
	}
	fmt.Fprintf(&b, "Creator: sluice\nHost: %s\nUser: %s\n", oneLine(t.Host), oneLine(t.User))
	fmt.Fprintf(&b, "Repository: %s\nFormat: %s\nSnapshot: %s\n", t.Repo, t.Format, t.Snapshot)
	return b.Bytes()
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// parseTraceTime reads a trace's time: RFC 1123 with a numeric zone, in
// the years a sync can have happened (which also keeps Marshal's output
// readable again).
func parseTraceTime(v string) (time.Time, error) {
	t, err := time.Parse(time.RFC1123Z, v)
	if err == nil && (t.UTC().Year() < 1970 || t.UTC().Year() > 9999) {
		err = fmt.Errorf("%q: not a year a sync happened in", v)
	}
	return t, err
}

// ParseTrace reads a trace file written by [Trace.Marshal]: it requires
// Date, Repository, Format and a valid Snapshot.
func ParseTrace(data []byte) (Trace, error) {
	if len(data) > maxTraceSize {
		return Trace{}, fmt.Errorf("trace: larger than %d bytes", maxTraceSize)
	}
	var t Trace
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			return Trace{}, fmt.Errorf("trace: bad line %q", line)
		}
		if seen[k] {
			return Trace{}, fmt.Errorf("trace: %s given twice", k)
		}
		seen[k] = true
		var err error
		switch k {
		case "Date":
			t.Date, err = parseTraceTime(v)
		case "Date-Started":
			t.Started, err = parseTraceTime(v)
		case "Host":
			t.Host = v
		case "User":
			t.User = v
		case "Repository":
			t.Repo, err = v, CheckName("repository", v)
		case "Format":
			t.Format = v
		case "Snapshot":
			t.Snapshot, err = v, CheckName("snapshot", v)
		}
		if err != nil {
			return Trace{}, fmt.Errorf("trace: %s: %w", k, err)
		}
	}
	if err := sc.Err(); err != nil {
		return Trace{}, fmt.Errorf("trace: %w", err)
	}
	for _, k := range []string{"Date", "Repository", "Format", "Snapshot"} {
		if !seen[k] {
			return Trace{}, fmt.Errorf("trace: no %s", k)
		}
	}
	if t.Format != "deb" && t.Format != "rpm" {
		return Trace{}, fmt.Errorf("trace: Format %q", t.Format)
	}
	return t, nil
}

// errServed is a problem of a tree whose entry files are not the
// snapshot's.
var errServed = errors.New("serves other metadata than the snapshot")
