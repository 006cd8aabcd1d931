package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/sluice-ci/sluice/zuul"
)

// DependsOn is one Depends-On footer of a commit message: a change URL
// (Number set, URL the whole value) or a legacy Change-Id (ChangeID set).
type DependsOn struct {
	URL      string `json:"url,omitempty"`
	Number   int    `json:"number,omitempty"`
	ChangeID string `json:"change_id,omitempty"`
}

// Query returns the Gerrit search that finds the change.
func (d DependsOn) Query() string {
	if d.ChangeID != "" {
		return "change:" + d.ChangeID
	}
	return "change:" + strconv.Itoa(d.Number)
}

var (
	// Zuul's DEPENDS_ON_RE: a whole line, case-insensitive.
	dependsOnRe = regexp.MustCompile(`(?im)^Depends-On: (.*?)\s*$`)
	changeIDRe  = regexp.MustCompile(`^I[0-9a-f]{40}$`)
	gerritURLRe = []*regexp.Regexp{
		regexp.MustCompile(`^/(?:.*/)?c/(?:.+/\+/)?([0-9]+)(?:/.*)?$`), // /c/project/+/1234/2, /c/1234
		regexp.MustCompile(`^/(?:.*/)?([0-9]+)/?$`),                    // /1234
	}
	fragmentRe = regexp.MustCompile(`^/c/([0-9]+)(?:/.*)?$`) // #/c/1234/
)

// maxFooters bounds how many Depends-On footers are honoured.
const maxFooters = 32

// ParseDependsOn returns the Depends-On footers of a commit message, in
// order and without repeats. A value that is neither an http(s) change URL
// nor a Change-Id is ignored, as Zuul does.
func ParseDependsOn(message string) []DependsOn {
	var out []DependsOn
	seen := map[DependsOn]bool{}
	for _, m := range dependsOnRe.FindAllStringSubmatch(message, -1) {
		d, ok := parseDependsOnValue(strings.TrimSpace(m[1]))
		if !ok || seen[d] {
			continue
		}
		seen[d] = true
		out = append(out, d)
		if len(out) == maxFooters {
			break
		}
	}
	return out
}

func parseDependsOnValue(v string) (DependsOn, bool) {
	if changeIDRe.MatchString(v) {
		return DependsOn{ChangeID: v}, true
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return DependsOn{}, false
	}
	num := ""
	if m := fragmentRe.FindStringSubmatch(u.Fragment); m != nil {
		num = m[1]
	} else {
		for _, re := range gerritURLRe {
			if m := re.FindStringSubmatch(u.Path); m != nil {
				num = m[1]
				break
			}
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 {
		return DependsOn{}, false
	}
	return DependsOn{URL: v, Number: n}, true
}

// ChangeQuery searches Gerrit changes (Gerrit's query syntax, for example
// "change:1234" or "commit:<sha>"), returning their current state.
type ChangeQuery interface {
	Query(ctx context.Context, query string) ([]zuul.Change, error)
}

// maxDeps bounds the dependencies followed from one change.
const maxDeps = 64

// ResolveDeps finds the open changes c needs: its Depends-On footers and
// the open changes whose commits are its git parents, then theirs, up to
// 64 changes. needs are the keys ([NumberKey]) of c's own dependencies.
// Cycles are kept: the scheduler reports them.
func ResolveDeps(ctx context.Context, q ChangeQuery, c zuul.Change) (needs []string, deps []Dep, err error) {
	direct := func(c zuul.Change) ([]zuul.Change, error) {
		var out []zuul.Change
		for _, d := range ParseDependsOn(c.Message) {
			found, err := q.Query(ctx, d.Query())
			if err != nil {
				return nil, fmt.Errorf("change %s: Depends-On %s: %w", c.String(), d.Query(), err)
			}
			out = append(out, openOnBranch(found, c.Branch, d.ChangeID != "")...)
		}
		for _, p := range c.Parents {
			found, err := q.Query(ctx, "commit:"+p)
			if err != nil {
				return nil, fmt.Errorf("change %s: parent %s: %w", c.String(), p, err)
			}
			for _, f := range found {
				if f.Status == "NEW" && f.Project == c.Project && NumberKey(&f) != NumberKey(&c) {
					out = append(out, f)
				}
			}
		}
		return out, nil
	}
	root := NumberKey(&c)
	known := map[string]bool{root: true}
	first, err := direct(c)
	if err != nil {
		return nil, nil, err
	}
	queue := []zuul.Change{}
	for _, f := range first {
		k := NumberKey(&f)
		if !containsStr(needs, k) {
			needs = append(needs, k)
		}
		if !known[k] {
			known[k] = true
			queue = append(queue, f)
		}
	}
	for len(queue) > 0 && len(deps) < maxDeps {
		d := queue[0]
		queue = queue[1:]
		more, err := direct(d)
		if err != nil {
			return nil, nil, err
		}
		dep := Dep{Change: d}
		for _, f := range more {
			k := NumberKey(&f)
			if !containsStr(dep.Needs, k) {
				dep.Needs = append(dep.Needs, k)
			}
			if !known[k] {
				known[k] = true
				queue = append(queue, f)
			}
		}
		deps = append(deps, dep)
	}
	return needs, deps, nil
}

// openOnBranch keeps the open changes; for a Change-Id, which names a
// change on every branch, those on branch when there are some.
func openOnBranch(found []zuul.Change, branch string, byChangeID bool) []zuul.Change {
	var open, same []zuul.Change
	for _, f := range found {
		if f.Status != "NEW" {
			continue
		}
		open = append(open, f)
		if f.Branch == branch {
			same = append(same, f)
		}
	}
	if byChangeID && len(same) > 0 {
		return same
	}
	return open
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ErrCycle is returned when changes depend on each other in a cycle.
var ErrCycle = errors.New("dependency cycle")

// orderDeps returns the open changes root needs, dependencies first, or an
// error wrapping ErrCycle that names the cycle.
func orderDeps(root string, needs []string, deps []Dep) ([]zuul.Change, error) {
	byKey := map[string]*Dep{}
	for i := range deps {
		byKey[NumberKey(&deps[i].Change)] = &deps[i]
	}
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{root: visiting}
	var out []zuul.Change
	var path []string
	var visit func(k string) error
	visit = func(k string) error {
		d, ok := byKey[k]
		if !ok {
			return nil // not open, or not found: nothing to wait for
		}
		switch state[k] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("%w: %s", ErrCycle, strings.Join(append(path, k), " -> "))
		}
		state[k] = visiting
		path = append(path, k)
		for _, n := range d.Needs {
			if n == root {
				return fmt.Errorf("%w: %s", ErrCycle, strings.Join(append([]string{root}, append(path, root)...), " -> "))
			}
			if err := visit(n); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		state[k] = done
		out = append(out, d.Change)
		return nil
	}
	for _, n := range needs {
		if n == root {
			return nil, fmt.Errorf("%w: %s needs itself", ErrCycle, root)
		}
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return out, nil
}
