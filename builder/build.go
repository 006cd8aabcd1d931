package builder

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sluice-ci/sluice/repo"
)

// Outcomes of a build, as ResultsDB names them.
const (
	Passed = "PASSED"
	Failed = "FAILED" // the build ran and failed, or its build dependencies are missing
	Error  = "ERROR"  // the build could not run: no sources, no layout, a broken spec
)

// Request is one build: a project's sources at a ref, for a change or a
// release.
type Request struct {
	Project, URL, Ref string
	// Change and Patchset name the change of a test build; both 0 for a
	// release build.
	Change, Patchset int
	// Pipeline, Buildset (a UUID, Zuul's ZUUL_UUID) and Attempt name the
	// stage run this build is, when a pipeline asked for it; they go into
	// the record and its results.
	Pipeline, Buildset string
	Attempt            int
	// Formats to build ("deb", "rpm"); empty means every layout the tree
	// has.
	Formats []string
	// SkipMissing makes a format of Formats that the tree lacks no
	// error: nothing is built or recorded for it. A buildset builds the
	// other projects of its changes this way.
	SkipMissing bool
	// OutDir receives, per format, a directory with the outputs, the log
	// and the record.
	OutDir string
}

// Record says where a build's packages came from: it is what the release
// step checks before it publishes anything.
type Record struct {
	ID       string `json:"id"`
	Project  string `json:"project"`
	URL      string `json:"url"`
	Ref      string `json:"ref"`
	Commit   string `json:"commit"`
	Tree     string `json:"tree"`
	Change   int    `json:"change,omitempty"`
	Patchset int    `json:"patchset,omitempty"`
	Pipeline string `json:"pipeline,omitempty"`
	Buildset string `json:"buildset,omitempty"`
	Attempt  int    `json:"attempt,omitempty"`

	Format   string     `json:"format"`
	Backend  string     `json:"backend"`
	Commands [][]string `json:"commands"`
	Env      []string   `json:"env"`
	Host     string     `json:"host"`
	Sluice   string     `json:"sluice_version"`
	Version  string     `json:"version,omitempty"` // of the packages built

	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Outcome string    `json:"outcome"`
	Reason  string    `json:"reason,omitempty"`
	Outputs []Output  `json:"outputs"`
	// Log is the artifact holding the whole build log; LogTail its last
	// lines.
	Log     Artifact `json:"log"`
	LogTail []string `json:"log_tail,omitempty"`
}

// Output is one file a build made, as stored in the artifact store.
type Output struct {
	Name string `json:"name"`
	Artifact
	// Package is what a binary package says about itself; nil for source
	// packages and other files.
	Package *repo.Package `json:"package,omitempty"`
}

// Builder runs builds: sources from its Sources, outputs into its
// Artifacts, with the back-ends it is given.
type Builder struct {
	sources   *Sources
	artifacts *Artifacts
	backends  []Backend
	workDir   string
	timeout   time.Duration
	env       []string
	version   string
	records   RecordStore
	log       *slog.Logger
}

// Config is what a Builder needs beyond its parts.
type Config struct {
	WorkDir string        // scratch space for checkouts and builds
	Timeout time.Duration // of one build; 0 means no limit
	// Env is the whole environment of build commands (PATH, LC_ALL,
	// SOURCE_DATE_EPOCH...); HOME is set to a fresh directory per build.
	Env []string
	// Version is sluice's own, recorded in every record.
	Version string
	// Records, when not nil, keeps every record (the SQL store); records
	// are also written as JSON beside the outputs.
	Records RecordStore
}

// New returns a Builder.
func New(sources *Sources, artifacts *Artifacts, backends []Backend, cfg Config, log *slog.Logger) *Builder {
	return &Builder{sources: sources, artifacts: artifacts, backends: backends, workDir: cfg.WorkDir,
		timeout: cfg.Timeout, env: cfg.Env, version: cfg.Version, records: cfg.Records, log: log}
}

// logTailLines is how many lines of the log a record keeps.
const logTailLines = 30

// Build checks out req's sources and builds each format. It returns one
// record per format, whatever the outcome; err is only for what keeps it
// from recording at all (an unwritable output directory, a full disk).
func (b *Builder) Build(ctx context.Context, req Request) ([]*Record, error) {
	work, err := os.MkdirTemp(b.workDir, "build-")
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", req.Project, err)
	}
	defer os.RemoveAll(work)
	base := Record{Project: req.Project, URL: req.URL, Ref: req.Ref, Change: req.Change, Patchset: req.Patchset,
		Pipeline: req.Pipeline, Buildset: req.Buildset, Attempt: req.Attempt, Host: hostname(), Sluice: b.version}

	co, err := b.sources.Checkout(ctx, req.Project, req.URL, req.Ref, work)
	if err != nil {
		r := base
		r.ID, r.Start, r.End, r.Outcome, r.Reason = newID(), time.Now().UTC(), time.Now().UTC(), Error, err.Error()
		return []*Record{&r}, b.save(ctx, req.OutDir, "source", &r)
	}
	base.Commit, base.Tree, base.Ref = co.Commit, co.Tree, co.Ref

	var todo []Backend
	for _, be := range b.backends {
		if (len(req.Formats) == 0 || slices.Contains(req.Formats, be.Format())) && be.Detect(co.Dir) {
			todo = append(todo, be)
		}
	}
	for _, f := range req.Formats {
		if !slices.ContainsFunc(todo, func(be Backend) bool { return be.Format() == f }) && !req.SkipMissing {
			r := base
			r.ID, r.Format, r.Start, r.End, r.Outcome = newID(), f, time.Now().UTC(), time.Now().UTC(), Error
			r.Reason = fmt.Sprintf("no %s layout in %s at %s (want debian/ for deb, a *.spec at the root or under rpm/ for rpm)", f, req.Project, co.Commit)
			if err := b.save(ctx, req.OutDir, f, &r); err != nil {
				return nil, err
			}
			return []*Record{&r}, nil
		}
	}
	if len(todo) == 0 && req.SkipMissing {
		return nil, nil
	}
	if len(todo) == 0 {
		r := base
		r.ID, r.Start, r.End, r.Outcome = newID(), time.Now().UTC(), time.Now().UTC(), Error
		r.Reason = fmt.Sprintf("no debian/ and no spec in %s at %s", req.Project, co.Commit)
		return []*Record{&r}, b.save(ctx, req.OutDir, "source", &r)
	}
	var recs []*Record
	for _, be := range todo {
		r, err := b.buildOne(ctx, be, co.Dir, work, req, base)
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	return recs, nil
}

func (b *Builder) buildOne(ctx context.Context, be Backend, dir, work string, req Request, base Record) (*Record, error) {
	r := base
	r.ID, r.Format, r.Backend, r.Start = newID(), be.Format(), be.Name(), time.Now().UTC()
	outDir := filepath.Join(req.OutDir, be.Format())
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	scratch := filepath.Join(work, "out-"+be.Format())
	home := filepath.Join(work, "home-"+be.Format())
	wd := filepath.Join(work, "work-"+be.Format())
	for _, d := range []string{scratch, home, wd} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	logPath := filepath.Join(work, be.Format()+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	job := Job{Dir: dir, OutDir: scratch, WorkDir: wd, Change: req.Change, Patchset: req.Patchset,
		Log: logFile, Env: append(slices.Clone(b.env), "HOME="+home)}
	r.Env = job.Env

	bctx := ctx
	if b.timeout > 0 {
		var cancel context.CancelFunc
		bctx, cancel = context.WithTimeout(ctx, b.timeout)
		defer cancel()
	}
	missing, err := be.MissingBuildDeps(bctx, job)
	switch {
	case err != nil:
		r.Outcome, r.Reason = Error, "check build dependencies: "+err.Error()
	case len(missing) > 0:
		r.Outcome, r.Reason = Failed, fmt.Sprintf("%v: %s", ErrMissingBuildDeps, strings.Join(missing, ", "))
	default:
		job.DepsChecked = true
		res, err := be.Build(bctx, job)
		r.Commands, r.Version = res.Commands, res.Version
		var berr *BuildError
		switch {
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			r.Outcome, r.Reason = Failed, fmt.Sprintf("timed out after %s: %v", b.timeout, err)
		case errors.Is(err, context.Canceled):
			r.Outcome, r.Reason = Error, "cancelled: "+err.Error()
		case errors.As(err, &berr):
			r.Outcome, r.Reason = Failed, err.Error()
		case err != nil:
			r.Outcome, r.Reason = Error, err.Error()
		default:
			r.Outcome = Passed
			if r.Outputs, err = b.storeOutputs(ctx, scratch, res.Outputs); err != nil {
				r.Outcome, r.Reason, r.Outputs = Error, err.Error(), nil
			}
		}
	}
	r.End = time.Now().UTC()
	if err := logFile.Sync(); err != nil {
		return nil, err
	}
	if r.Log, r.LogTail, err = b.storeLog(ctx, logPath); err != nil {
		return nil, err
	}
	if r.Outcome == Passed {
		// The outputs go beside the record only once all are stored.
		for _, o := range r.Outputs {
			if err := os.Rename(filepath.Join(scratch, o.Name), filepath.Join(outDir, o.Name)); err != nil {
				return nil, err
			}
		}
	}
	b.log.Info("build done", "project", r.Project, "format", r.Format, "commit", r.Commit, "outcome", r.Outcome)
	return &r, b.save(ctx, req.OutDir, be.Format(), &r)
}

// storeOutputs puts every output into the artifact store and reads the
// binary packages' own metadata. Names come from the back-end, which
// checked them; they are checked again here.
func (b *Builder) storeOutputs(ctx context.Context, dir string, names []string) ([]Output, error) {
	var outs []Output
	for _, n := range names {
		if n == "" || strings.ContainsAny(n, "/\x00") || n == "." || n == ".." || strings.HasPrefix(n, ".") {
			return nil, fmt.Errorf("output %q: not a plain file name", n)
		}
		p := filepath.Join(dir, n)
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		a, err := b.artifacts.Put(ctx, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("store output %s: %w", n, err)
		}
		o := Output{Name: n, Artifact: a}
		if (strings.HasSuffix(n, ".deb") || strings.HasSuffix(n, ".rpm")) && !strings.HasSuffix(n, ".src.rpm") {
			pkg, err := repo.Inspect(p)
			if err != nil {
				return nil, fmt.Errorf("output %s: %w", n, err)
			}
			if pkg.SHA256 != a.SHA256 {
				return nil, fmt.Errorf("output %s: changed while it was stored", n)
			}
			o.Package = &pkg
		}
		outs = append(outs, o)
	}
	return outs, nil
}

// storeLog puts the log into the artifact store and returns its last lines.
func (b *Builder) storeLog(ctx context.Context, path string) (Artifact, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return Artifact{}, nil, err
	}
	defer f.Close()
	a, err := b.artifacts.Put(ctx, f)
	if err != nil {
		return Artifact{}, nil, fmt.Errorf("store log: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return a, nil, err
	}
	var tail []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		tail = append(tail, sc.Text())
		if len(tail) > logTailLines {
			tail = tail[1:]
		}
	}
	return a, tail, nil
}

// save stores the record, when there is a store, and writes it as JSON
// beside the outputs, atomically.
func (b *Builder) save(ctx context.Context, outDir, format string, r *Record) error {
	if b.records != nil {
		// A cancelled build is recorded too: not under the build's ctx.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := b.records.Save(sctx, r); err != nil {
			return err
		}
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Join(outDir, format)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".record-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, bytes.NewReader(append(data, '\n'))); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, "record.json"))
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
