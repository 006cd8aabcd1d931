package zuul

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Params are the Zuul v2 job parameters of one stage run, as Zuul's
// Gearman launcher passes them to Jenkins or turbo-hipster and as their
// jobs read them from the environment (Zuul's launchers.rst, "Zuul
// Parameters"). A stage run is for a change (Change > 0), for a ref update
// (RefName set: post pipelines), or for neither (a periodic run); Env
// writes the variables of its kind only.
type Params struct {
	// UUID is ZUUL_UUID. In sluice it is the buildset's UUID: 32 hex
	// digits as Zuul writes them, or the canonical form with dashes.
	UUID     string
	Pipeline string // ZUUL_PIPELINE
	Project  string // ZUUL_PROJECT
	// URL is ZUUL_URL, where the job fetches ZUUL_REF of each project:
	// URL/<project> (the Merger's URL).
	URL string
	// Ref is ZUUL_REF: refs/sluice/<pipeline>/<buildset> for a change,
	// the updated ref for a ref update.
	Ref string
	// Commit is ZUUL_COMMIT, the commit at Ref: the speculative merge for
	// a change, the new revision for a ref update.
	Commit string
	// Job is the stage the run is for; it names LOG_PATH, which is left
	// out without it.
	Job string

	// For a change: ZUUL_BRANCH, ZUUL_CHANGE, ZUUL_PATCHSET.
	Branch   string
	Change   int
	Patchset int
	// Changes are the changes of the buildset, the ones ahead of this one
	// first and this one last (ZUUL_CHANGES and ZUUL_CHANGE_IDS).
	Changes []ParamChange

	// For a ref update: ZUUL_REFNAME, ZUUL_OLDREV and ZUUL_NEWREV (40
	// zeros for a ref created or deleted).
	RefName string
	OldRev  string
	NewRev  string
}

// ParamChange is one change of a buildset as ZUUL_CHANGES and
// ZUUL_CHANGE_IDS list it.
type ParamChange struct {
	Project  string
	Branch   string
	Number   int
	Patchset int
	// Ref is the change's refspec, refs/changes/NN/NNNN/P.
	Ref string
}

// The variables, in the order Env writes them.
const (
	envUUID        = "ZUUL_UUID"
	envPipeline    = "ZUUL_PIPELINE"
	envProject     = "ZUUL_PROJECT"
	envURL         = "ZUUL_URL"
	envRef         = "ZUUL_REF"
	envCommit      = "ZUUL_COMMIT"
	envBranch      = "ZUUL_BRANCH"
	envChange      = "ZUUL_CHANGE"
	envPatchset    = "ZUUL_PATCHSET"
	envChanges     = "ZUUL_CHANGES"
	envChangeIDs   = "ZUUL_CHANGE_IDS"
	envRefName     = "ZUUL_REFNAME"
	envOldRev      = "ZUUL_OLDREV"
	envNewRev      = "ZUUL_NEWREV"
	envShortOldRev = "ZUUL_SHORT_OLDREV"
	envShortNewRev = "ZUUL_SHORT_NEWREV"
	envBaseLogPath = "BASE_LOG_PATH"
	envLogPath     = "LOG_PATH"
)

var paramKeys = []string{
	envUUID, envPipeline, envProject, envURL, envRef, envCommit,
	envBranch, envChange, envPatchset, envChanges, envChangeIDs,
	envRefName, envOldRev, envNewRev, envShortOldRev, envShortNewRev,
	envBaseLogPath, envLogPath,
}

// zeroRev is Zuul's revision for "none".
const zeroRev = "0000000000000000000000000000000000000000"

// ParamsError reports an invalid parameter, naming the variable.
type ParamsError struct {
	Var string
	Err error
}

func (e *ParamsError) Error() string { return "zuul params: " + e.Var + ": " + e.Err.Error() }
func (e *ParamsError) Unwrap() error { return e.Err }

func paramErr(v, format string, args ...any) error {
	return &ParamsError{Var: v, Err: fmt.Errorf(format, args...)}
}

// BaseLogPath is Zuul's BASE_LOG_PATH: NN/NNNN/P for a change (NN the last
// two digits of the number, not padded, as Zuul writes it), RR/REV for a
// ref update (RR the first two digits of the new revision), empty
// otherwise.
func (p *Params) BaseLogPath() string {
	switch {
	case p.Change > 0:
		n := strconv.Itoa(p.Change)
		return n[max(0, len(n)-2):] + "/" + n + "/" + strconv.Itoa(p.Patchset)
	case p.RefName != "" && len(p.NewRev) >= 2:
		return p.NewRev[:2] + "/" + p.NewRev
	}
	return ""
}

// LogPath is Zuul's LOG_PATH: BASE_LOG_PATH/pipeline/job/uuid[:7] (without
// the leading part when BASE_LOG_PATH is empty), or "" without a Job.
func (p *Params) LogPath() string {
	if p.Job == "" {
		return ""
	}
	s := p.Pipeline + "/" + p.Job + "/" + p.UUID[:7]
	if b := p.BaseLogPath(); b != "" {
		s = b + "/" + s
	}
	return s
}

// Env returns the parameters as environment entries (KEY=value) in a
// fixed order, after checking them.
func (p *Params) Env() ([]string, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	var env []string
	add := func(k, v string) { env = append(env, k+"="+v) }
	add(envUUID, p.UUID)
	add(envPipeline, p.Pipeline)
	add(envProject, p.Project)
	add(envURL, p.URL)
	if p.Ref != "" {
		add(envRef, p.Ref)
	}
	if p.Commit != "" {
		add(envCommit, p.Commit)
	}
	switch {
	case p.Change > 0:
		add(envBranch, p.Branch)
		add(envChange, strconv.Itoa(p.Change))
		add(envPatchset, strconv.Itoa(p.Patchset))
		changes := make([]string, len(p.Changes))
		ids := make([]string, len(p.Changes))
		for i, c := range p.Changes {
			changes[i] = c.Project + ":" + c.Branch + ":" + c.Ref
			ids[i] = strconv.Itoa(c.Number) + "," + strconv.Itoa(c.Patchset)
		}
		add(envChanges, strings.Join(changes, "^"))
		add(envChangeIDs, strings.Join(ids, " "))
	case p.RefName != "":
		add(envRefName, p.RefName)
		add(envOldRev, p.OldRev)
		add(envNewRev, p.NewRev)
		add(envShortOldRev, p.OldRev[:7])
		add(envShortNewRev, p.NewRev[:7])
	}
	add(envBaseLogPath, p.BaseLogPath())
	if lp := p.LogPath(); lp != "" {
		add(envLogPath, lp)
	}
	return env, nil
}

// Validate checks every field, and that the fields of a kind of run are
// all there and those of other kinds are not.
func (p *Params) Validate() error {
	if !validUUID(p.UUID) {
		return paramErr(envUUID, "%q: want 32 hex digits or a UUID", p.UUID)
	}
	if err := validRefComponent(p.Pipeline); err != nil {
		return &ParamsError{Var: envPipeline, Err: err}
	}
	if err := validProject(p.Project); err != nil {
		return &ParamsError{Var: envProject, Err: err}
	}
	if err := validParamURL(p.URL); err != nil {
		return &ParamsError{Var: envURL, Err: err}
	}
	if p.Commit != "" && !isSHA1(p.Commit) {
		return paramErr(envCommit, "%q: not a lower-case SHA-1", p.Commit)
	}
	if p.Job != "" {
		if err := validRefComponent(p.Job); err != nil {
			return &ParamsError{Var: envLogPath, Err: fmt.Errorf("job: %w", err)}
		}
	}
	switch {
	case p.Change < 0:
		return paramErr(envChange, "%d: negative", p.Change)
	case p.Change > 0:
		return p.validateChange()
	case p.RefName != "":
		return p.validateRefUpdate()
	}
	switch {
	case p.Patchset != 0:
		return paramErr(envPatchset, "set without a change")
	case p.Branch != "":
		return paramErr(envBranch, "set without a change")
	case len(p.Changes) > 0:
		return paramErr(envChanges, "set without a change")
	case p.OldRev != "" || p.NewRev != "":
		return paramErr(envNewRev, "set without a ref name")
	}
	if p.Ref != "" {
		if err := validRefName(p.Ref); err != nil {
			return &ParamsError{Var: envRef, Err: err}
		}
	}
	return nil
}

func (p *Params) validateChange() error {
	if p.Patchset <= 0 {
		return paramErr(envPatchset, "%d: want a positive number", p.Patchset)
	}
	if err := validBranchName(p.Branch); err != nil {
		return &ParamsError{Var: envBranch, Err: err}
	}
	if p.Ref == "" || p.Commit == "" {
		return paramErr(envRef, "a change's run needs ZUUL_REF and ZUUL_COMMIT")
	}
	if err := validRefName(p.Ref); err != nil {
		return &ParamsError{Var: envRef, Err: err}
	}
	if p.RefName != "" || p.OldRev != "" || p.NewRev != "" {
		return paramErr(envRefName, "set for a change")
	}
	if len(p.Changes) == 0 {
		return paramErr(envChanges, "empty: the change itself is the last one")
	}
	for i, c := range p.Changes {
		if err := validProject(c.Project); err != nil {
			return paramErr(envChanges, "change %d: project: %w", i, err)
		}
		if err := validBranchName(c.Branch); err != nil {
			return paramErr(envChanges, "change %d: branch: %w", i, err)
		}
		if err := validRefName(c.Ref); err != nil {
			return paramErr(envChanges, "change %d: ref: %w", i, err)
		}
		if c.Number <= 0 || c.Patchset <= 0 {
			return paramErr(envChangeIDs, "change %d: %d,%d: want positive numbers", i, c.Number, c.Patchset)
		}
	}
	last := p.Changes[len(p.Changes)-1]
	if last.Number != p.Change || last.Patchset != p.Patchset || last.Project != p.Project || last.Branch != p.Branch {
		return paramErr(envChanges, "the last change is %s %d,%d on %s, not this one", last.Project, last.Number, last.Patchset, last.Branch)
	}
	return nil
}

func (p *Params) validateRefUpdate() error {
	// Older Gerrits name a branch's ref-updated by its short name.
	if err := validRefName(p.RefName); err != nil && validBranchName(p.RefName) != nil {
		return &ParamsError{Var: envRefName, Err: err}
	}
	for _, r := range []struct{ v, rev string }{{envOldRev, p.OldRev}, {envNewRev, p.NewRev}} {
		if !isSHA1(r.rev) {
			return paramErr(r.v, "%q: not a lower-case SHA-1", r.rev)
		}
	}
	if p.OldRev == zeroRev && p.NewRev == zeroRev {
		return paramErr(envNewRev, "both revisions are zero")
	}
	if p.Ref != p.RefName {
		return paramErr(envRef, "%q: a ref update's ZUUL_REF is its ZUUL_REFNAME %q", p.Ref, p.RefName)
	}
	if p.Commit != p.NewRev {
		return paramErr(envCommit, "%q: a ref update's ZUUL_COMMIT is its ZUUL_NEWREV %q", p.Commit, p.NewRev)
	}
	if p.Patchset != 0 || p.Branch != "" || len(p.Changes) > 0 {
		return paramErr(envChange, "change fields set for a ref update")
	}
	return nil
}

// ParseParams reads the parameters back from an environment (entries
// KEY=value, as os.Environ gives them): variables it does not know are
// ignored, those it knows are checked, and must agree with each other
// (BASE_LOG_PATH and LOG_PATH included, when present). ZUUL_CHANGE_IDS may
// be separated by spaces, as Zuul writes it, or by carets.
func ParseParams(env []string) (*Params, error) {
	known := make(map[string]bool, len(paramKeys))
	for _, k := range paramKeys {
		known[k] = true
	}
	vars := make(map[string]string)
	for _, e := range env {
		k, v, ok := strings.Cut(e, "=")
		if !ok {
			if strings.HasPrefix(e, "ZUUL_") {
				return nil, paramErr(e, "no '=' in the entry")
			}
			continue
		}
		if !known[k] {
			continue
		}
		if _, dup := vars[k]; dup {
			return nil, paramErr(k, "given twice")
		}
		if strings.ContainsAny(v, "\x00\r\n") {
			return nil, paramErr(k, "contains a NUL or line break")
		}
		vars[k] = v
	}
	p := &Params{
		UUID:     vars[envUUID],
		Pipeline: vars[envPipeline],
		Project:  vars[envProject],
		URL:      vars[envURL],
		Ref:      vars[envRef],
		Commit:   vars[envCommit],
		Branch:   vars[envBranch],
		RefName:  vars[envRefName],
		OldRev:   vars[envOldRev],
		NewRev:   vars[envNewRev],
	}
	for _, k := range []string{envUUID, envPipeline, envProject, envURL} {
		if _, ok := vars[k]; !ok {
			return nil, paramErr(k, "missing")
		}
	}
	var err error
	if v, ok := vars[envChange]; ok {
		if p.Change, err = paramNumber(envChange, v); err != nil {
			return nil, err
		}
		if p.Patchset, err = paramNumber(envPatchset, vars[envPatchset]); err != nil {
			return nil, err
		}
		if p.Changes, err = parseParamChanges(vars[envChanges], vars[envChangeIDs]); err != nil {
			return nil, err
		}
	} else {
		for _, k := range []string{envPatchset, envChanges, envChangeIDs} {
			if _, ok := vars[k]; ok {
				return nil, paramErr(k, "set without ZUUL_CHANGE")
			}
		}
	}
	if p.RefName != "" {
		for _, s := range []struct{ k, rev string }{{envShortOldRev, p.OldRev}, {envShortNewRev, p.NewRev}} {
			if v, ok := vars[s.k]; ok && (len(s.rev) < 7 || v != s.rev[:7]) {
				return nil, paramErr(s.k, "%q is not the start of %q", v, s.rev)
			}
		}
	} else if _, ok := vars[envShortOldRev]; ok {
		return nil, paramErr(envShortOldRev, "set without ZUUL_REFNAME")
	} else if _, ok := vars[envShortNewRev]; ok {
		return nil, paramErr(envShortNewRev, "set without ZUUL_REFNAME")
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if v, ok := vars[envBaseLogPath]; ok && v != p.BaseLogPath() {
		return nil, paramErr(envBaseLogPath, "%q, want %q", v, p.BaseLogPath())
	}
	if v, ok := vars[envLogPath]; ok {
		if p.Job, err = jobFromLogPath(p, v); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// jobFromLogPath takes the job out of LOG_PATH and checks the rest.
func jobFromLogPath(p *Params, v string) (string, error) {
	prefix := p.Pipeline + "/"
	if b := p.BaseLogPath(); b != "" {
		prefix = b + "/" + prefix
	}
	suffix := "/" + p.UUID[:7]
	job, ok := strings.CutPrefix(v, prefix)
	if ok {
		job, ok = strings.CutSuffix(job, suffix)
	}
	if !ok {
		return "", paramErr(envLogPath, "%q: want %s<job>%s", v, prefix, suffix)
	}
	if err := validRefComponent(job); err != nil {
		return "", &ParamsError{Var: envLogPath, Err: fmt.Errorf("job: %w", err)}
	}
	return job, nil
}

// parseParamChanges reads ZUUL_CHANGES (project:branch:ref joined by
// carets) and ZUUL_CHANGE_IDS (number,patchset joined by spaces or
// carets), which list the same changes in the same order.
func parseParamChanges(changes, ids string) ([]ParamChange, error) {
	if changes == "" {
		return nil, paramErr(envChanges, "missing")
	}
	if ids == "" {
		return nil, paramErr(envChangeIDs, "missing")
	}
	cs := strings.Split(changes, "^")
	sep := " "
	if !strings.Contains(ids, " ") && strings.Contains(ids, "^") {
		sep = "^"
	}
	is := strings.Split(ids, sep)
	if len(cs) != len(is) {
		return nil, paramErr(envChangeIDs, "%d changes, but ZUUL_CHANGES lists %d", len(is), len(cs))
	}
	out := make([]ParamChange, len(cs))
	for i := range cs {
		// Neither a branch nor a ref can hold ':', so the last two
		// separate the project's name from them.
		j := strings.LastIndexByte(cs[i], ':')
		k := -1
		if j > 0 {
			k = strings.LastIndexByte(cs[i][:j], ':')
		}
		if k <= 0 {
			return nil, paramErr(envChanges, "%q: want project:branch:ref", cs[i])
		}
		n, ps, ok := strings.Cut(is[i], ",")
		if !ok {
			return nil, paramErr(envChangeIDs, "%q: want number,patchset", is[i])
		}
		number, err := paramNumber(envChangeIDs, n)
		if err != nil {
			return nil, err
		}
		patchset, err := paramNumber(envChangeIDs, ps)
		if err != nil {
			return nil, err
		}
		out[i] = ParamChange{Project: cs[i][:k], Branch: cs[i][k+1 : j], Ref: cs[i][j+1:], Number: number, Patchset: patchset}
	}
	return out, nil
}

// paramNumber parses a positive decimal number as Zuul writes one: no sign,
// no leading zero, below 2^31.
func paramNumber(k, v string) (int, error) {
	if v == "" || v[0] == '0' || len(v) > 10 {
		return 0, paramErr(k, "%q: want a positive number", v)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, paramErr(k, "%q: want a positive number", v)
		}
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0, paramErr(k, "%q: %w", v, errors.Unwrap(err))
	}
	return int(n), nil
}

// validUUID accepts 32 lower-case hex digits (Python's uuid4().hex, which
// Zuul uses) or the canonical 8-4-4-4-12 form.
func validUUID(s string) bool {
	switch len(s) {
	case 32:
		return isHex(s)
	case 36:
		for _, i := range []int{8, 13, 18, 23} {
			if s[i] != '-' {
				return false
			}
		}
		return isHex(s[:8] + s[9:13] + s[14:18] + s[19:23] + s[24:])
	}
	return false
}

func validBranchName(b string) error {
	if b == "" {
		return errors.New("empty branch name")
	}
	if strings.HasPrefix(b, "refs/") {
		return fmt.Errorf("%q: want a short branch name", b)
	}
	return validRefName("refs/heads/" + b)
}

// validParamURL accepts the URL a job fetches from: file, http, https, ssh
// or git, without credentials (they would be in every job's environment)
// or characters a shell script could trip on.
func validParamURL(s string) error {
	if s == "" || len(s) > 2048 {
		return errors.New("want a URL of 1 to 2048 bytes")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || strings.IndexByte("\"'`$\\;|&<>", c) >= 0 {
			return fmt.Errorf("%q: contains %q", s, c)
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return fmt.Errorf("%q: a file URL names no host", s)
		}
	case "http", "https", "ssh", "git":
		if u.Host == "" {
			return fmt.Errorf("%q: no host", s)
		}
	default:
		return fmt.Errorf("%q: want a file, http, https, ssh or git URL", s)
	}
	if _, hasPass := u.User.Password(); hasPass {
		return fmt.Errorf("%s: credentials in the URL are not accepted", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: a query or fragment", s)
	}
	return nil
}
