package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-ci/sluice/systest/netlab"
	"github.com/sluice-ci/sluice/systest/testreport"
)

// Limits and defaults.
const (
	// MaxSize is the largest scenario file, in bytes.
	MaxSize = 1 << 20
	// MaxNodes is the most nodes in a scenario.
	MaxNodes = 64
	// MaxSteps is the most steps in a scenario.
	MaxSteps = 1000
	// MaxArgs is the most arguments in a step's command.
	MaxArgs = 1024
	// MaxTimeout is the longest timeout a scenario or a step may ask for.
	MaxTimeout = 24 * time.Hour
	// DefaultTimeout is a scenario's timeout when it gives none.
	DefaultTimeout = 30 * time.Minute
	// DefaultStepTimeout is a step's timeout when it gives none (cut to the
	// scenario's).
	DefaultStepTimeout = 5 * time.Minute
	maxPattern         = 4096
	maxProblems        = 50
)

var (
	scenarioName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	baseName     = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	// packageName admits Debian and RPM package names.
	packageName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._-]{0,127}$`)
)

// Scenario is a validated system test scenario.
type Scenario struct {
	// File is the name the scenario was read under, used in messages.
	File    string
	Name    string
	Timeout time.Duration
	Nodes   []Node
	Steps   []Step
}

// Node is a node of a scenario.
type Node struct {
	Name     string
	Base     string
	Packages []string
	// Line is where the node is declared, for the runner's messages.
	Line int
}

// Step is one command run on a node.
type Step struct {
	// Index counts steps from 1, as messages do.
	Index int
	Line  int
	Node  string
	// Run is the argument vector; Run[0] is looked up in the node's PATH.
	Run     []string
	Timeout time.Duration
	// Background steps are started and left running until the scenario
	// ends (a server); they have no expectations.
	Background bool
	Expect     Expect
	// Report, when not nil, is a test report the step leaves in the node.
	Report *Report
}

// Expect is what a step must give to pass.
type Expect struct {
	// Exit is the exit status wanted (0 unless the scenario says).
	Exit int
	// Stdout and Stderr, when not nil, must match the step's output.
	Stdout, Stderr *regexp.Regexp
	// Files must exist in the node after the step (absolute paths).
	Files []string
}

// Report names a test report a step leaves behind, to be collected and
// parsed with testreport.
type Report struct {
	Format testreport.Format
	// Path is absolute, inside the node.
	Path string
}

// Where returns "file:line" for messages about the scenario.
func (s *Scenario) Where(line int) string {
	return s.File + ":" + strconv.Itoa(line)
}

// Node returns the node called name.
func (s *Scenario) Node(name string) (Node, bool) {
	for _, n := range s.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// Problem is one fault of a scenario file, at a line.
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return p.File + ": " + p.Msg
}

// Error lists the problems of a scenario file, in the order of the file.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads and parses the scenario file at name. To read a scenario from
// a checkout of a project's repository, open it through an os.Root of the
// checkout (a symbolic link there must not lead elsewhere) and call Parse.
func Load(name string) (*Scenario, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("scenario %s: read: %w", name, err)
	}
	return Parse(name, data)
}

type rawScenario struct {
	Name    string    `yaml:"name"`
	Timeout string    `yaml:"timeout"`
	Nodes   []rawNode `yaml:"nodes"`
	Steps   []rawStep `yaml:"steps"`
}

type rawNode struct {
	Name     string   `yaml:"name"`
	Base     string   `yaml:"base"`
	Packages []string `yaml:"packages"`
}

type rawStep struct {
	Node       string     `yaml:"node"`
	Run        []string   `yaml:"run"`
	Timeout    string     `yaml:"timeout"`
	Background bool       `yaml:"background"`
	Expect     *rawExpect `yaml:"expect"`
	Report     *rawReport `yaml:"report"`
}

type rawExpect struct {
	Exit   *int     `yaml:"exit"`
	Stdout string   `yaml:"stdout"`
	Stderr string   `yaml:"stderr"`
	Files  []string `yaml:"files"`
}

type rawReport struct {
	Format string `yaml:"format"`
	Path   string `yaml:"path"`
}

// parser collects the problems of one file.
type parser struct {
	file     string
	problems []Problem
}

func (p *parser) add(line int, format string, args ...any) {
	if len(p.problems) < maxProblems {
		p.problems = append(p.problems, Problem{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
}

func (p *parser) err() error {
	if len(p.problems) == 0 {
		return nil
	}
	return &Error{Problems: p.problems}
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
var inType = regexp.MustCompile(` in type scenario\.raw\w+`)

// yamlError turns yaml.v3's errors ("yaml: line 3: ...", unmarshal errors
// with one "line N: ..." each) into problems at their lines.
func (p *parser) yamlError(err error) {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, m := range msgs {
		m = inType.ReplaceAllString(m, "")
		if sub := yamlLine.FindStringSubmatch(m); sub != nil {
			line, _ := strconv.Atoi(sub[1])
			p.add(line, "%s", sub[2])
			continue
		}
		p.add(0, "%s", strings.TrimPrefix(m, "yaml: "))
	}
}

// Parse parses and validates a scenario; file names it in messages.
func Parse(file string, data []byte) (*Scenario, error) {
	p := &parser{file: file}
	if len(data) > MaxSize {
		p.add(0, "larger than %d bytes", MaxSize)
		return nil, p.err()
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			p.add(0, "empty scenario")
		} else {
			p.yamlError(err)
		}
		return nil, p.err()
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		p.add(extra.Line, "more than one YAML document")
		return nil, p.err()
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		p.add(root.Line, "a scenario is a mapping (name, timeout, nodes, steps)")
		return nil, p.err()
	}
	// Shapes that strict decoding would report obscurely.
	for _, st := range items(value(root, "steps")) {
		if run := value(st, "run"); run != nil && run.Kind == yaml.ScalarNode {
			p.add(run.Line, "run must be a list of arguments, not a string: write [sh, -c, %q] to use a shell", run.Value)
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	var raw rawScenario
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(&raw); err != nil {
		p.yamlError(err)
		return nil, p.err()
	}
	s := p.validate(&raw, root)
	if err := p.err(); err != nil {
		return nil, err
	}
	return s, nil
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// value returns the value of key in mapping n, or nil.
func value(n *yaml.Node, key string) *yaml.Node {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return resolve(n.Content[i+1])
		}
	}
	return nil
}

// items returns the elements of sequence n.
func items(n *yaml.Node) []*yaml.Node {
	n = resolve(n)
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

// lineOf returns the line of key's value in n, or n's line.
func lineOf(n *yaml.Node, keys ...string) int {
	if n == nil {
		return 0
	}
	for _, k := range keys {
		v := value(n, k)
		if v == nil {
			return n.Line
		}
		n = v
	}
	return n.Line
}

// itemAt returns element i of sequence n, or a node at line for a
// sequence it cannot see (one built by a merge key).
func itemAt(n *yaml.Node, i int, line int) *yaml.Node {
	if it := items(n); i < len(it) {
		if r := resolve(it[i]); r != nil {
			return r
		}
	}
	return &yaml.Node{Line: line}
}

// itemLine returns the line of element i of sequence n, or n's line.
func itemLine(n *yaml.Node, i int, fallback int) int {
	if it := items(n); i < len(it) {
		return it[i].Line
	}
	if n != nil {
		return n.Line
	}
	return fallback
}

func (p *parser) duration(line int, what, s string, def, max time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		p.add(line, "%s %q: want a duration such as 90s or 10m", what, s)
	case d <= 0 || d > max:
		p.add(line, "%s %s: want more than 0 and at most %s", what, d, max)
	}
	return d
}

func (p *parser) validate(raw *rawScenario, root *yaml.Node) *Scenario {
	s := &Scenario{File: p.file, Name: raw.Name}
	switch {
	case raw.Name == "":
		p.add(root.Line, "name is missing")
	case !scenarioName.MatchString(raw.Name):
		p.add(lineOf(root, "name"), "name %q: want lower-case letters, digits, '.', '_' and '-', at most 64", raw.Name)
	}
	s.Timeout = p.duration(lineOf(root, "timeout"), "timeout", raw.Timeout, DefaultTimeout, MaxTimeout)

	nodesNode := value(root, "nodes")
	if len(raw.Nodes) == 0 || len(raw.Nodes) > MaxNodes {
		p.add(lineOf(root, "nodes"), "%d nodes: want 1 to %d", len(raw.Nodes), MaxNodes)
	}
	declared := map[string]int{}
	for i, rn := range raw.Nodes {
		if i >= MaxNodes {
			break
		}
		item := itemAt(nodesNode, i, lineOf(root, "nodes"))
		line := item.Line
		where := fmt.Sprintf("node %d", i+1)
		if rn.Name != "" {
			where = fmt.Sprintf("node %q", rn.Name)
		}
		n := Node{Name: rn.Name, Base: rn.Base, Line: line}
		switch {
		case rn.Name == "":
			p.add(line, "%s: name is missing", where)
		case netlab.CheckName(rn.Name) != nil:
			p.add(lineOf(item, "name"), "%s: want a lower-case DNS label of at most 32 characters, starting with a letter", where)
		case declared[rn.Name] != 0:
			p.add(lineOf(item, "name"), "%s: declared twice (first at line %d)", where, declared[rn.Name])
		default:
			declared[rn.Name] = line
		}
		switch {
		case rn.Base == "":
			p.add(line, "%s: base is missing", where)
		case !baseName.MatchString(rn.Base):
			p.add(lineOf(item, "base"), "%s: base %q: want lower-case letters, digits, '.', '_' and '-'", where, rn.Base)
		}
		seen := map[string]bool{}
		pkgs := value(item, "packages")
		for j, pkg := range rn.Packages {
			pl := itemLine(pkgs, j, line)
			switch {
			case !packageName.MatchString(pkg):
				p.add(pl, "%s: package %q is not a package name", where, pkg)
			case seen[pkg]:
				p.add(pl, "%s: package %q listed twice", where, pkg)
			}
			seen[pkg] = true
		}
		n.Packages = rn.Packages
		s.Nodes = append(s.Nodes, n)
	}

	stepsNode := value(root, "steps")
	if len(raw.Steps) == 0 || len(raw.Steps) > MaxSteps {
		p.add(lineOf(root, "steps"), "%d steps: want 1 to %d", len(raw.Steps), MaxSteps)
	}
	for i, rs := range raw.Steps {
		if i >= MaxSteps {
			break
		}
		item := itemAt(stepsNode, i, lineOf(root, "steps"))
		st := Step{Index: i + 1, Line: item.Line, Node: rs.Node, Background: rs.Background}
		p.step(s, &st, &rs, item, declared)
		s.Steps = append(s.Steps, st)
	}
	return s
}

func (p *parser) step(s *Scenario, st *Step, rs *rawStep, item *yaml.Node, declared map[string]int) {
	where := fmt.Sprintf("step %d", st.Index)
	switch {
	case rs.Node == "":
		p.add(st.Line, "%s: node is missing", where)
	case declared[rs.Node] == 0:
		p.add(lineOf(item, "node"), "%s: node %q is not declared", where, rs.Node)
	}
	runLine := lineOf(item, "run")
	switch {
	case len(rs.Run) == 0:
		p.add(runLine, "%s: run is missing or empty", where)
	case len(rs.Run) > MaxArgs:
		p.add(runLine, "%s: %d arguments, at most %d", where, len(rs.Run), MaxArgs)
	case rs.Run[0] == "":
		p.add(runLine, "%s: the program name is empty", where)
	}
	for j, a := range rs.Run {
		if strings.ContainsRune(a, 0) {
			p.add(itemLine(value(item, "run"), j, runLine), "%s: argument %d holds a NUL byte", where, j)
		}
	}
	st.Run = rs.Run
	def := min(DefaultStepTimeout, s.Timeout)
	st.Timeout = p.duration(lineOf(item, "timeout"), where+": timeout", rs.Timeout, def, MaxTimeout)
	if s.Timeout > 0 && st.Timeout > s.Timeout {
		p.add(lineOf(item, "timeout"), "%s: timeout %s is longer than the scenario's %s", where, st.Timeout, s.Timeout)
	}
	if rs.Background && (rs.Expect != nil || rs.Report != nil) {
		p.add(st.Line, "%s: a background step has no expect or report (it runs until the scenario ends)", where)
	}
	if e := rs.Expect; e != nil {
		en := value(item, "expect")
		if e.Exit != nil {
			if *e.Exit < 0 || *e.Exit > 255 {
				p.add(lineOf(en, "exit"), "%s: exit %d: want 0 to 255", where, *e.Exit)
			}
			st.Expect.Exit = *e.Exit
		}
		st.Expect.Stdout = p.pattern(lineOf(en, "stdout"), where+": stdout", e.Stdout)
		st.Expect.Stderr = p.pattern(lineOf(en, "stderr"), where+": stderr", e.Stderr)
		for j, f := range e.Files {
			if !absClean(f) {
				p.add(itemLine(value(en, "files"), j, st.Line), "%s: file %q: want an absolute, clean path", where, f)
			}
		}
		st.Expect.Files = e.Files
	}
	if r := rs.Report; r != nil {
		rn := value(item, "report")
		f, err := testreport.ParseFormat(r.Format)
		if err != nil {
			p.add(lineOf(rn, "format"), "%s: report format %q: want junit, tap or subunit", where, r.Format)
		}
		if !absClean(r.Path) {
			p.add(lineOf(rn, "path"), "%s: report path %q: want an absolute, clean path", where, r.Path)
		}
		st.Report = &Report{Format: f, Path: r.Path}
	}
}

func (p *parser) pattern(line int, what, expr string) *regexp.Regexp {
	if expr == "" {
		return nil
	}
	if len(expr) > maxPattern {
		p.add(line, "%s: pattern longer than %d bytes", what, maxPattern)
		return nil
	}
	re, err := regexp.Compile("(?m)" + expr)
	if err != nil {
		p.add(line, "%s: %v", what, err)
		return nil
	}
	return re
}

func absClean(name string) bool {
	return strings.HasPrefix(name, "/") && path.Clean(name) == name && !strings.ContainsRune(name, 0) && len(name) <= 4096
}
