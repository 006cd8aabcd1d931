package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sluice-ci/sluice/zuul"
)

// Manager names a pipeline manager, as Zuul's `manager` setting.
type Manager string

// The pipeline managers.
const (
	Independent Manager = "independent"
	Dependent   Manager = "dependent"
	Supercedent Manager = "supercedent"
)

// Window grow and shrink rules (Zuul's window-increase-type and
// window-decrease-type).
const (
	Linear      = "linear"
	Exponential = "exponential"
)

// RecheckRegexp is Zuul's reference pipeline's recheck comment, as Zuul's
// documentation gives it for the check pipeline.
const RecheckRegexp = `(?i)^(Patch Set [0-9]+:)?( [\w\\+-]*)*(\n\n)?\s*recheck`

// Config is sluice's pipeline and project configuration, in Zuul's
// vocabulary: a YAML sequence of `- pipeline:` and `- project:` entries.
type Config struct {
	Pipelines []Pipeline
	Projects  []Project
	// ZuulURL is the git URL the stages fetch ZUUL_REF from (ZUUL_URL).
	ZuulURL string
}

// Pipeline is one pipeline's configuration. The window fields are pointers
// so that an absent one takes Zuul's default (see [Pipeline.applyDefaults]).
type Pipeline struct {
	Name         string         `yaml:"name"`
	Description  string         `yaml:"description,omitempty"`
	Manager      Manager        `yaml:"manager"`
	Trigger      Trigger        `yaml:"trigger"`
	Require      Require        `yaml:"require,omitempty"`
	Start        ReporterConfig `yaml:"start,omitempty"`
	Success      ReporterConfig `yaml:"success,omitempty"`
	Failure      ReporterConfig `yaml:"failure,omitempty"`
	MergeFailure ReporterConfig `yaml:"merge-failure,omitempty"`

	Window               *int    `yaml:"window,omitempty"`
	WindowFloor          *int    `yaml:"window-floor,omitempty"`
	WindowCeiling        *int    `yaml:"window-ceiling,omitempty"`
	WindowIncreaseType   *string `yaml:"window-increase-type,omitempty"`
	WindowIncreaseFactor *int    `yaml:"window-increase-factor,omitempty"`
	WindowDecreaseType   *string `yaml:"window-decrease-type,omitempty"`
	WindowDecreaseFactor *int    `yaml:"window-decrease-factor,omitempty"`

	// ConfirmFailures (a sluice extension, not Zuul's) holds the failure
	// of an item's buildset until every non-failing item ahead of it has
	// passed the stage that failed: only then are the items behind it
	// tested again without it. A failure caused by a change ahead (which
	// every buildset behind that change shares) then resets the queue
	// once, when that change fails, instead of once per item behind it.
	ConfirmFailures bool `yaml:"confirm-failures,omitempty"`

	// compiled by Validate
	filters []compiledFilter
}

// Trigger is a pipeline's `trigger` section; only the Gerrit driver.
type Trigger struct {
	Gerrit []EventFilter `yaml:"gerrit"`
}

// EventFilter is one Gerrit trigger entry: the event types, and for
// comment-added the comment regular expressions and approvals that match.
type EventFilter struct {
	Event    StringList       `yaml:"event"`
	Comment  StringList       `yaml:"comment,omitempty"`
	Approval []map[string]int `yaml:"approval,omitempty"`
	Branch   StringList       `yaml:"branch,omitempty"`
}

type compiledFilter struct {
	events   []zuul.EventType
	comments []*regexp.Regexp
	approval []map[string]int
	branches []*regexp.Regexp
}

// Require is a pipeline's `require` section: what a change must currently
// be for an item to be enqueued (Zuul's pipeline requirements).
type Require struct {
	Gerrit GerritRequire `yaml:"gerrit,omitempty"`
}

// GerritRequire is Zuul's Gerrit requirement: open, current patchset, and
// approvals the change must currently have (each entry's labels must all
// hold, with exactly that value).
type GerritRequire struct {
	Open            bool             `yaml:"open,omitempty"`
	CurrentPatchset bool             `yaml:"current-patchset,omitempty"`
	Approval        []map[string]int `yaml:"approval,omitempty"`
}

// ReporterConfig is a `start`, `success`, `failure` or `merge-failure` section:
// `gerrit: {Verified: 2, submit: true}`. Labels map to votes; `submit`
// asks for the change to be submitted.
type ReporterConfig struct {
	Gerrit map[string]any `yaml:"gerrit,omitempty"`
}

// Votes returns the label votes of the report and whether it submits.
func (r ReporterConfig) Votes() (votes map[string]int, submit bool) {
	for k, v := range r.Gerrit {
		if k == "submit" {
			b, _ := v.(bool)
			submit = b
			continue
		}
		if n, ok := v.(int); ok {
			if votes == nil {
				votes = map[string]int{}
			}
			votes[k] = n
		}
	}
	return votes, submit
}

// Empty says whether the reporter does nothing.
func (r ReporterConfig) Empty() bool { return len(r.Gerrit) == 0 }

// Project is a project's configuration: which shared gate queue it is in,
// which package formats it builds and which optional stages it runs.
type Project struct {
	Name string `yaml:"name"`
	// Queue names the shared change queue of dependent pipelines; projects
	// with the same queue are gated together. Default: the project name.
	Queue string `yaml:"queue,omitempty"`
	// Formats are the package formats built: deb, rpm. Default both.
	Formats []string `yaml:"formats,omitempty"`
	// Stages are the stages run after publish: lint, install, systest;
	// and mirror, run by the post pipeline after release. Default lint,
	// install and systest.
	Stages []string `yaml:"stages,omitempty"`
	// FailFast cancels the other stages of a buildset at its first
	// failure (Zuul's fail-fast); by default they run to the end.
	FailFast bool `yaml:"fail-fast,omitempty"`
	// Attempts is how many times a stage that ends in error (not failure)
	// is run; Zuul's default is 3.
	Attempts int `yaml:"attempts,omitempty"`
}

// StringList is a YAML string or list of strings, as Zuul accepts.
type StringList []string

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (s *StringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		var v string
		if err := n.Decode(&v); err != nil {
			return err
		}
		*s = StringList{v}
		return nil
	case yaml.SequenceNode:
		var v []string
		if err := n.Decode(&v); err != nil {
			return err
		}
		*s = v
		return nil
	}
	return fmt.Errorf("line %d: want a string or a list of strings", n.Line)
}

type configEntry struct {
	Pipeline *Pipeline `yaml:"pipeline,omitempty"`
	Project  *Project  `yaml:"project,omitempty"`
	Sluice   *struct {
		ZuulURL string `yaml:"zuul-url"`
	} `yaml:"sluice,omitempty"`
}

// maxConfigBytes bounds the configuration file.
const maxConfigBytes = 4 << 20

// ParseConfig decodes a configuration strictly (unknown fields are
// errors), applies the defaults and validates it.
func ParseConfig(r io.Reader) (*Config, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("pipeline config: read: %w", err)
	}
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("pipeline config: larger than %d bytes", maxConfigBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var entries []configEntry
	if err := dec.Decode(&entries); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("pipeline config: decode: %w", err)
	}
	var c Config
	for i, e := range entries {
		n := 0
		if e.Pipeline != nil {
			n++
			c.Pipelines = append(c.Pipelines, *e.Pipeline)
		}
		if e.Project != nil {
			n++
			c.Projects = append(c.Projects, *e.Project)
		}
		if e.Sluice != nil {
			n++
			c.ZuulURL = e.Sluice.ZuulURL
		}
		if n != 1 {
			return nil, fmt.Errorf("pipeline config: entry %d: want exactly one of pipeline, project, sluice", i)
		}
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// DefaultConfig is Zuul's reference pipelines for sluice: check
// (independent, on new patchsets and recheck, Verified ±1), gate
// (dependent, on Code-Review +2 and Workflow +1, Verified 0 at start, +2
// with submit, -2 on failure) and post (supercedent, on change-merged).
func DefaultConfig() *Config {
	c := &Config{
		Pipelines: []Pipeline{
			{
				Name:    "check",
				Manager: Independent,
				Trigger: Trigger{Gerrit: []EventFilter{
					{Event: StringList{string(zuul.PatchsetCreated)}},
					{Event: StringList{string(zuul.CommentAdded)}, Comment: StringList{RecheckRegexp}},
				}},
				Require: Require{Gerrit: GerritRequire{Open: true, CurrentPatchset: true}},
				Success: ReporterConfig{Gerrit: map[string]any{"Verified": 1}},
				Failure: ReporterConfig{Gerrit: map[string]any{"Verified": -1}},
			},
			{
				Name:    "gate",
				Manager: Dependent,
				Trigger: Trigger{Gerrit: []EventFilter{
					{Event: StringList{string(zuul.CommentAdded)}, Approval: []map[string]int{{"Workflow": 1}}},
					{Event: StringList{string(zuul.CommentAdded)}, Approval: []map[string]int{{"Code-Review": 2}}},
				}},
				Require: Require{Gerrit: GerritRequire{Open: true, CurrentPatchset: true,
					Approval: []map[string]int{{"Code-Review": 2}, {"Workflow": 1}}}},
				Start:   ReporterConfig{Gerrit: map[string]any{"Verified": 0}},
				Success: ReporterConfig{Gerrit: map[string]any{"Verified": 2, "submit": true}},
				Failure: ReporterConfig{Gerrit: map[string]any{"Verified": -2}},
			},
			{
				Name:    "post",
				Manager: Supercedent,
				Trigger: Trigger{Gerrit: []EventFilter{{Event: StringList{string(zuul.ChangeMerged), string(zuul.RefUpdated)}}}},
			},
		},
	}
	c.applyDefaults()
	return c
}

func intp(v int) *int       { return &v }
func strp(v string) *string { return &v }

// applyDefaults fills what the file left out with Zuul's defaults.
func (c *Config) applyDefaults() {
	for i := range c.Pipelines {
		p := &c.Pipelines[i]
		if p.Window == nil {
			p.Window = intp(20)
		}
		if p.WindowFloor == nil {
			p.WindowFloor = intp(3)
		}
		if p.WindowCeiling == nil {
			p.WindowCeiling = intp(0) // 0: no ceiling (Zuul: infinity)
		}
		if p.WindowIncreaseType == nil {
			p.WindowIncreaseType = strp(Linear)
		}
		if p.WindowIncreaseFactor == nil {
			p.WindowIncreaseFactor = intp(1)
		}
		if p.WindowDecreaseType == nil {
			p.WindowDecreaseType = strp(Exponential)
		}
		if p.WindowDecreaseFactor == nil {
			p.WindowDecreaseFactor = intp(2)
		}
		if p.MergeFailure.Empty() {
			p.MergeFailure = p.Failure
		}
	}
	for i := range c.Projects {
		p := &c.Projects[i]
		if p.Queue == "" {
			p.Queue = p.Name
		}
		if len(p.Formats) == 0 {
			p.Formats = []string{"deb", "rpm"}
		}
		if p.Stages == nil {
			p.Stages = []string{StageLint, StageInstall, StageSystest}
		}
		if p.Attempts == 0 {
			p.Attempts = 3
		}
	}
}

var (
	nameRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	labelRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)
	// projectRe is a Gerrit project name: path segments, no "..".
	projectRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$`)
)

// Validate checks the configuration and compiles its regular expressions;
// an error names the bad field.
func (c *Config) Validate() error {
	if len(c.Pipelines) == 0 {
		return errors.New("pipeline config: no pipelines")
	}
	seen := map[string]bool{}
	for i := range c.Pipelines {
		p := &c.Pipelines[i]
		if err := p.validate(); err != nil {
			return fmt.Errorf("pipeline config: pipelines[%d] (%s): %w", i, p.Name, err)
		}
		if seen[p.Name] {
			return fmt.Errorf("pipeline config: pipelines[%d]: name %q: defined twice", i, p.Name)
		}
		seen[p.Name] = true
	}
	seen = map[string]bool{}
	for i := range c.Projects {
		p := &c.Projects[i]
		if err := p.validate(); err != nil {
			return fmt.Errorf("pipeline config: projects[%d] (%s): %w", i, p.Name, err)
		}
		if seen[p.Name] {
			return fmt.Errorf("pipeline config: projects[%d]: name %q: defined twice", i, p.Name)
		}
		seen[p.Name] = true
	}
	if strings.ContainsAny(c.ZuulURL, " \n\t") {
		return errors.New("pipeline config: sluice.zuul-url: contains white space")
	}
	return nil
}

func (p *Pipeline) validate() error {
	if !nameRe.MatchString(p.Name) {
		return fmt.Errorf("name %q: want letters, digits, '.', '_', '-'", p.Name)
	}
	switch p.Manager {
	case Independent, Dependent, Supercedent:
	default:
		return fmt.Errorf("manager %q: want independent, dependent or supercedent", p.Manager)
	}
	if len(p.Trigger.Gerrit) == 0 {
		return errors.New("trigger.gerrit: empty")
	}
	p.filters = nil
	for i, f := range p.Trigger.Gerrit {
		cf := compiledFilter{approval: f.Approval}
		if len(f.Event) == 0 {
			return fmt.Errorf("trigger.gerrit[%d].event: missing", i)
		}
		for _, e := range f.Event {
			switch t := zuul.EventType(e); t {
			case zuul.PatchsetCreated, zuul.CommentAdded, zuul.ChangeMerged, zuul.ChangeAbandoned, zuul.RefUpdated, zuul.DraftPublished:
				cf.events = append(cf.events, t)
			default:
				return fmt.Errorf("trigger.gerrit[%d].event: unknown event %q", i, e)
			}
		}
		for _, s := range f.Comment {
			re, err := regexp.Compile(s)
			if err != nil {
				return fmt.Errorf("trigger.gerrit[%d].comment: %w", i, err)
			}
			cf.comments = append(cf.comments, re)
		}
		for _, s := range f.Branch {
			re, err := regexp.Compile(s)
			if err != nil {
				return fmt.Errorf("trigger.gerrit[%d].branch: %w", i, err)
			}
			cf.branches = append(cf.branches, re)
		}
		if err := validateApprovals(f.Approval); err != nil {
			return fmt.Errorf("trigger.gerrit[%d].approval: %w", i, err)
		}
		p.filters = append(p.filters, cf)
	}
	if err := validateApprovals(p.Require.Gerrit.Approval); err != nil {
		return fmt.Errorf("require.gerrit.approval: %w", err)
	}
	for name, r := range map[string]ReporterConfig{"start": p.Start, "success": p.Success, "failure": p.Failure, "merge-failure": p.MergeFailure} {
		for k, v := range r.Gerrit {
			if k == "submit" {
				if _, ok := v.(bool); !ok {
					return fmt.Errorf("%s.gerrit.submit: want true or false", name)
				}
				if p.Manager != Dependent && v == true {
					return fmt.Errorf("%s.gerrit.submit: only a dependent pipeline submits", name)
				}
				continue
			}
			if !labelRe.MatchString(k) {
				return fmt.Errorf("%s.gerrit: label %q: not a label name", name, k)
			}
			n, ok := v.(int)
			if !ok || n < -127 || n > 127 {
				return fmt.Errorf("%s.gerrit.%s: want a vote between -127 and 127", name, k)
			}
		}
	}
	if *p.Window < 0 {
		return fmt.Errorf("window %d: negative", *p.Window)
	}
	if *p.WindowFloor < 1 {
		return fmt.Errorf("window-floor %d: want at least 1", *p.WindowFloor)
	}
	if *p.WindowCeiling < 0 || (*p.WindowCeiling > 0 && *p.WindowCeiling < *p.WindowFloor) {
		return fmt.Errorf("window-ceiling %d: below window-floor %d", *p.WindowCeiling, *p.WindowFloor)
	}
	for _, t := range []struct {
		field string
		v     string
	}{{"window-increase-type", *p.WindowIncreaseType}, {"window-decrease-type", *p.WindowDecreaseType}} {
		if t.v != Linear && t.v != Exponential {
			return fmt.Errorf("%s %q: want linear or exponential", t.field, t.v)
		}
	}
	if *p.WindowIncreaseFactor < 0 {
		return fmt.Errorf("window-increase-factor %d: negative", *p.WindowIncreaseFactor)
	}
	if *p.WindowDecreaseFactor < 0 || (*p.WindowDecreaseType == Exponential && *p.WindowDecreaseFactor < 1) {
		return fmt.Errorf("window-decrease-factor %d: want at least 1 (0 for linear)", *p.WindowDecreaseFactor)
	}
	return nil
}

func validateApprovals(list []map[string]int) error {
	for _, m := range list {
		if len(m) == 0 {
			return errors.New("empty entry")
		}
		for k := range m {
			if !labelRe.MatchString(k) {
				return fmt.Errorf("label %q: not a label name", k)
			}
		}
	}
	return nil
}

func (p *Project) validate() error {
	if !projectRe.MatchString(p.Name) || strings.Contains(p.Name, "..") || len(p.Name) > 255 {
		return fmt.Errorf("name %q: not a project name", p.Name)
	}
	if !nameRe.MatchString(p.Queue) {
		return fmt.Errorf("queue %q: want letters, digits, '.', '_', '-'", p.Queue)
	}
	for _, f := range p.Formats {
		if f != "deb" && f != "rpm" {
			return fmt.Errorf("formats: unknown format %q (want deb, rpm)", f)
		}
	}
	if len(p.Formats) != len(slices.Compact(slices.Sorted(slices.Values(p.Formats)))) {
		return errors.New("formats: listed twice")
	}
	for _, s := range p.Stages {
		if s != StageLint && s != StageInstall && s != StageSystest && s != StageMirror {
			return fmt.Errorf("stages: unknown stage %q (want lint, install, systest, mirror)", s)
		}
	}
	if p.Attempts < 1 || p.Attempts > 10 {
		return fmt.Errorf("attempts %d: want 1 to 10", p.Attempts)
	}
	return nil
}

// pipeline returns the named pipeline's configuration.
func (c *Config) pipeline(name string) *Pipeline {
	for i := range c.Pipelines {
		if c.Pipelines[i].Name == name {
			return &c.Pipelines[i]
		}
	}
	return nil
}

// project returns a project's configuration; a project not listed gets
// the defaults.
func (c *Config) project(name string) Project {
	for _, p := range c.Projects {
		if p.Name == name {
			return p
		}
	}
	p := Project{Name: name, Queue: name, Formats: []string{"deb", "rpm"},
		Stages: []string{StageLint, StageInstall, StageSystest}, Attempts: 3}
	return p
}
