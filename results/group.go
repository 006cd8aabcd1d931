package results

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/sluice-ci/sluice/store"
)

// groupCommit runs the writes of concurrent requests in shared
// transactions: the first request to come leads, and commits in one
// transaction what has queued meanwhile, each write in a savepoint of its
// own, so that a write that fails is undone alone; then the next batch,
// until none is waiting. One commit (one fsync) serves many requests, the
// one thing that bounds the ingest of SQLite's single writer. No write is
// acknowledged before its batch commits. On PostgreSQL, whose writers run
// side by side, every write has its own transaction.
type groupCommit struct {
	db *store.DB

	mu      sync.Mutex
	queue   []*groupWrite
	leading bool
}

type groupWrite struct {
	fn   func(ctx context.Context, tx *sql.Tx) error
	err  error
	done chan struct{}
}

// maxGroup bounds the writes of one transaction, and groupTimeout the
// time a batch may take.
const (
	maxGroup     = 64
	groupTimeout = time.Minute
)

// do runs fn in a transaction it may share with other calls, and returns
// its error, or the commit's.
func (g *groupCommit) do(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if g.db.Dialect() != store.SQLite {
		// Creating a result only inserts and upserts by unique keys.
		return g.db.InsertTx(ctx, func(tx *sql.Tx) error { return fn(ctx, tx) })
	}
	w := &groupWrite{fn: fn, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, w)
	if g.leading {
		g.mu.Unlock()
		select {
		case <-w.done:
			return w.err
		case <-ctx.Done():
			// The write may still commit; the caller is gone anyway.
			return ctx.Err()
		}
	}
	g.leading = true
	for {
		n := min(len(g.queue), maxGroup)
		batch := g.queue[:n:n]
		g.queue = g.queue[n:]
		g.mu.Unlock()
		g.run(ctx, batch)
		g.mu.Lock()
		if len(g.queue) == 0 {
			g.leading = false
			g.mu.Unlock()
			return w.err
		}
	}
}

// run commits batch, each write in its own savepoint.
func (g *groupCommit) run(ctx context.Context, batch []*groupWrite) {
	// The leader's request may end; the others' must not fail with it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), groupTimeout)
	defer cancel()
	err := g.db.Tx(ctx, func(tx *sql.Tx) error {
		if len(batch) == 1 {
			// Alone: its error is the transaction's.
			w := batch[0]
			w.err = w.fn(ctx, tx)
			return w.err
		}
		for i, w := range batch {
			sp := fmt.Sprintf("w%d", i)
			if _, err := tx.ExecContext(ctx, "SAVEPOINT "+sp); err != nil {
				return err
			}
			w.err = w.fn(ctx, tx)
			if w.err != nil && g.db.Retryable(w.err) {
				return w.err // the whole batch runs again
			}
			if w.err != nil {
				if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+sp); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT "+sp); err != nil {
				return err
			}
		}
		return nil
	})
	for _, w := range batch {
		if err != nil && w.err == nil {
			w.err = err
		}
		close(w.done)
	}
}
