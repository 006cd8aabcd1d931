package results

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sluice-ci/sluice/internal/pgtest"
)

// TestLatestDriver checks, on both databases, that Latest starts from the
// filter that selects the fewest results, and that its answer is the same
// whichever filter it starts from.
func TestLatestDriver(t *testing.T) {
	t.Parallel()
	dialects := []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "sluice.db") }},
		{"postgres", func(t *testing.T) string { return pgtest.NewDatabase(t, pgtest.Start(t)) }},
	}
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			testLatestDriver(t, newStore(t, d.dsn(t), Config{}))
		})
	}
}

func testLatestDriver(t *testing.T, s *Store) {
	ctx := t.Context()
	// Past fewResults results of type koji_build and arch noarch, in one
	// transaction; a few of item pkg-1 and pkg-2, one of both.
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		for i := range fewResults + 2 {
			data := map[string][]string{
				"item": {fmt.Sprintf("bulk-%d", i%50)}, "type": {"koji_build"}, "arch": {"noarch"},
			}
			switch i % 500 {
			case 1:
				data["item"] = []string{"pkg-1"}
			case 2:
				data["item"] = []string{"pkg-2"}
				data["scenario"] = []string{"fresh"}
			case 3:
				data["item"] = []string{"pkg-1", "pkg-2"}
				data["scenario"] = []string{"fresh", "upgrade"}
			}
			tc := "sluice.build"
			if i%3 == 0 {
				tc = "sluice.install"
			}
			if i == 7 {
				tc = "sluice.rare"
			}
			r := Result{Testcase: Testcase{Name: tc}, Outcome: "PASSED", SubmitTime: at(i % 600), Data: data,
				Groups: []string{fmt.Sprintf("g-%d", i%2)}}
			if err := s.Create(ctx, tx, &r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	eq := func(k string, vs ...string) DataFilter { return DataFilter{Key: k, Values: vs} }
	for _, tc := range []struct {
		name       string
		q          Query
		distinctOn []string
		start      start
	}{
		{"no data filter", Query{Testcases: []string{"sluice.build"}}, nil, start{-1, false}},
		{"one data filter", Query{Data: []DataFilter{eq("type", "koji_build")}}, nil, start{0, true}},
		{"the small one of two", Query{Data: []DataFilter{eq("arch", "noarch"), eq("item", "pkg-1", "pkg-2")}}, nil, start{1, true}},
		{"greenwave", Query{Testcases: []string{"sluice.install", "sluice.build"},
			Data: []DataFilter{eq("item", "pkg-2"), eq("type", "koji_build", "brew-build")}},
			[]string{"scenario", "system_architecture"}, start{0, true}},
		{"like", Query{Data: []DataFilter{eq("type", "koji_build"), {Key: "item", Values: []string{"pkg-*"}, Like: true}}}, []string{"scenario"}, start{1, true}},
		{"all over the cap", Query{Testcases: []string{"sluice.build", "sluice.install"}, Data: []DataFilter{eq("arch", "noarch"), eq("type", "koji_build")}}, nil, start{-1, false}},
		{"the testcase is smaller", Query{Testcases: []string{"sluice.rare"}, Data: []DataFilter{eq("item", "bulk-7"), eq("type", "koji_build")}}, nil, start{-1, true}},
		{"a group", Query{Groups: []string{"g-1"}, Data: []DataFilter{eq("item", "pkg-1")}}, nil, start{1, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := s.conditions(tc.q)
			if err != nil {
				t.Fatal(err)
			}
			st, err := s.start(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if st != tc.start {
				t.Errorf("start = %+v, want %+v", st, tc.start)
			}
			// Every start gives the same answer.
			var want []int64
			for d := -1; d < len(f.ids); d++ {
				for _, few := range []bool{false, true} {
					query, args := latestSQL(f, start{drive: d, few: few}, tc.distinctOn, false)
					rs, err := s.queryResults(ctx, query, args...)
					if err != nil {
						t.Fatalf("start %d, few %v: %v", d, few, err)
					}
					if want == nil {
						want = ids(rs)
						if len(want) == 0 {
							t.Fatal("no result: the case tests nothing")
						}
						continue
					}
					if got := ids(rs); !slices.Equal(got, want) {
						t.Errorf("starting from filter %d, few %v: ids %v, want %v (as from results, checking with EXISTS)", d, few, got, want)
					}
				}
			}
			if got := ids(latest(t, s, tc.q, tc.distinctOn...)); !slices.Equal(got, want) {
				t.Errorf("Latest = ids %v, want %v", got, want)
			}
		})
	}
}
