package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-ci/sluice/builder"
	"github.com/sluice-ci/sluice/jobs"
	"github.com/sluice-ci/sluice/results"
	"github.com/sluice-ci/sluice/systest"
	"github.com/sluice-ci/sluice/systest/netlab"
	"github.com/sluice-ci/sluice/systest/scenario"
)

// scenarioDir is where a project keeps its system test scenarios, at the
// root of its tree.
const scenarioDir = ".sluice/systest"

// maxScenarioFile bounds a scenario file read from a project's tree.
const maxScenarioFile = 1 << 20

// systest runs the buildset's system test scenarios (the project's
// .sluice/systest/*.yaml at the buildset's commit, and those in the
// config) on its test repositories: one sluice.systest.<scenario> result
// each, with the per-test results of the reports its steps left as an
// artifact the result's data points to, and one sluice.systest for the
// stage. A scenario that does not parse fails with its file and line.
// Cancelled (the install stage failed), it stops every scenario and
// leaves nothing.
func (s *stages) systest(ctx context.Context, r jobs.Run) (jobs.Result, error) {
	sp, err := parseStageParams(r.Params)
	if err != nil {
		return jobs.Result{}, fmt.Errorf("stage systest: %w", err)
	}
	start := time.Now()
	cfg := s.env.cfg.Systest
	chroot := envChroot(s.env.dataDir, s.log)
	// Networks of a worker killed mid-scenario, and environments kept
	// past their time.
	if _, err := netlab.Sweep(ctx, s.log); err != nil {
		s.log.Warn("netlab sweep", "err", err)
	}
	if kept, err := chroot.Kept(); err == nil {
		for id, when := range kept {
			if time.Since(when) > cfg.KeepFailed {
				if err := chroot.Remove(ctx, id); err != nil {
					s.log.Warn("kept environment not removed", "env", id, "err", err)
				}
			}
		}
	}

	files, err := s.scenarioFiles(ctx, sp, cfg.Scenarios)
	if err != nil {
		return jobs.Result{}, fmt.Errorf("stage systest: %w", err)
	}
	var pub bytes.Buffer
	if err := s.testKey.WritePublic(&pub); err != nil {
		return jobs.Result{}, fmt.Errorf("stage systest: %w", err)
	}
	repos := map[string]systest.Repo{}
	for _, format := range []string{"deb", "rpm"} {
		dir := filepath.Join(s.buildsetDir(sp.UUID), "repo", format)
		if _, err := os.Stat(dir); err == nil {
			repos[format] = systest.Repo{Format: format, Dir: dir, Key: pub.Bytes(), Suite: testCodename, Component: "main", Origin: "sluice"}
		}
	}
	bases := systest.NewBases(cfg.basesDir(s.env.dataDir), s.log)
	opts := systest.ScenarioOptions{Chroot: chroot, Repos: repos, KeepFailed: cfg.KeepFailed > 0, Log: s.log,
		Base: func(ctx context.Context, name string) (systest.Base, error) {
			spec, ok := cfg.base(name)
			if !ok {
				return systest.Base{}, fmt.Errorf("base %q is not defined (systest.bases)", name)
			}
			return bases.Prepare(ctx, spec, false)
		}}

	link := artifactURL(s.env.cfg.Server.URL)
	var (
		res          []*results.Result
		notes        []string
		passed, fail int
		logURL       string
	)
	for _, f := range files {
		sr := stageResult(sp, "systest", r.Attempt, start, "", nil)
		sc, perr := scenario.Parse(f.name, f.data)
		var rep systest.ScenarioReport
		if perr != nil {
			name := strings.TrimSuffix(path.Base(f.name), path.Ext(f.name))
			sr.Testcase.Name = "sluice.systest." + name
			rep = systest.ScenarioReport{Scenario: name, Outcome: systest.Failed, Reason: perr.Error(), Log: []byte(perr.Error() + "\n")}
		} else {
			sr.Testcase.Name = "sluice.systest." + sc.Name
			sStart := time.Now()
			rep, err = systest.RunScenario(ctx, sc, opts)
			if err != nil {
				if ctx.Err() != nil {
					return jobs.Result{}, ctx.Err()
				}
				return jobs.Result{}, fmt.Errorf("stage systest: %w", err)
			}
			sr.Data["duration"] = []string{strconv.FormatFloat(time.Since(sStart).Seconds(), 'f', 3, 64)}
		}
		sr.Outcome = rep.Outcome
		sr.Data["scenario"], sr.Data["scenario_file"] = []string{rep.Scenario}, []string{f.name}
		// The scenario as it ran, for sluice reproduce.
		sa, err := s.arts.Put(ctx, bytes.NewReader(f.data))
		if err != nil {
			return jobs.Result{}, err
		}
		sr.Data["scenario_sha256"] = []string{sa.SHA256}
		if rep.Outcome != systest.Passed {
			fail++
			sr.Note = rep.Reason
			notes = append(notes, rep.Scenario+": "+rep.Reason)
			if len(rep.Kept) > 0 {
				sr.Data["kept_env"] = rep.Kept
			}
		} else {
			passed++
		}
		var counts [4]int
		tests := rep.Tests()
		for _, t := range tests {
			switch t.Outcome {
			case "pass":
				counts[0]++
			case "fail":
				counts[1]++
			case "skip":
				counts[2]++
			default:
				counts[3]++
			}
		}
		for i, k := range []string{"tests_passed", "tests_failed", "tests_skipped", "tests_error"} {
			sr.Data[k] = []string{strconv.Itoa(counts[i])}
		}
		a, err := s.arts.Put(ctx, bytes.NewReader(rep.Log))
		if err != nil {
			return jobs.Result{}, err
		}
		sr.Data["log_sha256"] = []string{a.SHA256}
		if link != nil {
			sr.RefURL = link(a)
			sr.Data["log_url"] = []string{sr.RefURL}
		}
		if logURL == "" || rep.Outcome != systest.Passed && fail == 1 {
			logURL = sr.RefURL
		}
		// The steps and the per-test results of their reports, for
		// whoever looks closer (and later metrics).
		details, err := json.Marshal(struct {
			Steps []systest.StepReport `json:"steps"`
		}{rep.Steps})
		if err != nil {
			return jobs.Result{}, err
		}
		d, err := s.arts.Put(ctx, bytes.NewReader(details))
		if err != nil {
			return jobs.Result{}, err
		}
		sr.Data["details_sha256"] = []string{d.SHA256}
		if link != nil {
			sr.Data["details_url"] = []string{link(d)}
		}
		res = append(res, sr)
	}
	outcome := jobs.Passed
	if fail > 0 {
		outcome = jobs.Failed
	}
	if len(files) == 0 {
		notes = append(notes, "no scenarios ("+scenarioDir+"/*.yaml in the project, or systest.scenarios)")
	}
	notes = append([]string{fmt.Sprintf("%d scenarios passed, %d failed", passed, fail)}, notes...)
	stage := stageResult(sp, "systest", r.Attempt, start, outcome, notes)
	stage.RefURL = logURL
	res = append(res, stage)
	if err := s.record(ctx, res...); err != nil {
		return jobs.Result{}, err
	}
	return jobs.Result{Outcome: outcome, LogURL: logURL}, nil
}

// scenarioFile is one scenario's bytes and the name messages give it.
type scenarioFile struct {
	name string
	data []byte
}

// scenarioFiles reads the configured scenarios and the project's own, at
// the buildset's commit of the project (its tree checked out from the
// source cache).
func (s *stages) scenarioFiles(ctx context.Context, sp stageParams, configured []string) ([]scenarioFile, error) {
	var out []scenarioFile
	for _, f := range configured {
		data, err := readLimitedFile(f, maxScenarioFile)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: %w", f, err)
		}
		out = append(out, scenarioFile{name: f, data: data})
	}
	ref := sp.Ref
	if sp.Commit != "" {
		ref = sp.Commit
	}
	url := gitURL(strings.TrimSuffix(sp.URL, "/") + "/" + sp.Project)
	if sp.Change == 0 && s.projectURL != nil {
		if u := s.projectURL(sp.Project); u != "" {
			url = u
		}
	}
	work := filepath.Join(s.env.dataDir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	co, err := builder.NewSources(filepath.Join(s.env.dataDir, "git"), s.log).Checkout(ctx, sp.Project, url, ref, work)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(co.Dir)
	// The tree is the change's: read through a root, links not followed
	// out of it.
	root, err := os.OpenRoot(co.Dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	entries, err := fs.ReadDir(root.FS(), scenarioDir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); e.Type().IsRegular() && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		f, err := root.Open(path.Join(scenarioDir, n))
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(io.LimitReader(f, maxScenarioFile+1))
		f.Close()
		if err != nil {
			return nil, err
		}
		name := path.Join(scenarioDir, n)
		if len(data) > maxScenarioFile {
			return nil, fmt.Errorf("scenario %s: larger than %d bytes", name, maxScenarioFile)
		}
		out = append(out, scenarioFile{name: name, data: data})
	}
	return out, nil
}

// readLimitedFile reads a file of at most max bytes.
func readLimitedFile(name string, max int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return data, nil
}
