package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/sluice-ci/sluice/"

// allowedImports is DESIGN.md's table of which top-level package may import
// which: imports point down. cmd wires everything and is not listed; a
// package's own internal/ packages, internal/proc (how every subprocess
// runs), internal/retryhttp (how every HTTP client retries),
// internal/gitremote (how git remotes are fetched from) and, in tests, the
// module's internal/ test support are always allowed.
var allowedImports = map[string][]string{
	"zuul":     {"store"},
	"pipeline": {"zuul", "jobs", "results", "store"},
	"jobs":     {"results", "store"},
	"builder":  {"results", "store", "repo"}, // repo reads packages
	"repo":     {"results", "store"},
	"systest":  {"results", "store"},
	"mirror":   {"results", "store", "repo"},
	"results":  {"store"},
	"store":    {},
}

// TestImportsPointDown parses every Go file below the module root and
// checks its imports of the module's own packages against allowedImports.
func TestImportsPointDown(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		top, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
		if top == "cmd" || top == "internal" {
			return nil
		}
		allowed, known := allowedImports[top]
		if !known {
			t.Errorf("%s: package %s is not in DESIGN.md's table (allowedImports)", rel, top)
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			own, ok := strings.CutPrefix(p, module)
			if !ok {
				continue
			}
			dep, _, _ := strings.Cut(own, "/")
			if dep == top || own == "internal/proc" || own == "internal/retryhttp" || own == "internal/gitremote" || (dep == "internal" && strings.HasSuffix(rel, "_test.go")) {
				continue
			}
			ok = false
			for _, a := range allowed {
				ok = ok || a == dep
			}
			if !ok {
				t.Errorf("%s imports %s: %s may import only %v", rel, p, top, allowed)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
}
