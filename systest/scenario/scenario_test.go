package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/systest/testreport"
)

func TestLoad(t *testing.T) {
	t.Parallel()
	s, err := Load("testdata/client-server.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "client-server" || s.Timeout != 10*time.Minute || s.File != "testdata/client-server.yaml" {
		t.Fatalf("scenario %+v", s)
	}
	wantNodes := []Node{
		{Name: "server", Base: "bookworm", Packages: []string{"hello-server"}, Line: 5},
		{Name: "client", Base: "bookworm", Packages: []string{"hello-client", "libhello1"}, Line: 8},
	}
	if !reflect.DeepEqual(s.Nodes, wantNodes) {
		t.Errorf("nodes %+v", s.Nodes)
	}
	if len(s.Steps) != 3 {
		t.Fatalf("%d steps", len(s.Steps))
	}
	st := s.Steps[0]
	if st.Index != 1 || st.Line != 14 || st.Node != "server" || !st.Background || st.Timeout != DefaultStepTimeout ||
		!reflect.DeepEqual(st.Run, []string{"hello-server", "--listen", "0.0.0.0:8080"}) || st.Expect.Exit != 0 || st.Report != nil {
		t.Errorf("step 1 %+v", st)
	}
	st = s.Steps[1]
	if st.Timeout != time.Minute || st.Expect.Stdout == nil || !st.Expect.Stdout.MatchString("banner\nhello from server\nbye") ||
		st.Expect.Stdout.MatchString("hello from server2") || !reflect.DeepEqual(st.Expect.Files, []string{"/var/lib/hello-client/last"}) {
		t.Errorf("step 2 %+v", st)
	}
	st = s.Steps[2]
	if st.Expect.Exit != 1 || st.Expect.Stderr == nil || st.Report == nil || *st.Report != (Report{Format: testreport.TAP, Path: "/tmp/report.tap"}) {
		t.Errorf("step 3 %+v", st)
	}
	if n, ok := s.Node("client"); !ok || n.Line != 8 {
		t.Errorf("Node(client) = %+v, %v", n, ok)
	}
	if s.Where(12) != "testdata/client-server.yaml:12" {
		t.Error(s.Where(12))
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	s, err := Parse("s.yaml", []byte("name: x\ntimeout: 2m\nnodes: [{name: a, base: b}]\nsteps: [{node: a, run: [true]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Steps[0].Timeout != 2*time.Minute {
		t.Errorf("step timeout %v, want the scenario's 2m", s.Steps[0].Timeout)
	}
	s, err = Parse("s.yaml", []byte("name: x\nnodes: [{name: a, base: b}]\nsteps: [{node: a, run: [true]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Timeout != DefaultTimeout || s.Steps[0].Timeout != DefaultStepTimeout {
		t.Errorf("timeouts %v %v", s.Timeout, s.Steps[0].Timeout)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	const head = "name: x\nnodes:\n  - name: web\n    base: bookworm\nsteps:\n"
	cases := []struct {
		name, in string
		want     []string
	}{
		{"undeclared node", head + "  - node: web\n    run: [true]\n  - node: web\n    run: [true]\n  - node: db\n    run: [true]\n",
			[]string{`s.yaml:10: step 3: node "db" is not declared`}},
		{"shell string", head + "  - node: web\n    run: ls -l /\n",
			[]string{`s.yaml:7: run must be a list of arguments, not a string: write [sh, -c, "ls -l /"] to use a shell`}},
		{"unknown key", head + "  - node: web\n    run: [true]\n    exepct: {exit: 0}\n",
			[]string{`s.yaml:8: field exepct not found`}},
		{"unknown top key", "name: x\nnodez: []\n", []string{`s.yaml:2: field nodez not found`}},
		{"syntax", "name: x\nnodes: [\n", []string{"s.yaml:2: did not find expected node content"}},
		{"wrong type", head + "  - node: web\n    run: [true]\n    background: maybe\n",
			[]string{"s.yaml:8: cannot unmarshal !!str `maybe` into bool"}},
		{"empty", "", []string{"s.yaml: empty scenario"}},
		{"not a mapping", "- a\n", []string{"s.yaml:1: a scenario is a mapping (name, timeout, nodes, steps)"}},
		{"two documents", "name: x\n---\nname: y\n", []string{"s.yaml:2: more than one YAML document"}},
		{"many problems", "name: Bad Name\ntimeout: 30\nnodes:\n  - name: Web\n    base: \"../x\"\n    packages: [ok, \"rm -rf\", ok]\n  - name: db\n  - base: b\nsteps:\n  - run: [\"\"]\n    timeout: 48h\n  - node: db\n    run: [x]\n    background: true\n    expect: {exit: 300, stdout: \"(\", files: [rel/path, /a/../b]}\n    report: {format: xml, path: out.xml}\n",
			[]string{
				`s.yaml:1: name "Bad Name": want lower-case letters, digits, '.', '_' and '-', at most 64`,
				`s.yaml:2: timeout "30": want a duration such as 90s or 10m`,
				`s.yaml:4: node "Web": want a lower-case DNS label of at most 32 characters, starting with a letter`,
				`s.yaml:5: node "Web": base "../x": want lower-case letters, digits, '.', '_' and '-'`,
				`s.yaml:6: node "Web": package "rm -rf" is not a package name`,
				`s.yaml:6: node "Web": package "ok" listed twice`,
				`s.yaml:7: node "db": base is missing`,
				`s.yaml:8: node 3: name is missing`,
				`s.yaml:10: step 1: node is missing`,
				`s.yaml:10: step 1: the program name is empty`,
				`s.yaml:11: step 1: timeout 48h0m0s: want more than 0 and at most 24h0m0s`,
				`s.yaml:12: step 2: a background step has no expect or report (it runs until the scenario ends)`,
				`s.yaml:15: step 2: exit 300: want 0 to 255`,
				"s.yaml:15: step 2: stdout: error parsing regexp: missing closing ): `(?m)(`",
				`s.yaml:15: step 2: file "rel/path": want an absolute, clean path`,
				`s.yaml:15: step 2: file "/a/../b": want an absolute, clean path`,
				`s.yaml:16: step 2: report format "xml": want junit, tap or subunit`,
				`s.yaml:16: step 2: report path "out.xml": want an absolute, clean path`,
			}},
		{"step longer than scenario", "name: x\ntimeout: 1m\nnodes: [{name: a, base: b}]\nsteps:\n  - node: a\n    run: [x]\n    timeout: 2m\n",
			[]string{"s.yaml:7: step 1: timeout 2m0s is longer than the scenario's 1m0s"}},
		{"no steps", "name: x\nnodes: [{name: a, base: b}]\n", []string{"s.yaml:1: 0 steps: want 1 to 1000"}},
		{"duplicate node", "name: x\nnodes:\n  - {name: a, base: b}\n  - {name: a, base: b}\nsteps: [{node: a, run: [x]}]\n",
			[]string{`s.yaml:4: node "a": declared twice (first at line 3)`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("s.yaml", []byte(c.in))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T), want *Error", err, err)
			}
			got := strings.Split(err.Error(), "\n")
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got:\n%s\nwant:\n%s", err, strings.Join(c.want, "\n"))
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	t.Parallel()
	name := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(name, []byte("name: x\n#"+strings.Repeat("x", MaxSize)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(name)
	if err == nil || !strings.Contains(err.Error(), "big.yaml: larger than") {
		t.Fatalf("error %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.yaml")); err == nil {
		t.Fatal("a missing file loaded")
	}
}

func FuzzParse(f *testing.F) {
	seed, err := os.ReadFile("testdata/client-server.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(seed))
	f.Add("name: x\nnodes: &n [{name: a, base: b}]\nsteps: [{node: a, run: [x], expect: {files: [/a]}}]\n")
	f.Add("name: x\nnodes: *n\n")
	f.Add("a: &a [*a]\n")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse("f.yaml", []byte(in))
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || len(e.Problems) == 0 {
				t.Fatalf("error %v is not an *Error with problems", err)
			}
			for _, p := range e.Problems {
				if !strings.HasPrefix(p.String(), "f.yaml") {
					t.Fatalf("problem %q does not name the file", p)
				}
			}
			return
		}
		if len(s.Nodes) == 0 || len(s.Steps) == 0 || s.Timeout <= 0 {
			t.Fatalf("accepted an incomplete scenario %+v", s)
		}
		for _, st := range s.Steps {
			if _, ok := s.Node(st.Node); !ok || len(st.Run) == 0 || st.Timeout <= 0 || st.Timeout > s.Timeout {
				t.Fatalf("accepted a bad step %+v", st)
			}
		}
	})
}
