package results

import (
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/pgtest"
	"github.com/sluice-ci/sluice/store"
)

// The suite runs against each database; every test gets an empty one.
var suite = []struct {
	name string
	run  func(t *testing.T, s *Store)
}{
	{"CreateAndRead", testCreateAndRead},
	{"TestcaseAndGroupsOnTheFly", testOnTheFly},
	{"NotFound", testNotFound},
	{"Validation", testValidation},
	{"CreateInFailedTxLeavesNothing", testFailedTx},
	{"Pagination", testPagination},
	{"Filters", testFilters},
	{"Latest", testLatest},
	{"LatestDistinctOn", testLatestDistinctOn},
	{"LatestGreenwave", testLatestGreenwave},
	{"TestcasesAndGroups", testCatalog},
}

func TestStore(t *testing.T) {
	t.Parallel()
	dialects := []struct {
		name  string
		setup func(t *testing.T) func(t *testing.T) string
	}{
		{"sqlite", func(*testing.T) func(*testing.T) string {
			return func(t *testing.T) string { return filepath.Join(t.TempDir(), "sluice.db") }
		}},
		{"postgres", func(t *testing.T) func(t *testing.T) string {
			cluster := pgtest.Start(t)
			return func(t *testing.T) string { return pgtest.NewDatabase(t, cluster) }
		}},
	}
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			fresh := d.setup(t)
			for _, tc := range suite {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, newStore(t, fresh(t), Config{}))
				})
			}
		})
	}
}

func newStore(t *testing.T, dsn string, cfg Config) *Store {
	t.Helper()
	db, err := store.Open(t.Context(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return NewStore(db, cfg)
}

// base is the submit time of the tests' first result; each later one is a
// second later, so that the order never depends on the clock.
var base = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func at(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }

// create stores rs, in order, each in a transaction of its own, and
// returns them as stored.
func create(t *testing.T, s *Store, rs ...Result) []Result {
	t.Helper()
	for i := range rs {
		err := s.db.Tx(t.Context(), func(tx *sql.Tx) error { return s.Create(t.Context(), tx, &rs[i]) })
		if err != nil {
			t.Fatalf("create %+v: %v", rs[i], err)
		}
	}
	return rs
}

func ids(rs []Result) []int64 {
	var ids []int64
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	return ids
}

func wantIDs(t *testing.T, what string, got []Result, want ...Result) {
	t.Helper()
	if g, w := ids(got), ids(want); !slices.Equal(g, w) {
		t.Errorf("%s = ids %v, want %v", what, g, w)
	}
}

func results(t *testing.T, s *Store, q Query) []Result {
	t.Helper()
	rs, _, err := s.Results(t.Context(), q)
	if err != nil {
		t.Fatalf("Results(%+v): %v", q, err)
	}
	return rs
}

func latest(t *testing.T, s *Store, q Query, distinctOn ...string) []Result {
	t.Helper()
	rs, err := s.Latest(t.Context(), q, distinctOn)
	if err != nil {
		t.Fatalf("Latest(%+v, %v): %v", q, distinctOn, err)
	}
	return rs
}

func count(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	if err := s.db.QueryRowContext(t.Context(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func testCreateAndRead(t *testing.T, s *Store) {
	// Upstream's reference result (functest_api_v20.py).
	r := create(t, s, Result{
		Testcase:   Testcase{Name: "scratch.testing.mytestcase", RefURL: "https://example.com/tc"},
		Groups:     []string{"3ce5f6d7-ce34-489b-ab61-325ce634eab5"},
		SubmitTime: time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.FixedZone("CEST", 7200)),
		Outcome:    " passed",
		Note:       "Sample note",
		RefURL:     "https://example.com/r",
		Data: map[string][]string{
			"item": {"perl-Specio-0.25-1.fc26"},
			"moo":  {"boo", "woof"},
			"zz":   {"b", "a", "b"},
		},
	})[0]
	if r.ID == 0 || r.Outcome != "PASSED" {
		t.Errorf("Create set ID %d, outcome %q; want an id and PASSED", r.ID, r.Outcome)
	}
	want := time.Date(2024, 5, 1, 10, 0, 0, 123000000, time.UTC)
	if !r.SubmitTime.Equal(want) || r.SubmitTime.Location() != time.UTC {
		t.Errorf("SubmitTime = %v, want %v (UTC, to the millisecond)", r.SubmitTime, want)
	}
	got, err := s.Result(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !equal(got, r) {
		t.Errorf("Result(%d) =\n%+v\nwant\n%+v", r.ID, got, r)
	}

	// Without a submit time, now.
	before := time.Now().Truncate(time.Millisecond)
	r2 := create(t, s, Result{Testcase: Testcase{Name: "a/b"}, Outcome: "INFO"})[0]
	if r2.SubmitTime.Before(before) || r2.SubmitTime.After(time.Now()) || r2.ID <= r.ID {
		t.Errorf("second result: id %d, submit time %v; want > %d, now", r2.ID, r2.SubmitTime, r.ID)
	}
	got2, err := s.Result(t.Context(), r2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got2.Data) != 0 || len(got2.Groups) != 0 || got2.Testcase.Name != "a/b" {
		t.Errorf("Result(%d) = %+v, want no data nor groups, testcase a/b", r2.ID, got2)
	}
}

func equal(a, b Result) bool {
	if len(a.Data) != len(b.Data) {
		return false
	}
	for k, v := range a.Data {
		if !slices.Equal(v, b.Data[k]) {
			return false
		}
	}
	return a.ID == b.ID && a.Testcase == b.Testcase && slices.Equal(a.Groups, b.Groups) &&
		a.SubmitTime.Equal(b.SubmitTime) && a.Outcome == b.Outcome && a.Note == b.Note && a.RefURL == b.RefURL
}

func testOnTheFly(t *testing.T, s *Store) {
	ctx := t.Context()
	create(t, s,
		Result{Testcase: Testcase{Name: "tc", RefURL: "u1"}, Outcome: "PASSED", Groups: []string{"g1", "g2", "g1"}},
		Result{Testcase: Testcase{Name: "tc"}, Outcome: "PASSED", Groups: []string{"g2"}},
	)
	// An empty ref_url keeps the testcase's; another replaces it.
	if tc, err := s.Testcase(ctx, "tc"); err != nil || tc.RefURL != "u1" {
		t.Errorf("Testcase(tc) = %+v, %v; want ref_url u1", tc, err)
	}
	create(t, s, Result{Testcase: Testcase{Name: "tc", RefURL: "u2"}, Outcome: "PASSED"})
	if tc, err := s.Testcase(ctx, "tc"); err != nil || tc.RefURL != "u2" {
		t.Errorf("Testcase(tc) = %+v, %v; want ref_url u2", tc, err)
	}
	if n := count(t, s, "testcases"); n != 1 {
		t.Errorf("%d testcases, want 1", n)
	}
	if n := count(t, s, "groups"); n != 2 {
		t.Errorf("%d groups, want 2", n)
	}
	if g, err := s.Group(ctx, "g2"); err != nil || g.UUID != "g2" {
		t.Errorf("Group(g2) = %+v, %v", g, err)
	}
	if n := count(t, s, "results_groups"); n != 3 {
		t.Errorf("%d result-group links, want 3 (a group named twice counts once)", n)
	}
}

func testNotFound(t *testing.T, s *Store) {
	ctx := t.Context()
	_, err1 := s.Result(ctx, 999)
	_, err2 := s.Testcase(ctx, "nope")
	_, err3 := s.Group(ctx, "nope")
	for _, err := range []error{err1, err2, err3} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	}
}

func testValidation(t *testing.T, s *Store) {
	ok := Result{Testcase: Testcase{Name: "tc"}, Outcome: "PASSED"}
	long := make([]byte, 256)
	for i := range long {
		long[i] = 'x'
	}
	for _, tc := range []struct {
		name  string
		edit  func(*Result)
		field string
	}{
		{"unknown outcome", func(r *Result) { r.Outcome = "AMAZING" }, "outcome"},
		{"empty outcome", func(r *Result) { r.Outcome = "" }, "outcome"},
		{"empty testcase", func(r *Result) { r.Testcase.Name = "" }, "testcase.name"},
		{"long testcase", func(r *Result) { r.Testcase.Name = string(long) }, "testcase.name"},
		{"colon in key", func(r *Result) { r.Data = map[string][]string{"a": {"1"}, "b:like": {"2"}} }, "data"},
		{"empty group", func(r *Result) { r.Groups = []string{""} }, "groups"},
		{"submit time out of range", func(r *Result) { r.SubmitTime = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) }, "submit_time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			tc.edit(&r)
			err := s.db.Tx(t.Context(), func(tx *sql.Tx) error { return s.Create(t.Context(), tx, &r) })
			if e, isV := errors.AsType[*ValidationError](err); !isV || e.Field != tc.field {
				t.Errorf("Create: %v, want a ValidationError on %s", err, tc.field)
			}
		})
	}
	if n := count(t, s, "results"); n != 0 {
		t.Errorf("%d results stored, want none", n)
	}
	// The default extra outcomes, and none when the config says so.
	create(t, s, Result{Testcase: Testcase{Name: "tc"}, Outcome: "queued"})
	strict := NewStore(s.db, Config{AdditionalOutcomes: []string{}})
	r := Result{Testcase: Testcase{Name: "tc"}, Outcome: "QUEUED"}
	err := s.db.Tx(t.Context(), func(tx *sql.Tx) error { return strict.Create(t.Context(), tx, &r) })
	if e, isV := errors.AsType[*ValidationError](err); !isV || e.Field != "outcome" {
		t.Errorf("QUEUED without additional outcomes: %v, want a ValidationError on outcome", err)
	}
	// Queries are checked too.
	for _, q := range []Query{{Outcomes: []string{"NOPE"}}, {Page: -1}, {Data: []DataFilter{{Key: "item"}}}} {
		if _, _, err := s.Results(t.Context(), q); !errors.As(err, new(*ValidationError)) {
			t.Errorf("Results(%+v): %v, want a ValidationError", q, err)
		}
	}
	if _, err := s.Latest(t.Context(), Query{}, []string{"scenario"}); !errors.As(err, new(*ValidationError)) {
		t.Errorf("Latest with _distinct_on alone: %v, want a ValidationError", err)
	}
	if err := (Config{AdditionalOutcomes: []string{"lower"}}).Validate(); err == nil {
		t.Error("Config with a lower-case outcome is valid")
	}
}

func testFailedTx(t *testing.T, s *Store) {
	boom := errors.New("boom")
	r := Result{Testcase: Testcase{Name: "tc"}, Outcome: "PASSED", Groups: []string{"g"}, Data: map[string][]string{"k": {"v"}}}
	err := s.db.Tx(t.Context(), func(tx *sql.Tx) error {
		if err := s.Create(t.Context(), tx, &r); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx: %v, want boom", err)
	}
	for _, table := range []string{"results", "testcases", "groups", "results_groups", "result_data"} {
		if n := count(t, s, table); n != 0 {
			t.Errorf("%d rows in %s, want none", n, table)
		}
	}
}

func testPagination(t *testing.T, s *Store) {
	var rs []Result
	for i := range 5 {
		rs = append(rs, Result{Testcase: Testcase{Name: "tc"}, Outcome: "PASSED", SubmitTime: at(i)})
	}
	rs = create(t, s, rs...)
	newest := slices.Clone(rs)
	slices.Reverse(newest)
	for _, tc := range []struct {
		q    Query
		want []Result
		more bool
	}{
		{Query{}, newest, false},
		{Query{Limit: 2}, newest[:2], true},
		{Query{Limit: 2, Page: 1}, newest[2:4], true},
		{Query{Limit: 2, Page: 2}, newest[4:], false},
		{Query{Limit: 2, Page: 3}, nil, false},
		{Query{Limit: 5}, newest, false},
		{Query{Limit: 3, Ascending: true}, rs[:3], true},
	} {
		got, more, err := s.Results(t.Context(), tc.q)
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, "results", got, tc.want...)
		if more != tc.more {
			t.Errorf("Results(%+v): more = %t, want %t", tc.q, more, tc.more)
		}
	}
}

func testFilters(t *testing.T, s *Store) {
	rs := create(t, s,
		Result{Testcase: Testcase{Name: "dist.rpmdeplint"}, Outcome: "PASSED", SubmitTime: at(0), Groups: []string{"g1"},
			Data: map[string][]string{"item": {"perl-Specio-0.25-1.fc26"}, "moo": {"boo", "woof"}, "type": {"koji_build"}}},
		Result{Testcase: Testcase{Name: "dist.rpmlint"}, Outcome: "FAILED", SubmitTime: at(1), Groups: []string{"g2"},
			Data: map[string][]string{"item": {"perl-Specio-0.25-1.fc26"}, "type": {"bodhi_update"}}},
		Result{Testcase: Testcase{Name: "dist_abicheck"}, Outcome: "INFO", SubmitTime: at(2),
			Data: map[string][]string{"item": {"grub2-2.06-1.fc39"}, "type": {"koji_build"}}},
		Result{Testcase: Testcase{Name: "Dist.upper"}, Outcome: "NEEDS_INSPECTION", SubmitTime: at(3),
			Data: map[string][]string{"item": {"50%_off"}}},
	)
	a, b, c, d := rs[0], rs[1], rs[2], rs[3]
	t0, t1, t2 := at(0), at(1), at(2)
	for _, tc := range []struct {
		name string
		q    Query
		want []Result
	}{
		{"since, inclusive", Query{Since: &t1}, []Result{d, c, b}},
		{"until, inclusive", Query{Until: &t1}, []Result{b, a}},
		{"since and until", Query{Since: &t1, Until: &t2}, []Result{c, b}},
		{"empty window", Query{Since: &t2, Until: &t0}, nil},
		{"outcome", Query{Outcomes: []string{"passed"}}, []Result{a}},
		{"outcomes", Query{Outcomes: []string{"PASSED", "FAILED"}}, []Result{b, a}},
		{"group", Query{Groups: []string{"g1"}}, []Result{a}},
		{"groups", Query{Groups: []string{"g1", "g2"}}, []Result{b, a}},
		{"testcase", Query{Testcases: []string{"dist.rpmlint"}}, []Result{b}},
		{"testcases", Query{Testcases: []string{"dist.rpmlint", "dist.rpmdeplint"}}, []Result{b, a}},
		{"testcases:like", Query{TestcasesLike: []string{"dist.*"}}, []Result{b, a}},
		{"testcases:like, exact", Query{TestcasesLike: []string{"dist.rpmlint"}}, []Result{b}},
		{"testcases:like, '_' is itself", Query{TestcasesLike: []string{"dist_*"}}, []Result{c}},
		{"testcases:like, case-sensitive", Query{TestcasesLike: []string{"Dist*"}}, []Result{d}},
		{"testcases or testcases:like", Query{Testcases: []string{"dist_abicheck"}, TestcasesLike: []string{"*.rpmlint"}}, []Result{c, b}},
		{"data", Query{Data: []DataFilter{{Key: "item", Values: []string{"perl-Specio-0.25-1.fc26"}}}}, []Result{b, a}},
		{"data, values or", Query{Data: []DataFilter{{Key: "moo", Values: []string{"boo", "fake"}}}}, []Result{a}},
		{"data, two values of one result", Query{Data: []DataFilter{{Key: "moo", Values: []string{"boo", "woof"}}}}, []Result{a}},
		{"data, keys and", Query{Data: []DataFilter{
			{Key: "item", Values: []string{"perl-Specio-0.25-1.fc26"}},
			{Key: "type", Values: []string{"koji_build", "brew-build"}}}}, []Result{a}},
		{"data, like", Query{Data: []DataFilter{{Key: "moo", Values: []string{"*oo*"}, Like: true}}}, []Result{a}},
		{"data, like or", Query{Data: []DataFilter{{Key: "item", Values: []string{"*fake*", "grub2-*"}, Like: true}}}, []Result{c}},
		{"data, like, '%' is itself", Query{Data: []DataFilter{{Key: "item", Values: []string{"*%*"}, Like: true}}}, []Result{d}},
		{"data, like, '_' is itself", Query{Data: []DataFilter{{Key: "item", Values: []string{"grub2_*"}, Like: true}}}, nil},
		{"data, value of another key", Query{Data: []DataFilter{{Key: "type", Values: []string{"boo"}}}}, nil},
		{"all kinds", Query{Since: &t0, Outcomes: []string{"PASSED"}, Groups: []string{"g1"}, TestcasesLike: []string{"dist.*"},
			Data: []DataFilter{{Key: "item", Values: []string{"perl-*"}, Like: true}}}, []Result{a}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantIDs(t, "results", results(t, s, tc.q), tc.want...)
		})
	}
}

// testLatest ports upstream's test_get_results_latest and
// test_get_results_latest_modifiers.
func testLatest(t *testing.T, s *Store) {
	const name = "scratch.testing.mytestcase"
	if got := latest(t, s, Query{}); len(got) != 0 {
		t.Errorf("Latest of nothing = %v", ids(got))
	}
	rs := create(t, s,
		Result{Testcase: Testcase{Name: name}, Outcome: "PASSED", SubmitTime: at(0), Groups: []string{"g"}},
		Result{Testcase: Testcase{Name: name}, Outcome: "FAILED", SubmitTime: at(1), Groups: []string{"g"}},
		Result{Testcase: Testcase{Name: name + ".1"}, Outcome: "PASSED", SubmitTime: at(2), Groups: []string{"g"}},
		Result{Testcase: Testcase{Name: name + ".1"}, Outcome: "FAILED", SubmitTime: at(3), Groups: []string{"foobargroup"}},
	)
	for _, tc := range []struct {
		name string
		q    Query
		want []Result
	}{
		{"all", Query{}, []Result{rs[3], rs[1]}},
		{"testcase", Query{Testcases: []string{name}}, []Result{rs[1]}},
		{"testcases", Query{Testcases: []string{name, name + ".1"}}, []Result{rs[3], rs[1]}},
		{"testcases:like", Query{TestcasesLike: []string{"*"}}, []Result{rs[3], rs[1]}},
		// Within the group, the newest of .1 is the PASSED one.
		{"group", Query{Groups: []string{"g"}}, []Result{rs[2], rs[1]}},
		{"until", Query{Until: new(at(2))}, []Result{rs[2], rs[1]}},
		// Upstream's latest ignores outcome, page and limit.
		{"outcome ignored", Query{Outcomes: []string{"PASSED"}, Limit: 1}, []Result{rs[3], rs[1]}},
		{"ascending", Query{Ascending: true}, []Result{rs[1], rs[3]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantIDs(t, "latest", latest(t, s, tc.q), tc.want...)
		})
	}
	// Two results of one millisecond: the later id wins, alone.
	tie := create(t, s,
		Result{Testcase: Testcase{Name: "tie"}, Outcome: "PASSED", SubmitTime: at(9)},
		Result{Testcase: Testcase{Name: "tie"}, Outcome: "FAILED", SubmitTime: at(9).Add(time.Microsecond)},
	)
	wantIDs(t, "latest of a tie", latest(t, s, Query{Testcases: []string{"tie"}}), tie[1])
}

// testLatestDistinctOn ports upstream's test_get_results_latest_distinct_on*.
func testLatestDistinctOn(t *testing.T, s *Store) {
	grub := func(tc, scenario string) Result {
		d := map[string][]string{"item": {"grub"}}
		if scenario != "" {
			d["scenario"] = []string{scenario}
		}
		return Result{Testcase: Testcase{Name: tc}, Outcome: "PASSED", Data: d}
	}
	item := Query{Data: []DataFilter{{Key: "item", Values: []string{"grub"}}}}
	var rs []Result
	add := func(r Result) Result {
		r.SubmitTime = at(len(rs))
		r = create(t, s, r)[0]
		rs = append(rs, r)
		return r
	}
	r1 := add(grub("tc_1", "s_1"))
	r2 := add(grub("tc_2", "s_1"))
	r3 := add(grub("tc_2", "s_2"))
	r4 := add(grub("tc_3", ""))
	// Case 1: every result is the newest of its testcase and scenario.
	wantIDs(t, "case 1", latest(t, s, item, "scenario"), r4, r3, r2, r1)
	// Case 2: a result without the key is a group of its own.
	r5 := add(grub("tc_1", ""))
	wantIDs(t, "case 2", latest(t, s, item, "scenario"), r5, r4, r3, r2, r1)
	// Case 3: a newer tc_1 s_1 replaces the first.
	r6 := add(grub("tc_1", "s_1"))
	wantIDs(t, "case 3", latest(t, s, item, "scenario"), r6, r5, r4, r3, r2)
	// Without distinct-on, one per testcase.
	wantIDs(t, "no distinct-on", latest(t, s, item), r6, r4, r3)
	// A result with two values of the key is a candidate in both, and is
	// returned once.
	r7 := add(Result{Testcase: Testcase{Name: "tc_2"}, Outcome: "PASSED",
		Data: map[string][]string{"item": {"grub"}, "scenario": {"s_1", "s_2"}}})
	wantIDs(t, "two values", latest(t, s, item, "scenario"), r7, r6, r5, r4)
	// Two keys, and a key named twice.
	wantIDs(t, "two keys", latest(t, s, Query{Testcases: []string{"tc_1"}}, "scenario", "item", "scenario"), r6, r5)
}

// testLatestGreenwave asks what Greenwave asks for a gating decision.
func testLatestGreenwave(t *testing.T, s *Store) {
	build := func(i int, nvr, typ, tc, scenario, arch, outcome string) Result {
		return Result{Testcase: Testcase{Name: tc}, Outcome: outcome, SubmitTime: at(i),
			Data: map[string][]string{"item": {nvr}, "type": {typ}, "scenario": {scenario},
				"system_architecture": {arch}, "system_variant": {"Server"}}}
	}
	rs := create(t, s,
		build(0, "pkg-1.0-1", "koji_build", "sluice.install", "fresh", "x86_64", "FAILED"),
		build(1, "pkg-1.0-1", "koji_build", "sluice.install", "fresh", "x86_64", "PASSED"),
		build(2, "pkg-1.0-1", "koji_build", "sluice.install", "fresh", "aarch64", "PASSED"),
		build(3, "pkg-1.0-1", "brew-build", "sluice.install", "upgrade", "x86_64", "FAILED"),
		build(4, "pkg-1.0-1", "bodhi_update", "sluice.install", "upgrade", "x86_64", "PASSED"),
		build(5, "pkg-1.0-2", "koji_build", "sluice.install", "fresh", "x86_64", "FAILED"),
		build(6, "pkg-1.0-1", "koji_build", "sluice.build", "fresh", "x86_64", "PASSED"),
	)
	q := Query{
		Testcases: []string{"sluice.install"},
		Data: []DataFilter{
			{Key: "item", Values: []string{"pkg-1.0-1"}},
			{Key: "type", Values: []string{"koji_build", "brew-build"}},
		},
	}
	got := latest(t, s, q, "scenario", "system_architecture", "system_variant")
	wantIDs(t, "greenwave", got, rs[3], rs[2], rs[1])
	if len(got) == 3 && (got[2].Outcome != "PASSED" || !slices.Equal(got[2].Data["scenario"], []string{"fresh"})) {
		t.Errorf("latest fresh x86_64 = %+v, want the PASSED one with its data", got[2])
	}
}

func testCatalog(t *testing.T, s *Store) {
	ctx := t.Context()
	for i, name := range []string{"b.two", "a.one", "c/three", "a_x"} {
		create(t, s, Result{Testcase: Testcase{Name: name}, Outcome: "PASSED", SubmitTime: at(i), Groups: []string{"g" + name}})
	}
	names := func(q TestcaseQuery) ([]string, bool) {
		t.Helper()
		tcs, more, err := s.Testcases(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var ns []string
		for _, tc := range tcs {
			ns = append(ns, tc.Name)
		}
		return ns, more
	}
	for _, tc := range []struct {
		q    TestcaseQuery
		want []string
		more bool
	}{
		{TestcaseQuery{}, []string{"a.one", "a_x", "b.two", "c/three"}, false},
		{TestcaseQuery{Limit: 3}, []string{"a.one", "a_x", "b.two"}, true},
		{TestcaseQuery{Limit: 3, Page: 1}, []string{"c/three"}, false},
		{TestcaseQuery{Names: []string{"c/three", "nope"}}, []string{"c/three"}, false},
		{TestcaseQuery{NamesLike: []string{"a.*", "*/*"}}, []string{"a.one", "c/three"}, false},
		// name wins over name:like, as upstream.
		{TestcaseQuery{Names: []string{"b.two"}, NamesLike: []string{"*"}}, []string{"b.two"}, false},
	} {
		if got, more := names(tc.q); !slices.Equal(got, tc.want) || more != tc.more {
			t.Errorf("Testcases(%+v) = %v, %t; want %v, %t", tc.q, got, more, tc.want, tc.more)
		}
	}
	gs, more, err := s.Groups(ctx, GroupQuery{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 2 || !more || gs[0].UUID != "ga_x" || gs[1].UUID != "gc/three" {
		t.Errorf("Groups(limit 2) = %+v, %t; want the two newest, ga_x and gc/three, and more", gs, more)
	}
	gs, _, err = s.Groups(ctx, GroupQuery{UUIDs: []string{"ga.one", "gb.two"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 2 {
		t.Errorf("Groups(uuid ga.one, gb.two) = %+v", gs)
	}
}
