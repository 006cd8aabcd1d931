package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sluice-ci/sluice/internal/proc"
)

// tools runs the other programs, each with a time limit, in its own
// process group and with the environment the builds get.
type tools struct {
	// env is the environment of every command but HOME: the same as
	// sluice's builds get (builder.Config.Env).
	env []string
	// home is HOME for commands that are not part of a by-hand build,
	// which get a fresh one each.
	home string
}

func (t *tools) have(bin string) bool {
	_, err := exec.LookPath(bin)
	return err == nil
}

// missing returns the first of bins that is not installed, or "".
func (t *tools) missing(bins ...string) string {
	for _, b := range bins {
		if !t.have(b) {
			return b
		}
	}
	return ""
}

// run runs argv in dir with HOME set to home and both outputs to out (nil:
// kept for the error only).
func (t *tools) run(ctx context.Context, dir, home string, out io.Writer, argv ...string) error {
	ctx, cancel := context.WithTimeout(ctx, toolTimeout)
	defer cancel()
	cmd := proc.Command(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(slices.Clone(t.env), "HOME="+home)
	var tail bytes.Buffer
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout = out
	cmd.Stderr = io.MultiWriter(out, &tail)
	if err := cmd.Run(); err != nil {
		msg := tail.Bytes()
		msg = msg[max(0, len(msg)-800):]
		return fmt.Errorf("%s in %s: %w: %s", strings.Join(argv, " "), dir, err, bytes.TrimSpace(msg))
	}
	return nil
}

// script is one by-hand run: its commands share a fresh HOME and a log
// file, as a sluice build's do.
type script struct {
	t    *tools
	home string
	log  *os.File
}

func (t *tools) newScript(dir string) (*script, error) {
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return nil, err
	}
	return &script{t: t, home: home, log: log}, nil
}

func (s *script) run(ctx context.Context, dir string, argv ...string) error {
	fmt.Fprintf(s.log, "+ %s\n", strings.Join(argv, " "))
	return s.t.run(ctx, dir, s.home, s.log, argv...)
}

func (s *script) close() error { return s.log.Close() }

func (t *tools) printVersions(ctx context.Context, w io.Writer) {
	for _, v := range []struct {
		tool string
		argv []string
	}{
		{"git", []string{"git", "--version"}},
		{"dpkg-buildpackage", []string{"dpkg-buildpackage", "--version"}},
		{"rpmbuild", []string{"rpmbuild", "--version"}},
		{"gcc", []string{"gcc", "--version"}},
	} {
		if !t.have(v.tool) {
			fmt.Fprintf(w, "%-18s skipped: %s not found\n", v.tool, v.tool)
			continue
		}
		var out bytes.Buffer
		version := "unknown"
		if t.run(ctx, "", t.home, &out, v.argv...) == nil {
			line, _, _ := strings.Cut(out.String(), "\n")
			version = strings.TrimSpace(line)
		}
		fmt.Fprintf(w, "%-18s %s\n", v.tool, version)
	}
}
