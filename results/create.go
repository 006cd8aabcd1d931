package results

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Unix nanoseconds, as the store keeps times, cover these years.
var (
	minTime = time.Unix(0, -1<<63+1).UTC().Truncate(time.Millisecond).Add(time.Millisecond)
	maxTime = time.Unix(0, 1<<63-1).UTC().Truncate(time.Millisecond)
)

// rowsPerInsert bounds the rows of one multi-row INSERT, far below the
// placeholders either database allows.
const rowsPerInsert = 300

// Create stores r in tx, a transaction of the store's database, so that
// it commits with the caller's other changes. As upstream, it creates r's
// testcase when missing and sets its RefURL when r gives one, and creates
// r's groups when missing. It validates r, naming the field at fault in a
// *ValidationError, and fills in r.ID, r.SubmitTime (now when zero,
// otherwise r's own, in UTC and to the millisecond) and r.Outcome (in
// upper case). r's other fields are left as they are.
func (s *Store) Create(ctx context.Context, tx *sql.Tx, r *Result) error {
	outcome, err := s.validate(r)
	if err != nil {
		return err
	}
	submit := r.SubmitTime
	if submit.IsZero() {
		submit = time.Now()
	}
	submit = submit.UTC().Truncate(time.Millisecond)

	tc := r.Testcase
	// An empty ref_url leaves the testcase's as it is: upstream sets it
	// only when the result names one.
	if _, err := tx.ExecContext(ctx, s.db.Rebind(`
		INSERT INTO testcases (name, ref_url) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET ref_url = excluded.ref_url
		WHERE excluded.ref_url <> '' AND testcases.ref_url <> excluded.ref_url`),
		tc.Name, tc.RefURL); err != nil {
		return fmt.Errorf("results: create testcase %q: %w", tc.Name, err)
	}
	groups := slices.Compact(slices.Sorted(slices.Values(r.Groups)))
	for _, g := range groups {
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`
			INSERT INTO groups (uuid, created_at) VALUES (?, ?) ON CONFLICT (uuid) DO NOTHING`),
			g, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("results: create group %s: %w", g, err)
		}
	}

	var id int64
	err = tx.QueryRowContext(ctx, s.db.Rebind(`
		INSERT INTO results (testcase_name, submit_time, outcome, note, ref_url)
		VALUES (?, ?, ?, ?, ?) RETURNING id`),
		tc.Name, submit.UnixNano(), outcome, r.Note, r.RefURL).Scan(&id)
	if err != nil {
		return fmt.Errorf("results: create result of %q: %w", tc.Name, err)
	}

	var rows [][]any
	for _, g := range groups {
		rows = append(rows, []any{id, g})
	}
	if err := s.insertRows(ctx, tx, "results_groups (result_id, group_uuid)", rows); err != nil {
		return fmt.Errorf("results: create result %d: groups: %w", id, err)
	}
	rows = rows[:0]
	for _, k := range slices.Sorted(maps.Keys(r.Data)) {
		for _, v := range r.Data[k] {
			rows = append(rows, []any{id, k, v})
		}
	}
	if err := s.insertRows(ctx, tx, "result_data (result_id, key, value)", rows); err != nil {
		return fmt.Errorf("results: create result %d: data: %w", id, err)
	}

	r.ID, r.SubmitTime, r.Outcome = id, submit, outcome
	return nil
}

// validate checks r and returns its outcome as stored.
func (s *Store) validate(r *Result) (string, error) {
	outcome, err := s.outcome(r.Outcome)
	if err != nil {
		return "", err
	}
	switch n := r.Testcase.Name; {
	case n == "":
		return "", invalid("testcase.name", "empty")
	case len(n) > maxTestcaseName:
		return "", invalid("testcase.name", "longer than %d bytes", maxTestcaseName)
	}
	for _, g := range r.Groups {
		if g == "" || len(g) > maxGroupUUID {
			return "", invalid("groups", "uuid %q is not 1 to %d bytes", g, maxGroupUUID)
		}
	}
	var colon []string
	for k := range r.Data {
		if strings.Contains(k, ":") {
			colon = append(colon, k)
		}
	}
	if len(colon) > 0 {
		slices.Sort(colon)
		return "", invalid("data", "colon not allowed in key name: %q", colon)
	}
	if t := r.SubmitTime; !t.IsZero() && (t.Before(minTime) || t.After(maxTime)) {
		return "", invalid("submit_time", "%s is outside the years 1678 to 2262", t.Format(time.RFC3339))
	}
	return outcome, nil
}

// insertRows inserts rows into table, "name (columns)", a few hundred at a
// time. Every row has as many values as there are columns.
func (s *Store) insertRows(ctx context.Context, tx *sql.Tx, table string, rows [][]any) error {
	for chunk := range slices.Chunk(rows, rowsPerInsert) {
		tuple := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(chunk[0])), ", ") + ")"
		var b strings.Builder
		b.WriteString("INSERT INTO " + table + " VALUES ")
		args := make([]any, 0, len(chunk)*len(chunk[0]))
		for i, row := range chunk {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(tuple)
			args = append(args, row...)
		}
		if _, err := tx.ExecContext(ctx, s.db.Rebind(b.String()), args...); err != nil {
			return err
		}
	}
	return nil
}
