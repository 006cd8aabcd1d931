package systest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestBaseSpec(t *testing.T) {
	t.Parallel()
	a := BaseSpec{Name: "b", Suite: "bookworm", Packages: []string{"curl", "apt"}}
	b := BaseSpec{Name: "b", Suite: "bookworm", Packages: []string{"apt", "curl"}, Mirror: DefaultMirror, Variant: "apt"}
	if a.Key() != b.Key() {
		t.Error("the same definition written two ways has two keys")
	}
	for name, c := range map[string]BaseSpec{
		"packages": {Name: "b", Suite: "bookworm", Packages: []string{"curl"}},
		"suite":    {Name: "b", Suite: "trixie", Packages: []string{"curl", "apt"}},
		"rpm":      {Name: "b", Suite: "bookworm", Packages: []string{"curl", "apt"}, RPM: true},
		"mirror":   {Name: "b", Suite: "bookworm", Packages: []string{"curl", "apt"}, Mirror: "http://127.0.0.1/debian"},
	} {
		if c.Key() == a.Key() {
			t.Errorf("%s: a changed definition keeps its key", name)
		}
	}
	for name, bad := range map[string]BaseSpec{
		"name":     {Name: "../x", Suite: "bookworm"},
		"suite":    {Name: "x", Suite: "bookworm;rm"},
		"package":  {Name: "x", Suite: "bookworm", Packages: []string{"--hook=x"}},
		"mirror":   {Name: "x", Suite: "bookworm", Mirror: "file:///etc"},
		"creds":    {Name: "x", Suite: "bookworm", Mirror: "http://u:p@example.org/debian"},
		"variant":  {Name: "x", Suite: "bookworm", Variant: "buildd"},
		"no-suite": {Name: "x"},
	} {
		if bad.Validate() == nil {
			t.Errorf("%s: %+v accepted", name, bad)
		}
	}
}

// TestBasesListPrune lists and prunes bases made by hand (their roots
// need no system for this).
func TestBasesListPrune(t *testing.T) {
	t.Parallel()
	c := NewBases(t.TempDir(), testLog())
	now := time.Now()
	for name, age := range map[string]time.Duration{"old": 30 * 24 * time.Hour, "new": time.Hour} {
		spec := BaseSpec{Name: name, Suite: "bookworm"}
		dir := c.path(spec)
		if err := os.MkdirAll(filepath.Join(dir, "root"), 0o755); err != nil {
			t.Fatal(err)
		}
		b := Base{Spec: spec, Key: spec.Key(), Created: now.Add(-age).UTC(), Size: 1}
		data, _ := jsonMarshal(b)
		if err := os.WriteFile(filepath.Join(dir, metaFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(c.Dir(), "garbage"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := c.List()
	if err != nil || len(got) != 2 || got[0].Spec.Name != "new" || got[1].Spec.Name != "old" {
		t.Fatalf("list: %+v %v", got, err)
	}
	if _, err := c.Get(BaseSpec{Name: "other", Suite: "bookworm"}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("get of a base not prepared: %v", err)
	}
	// An environment on "old" holds it.
	unlock, err := lockFile(t.Context(), got[1].Dir+".lock", lockShared, false)
	if err != nil {
		t.Fatal(err)
	}
	removed, err := c.Prune(t.Context(), 20*24*time.Hour, now)
	if err != nil || len(removed) != 0 {
		t.Fatalf("prune of a base in use: %+v %v", removed, err)
	}
	unlock()
	removed, err = c.Prune(t.Context(), 20*24*time.Hour, now)
	if err != nil || len(removed) != 1 || removed[0].Spec.Name != "old" {
		t.Fatalf("prune: %+v %v", removed, err)
	}
	if got, _ := c.List(); len(got) != 1 || got[0].Spec.Name != "new" {
		t.Fatalf("after prune: %+v", got)
	}
}
