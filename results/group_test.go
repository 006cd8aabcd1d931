package results

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/sluice-ci/sluice/internal/pgtest"
	"github.com/sluice-ci/sluice/store"
)

// TestGroupCommit runs many writes at once through a groupCommit: each
// that succeeds is committed, each that fails (in Go or in the database)
// leaves nothing, and the others are not harmed by it.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	for _, tc := range pgtest.Stores {
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			db, err := store.Open(t.Context(), tc.DSN(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			s := NewStore(db, Config{})
			g := &groupCommit{db: db}
			const n = 60
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					errs[i] = g.do(t.Context(), func(ctx context.Context, tx *sql.Tx) error {
						r := &Result{Testcase: Testcase{Name: "sluice.group"}, Outcome: "PASSED",
							Data: map[string][]string{"item": {fmt.Sprint(i)}}}
						if err := s.Create(ctx, tx, r); err != nil {
							return err
						}
						switch i % 10 {
						case 3:
							return errors.New("refused in Go")
						case 7:
							// A statement the database refuses, after a write.
							_, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO groups (uuid, created_at) VALUES (?, ?)`), nil, 0)
							return err
						}
						return nil
					})
				})
			}
			wg.Wait()
			for i, err := range errs {
				if (err != nil) != (i%10 == 3 || i%10 == 7) {
					t.Errorf("write %d: %v", i, err)
				}
			}
			rs, _, err := s.Results(t.Context(), Query{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != n-2*n/10 {
				t.Fatalf("%d results committed, want %d", len(rs), n-2*n/10)
			}
			for _, r := range rs {
				var i int
				fmt.Sscan(r.Data["item"][0], &i)
				if i%10 == 3 || i%10 == 7 {
					t.Errorf("the write of failed %d is there", i)
				}
			}
		})
	}
}
