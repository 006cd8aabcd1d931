package pipeline

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-ci/sluice/zuul"
)

func TestParseDependsOn(t *testing.T) {
	t.Parallel()
	id := "I" + strings.Repeat("ab", 20)
	tests := []struct {
		name, msg string
		want      []DependsOn
	}{
		{"url", "Fix\n\nDepends-On: https://review.example.org/c/libfoo/+/1234\n",
			[]DependsOn{{URL: "https://review.example.org/c/libfoo/+/1234", Number: 1234}}},
		{"url with patchset", "x\n\nDepends-On: https://review.example.org/c/libfoo/+/1234/3",
			[]DependsOn{{URL: "https://review.example.org/c/libfoo/+/1234/3", Number: 1234}}},
		{"short url", "x\n\ndepends-on: https://review.example.org/1234  \n",
			[]DependsOn{{URL: "https://review.example.org/1234", Number: 1234}}},
		{"old fragment url", "x\n\nDepends-On: https://review.example.org/#/c/99/",
			[]DependsOn{{URL: "https://review.example.org/#/c/99/", Number: 99}}},
		{"gerrit under a prefix", "x\n\nDepends-On: https://example.org/gerrit/c/a/b/+/7",
			[]DependsOn{{URL: "https://example.org/gerrit/c/a/b/+/7", Number: 7}}},
		{"change-id", "x\n\nDepends-On: " + id + "\n", []DependsOn{{ChangeID: id}}},
		{"two and a repeat", "x\n\nDepends-On: https://r/1\nDepends-On: " + id + "\nDepends-On: https://r/1\n",
			[]DependsOn{{URL: "https://r/1", Number: 1}, {ChangeID: id}}},
		{"not a footer", "x Depends-On: https://r/1\n", nil},
		{"not a url", "Depends-On: libfoo 1234\n", nil},
		{"file url", "Depends-On: file:///c/1234\n", nil},
		{"zero", "Depends-On: https://r/0\n", nil},
		{"short change-id", "Depends-On: I1234\n", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := ParseDependsOn(tc.msg); !slices.Equal(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func FuzzParseDependsOn(f *testing.F) {
	f.Add("Fix\n\nDepends-On: https://review.example.org/c/libfoo/+/1234\n")
	f.Fuzz(func(t *testing.T, msg string) {
		deps := ParseDependsOn(msg)
		if len(deps) > maxFooters {
			t.Fatalf("%d footers", len(deps))
		}
		for _, d := range deps {
			switch {
			case d.ChangeID != "":
				if !changeIDRe.MatchString(d.ChangeID) || d.Number != 0 {
					t.Fatalf("bad change-id result %+v", d)
				}
			case d.Number <= 0 || !strings.HasPrefix(d.URL, "http"):
				t.Fatalf("bad url result %+v", d)
			}
			if strings.ContainsAny(d.Query(), " \n\t") {
				t.Fatalf("query %q has white space", d.Query())
			}
		}
	})
}

// fakeQuery answers Gerrit queries from a list of changes.
type fakeQuery []zuul.Change

func (f fakeQuery) Query(_ context.Context, q string) ([]zuul.Change, error) {
	var out []zuul.Change
	for _, c := range f {
		switch {
		case q == "change:"+c.ChangeID, q == "change:"+strconv.Itoa(c.Number), q == "commit:"+c.Commit:
			out = append(out, c)
		}
	}
	return out, nil
}

func TestResolveDeps(t *testing.T) {
	t.Parallel()
	a := change("libfoo", 1, 1)
	b := change("libfoo", 2, 1)
	b.Parents = []string{a.Commit} // stacked on a
	c := change("tools", 3, 1)
	c.Message = "x\n\nDepends-On: https://r/c/libfoo/+/2\nDepends-On: https://r/c/libfoo/+/4\n"
	merged := change("libfoo", 4, 1)
	merged.Status = "MERGED"
	q := fakeQuery{a, b, c, merged}
	needs, deps, err := ResolveDeps(t.Context(), q, c)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"libfoo~2"}; !slices.Equal(needs, want) {
		t.Errorf("needs = %v, want %v", needs, want)
	}
	order, err := orderDeps(NumberKey(&c), needs, deps)
	if err != nil {
		t.Fatal(err)
	}
	if got := changeList(order); got != "1,2" {
		t.Errorf("order = %s, want 1,2", got)
	}

	// a cycle: a depends on c
	a.Message = "Depends-On: https://r/3\n"
	q = fakeQuery{a, b, c}
	needs, deps, err = ResolveDeps(t.Context(), q, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := orderDeps(NumberKey(&c), needs, deps); !errors.Is(err, ErrCycle) {
		t.Errorf("cycle: err = %v", err)
	}
}
