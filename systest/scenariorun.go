package systest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/sluice-ci/sluice/systest/netlab"
	"github.com/sluice-ci/sluice/systest/scenario"
	"github.com/sluice-ci/sluice/systest/testreport"
)

// ScenarioOptions say where a scenario's nodes come from.
type ScenarioOptions struct {
	// Chroot starts the nodes' environments.
	Chroot *Chroot
	// Base returns the prepared base a node names; it is called for
	// every base before any environment starts.
	Base func(ctx context.Context, name string) (Base, error)
	// Repos are the buildset's test repositories by format (deb, rpm): a
	// node on an RPM base installs from rpm when there is one, any other
	// node from deb.
	Repos map[string]Repo
	// KeepFailed keeps the environments of a scenario that failed, for
	// `sluice env shell`; the others are removed.
	KeepFailed bool
	// StepOutput bounds what is kept of each step's standard output and
	// error; 1 MiB when zero.
	StepOutput int
	Log        *slog.Logger
}

// ScenarioReport is what a scenario run found.
type ScenarioReport struct {
	Scenario string
	Outcome  string // Passed or Failed
	// Reason says why a failed scenario failed, with its file and line.
	Reason string
	Steps  []StepReport
	Log    []byte
	Kept   []string // IDs of the environments kept
	// Network is the ID of the scenario's network (netlab.Lab.ID).
	Network  string
	Duration time.Duration
}

// StepReport is one step's outcome.
type StepReport struct {
	Index    int                `json:"index"`
	Node     string             `json:"node"`
	Args     []string           `json:"args"`
	Outcome  string             `json:"outcome"`
	Exit     int                `json:"exit"`
	Reason   string             `json:"reason,omitempty"`
	Duration time.Duration      `json:"duration_ns"`
	Report   *testreport.Report `json:"report,omitempty"`
}

// Tests are the per-test results of the step reports.
func (r *ScenarioReport) Tests() []testreport.Result {
	var out []testreport.Result
	for _, s := range r.Steps {
		if s.Report != nil {
			out = append(out, s.Report.Tests...)
		}
	}
	return out
}

// RunScenario runs s: a private network with one namespace per node, a
// fresh environment per node on its base in its namespace, with the
// nodes' names in /etc/hosts; each node's packages installed from the
// test repository with the distribution's tool; then the steps in order,
// each against its expectations, background steps left running until the
// end. The first failure ends the scenario. Every environment and the
// network are gone when it returns (kept environments keep only their
// files). An error is a failure of the infrastructure or ctx's end, not
// of the packages.
func RunScenario(ctx context.Context, s *scenario.Scenario, opts ScenarioOptions) (rep ScenarioReport, err error) {
	rep = ScenarioReport{Scenario: s.Name, Outcome: Passed}
	start := time.Now()
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.StepOutput <= 0 {
		opts.StepOutput = 1 << 20
	}
	var out bytes.Buffer
	var bgs []*background
	defer func() {
		// The environments are closed: background steps have ended.
		for _, b := range bgs {
			b.mu.Lock()
			fmt.Fprintf(&out, "output of background step %d on %s:\n%s", b.index, b.node, b.out.b.Bytes())
			b.mu.Unlock()
		}
		rep.Duration = time.Since(start)
		rep.Log = out.Bytes()
	}()
	fail := func(line int, format string, a ...any) {
		if rep.Outcome == Passed {
			rep.Outcome = Failed
			rep.Reason = s.Where(line) + ": " + fmt.Sprintf(format, a...)
			fmt.Fprintf(&out, "FAILED: %s\n", rep.Reason)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()

	names := make([]string, len(s.Nodes))
	for i, n := range s.Nodes {
		names[i] = n.Name
	}
	lab, err := netlab.New(ctx, log, names)
	if err != nil {
		return rep, fmt.Errorf("scenario %s: network: %w", s.Name, err)
	}
	defer func() {
		if cerr := lab.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("scenario %s: network: %w", s.Name, cerr)
		}
	}()
	rep.Network = lab.ID
	fmt.Fprintf(&out, "scenario %s: network %s (%s)\n", s.Name, lab.ID, lab.Subnet)

	envs := make(map[string]*ChrootEnv, len(s.Nodes))
	defer func() {
		for name, e := range envs {
			if cerr := e.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("scenario %s: node %s: %w", s.Name, name, cerr)
			}
			if !opts.KeepFailed {
				continue
			}
			if rep.Outcome == Failed {
				rep.Kept = append(rep.Kept, e.ID())
				continue
			}
			// Kept by its options in case of a failure; the scenario
			// passed.
			if rerr := opts.Chroot.Remove(context.WithoutCancel(ctx), e.ID()); rerr != nil && err == nil {
				err = fmt.Errorf("scenario %s: node %s: %w", s.Name, name, rerr)
			}
		}
	}()
	// Every base is resolved before any environment starts: a base in
	// use by an environment cannot be prepared (or checked) again.
	bases := map[string]Base{}
	for _, n := range s.Nodes {
		if _, ok := bases[n.Base]; ok {
			continue
		}
		b, err := opts.Base(ctx, n.Base)
		if err != nil {
			return rep, fmt.Errorf("scenario %s: node %s: base %s: %w", s.Name, n.Name, n.Base, err)
		}
		bases[n.Base] = b
	}
	for _, n := range s.Nodes {
		if err := startNode(ctx, n, bases[n.Base], lab, opts, envs, &out); err != nil {
			var nf *nodeFailure
			if errors.As(err, &nf) {
				fail(n.Line, "node %s: %s", n.Name, nf.reason)
				return rep, nil
			}
			return rep, fmt.Errorf("scenario %s: node %s: %w", s.Name, n.Name, err)
		}
	}

	for _, st := range s.Steps {
		var bg *background
		if st.Background {
			bg = &background{index: st.Index, node: st.Node, out: capped{max: opts.StepOutput}}
			bgs = append(bgs, bg)
		}
		sr, err := runStep(ctx, st, envs[st.Node], opts.StepOutput, bg, &out)
		rep.Steps = append(rep.Steps, sr)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			fail(st.Line, "step %d: the scenario's time limit (%s) passed", st.Index, s.Timeout)
			return rep, nil
		}
		if err != nil {
			return rep, fmt.Errorf("scenario %s: step %d: %w", s.Name, st.Index, err)
		}
		if sr.Outcome != Passed {
			fail(st.Line, "step %d on %s: %s", st.Index, st.Node, sr.Reason)
			return rep, nil
		}
	}
	return rep, nil
}

// nodeFailure is a node that could not be set up because of what it
// installs: the scenario fails, sluice did not.
type nodeFailure struct{ reason string }

func (e *nodeFailure) Error() string { return e.reason }

// startNode starts n's environment in its namespace and installs its
// packages.
func startNode(ctx context.Context, n scenario.Node, base Base, lab *netlab.Lab, opts ScenarioOptions,
	envs map[string]*ChrootEnv, out *bytes.Buffer) error {
	ln, ok := lab.Node(n.Name)
	if !ok {
		return fmt.Errorf("not in the network")
	}
	var err error
	// An RPM base (Debian with rpm and dnf) installs the buildset's RPMs
	// when it has some; every base has apt for .debs.
	format := "deb"
	if _, ok := opts.Repos["rpm"]; ok && base.Spec.RPM {
		format = "rpm"
	}
	eo := EnvOptions{Base: base, NetNS: ln.Path, Hostname: n.Name, Keep: opts.KeepFailed,
		Files: []File{{Path: "/etc/hosts", Data: append([]byte("127.0.0.1 localhost\n"), lab.Hosts()...)}}}
	var install []string
	if len(n.Packages) > 0 {
		repo, ok := opts.Repos[format]
		if !ok {
			return &nodeFailure{fmt.Sprintf("installs packages on a %s base, and the buildset has no %s repository", format, format)}
		}
		var ro EnvOptions
		if format == "deb" {
			ro, err = aptOptions(repo)
			install = append([]string{"apt-get", "install", "-y", "-q", "--no-install-recommends"}, n.Packages...)
		} else {
			ro, err = dnfOptions(repo)
			install = append(append(dnfArgs(), "install"), n.Packages...)
		}
		if err != nil {
			return err
		}
		eo.Files = append(eo.Files, ro.Files...)
		eo.Mounts = append(eo.Mounts, Mount{Source: repo.Dir, Target: envRepoDir, ReadOnly: true})
	}
	e, err := opts.Chroot.StartChroot(ctx, eo)
	if err != nil {
		return err
	}
	envs[n.Name] = e
	fmt.Fprintf(out, "node %s: %s on %s, environment %s\n", n.Name, ln.Addr, base.Spec.Name, e.ID())
	if install == nil {
		return nil
	}
	steps := [][]string{install}
	if format == "deb" {
		steps = [][]string{aptUpdateArgs(), install}
	}
	for _, args := range steps {
		fmt.Fprintf(out, "$ %s\n", QuoteCommand(args))
		err := e.Run(ctx, Command{Args: args, Stdout: out, Stderr: out, Timeout: 10 * time.Minute})
		if _, failed := errors.AsType[*ExitError](err); failed || errors.Is(err, ErrTimeout) {
			return &nodeFailure{fmt.Sprintf("%s: %v", args[0], err)}
		}
		if err != nil {
			return err
		}
	}
	if format == "rpm" {
		if m := scriptletFailed.Find(out.Bytes()); m != nil {
			return &nodeFailure{string(m)}
		}
	}
	return nil
}

// runStep runs st in e and checks what it expects. The error is the
// infrastructure's; a step that does not pass has Outcome Failed.
func runStep(ctx context.Context, st scenario.Step, e *ChrootEnv, limit int, bg *background, out *bytes.Buffer) (StepReport, error) {
	sr := StepReport{Index: st.Index, Node: st.Node, Args: st.Run, Outcome: Passed}
	start := time.Now()
	defer func() { sr.Duration = time.Since(start) }()
	fmt.Fprintf(out, "step %d on %s: $ %s\n", st.Index, st.Node, QuoteCommand(st.Run))
	if st.Background {
		// The environment stops it when the scenario ends; its output
		// goes to the log then.
		if err := e.Run(ctx, Command{Args: st.Run, Stdout: bg, Stderr: bg, Background: true}); err != nil {
			return sr, err
		}
		return sr, nil
	}
	stdout, stderr := &capped{max: limit}, &capped{max: limit}
	err := e.Run(ctx, Command{Args: st.Run, Stdout: stdout, Stderr: stderr, Timeout: st.Timeout})
	out.Write(stdout.b.Bytes())
	out.Write(stderr.b.Bytes())
	exit, isExit := errors.AsType[*ExitError](err)
	switch {
	case err == nil:
	case isExit:
		sr.Exit = exit.Code
	case errors.Is(err, ErrTimeout):
		sr.Outcome, sr.Exit, sr.Reason = Failed, -1, fmt.Sprintf("no end within its time limit (%s): every process of the node was killed", st.Timeout)
		return sr, nil
	case errors.Is(err, ErrDead):
		sr.Outcome, sr.Exit, sr.Reason = Failed, -1, "the node's processes were killed"
		return sr, nil
	default:
		return sr, err
	}
	if sr.Exit != st.Expect.Exit {
		sr.Outcome, sr.Reason = Failed, fmt.Sprintf("exit status %d, want %d", sr.Exit, st.Expect.Exit)
		return sr, nil
	}
	if re := st.Expect.Stdout; re != nil && !re.Match(stdout.b.Bytes()) {
		sr.Outcome, sr.Reason = Failed, fmt.Sprintf("standard output does not match %q", re)
		return sr, nil
	}
	if re := st.Expect.Stderr; re != nil && !re.Match(stderr.b.Bytes()) {
		sr.Outcome, sr.Reason = Failed, fmt.Sprintf("standard error does not match %q", re)
		return sr, nil
	}
	for _, f := range st.Expect.Files {
		err := e.Run(ctx, Command{Args: []string{"test", "-e", f}, Timeout: time.Minute})
		if _, missing := errors.AsType[*ExitError](err); missing {
			sr.Outcome, sr.Reason = Failed, fmt.Sprintf("no file %s", f)
			return sr, nil
		}
		if err != nil {
			return sr, err
		}
	}
	if st.Report != nil {
		// The report is read through the node's own cat, so what is read
		// is what the node sees, links and all, bounded as the parsers
		// bound their input.
		data := &capped{max: testreport.MaxInput}
		err := e.Run(ctx, Command{Args: []string{"cat", "--", st.Report.Path}, Stdout: data, Timeout: time.Minute})
		if _, missing := errors.AsType[*ExitError](err); missing {
			sr.Outcome, sr.Reason = Failed, fmt.Sprintf("no %s report at %s", st.Report.Format, st.Report.Path)
			return sr, nil
		}
		if err != nil {
			return sr, err
		}
		f, err := testreport.ParseFormat(string(st.Report.Format))
		if err != nil {
			return sr, err
		}
		r, err := testreport.Parse(f, bytes.NewReader(data.b.Bytes()))
		if err != nil {
			sr.Outcome, sr.Reason = Failed, fmt.Sprintf("report %s: %v", st.Report.Path, err)
			return sr, nil
		}
		sr.Report = r
		if !r.Passed() {
			c := r.Counts()
			sr.Outcome, sr.Reason = Failed, fmt.Sprintf("report %s: %+v%s", st.Report.Path, c, problems(r.Problems))
		}
	}
	return sr, nil
}

func problems(p []string) string {
	if len(p) == 0 {
		return ""
	}
	return "; " + strings.Join(p, "; ")
}

// capped keeps the first max bytes written and drops the rest.
type capped struct {
	b   bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.b.Len(); room > 0 {
		c.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// background keeps a background step's output, written while later
// steps run, for the log once the scenario ends.
type background struct {
	mu    sync.Mutex
	index int
	node  string
	out   capped
}

func (b *background) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.Write(p)
}
