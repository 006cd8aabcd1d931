package results

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-ci/sluice/store"
)

// Query selects results, as the parameters of upstream's GET /results do.
// Filters of different kinds must all hold; the values of one filter are
// alternatives.
type Query struct {
	// Page counts from 0; Limit is the page size, DefaultLimit when 0.
	Page, Limit int
	// Since and Until bound the submit time, both inclusive (upstream's
	// since=start,end).
	Since, Until *time.Time
	// Outcomes are matched in upper case and must be outcomes the store
	// accepts.
	Outcomes []string
	// Groups are group UUIDs.
	Groups []string
	// Testcases and TestcasesLike (patterns where '*' is any run of
	// characters) are alternatives to each other as well.
	Testcases     []string
	TestcasesLike []string
	// Data filters must all hold.
	Data []DataFilter
	// Ascending lists the oldest results first (upstream's
	// _sort=asc:submit_time); the newest come first by default.
	Ascending bool
}

// DataFilter matches results with a value of Key among Values: equal to
// one of them, or, with Like, matching one of them as a pattern where
// '*' is any run of characters (upstream's key:like=...).
type DataFilter struct {
	Key    string
	Values []string
	Like   bool
}

// idsPerQuery bounds the ids of one "IN (...)" list.
const idsPerQuery = 500

// resultColumns are the columns scanned by scanResults, from results r
// joined with testcases t.
const resultColumns = `r.id, r.testcase_name, t.ref_url, r.submit_time, r.outcome, r.note, r.ref_url`

// Results returns a page of the results that q selects, newest first
// unless q.Ascending, and whether a next page exists. Results with the
// same submit time come in the order of their ids.
func (s *Store) Results(ctx context.Context, q Query) (rs []Result, more bool, err error) {
	offset, limit, err := page(q.Page, q.Limit)
	if err != nil {
		return nil, false, err
	}
	var w where
	if err := s.filter(&w, q); err != nil {
		return nil, false, err
	}
	query := `SELECT ` + resultColumns + ` FROM results r JOIN testcases t ON t.name = r.testcase_name` +
		w.clause() + ` ORDER BY ` + order(q.Ascending) + ` LIMIT ? OFFSET ?`
	rs, err = s.queryResults(ctx, query, append(w.args, limit+1, offset)...)
	if err != nil {
		return nil, false, fmt.Errorf("results: query results: %w", err)
	}
	if len(rs) > limit {
		rs, more = rs[:limit], true
	}
	if err := s.loadDetails(ctx, rs); err != nil {
		return nil, false, err
	}
	return rs, more, nil
}

// Latest returns the newest result of each testcase among those that q
// selects, as upstream's GET /results/latest: with distinctOn, the newest
// of each testcase and each combination of the values of those data keys
// (a result without such a key counts as its own value; one with several
// values of it is a candidate in each). Results come newest first unless
// q.Ascending. Of q, Latest ignores Outcomes, Page and Limit, as upstream
// does. With distinctOn, q must have another filter, as upstream
// requires.
func (s *Store) Latest(ctx context.Context, q Query, distinctOn []string) ([]Result, error) {
	distinctOn = slices.Compact(slices.Clone(distinctOn))
	for _, k := range distinctOn {
		if k == "" {
			return nil, invalid("_distinct_on", "empty key")
		}
	}
	if len(distinctOn) > 0 && q.Since == nil && q.Until == nil && len(q.Groups) == 0 &&
		len(q.Testcases) == 0 && len(q.TestcasesLike) == 0 && len(q.Data) == 0 {
		return nil, invalid("_distinct_on", "give at least one filter beside it")
	}
	q.Outcomes = nil
	f, err := s.conditions(q)
	if err != nil {
		return nil, err
	}
	st, err := s.start(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("results: query latest results: %w", err)
	}
	query, args := latestSQL(f, st, distinctOn, q.Ascending)
	rs, err := s.queryResults(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("results: query latest results: %w", err)
	}
	if err := s.loadDetails(ctx, rs); err != nil {
		return nil, err
	}
	return rs, nil
}

// fewResults is how many results a filter may select and still be the
// one that Latest starts from; past it, the database's planner chooses.
const fewResults = 1000

// start says where the query of Latest starts.
type start struct {
	// drive is the index in filters.ids of the filter whose ids the
	// query starts from, or -1: from results, through the index that the
	// database chooses.
	drive int
	// few says that the start selects at most fewResults results: the
	// other filters on ids are then checked on each of them, through the
	// indexes that start with result_id, and never joined whole.
	few bool
}

// start returns where the query of Latest starts: from the filter that
// selects the fewest results, if it selects at most fewResults: the
// filter on ids whose ids then come from its index, or the testcase
// filter, which the index on testcase_name serves. The databases cannot
// tell which filter is small: SQLite has no statistics (sluice never
// runs ANALYZE), and PostgreSQL, which has them, plans a statement it has
// prepared for any value of its parameters after a few runs, with the
// average selectivity of a data value, whereas item=X selects a hundred
// results and type=koji_build most of them. So start counts, in one
// query, the results that each filter selects, up to fewResults+1.
func (s *Store) start(ctx context.Context, f filters) (start, error) {
	switch {
	case len(f.ids) == 0:
		return start{drive: -1}, nil
	case len(f.ids) == 1 && f.testcase == nil:
		// Nothing to choose from.
		return start{drive: 0, few: true}, nil
	}
	limit := ` LIMIT ` + strconv.Itoa(fewResults+1) + `) p)`
	var counts []string
	var args []any
	for _, id := range f.ids {
		counts = append(counts, `(SELECT COUNT(*) FROM (SELECT 1 FROM `+id.table+` WHERE `+id.cond+limit)
		args = append(args, id.args...)
	}
	if f.testcase != nil {
		counts = append(counts, `(SELECT COUNT(*) FROM (SELECT 1 FROM results r WHERE `+f.testcase.text+limit)
		args = append(args, f.testcase.args...)
	}
	n := make([]int64, len(counts))
	dest := make([]any, len(n))
	for i := range n {
		dest[i] = &n[i]
	}
	if err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT `+strings.Join(counts, `, `)), args...).Scan(dest...); err != nil {
		return start{}, fmt.Errorf("count the results of each filter: %w", err)
	}
	st := start{drive: -1}
	least := int64(fewResults + 1)
	for i := range n {
		if n[i] < least {
			least = n[i]
			st = start{drive: i, few: true}
		}
	}
	if st.drive == len(f.ids) {
		// The testcase filter.
		st.drive = -1
	}
	return st, nil
}

// latestSQL returns the query of Latest: the candidates (the results that
// f selects, from where st says), ranked within each testcase and values
// of the distinctOn keys, newest first; the first of each rank is the
// answer.
func latestSQL(f filters, st start, distinctOn []string, ascending bool) (string, []any) {
	var b strings.Builder
	var args []any
	b.WriteString(`WITH candidates AS (
	SELECT r.id, r.testcase_name, r.submit_time FROM `)
	var w where
	if st.drive >= 0 {
		// CROSS JOIN keeps SQLite to the order written; PostgreSQL plans
		// it as any join.
		d := f.ids[st.drive]
		b.WriteString(`(SELECT DISTINCT result_id FROM ` + d.table + ` WHERE ` + d.cond + `) drv CROSS JOIN results r`)
		args = append(args, d.args...)
		w.add(`r.id = drv.result_id`)
	} else {
		b.WriteString(`results r`)
	}
	w.conds = append(w.conds, f.rows.conds...)
	w.args = append(w.args, f.rows.args...)
	for i, id := range f.ids {
		switch {
		case i == st.drive:
		case st.few:
			w.add(id.check(), id.args...)
		default:
			w.add(id.exists(), id.args...)
		}
	}
	b.WriteString(w.clause())
	args = append(args, w.args...)
	b.WriteString(`
), ranked AS (
	SELECT c.id, ROW_NUMBER() OVER (PARTITION BY c.testcase_name`)
	for i := range distinctOn {
		fmt.Fprintf(&b, `, d%d.value`, i)
	}
	b.WriteString(` ORDER BY c.submit_time DESC, c.id DESC) AS rank
	FROM candidates c`)
	for i, k := range distinctOn {
		fmt.Fprintf(&b, `
	LEFT JOIN result_data d%d ON d%[1]d.result_id = c.id AND d%[1]d.key = ?`, i)
		args = append(args, k)
	}
	b.WriteString(`
)
SELECT ` + resultColumns + ` FROM results r JOIN testcases t ON t.name = r.testcase_name
WHERE r.id IN (SELECT id FROM ranked WHERE rank = 1)
ORDER BY ` + order(ascending))
	return b.String(), args
}

// Result returns the result id, or an error that wraps ErrNotFound.
func (s *Store) Result(ctx context.Context, id int64) (Result, error) {
	rs, err := s.queryResults(ctx, `SELECT `+resultColumns+
		` FROM results r JOIN testcases t ON t.name = r.testcase_name WHERE r.id = ?`, id)
	if err != nil {
		return Result{}, fmt.Errorf("results: result %d: %w", id, err)
	}
	if len(rs) == 0 {
		return Result{}, fmt.Errorf("results: result %d: %w", id, ErrNotFound)
	}
	if err := s.loadDetails(ctx, rs); err != nil {
		return Result{}, err
	}
	return rs[0], nil
}

func order(ascending bool) string {
	if ascending {
		return `r.submit_time ASC, r.id ASC`
	}
	return `r.submit_time DESC, r.id DESC`
}

// page returns the offset and the limit of a page, as upstream's
// pagination: the page counts from 0, the offset is page*limit.
func page(p, limit int) (offset, n int, err error) {
	switch {
	case p < 0:
		return 0, 0, invalid("page", "%d is negative", p)
	case limit < 0:
		return 0, 0, invalid("limit", "%d is negative", limit)
	case limit == 0:
		limit = DefaultLimit
	}
	if limit >= math.MaxInt32 || p > 0 && limit > math.MaxInt64/(p+1) {
		return 0, 0, invalid("limit", "page %d of %d results is out of range", p, limit)
	}
	return p * limit, limit, nil
}

// where collects the conditions of a WHERE clause and their arguments,
// with "?" placeholders.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w where) clause() string {
	if len(w.conds) == 0 {
		return ""
	}
	return ` WHERE ` + strings.Join(w.conds, ` AND `)
}

// filter adds to w the conditions of q on the results table, aliased r.
func (s *Store) filter(w *where, q Query) error {
	f, err := s.conditions(q)
	if err != nil {
		return err
	}
	w.conds = append(w.conds, f.rows.conds...)
	w.args = append(w.args, f.rows.args...)
	for _, id := range f.ids {
		w.add(id.in(), id.args...)
	}
	return nil
}

// filters are the conditions of a Query.
type filters struct {
	// rows are the conditions on the columns of results r.
	rows where
	// testcase is the condition of rows on the testcase, nil without one.
	testcase *cond
	// ids are the filters on groups and data.
	ids []idFilter
}

// cond is a condition and its arguments.
type cond struct {
	text string
	args []any
}

// idFilter is a filter that an index answers with the ids of the results
// it selects, without reading the results table: a data filter or the
// group filter.
type idFilter struct {
	table string // result_data or results_groups, whose result_id names a result
	cond  string // on table's own columns
	args  []any
}

// in returns f as a condition on results r that the planner may start
// from: the ids, from the index that starts with f's columns.
func (f idFilter) in() string {
	return `r.id IN (SELECT result_id FROM ` + f.table + ` WHERE ` + f.cond + `)`
}

// exists returns f as a condition that the planner may answer either way:
// from the ids, or checked on each result r.
func (f idFilter) exists() string {
	return `EXISTS (SELECT 1 FROM ` + f.table + ` WHERE result_id = r.id AND ` + f.cond + `)`
}

// check returns f as a condition checked on each result r, through the
// index that starts with result_id: PostgreSQL turns EXISTS into a join,
// which it may plan from all the ids, but runs a scalar subquery with a
// LIMIT for each row.
func (f idFilter) check() string {
	return `(SELECT 1 FROM ` + f.table + ` WHERE result_id = r.id AND ` + f.cond + ` LIMIT 1) IS NOT NULL`
}

// conditions returns the conditions of q.
func (s *Store) conditions(q Query) (filters, error) {
	const r = "r"
	var f filters
	w := &f.rows
	if q.Since != nil {
		w.add(r+`.submit_time >= ?`, nanos(*q.Since))
	}
	if q.Until != nil {
		w.add(r+`.submit_time <= ?`, nanos(*q.Until))
	}
	if len(q.Outcomes) > 0 {
		os := make([]any, len(q.Outcomes))
		for i, o := range q.Outcomes {
			n, err := s.outcome(o)
			if err != nil {
				return f, err
			}
			os[i] = n
		}
		w.add(r+`.outcome IN (`+marks(len(os))+`)`, os...)
	}
	if len(q.Testcases)+len(q.TestcasesLike) > 0 {
		var alts []string
		var args []any
		if len(q.Testcases) > 0 {
			alts = append(alts, r+`.testcase_name IN (`+marks(len(q.Testcases))+`)`)
			args = append(args, anys(q.Testcases)...)
		}
		for _, p := range q.TestcasesLike {
			alts = append(alts, r+`.testcase_name `+s.like())
			args = append(args, s.pattern(p))
		}
		f.testcase = &cond{text: `(` + strings.Join(alts, ` OR `) + `)`, args: args}
		w.add(f.testcase.text, args...)
	}
	if len(q.Groups) > 0 {
		f.ids = append(f.ids, idFilter{table: "results_groups", cond: `group_uuid IN (` + marks(len(q.Groups)) + `)`, args: anys(q.Groups)})
	}
	for _, d := range q.Data {
		if d.Key == "" {
			return f, invalid("data", "filter without a key")
		}
		if len(d.Values) == 0 {
			return f, invalid("data", "filter on %q without values", d.Key)
		}
		if !d.Like {
			f.ids = append(f.ids, idFilter{table: "result_data", cond: `key = ? AND value IN (` + marks(len(d.Values)) + `)`,
				args: append([]any{d.Key}, anys(d.Values)...)})
			continue
		}
		alts := make([]string, len(d.Values))
		args := []any{d.Key}
		for i, v := range d.Values {
			alts[i] = `value ` + s.like()
			args = append(args, s.pattern(v))
		}
		f.ids = append(f.ids, idFilter{table: "result_data", cond: `key = ? AND (` + strings.Join(alts, ` OR `) + `)`, args: args})
	}
	return f, nil
}

// like returns the operator and placeholder that match a column against a
// pattern made by pattern: GLOB in SQLite, whose LIKE ignores case.
func (s *Store) like() string {
	if s.db.Dialect() == store.SQLite {
		return `GLOB ?`
	}
	return `LIKE ? ESCAPE '\'`
}

// pattern turns p, where '*' is any run of characters and anything else
// is itself, into a pattern for like.
func (s *Store) pattern(p string) string {
	var b strings.Builder
	for _, c := range p {
		if s.db.Dialect() == store.SQLite {
			switch c {
			case '?', '[':
				b.WriteString("[" + string(c) + "]")
			default:
				b.WriteRune(c)
			}
			continue
		}
		switch c {
		case '*':
			b.WriteByte('%')
		case '%', '_', '\\':
			b.WriteString(`\` + string(c))
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

func nanos(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// marks returns n comma-separated placeholders.
func marks(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func anys[T any](xs []T) []any {
	as := make([]any, len(xs))
	for i, x := range xs {
		as[i] = x
	}
	return as
}

// queryResults runs query, which selects resultColumns, with the
// placeholders of its text as they are (see store.DB.Rebind).
func (s *Store) queryResults(ctx context.Context, query string, args ...any) ([]Result, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var rs []Result
	for rows.Next() {
		var r Result
		var submit int64
		if err := rows.Scan(&r.ID, &r.Testcase.Name, &r.Testcase.RefURL, &submit, &r.Outcome, &r.Note, &r.RefURL); err != nil {
			return nil, err
		}
		r.SubmitTime = time.Unix(0, submit).UTC()
		rs = append(rs, r)
	}
	return rs, rows.Err()
}

// loadDetails fills in the groups and the data of rs.
func (s *Store) loadDetails(ctx context.Context, rs []Result) error {
	at := make(map[int64]*Result, len(rs))
	for i := range rs {
		rs[i].Data = map[string][]string{}
		at[rs[i].ID] = &rs[i]
	}
	for chunk := range slices.Chunk(rs, idsPerQuery) {
		ids := make([]any, len(chunk))
		for i, r := range chunk {
			ids[i] = r.ID
		}
		in := `(` + marks(len(ids)) + `)`
		err := s.each(ctx, `SELECT result_id, group_uuid FROM results_groups WHERE result_id IN `+in+
			` ORDER BY result_id, group_uuid`, ids, func(rows *sql.Rows) error {
			var id int64
			var g string
			if err := rows.Scan(&id, &g); err != nil {
				return err
			}
			at[id].Groups = append(at[id].Groups, g)
			return nil
		})
		if err != nil {
			return fmt.Errorf("results: load groups: %w", err)
		}
		err = s.each(ctx, `SELECT result_id, key, value FROM result_data WHERE result_id IN `+in+
			` ORDER BY result_id, id`, ids, func(rows *sql.Rows) error {
			var id int64
			var k, v string
			if err := rows.Scan(&id, &k, &v); err != nil {
				return err
			}
			at[id].Data[k] = append(at[id].Data[k], v)
			return nil
		})
		if err != nil {
			return fmt.Errorf("results: load data: %w", err)
		}
	}
	return nil
}

// each runs query and calls fn on each row.
func (s *Store) each(ctx context.Context, query string, args []any, fn func(*sql.Rows) error) error {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(query), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
