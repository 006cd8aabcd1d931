package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/sluice-ci/sluice/internal/proc"
)

// ownerDir holds one record per live lab, naming the process that owns it,
// so that Sweep can tell the labs of a crashed process from the labs of a
// running one. Like /run/netns, it is on tmpfs and does not survive a
// reboot, nor do the namespaces.
const ownerDir = "/run/sluice-netlab"

var labID = regexp.MustCompile(`^[0-9a-z]{8}$`)

// owner identifies a process across PID reuse: its PID and its start time
// in clock ticks since boot (field 22 of /proc/PID/stat).
type owner struct {
	pid   int
	start string
}

func (o owner) String() string { return strconv.Itoa(o.pid) + " " + o.start + "\n" }

func self() (owner, error) {
	pid := os.Getpid()
	start, err := startTime(pid)
	return owner{pid: pid, start: start}, err
}

func startTime(pid int) (string, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return "", fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 {
		return "", fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	return f[19], nil // field 22
}

func (o owner) alive() bool {
	start, err := startTime(o.pid)
	return err == nil && start == o.start
}

// writeOwner records this process as the owner of lab id, atomically.
func writeOwner(id string) error {
	me, err := self()
	if err != nil {
		return fmt.Errorf("netlab %s: owner: %w", id, err)
	}
	if err := os.MkdirAll(ownerDir, 0o700); err != nil {
		return fmt.Errorf("netlab %s: owner: %w", id, err)
	}
	f, err := os.CreateTemp(ownerDir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("netlab %s: owner: %w", id, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(me.String()); err != nil {
		f.Close()
		return fmt.Errorf("netlab %s: write owner: %w", id, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("netlab %s: sync owner: %w", id, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("netlab %s: write owner: %w", id, err)
	}
	if err := os.Rename(f.Name(), filepath.Join(ownerDir, id)); err != nil {
		return fmt.Errorf("netlab %s: owner: %w", id, err)
	}
	return nil
}

func removeOwner(id string) error {
	if err := os.Remove(filepath.Join(ownerDir, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("netlab %s: remove owner: %w", id, err)
	}
	return nil
}

func readOwner(id string) (owner, error) {
	data, err := os.ReadFile(filepath.Join(ownerDir, id))
	if err != nil {
		return owner{}, err
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return owner{}, fmt.Errorf("netlab %s: owner record %q", id, data)
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return owner{}, fmt.Errorf("netlab %s: owner record %q", id, data)
	}
	return owner{pid: pid, start: f[1]}, nil
}

// Sweep removes the labs left behind by processes that died without
// closing them (a worker killed with SIGKILL, a machine's OOM killer): the
// namespaces of every lab whose owner is no longer running, then its
// record. Labs of running processes, and namespaces no lab recorded, are
// left alone. A worker calls it when it starts. It returns the IDs of the
// labs it removed.
func Sweep(ctx context.Context, log *slog.Logger) ([]string, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	entries, err := os.ReadDir(ownerDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netlab: sweep: %w", err)
	}
	var swept []string
	var errs []error
	for _, e := range entries {
		id := e.Name()
		if !labID.MatchString(id) {
			continue
		}
		o, err := readOwner(id)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		if err != nil || o.alive() {
			continue
		}
		names, err := Namespaces(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		failed := false
		for _, name := range names {
			cmd := proc.Command(ctx, "ip", "netns", "delete", name)
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("netlab %s: sweep: ip netns delete %s: %w: %s", id, name, err, bytes.TrimSpace(out)))
				failed = true
			}
		}
		if failed {
			continue
		}
		if err := removeOwner(id); err != nil {
			errs = append(errs, err)
			continue
		}
		log.Info("network lab swept", "lab", id, "namespaces", len(names), "owner", o.pid)
		swept = append(swept, id)
	}
	return swept, errors.Join(errs...)
}
