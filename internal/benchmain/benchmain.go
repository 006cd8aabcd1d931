// Package benchmain is the shared end of the benchmarks' main functions:
// after the flags are parsed, check them, run until done or interrupted,
// and exit with 2 on bad flags and 1 on a failed run. Timings never fail
// a benchmark; only a run that could not measure does.
package benchmain

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// Run checks the parsed flags with validate (no arguments are taken
// either), then runs run with a context that SIGINT and SIGTERM cancel,
// the table going to standard output and warnings to standard error.
func Run(name string, validate func() error, run func(ctx context.Context, w io.Writer, log *slog.Logger) error) {
	err := validate()
	if err == nil && flag.NArg() > 0 {
		err = fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		flag.Usage()
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, os.Stdout, log)
	stop()
	if err != nil {
		log.Error("benchmark failed", "err", err)
		os.Exit(1)
	}
}
