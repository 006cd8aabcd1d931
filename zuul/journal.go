package zuul

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sluice-ci/sluice/store"
)

// Journal is the store's record of events: a source appends an event
// before it acknowledges it (to Gerrit's webhook, to the user of the
// local source), and the scheduler marks it done in the transaction that
// applies it, so every event is applied once, even across a crash.
type Journal struct{ db *store.DB }

// NewJournal returns the journal of db.
func NewJournal(db *store.DB) *Journal { return &Journal{db: db} }

// Entry is a journalled event.
type Entry struct {
	ID       int64
	Source   string
	Event    Event
	Received time.Time
}

// maxSourceName bounds a source's name, as the schema does.
const maxSourceName = 64

// ErrDuplicateEvent is returned by Append for a synthetic event (made up
// by a catch-up query) that the journal has already: the same type,
// change, patchset and account, made within a second of it.
var ErrDuplicateEvent = errors.New("journal: event journalled already")

// eventKey is what an event is about, for recognising it again.
func eventKey(ev *Event) string {
	if ev.Change == nil {
		return string(ev.Type) + "|" + ev.Project + "|" + ev.RefName + "|" + ev.NewRev
	}
	return fmt.Sprintf("%s|%s|%d|%d|%s", ev.Type, ev.Project, ev.Change.Number, ev.Change.Patchset, accountName(ev.Account))
}

// Append journals ev, from the named source, in tx, and returns its id.
func (j *Journal) Append(ctx context.Context, tx *sql.Tx, source string, ev *Event) (int64, error) {
	if source == "" || len(source) > maxSourceName {
		return 0, fmt.Errorf("journal: source name %q: want 1 to %d bytes", source, maxSourceName)
	}
	if ev.Type == "" {
		return 0, fmt.Errorf("journal: event from %s: no type", source)
	}
	doc, err := json.Marshal(ev)
	if err != nil {
		return 0, fmt.Errorf("journal: event from %s: %w", source, err)
	}
	key, created := eventKey(ev), ev.Created.UnixNano()
	if ev.Synthetic && !ev.Created.IsZero() {
		var n int
		err := tx.QueryRowContext(ctx, j.db.Rebind(`SELECT COUNT(*) FROM events WHERE event_key = ? AND created_at BETWEEN ? AND ?`),
			key, created-int64(time.Second), created+int64(time.Second)).Scan(&n)
		if err != nil {
			return 0, fmt.Errorf("journal: look for %s event from %s: %w", ev.Type, source, err)
		}
		if n > 0 {
			return 0, ErrDuplicateEvent
		}
	}
	var id int64
	err = tx.QueryRowContext(ctx, j.db.Rebind(`INSERT INTO events (source, type, event, received_at, event_key, created_at)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`), source, string(ev.Type), string(doc), time.Now().UnixNano(), key, created).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("journal: append %s event from %s: %w", ev.Type, source, err)
	}
	return id, nil
}

// AppendOne journals ev in a transaction of its own.
func (j *Journal) AppendOne(ctx context.Context, source string, ev *Event) (id int64, err error) {
	err = j.db.Tx(ctx, func(tx *sql.Tx) error {
		id, err = j.Append(ctx, tx, source, ev)
		return err
	})
	return id, err
}

// Pending returns up to limit events not yet done, oldest first.
func (j *Journal) Pending(ctx context.Context, limit int) ([]Entry, error) {
	rows, err := j.db.QueryContext(ctx, j.db.Rebind(`SELECT id, source, event, received_at FROM events
		WHERE done_at IS NULL ORDER BY id LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("journal: pending events: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var doc string
		var received int64
		if err := rows.Scan(&e.ID, &e.Source, &doc, &received); err != nil {
			return nil, fmt.Errorf("journal: pending events: %w", err)
		}
		if err := json.Unmarshal([]byte(doc), &e.Event); err != nil {
			return nil, fmt.Errorf("journal: event %d: %w", e.ID, err)
		}
		e.Received = time.Unix(0, received).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal: pending events: %w", err)
	}
	return out, nil
}

// Done marks event id applied, in tx, the transaction that applied it. An
// event already done is an error: it would be applied twice.
func (j *Journal) Done(ctx context.Context, tx *sql.Tx, id int64) error {
	res, err := tx.ExecContext(ctx, j.db.Rebind(`UPDATE events SET done_at = ? WHERE id = ? AND done_at IS NULL`),
		time.Now().UnixNano(), id)
	if err != nil {
		return fmt.Errorf("journal: mark event %d done: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("journal: mark event %d done: not a pending event", id)
	}
	return nil
}

// DoneAlone marks event id done in a transaction of its own: for an event
// that can never be applied (its change is gone), so that it does not
// stop the ones behind it.
func (j *Journal) DoneAlone(ctx context.Context, id int64) error {
	return j.db.Tx(ctx, func(tx *sql.Tx) error { return j.Done(ctx, tx, id) })
}

// LastReceived returns when the newest event from source was journalled,
// or the zero time: where a source that was down catches up from.
func (j *Journal) LastReceived(ctx context.Context, source string) (time.Time, error) {
	var last sql.NullInt64
	err := j.db.QueryRowContext(ctx, j.db.Rebind(`SELECT MAX(received_at) FROM events WHERE source = ?`), source).Scan(&last)
	if err != nil {
		return time.Time{}, fmt.Errorf("journal: last event from %s: %w", source, err)
	}
	if !last.Valid {
		return time.Time{}, nil
	}
	return time.Unix(0, last.Int64).UTC(), nil
}
