// Package proc starts subprocesses the way sluice runs every outside tool:
// an argument slice (never a shell), a process group of its own so that a
// cancelled command takes its children with it, and a bounded wait for its
// output after it ends.
package proc

import (
	"context"
	"os/exec"
	"syscall"
	"time"
)

// waitDelay bounds how long Wait waits for a killed command's pipes.
const waitDelay = 5 * time.Second

// Command returns a command for name and args that runs in its own process
// group and, when ctx ends, kills the whole group.
func Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		// The negative pid names the group.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = waitDelay
	return cmd
}
