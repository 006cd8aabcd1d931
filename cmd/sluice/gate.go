package main

// The wiring of the gating engine in `sluice serve`: the journal of the
// local source feeds the scheduler (pipeline.Runner), whose actions go to
// the merger (zuul.Merger), the in-process pool (jobs.Pool, running the
// stage functions of stages.go) and back to the local source (votes,
// submits). Only adapters live here; the logic is in pipeline, zuul and
// jobs.

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-ci/sluice/jobs"
	"github.com/sluice-ci/sluice/pipeline"
	"github.com/sluice-ci/sluice/results"
	"github.com/sluice-ci/sluice/zuul"
)

// sluiceAccount is who the reports are by.
var sluiceAccount = zuul.Account{Name: "sluice", Username: "sluice"}

// gateOptions are serve's settings for the gating engine.
type gateOptions struct {
	workers         int
	timeout         time.Duration
	rpmNoDeps       bool
	rpmHostProvides []string
	poll            time.Duration  // how often the journal is read for events other processes wrote
	tokens          results.Tokens // who may report a worker's failure
}

// gate is the gating engine, wired: start runs it under an errgroup;
// handlers are its HTTP endpoints.
type gate struct {
	start    func(ctx context.Context, g *errgroup.Group)
	handlers map[string]http.Handler
}

// newGate wires the scheduler and its parts when the configuration has a
// source of changes (gerrit, or local.projects); nil when it has none.
func newGate(ctx context.Context, e *env, opts gateOptions, log *slog.Logger) (*gate, error) {
	var src *changeSource
	var err error
	switch {
	case e.cfg.Gerrit != nil:
		src, err = gerritSource(ctx, e, log)
	case len(e.cfg.Local.Projects) > 0:
		src, err = localChangeSource(e)
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pcfg, err := pipelineConfig(e, src)
	if err != nil {
		return nil, err
	}
	merger, err := zuul.NewMerger(filepath.Join(e.dataDir, "merger"), log)
	if err != nil {
		return nil, err
	}
	pcfg.ZuulURL = merger.URL()
	journal := zuul.NewJournal(e.db)
	st := pipeline.NewStateStore(e.db, journal, e.recorder)
	snap, err := st.Load(ctx)
	if err != nil {
		return nil, err
	}
	var sched *pipeline.Scheduler
	var initial []pipeline.Action
	if snap == nil {
		sched, err = pipeline.NewScheduler(pcfg, time.Now, strconv.FormatInt(time.Now().UnixNano(), 36))
	} else {
		sched, initial, err = pipeline.Restore(pcfg, time.Now, snap)
		log.Info("scheduler state restored", "actions", len(initial))
	}
	if err != nil {
		return nil, err
	}
	stg, err := newStages(e, opts.timeout, opts.rpmNoDeps, opts.rpmHostProvides, log)
	if err != nil {
		return nil, err
	}
	stg.projectURL = src.repoURL
	var runner *pipeline.Runner
	report := func(ctx context.Context, o jobs.Outcome) {
		outcome := pipeline.Outcome(o.Result.Outcome)
		if err := runner.Deliver(ctx, pipeline.StageEnded{Buildset: o.Run.Buildset, Stage: o.Run.Stage, Attempt: o.Run.Attempt,
			Outcome: outcome, LogURL: o.Result.LogURL}); err != nil && ctx.Err() == nil {
			log.Error("stage outcome lost", "buildset", o.Run.Buildset, "stage", o.Run.Stage, "err", err)
		}
	}
	var pool stageDispatcher
	handlers := maps.Clone(src.handlers)
	if e.cfg.Pipeline.Dispatch == "gearman" {
		gm := jobs.NewGearman(e.cfg.Pipeline.Gearman, "sluice-serve", report, log)
		pool = gm
		allow, err := workerHosts(e.cfg.Server.WorkerHosts)
		if err != nil {
			return nil, err
		}
		record := func(ctx context.Context, r *results.Result) error {
			return e.db.Tx(ctx, func(tx *sql.Tx) error { return e.recorder.Record(ctx, tx, r) })
		}
		if handlers == nil {
			handlers = map[string]http.Handler{}
		}
		h := failureHandler(opts.tokens, allow, gm.Fail, record, log)
		handlers["POST /response/failure"] = h
		handlers["POST /api/v1/response/failure"] = h
	} else {
		pool = jobs.NewPool(stg.funcs(), opts.workers, report, log)
	}
	parts := pipeline.Parts{
		Dispatcher: poolDispatcher{pool},
		Merger:     mergerAdapter{m: merger, repoURL: src.repoURL},
		Reporter:   src.reporter,
		Submitter:  src.submitter,
		Query:      src.query,
		Persist:    st,
	}
	runner = pipeline.NewRunner(sched, parts, log, initial)
	return &gate{handlers: handlers, start: func(ctx context.Context, g *errgroup.Group) {
		g.Go(func() error { return pool.Run(ctx) })
		g.Go(func() error { return runner.Run(ctx) })
		g.Go(func() error { return consumeJournal(ctx, journal, runner, opts.poll, log) })
		if src.start != nil {
			src.start(ctx, g, journal)
		}
		log.Info("gating engine started", "source", src.name, "pipelines", len(pcfg.Pipelines), "projects", len(pcfg.Projects),
			"dispatch", cmp.Or(e.cfg.Pipeline.Dispatch, "inprocess"), "workers", opts.workers)
	}}, nil
}

// localChangeSource is the local source as a changeSource.
func localChangeSource(e *env) (*changeSource, error) {
	local, err := localSource(e)
	if err != nil {
		return nil, err
	}
	paths := map[string]string{}
	for _, p := range e.cfg.Local.Projects {
		paths[p.Name] = p.Path
	}
	return &changeSource{
		name:      zuul.LocalSource,
		query:     local,
		reporter:  localReporter{l: local, serverURL: e.cfg.Server.URL},
		submitter: localSubmitter{l: local, serverURL: e.cfg.Server.URL},
		repoURL:   func(project string) string { return paths[project] },
		projects: func() ([]pipeline.Project, error) {
			var ps []pipeline.Project
			for _, lp := range e.cfg.Local.Projects {
				formats, err := detectFormats(lp)
				if err != nil {
					return nil, err
				}
				ps = append(ps, pipeline.Project{Name: lp.Name, Queue: "integrated", Formats: formats, Stages: []string{}, Attempts: 3})
			}
			return ps, nil
		},
	}, nil
}

// consumeJournal hands every pending journalled event to the scheduler,
// oldest first, once each: an event is marked done by the transaction
// that saves what it changed.
func consumeJournal(ctx context.Context, j *zuul.Journal, r *pipeline.Runner, poll time.Duration, log *slog.Logger) error {
	var last int64
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		entries, err := j.Pending(ctx, 100)
		if err != nil && ctx.Err() == nil {
			log.Error("journal", "err", err)
		}
		for _, en := range entries {
			if en.ID <= last {
				continue // handed over already, not yet saved
			}
			if en.Event.Type == zuul.Retrigger {
				if err := r.Deliver(ctx, pipeline.RetriggerStage{Buildset: en.Event.Buildset, Stage: en.Event.Stage, JournalID: en.ID}); err != nil {
					return nil // stopping
				}
				last = en.ID
				continue
			}
			if err := r.Trigger(ctx, en.Event, en.ID); err != nil {
				if ctx.Err() != nil || errors.Is(err, pipeline.ErrStopped) {
					return nil
				}
				// The change cannot be read: this event can never be
				// applied. Say so, and go on with the others.
				log.Error("event dropped", "event", en.ID, "type", en.Event.Type, "err", err)
				if err := j.DoneAlone(ctx, en.ID); err != nil {
					log.Error("journal", "err", err)
				}
			}
			last = en.ID
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// pipelineConfig is the pipelines and projects: the pipeline.config file,
// or Zuul's reference check, gate and post pipelines and the source's
// projects (a local project with the formats its branch has: debian/ →
// deb, a spec → rpm), with the stages that exist so far (build, publish).
func pipelineConfig(e *env, src *changeSource) (*pipeline.Config, error) {
	if path := e.cfg.Pipeline.Config; path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		c, err := pipeline.ParseConfig(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return c, nil
	}
	c := pipeline.DefaultConfig()
	ps, err := src.projects()
	if err != nil {
		return nil, err
	}
	c.Projects = append(c.Projects, ps...)
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// detectFormats reads the tip of a local project's branch for its
// package layouts.
func detectFormats(lp zuul.LocalProject) ([]string, error) {
	repo, err := git.PlainOpen(lp.Path)
	if err != nil {
		return nil, fmt.Errorf("local project %s: %w", lp.Name, err)
	}
	branch := lp.Branch
	if branch == "" {
		branch = "main"
	}
	ref, err := repo.Reference(plumbing.NewBranchReferenceName(branch), true)
	if err != nil {
		return nil, fmt.Errorf("local project %s: branch %s: %w", lp.Name, branch, err)
	}
	c, err := repo.CommitObject(ref.Hash())
	if err != nil {
		return nil, err
	}
	tree, err := c.Tree()
	if err != nil {
		return nil, err
	}
	var formats []string
	if _, err := tree.FindEntry("debian"); err == nil {
		formats = append(formats, "deb")
	}
	spec := false
	tree.Files().ForEach(func(f *object.File) error {
		dir, name := filepath.Split(f.Name)
		if strings.HasSuffix(name, ".spec") && (dir == "" || dir == "rpm/") {
			spec = true
		}
		return nil
	})
	if spec {
		formats = append(formats, "rpm")
	}
	if len(formats) == 0 {
		return nil, fmt.Errorf("local project %s: no debian/ and no spec on %s", lp.Name, branch)
	}
	return formats, nil
}

// poolDispatcher is the pool as the scheduler's Dispatcher.
type poolDispatcher struct{ p stageDispatcher }

// stageDispatcher is where stage runs go: the in-process pool or Gearman.
type stageDispatcher interface {
	Dispatch(ctx context.Context, r jobs.Run) error
	Cancel(ctx context.Context, key string) error
	Run(ctx context.Context) error
}

func (d poolDispatcher) Dispatch(ctx context.Context, s pipeline.DispatchStage) error {
	return d.p.Dispatch(ctx, jobs.Run{Pipeline: s.Pipeline, Buildset: s.Buildset, Stage: s.Stage, Attempt: s.Attempt,
		Project: s.Project, Params: s.Params})
}

func (d poolDispatcher) Cancel(ctx context.Context, c pipeline.CancelStage) error {
	return d.p.Cancel(ctx, jobs.Run{Buildset: c.Buildset, Stage: c.Stage, Attempt: c.Attempt}.Key())
}

// mergerAdapter is the merger as the scheduler's Merger; sources are the
// projects' repositories.
type mergerAdapter struct {
	m       *zuul.Merger
	repoURL func(project string) string
}

func (a mergerAdapter) Merge(ctx context.Context, ref string, changes []zuul.Change) (map[string]string, string, error) {
	rest, ok := strings.CutPrefix(ref, "refs/sluice/")
	pl, bs, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		return nil, "", fmt.Errorf("merge: %q is not refs/sluice/<pipeline>/<buildset>", ref)
	}
	req := zuul.MergeRequest{Pipeline: pl, Buildset: bs}
	for _, c := range changes {
		url := a.repoURL(c.Project)
		if url == "" {
			return nil, "", fmt.Errorf("merge: project %s has no source", c.Project)
		}
		req.Items = append(req.Items, zuul.MergeItem{Project: c.Project, Branch: c.Branch, URL: url,
			Change: c.Number, Patchset: c.Patchset, Ref: c.Ref, Commit: c.Commit})
	}
	res, err := a.m.Merge(ctx, req)
	if ce, ok := errors.AsType[*zuul.ConflictError](err); ok {
		return nil, strconv.Itoa(ce.Item.Change) + "," + strconv.Itoa(ce.Item.Patchset), nil
	}
	if err != nil {
		return nil, "", err
	}
	return res.Commits, "", nil
}

// reportOf turns the scheduler's report into the source's review.
func reportOf(r pipeline.Report, pipelineName, buildset, serverURL string) zuul.Report {
	zr := zuul.Report{Pipeline: pipelineName, Succeeded: r.Action == "success", Labels: r.Votes}
	switch r.Action {
	case "start":
		zr.Summary = fmt.Sprintf("Starting %s jobs.", pipelineName)
	case "merge-failure":
		zr.Summary = r.Message
	case "success", "failure":
	default:
		zr.Summary = r.Message
	}
	for _, s := range r.Stages {
		outcome := map[pipeline.RunState]string{pipeline.Passed: "SUCCESS", pipeline.Failed: "FAILURE",
			pipeline.Skipped: "SKIPPED", pipeline.Cancelled: "ABORTED"}[s.State]
		if outcome == "" {
			outcome = strings.ToUpper(string(s.State))
		}
		zr.Stages = append(zr.Stages, zuul.StageReport{Name: "sluice." + s.Stage, Outcome: outcome, Duration: s.Duration, LogURL: s.LogURL})
	}
	if buildset != "" && serverURL != "" && len(r.Stages) > 0 {
		zr.RepoURL = strings.TrimSuffix(serverURL, "/") + "/buildsets/" + buildset + "/repo/"
	}
	return zr
}

// localReporter posts reports as reviews on the local source.
type localReporter struct {
	l         *zuul.Local
	serverURL string
}

func (r localReporter) Report(ctx context.Context, rep pipeline.Report) error {
	zr := reportOf(rep, rep.Pipeline, rep.Buildset, r.serverURL)
	in, err := zr.ReviewInput()
	if err != nil {
		return err
	}
	err = r.l.Review(ctx, rep.Change.Number, rep.Change.Patchset, sluiceAccount, in.Message, in.Labels, in.Tag)
	if errors.Is(err, zuul.ErrVotesClosed) {
		// Votes on a closed change are refused: the message alone.
		err = r.l.Review(ctx, rep.Change.Number, rep.Change.Patchset, sluiceAccount, in.Message, nil, in.Tag)
	}
	if errors.Is(err, zuul.ErrNoChange) {
		return fmt.Errorf("%w: %w", pipeline.ErrReportRefused, err)
	}
	return err
}

// Posted says whether a report like rep, by sluice, is on the change
// since a post of it began (see pipeline.PostedChecker).
func (r localReporter) Posted(ctx context.Context, rep pipeline.Report, since time.Time) (bool, error) {
	zr := reportOf(rep, rep.Pipeline, rep.Buildset, r.serverURL)
	in, err := zr.ReviewInput()
	if err != nil {
		return false, err
	}
	msgs, err := r.l.Messages(ctx, rep.Change.Number)
	if err != nil {
		return false, err
	}
	for _, m := range msgs {
		if m.Tag == in.Tag && m.By == sluiceAccount.Username && m.Text == in.Message && !m.At.Before(since.Add(-postedSkew)) {
			return true, nil
		}
	}
	return false, nil
}

// localSubmitter posts the success votes and merges, as the gate does
// through Gerrit.
type localSubmitter struct {
	l         *zuul.Local
	serverURL string
}

func (s localSubmitter) Submit(ctx context.Context, sub pipeline.Submit) (bool, error) {
	ch, err := s.l.Change(ctx, sub.Change.Number)
	if err != nil {
		return false, err
	}
	if ch.Status == "MERGED" {
		return true, nil // a submit sent again after a restart
	}
	zr := reportOf(pipeline.Report{Pipeline: sub.Pipeline, Action: "success", Votes: sub.Votes, Stages: sub.Stages},
		sub.Pipeline, sub.Buildset, s.serverURL)
	in, err := zr.ReviewInput()
	if err != nil {
		return false, err
	}
	if err := s.l.Review(ctx, sub.Change.Number, sub.Change.Patchset, sluiceAccount, in.Message, in.Labels, in.Tag); err != nil {
		return false, err
	}
	// Refused (zuul.ErrNotSubmittable: votes, a conflict, a moved
	// branch) or failed, the change is not merged.
	if _, err := s.l.Submit(ctx, sub.Change.Number, sluiceAccount); err != nil {
		return false, err
	}
	return true, nil
}
