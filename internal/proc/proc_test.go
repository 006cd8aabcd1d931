package proc

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCancelKillsTheGroup starts a shell that starts a child which would
// outlive it, cancels, and checks that the child is gone too.
func TestCancelKillsTheGroup(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "child")
	ctx, cancel := context.WithCancel(t.Context())
	cmd := Command(ctx, "/bin/sh", "-c", `sleep 300 & echo $! > "$0"; wait`, pidFile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	for range 500 {
		if data, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(data), "\n") {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(data)))
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if pid == 0 {
		t.Fatal("the child did not start")
	}
	cancel()
	if err := cmd.Wait(); err == nil {
		t.Fatal("a cancelled command reported success")
	}
	// The child was killed with its group; it is a zombie of init's or gone.
	for range 500 {
		if err := syscall.Kill(pid, 0); err != nil {
			return
		}
		if data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); strings.Contains(string(data), ") Z ") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("child %d outlived its cancelled parent", pid)
}
