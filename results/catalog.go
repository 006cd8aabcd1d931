package results

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// TestcaseQuery selects testcases, as upstream's GET /testcases.
type TestcaseQuery struct {
	// Page counts from 0; Limit is the page size, DefaultLimit when 0.
	Page, Limit int
	// Names are alternatives; when there are none, NamesLike are
	// (patterns where '*' is any run of characters). Upstream ignores
	// name:like when name is given, and so does Testcases.
	Names     []string
	NamesLike []string
}

// Testcases returns a page of the testcases that q selects, by name, and
// whether a next page exists.
func (s *Store) Testcases(ctx context.Context, q TestcaseQuery) (tcs []Testcase, more bool, err error) {
	offset, limit, err := page(q.Page, q.Limit)
	if err != nil {
		return nil, false, err
	}
	var w where
	switch {
	case len(q.Names) > 0:
		w.add(`name IN (`+marks(len(q.Names))+`)`, anys(q.Names)...)
	case len(q.NamesLike) > 0:
		c, args := s.likeAny("name", q.NamesLike)
		w.add(c, args...)
	}
	err = s.each(ctx, `SELECT name, ref_url FROM testcases`+w.clause()+` ORDER BY name LIMIT ? OFFSET ?`,
		append(w.args, limit+1, offset), func(rows *sql.Rows) error {
			var tc Testcase
			if err := rows.Scan(&tc.Name, &tc.RefURL); err != nil {
				return err
			}
			tcs = append(tcs, tc)
			return nil
		})
	if err != nil {
		return nil, false, fmt.Errorf("results: query testcases: %w", err)
	}
	if len(tcs) > limit {
		tcs, more = tcs[:limit], true
	}
	return tcs, more, nil
}

// Testcase returns the testcase name, or an error that wraps ErrNotFound.
func (s *Store) Testcase(ctx context.Context, name string) (Testcase, error) {
	tc := Testcase{Name: name}
	err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT ref_url FROM testcases WHERE name = ?`), name).Scan(&tc.RefURL)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Testcase{}, fmt.Errorf("results: testcase %q: %w", name, err)
	}
	return tc, nil
}

// GroupQuery selects groups, as upstream's GET /groups.
type GroupQuery struct {
	// Page counts from 0; Limit is the page size, DefaultLimit when 0.
	Page, Limit int
	// UUIDs are alternatives.
	UUIDs []string
	// Descriptions are alternatives; when there are none,
	// DescriptionsLike are (patterns where '*' is any run of characters),
	// as upstream's description and description:like.
	Descriptions     []string
	DescriptionsLike []string
}

// Groups returns a page of the groups that q selects, newest first, and
// whether a next page exists.
func (s *Store) Groups(ctx context.Context, q GroupQuery) (gs []Group, more bool, err error) {
	offset, limit, err := page(q.Page, q.Limit)
	if err != nil {
		return nil, false, err
	}
	var w where
	switch {
	case len(q.Descriptions) > 0:
		w.add(`description IN (`+marks(len(q.Descriptions))+`)`, anys(q.Descriptions)...)
	case len(q.DescriptionsLike) > 0:
		c, args := s.likeAny("description", q.DescriptionsLike)
		w.add(c, args...)
	}
	if len(q.UUIDs) > 0 {
		w.add(`uuid IN (`+marks(len(q.UUIDs))+`)`, anys(q.UUIDs)...)
	}
	err = s.each(ctx, `SELECT uuid, description, ref_url FROM groups`+w.clause()+
		` ORDER BY created_at DESC, uuid DESC LIMIT ? OFFSET ?`,
		append(w.args, limit+1, offset), func(rows *sql.Rows) error {
			var g Group
			if err := rows.Scan(&g.UUID, &g.Description, &g.RefURL); err != nil {
				return err
			}
			gs = append(gs, g)
			return nil
		})
	if err != nil {
		return nil, false, fmt.Errorf("results: query groups: %w", err)
	}
	if len(gs) > limit {
		gs, more = gs[:limit], true
	}
	return gs, more, nil
}

// Group returns the group uuid, or an error that wraps ErrNotFound.
func (s *Store) Group(ctx context.Context, uuid string) (Group, error) {
	g := Group{UUID: uuid}
	err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT description, ref_url FROM groups WHERE uuid = ?`), uuid).
		Scan(&g.Description, &g.RefURL)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Group{}, fmt.Errorf("results: group %s: %w", uuid, err)
	}
	return g, nil
}

// likeAny returns the condition that column matches one of patterns, and
// its arguments.
func (s *Store) likeAny(column string, patterns []string) (string, []any) {
	alts := make([]string, len(patterns))
	args := make([]any, len(patterns))
	for i, p := range patterns {
		alts[i] = column + ` ` + s.like()
		args[i] = s.pattern(p)
	}
	return `(` + strings.Join(alts, ` OR `) + `)`, args
}
