// Command sluice builds, tests, gates and publishes packages. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	root := newRoot(log)
	root.SetContext(ctx)
	if err := root.ExecuteContext(ctx); err != nil {
		var exit exitError
		if errors.As(err, &exit) {
			os.Exit(int(exit))
		}
		fmt.Fprintln(os.Stderr, "sluice:", err)
		os.Exit(1)
	}
}

// exitError carries an exit status for a command that already printed why.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func newRoot(log *slog.Logger) *cobra.Command {
	root := &cobra.Command{
		Use:           "sluice",
		Short:         "Build, test, gate and publish RPM and DEB packages",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.AddCommand(
		newKeyCmd(),
		newRepoCmd(log),
		newStageCmd(log),
		newServeCmd(log),
		newResultsCmd(log),
		newChangeCmd(log),
		newRetriggerCmd(log),
		newSystestCmd(log),
		newReproduceCmd(log),
		newWorkerCmd(log),
		newEnvCmd(log),
		newReleaseCmd(log),
		newMirrorCmd(log),
	)
	return root
}
