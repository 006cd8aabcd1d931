package results

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
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
	var w where
	if err := s.filter(&w, q); err != nil {
		return nil, err
	}
	query, args := latestSQL(w, distinctOn, q.Ascending)
	rs, err := s.queryResults(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("results: query latest results: %w", err)
	}
	if err := s.loadDetails(ctx, rs); err != nil {
		return nil, err
	}
	return rs, nil
}

// latestSQL returns the query of Latest: the candidates (the results that
// w selects, found through the data index first when w filters on data),
// ranked within each testcase and values of the distinctOn keys, newest
// first; the first of each rank is the answer.
func latestSQL(w where, distinctOn []string, ascending bool) (string, []any) {
	var b strings.Builder
	args := slices.Clone(w.args)
	b.WriteString(`WITH candidates AS (
	SELECT r.id, r.testcase_name, r.submit_time FROM results r` + w.clause() + `
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
	const r = "r"
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
				return err
			}
			os[i] = n
		}
		w.add(r+`.outcome IN (`+marks(len(os))+`)`, os...)
	}
	if len(q.Groups) > 0 {
		w.add(r+`.id IN (SELECT result_id FROM results_groups WHERE group_uuid IN (`+marks(len(q.Groups))+`))`,
			anys(q.Groups)...)
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
		w.add(`(`+strings.Join(alts, ` OR `)+`)`, args...)
	}
	for _, d := range q.Data {
		if d.Key == "" {
			return invalid("data", "filter without a key")
		}
		if len(d.Values) == 0 {
			return invalid("data", "filter on %q without values", d.Key)
		}
		if !d.Like {
			w.add(r+`.id IN (SELECT result_id FROM result_data WHERE key = ? AND value IN (`+marks(len(d.Values))+`))`,
				append([]any{d.Key}, anys(d.Values)...)...)
			continue
		}
		alts := make([]string, len(d.Values))
		args := []any{d.Key}
		for i, v := range d.Values {
			alts[i] = `value ` + s.like()
			args = append(args, s.pattern(v))
		}
		w.add(r+`.id IN (SELECT result_id FROM result_data WHERE key = ? AND (`+strings.Join(alts, ` OR `)+`))`, args...)
	}
	return nil
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
