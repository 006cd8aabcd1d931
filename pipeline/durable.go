package pipeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sluice-ci/sluice/results"
	"github.com/sluice-ci/sluice/store"
	"github.com/sluice-ci/sluice/zuul"
)

// Persister keeps the scheduler's state across crashes: Save runs after
// every handled event, before any of its actions is carried out.
type Persister interface {
	// Save stores the state, marks the journalled event journalID done
	// (0: the event was not journalled) and queues the reports and
	// buildset outcomes among actions, all in one transaction.
	Save(ctx context.Context, snapshot []byte, journalID int64, actions []Action) error
	// Unsent returns the queued reports not yet posted, oldest first.
	Unsent(ctx context.Context, limit int) ([]QueuedReport, error)
	// Posting marks a queued report as being posted, before the post.
	Posting(ctx context.Context, id int64) error
	// Sent marks a queued report posted, or, with a non-nil err, records
	// a failed attempt.
	Sent(ctx context.Context, id int64, err error) error
}

// QueuedReport is a report waiting in the store.
type QueuedReport struct {
	ID       int64
	Report   Report
	Attempts int
	// Posting is when an earlier post of it began, if one did: it may
	// have reached the source before its process died.
	Posting time.Time
}

// ErrReportRefused is wrapped by a Reporter's error when the source
// refused the report for good (a 4xx: the change is gone, or closed and
// the report cannot be posted even without votes): the report is given
// up at once rather than tried again, which would hold every report
// behind it.
var ErrReportRefused = errors.New("pipeline: report refused")

// PostedChecker is a Reporter that can tell whether a report whose post
// began at since reached the source (a message like it, by sluice, no
// older than since): such a report is not posted again.
type PostedChecker interface {
	Posted(ctx context.Context, r Report, since time.Time) (bool, error)
}

// StateStore is the [Persister] on the SQL store: the state in
// pipeline_state, reports in pipeline_reports, how buildsets ended in
// buildsets and, as a ResultsDB result sluice.buildset, in the results.
type StateStore struct {
	db      *store.DB
	journal *zuul.Journal
	rec     *results.Recorder
	now     func() time.Time
}

var _ Persister = (*StateStore)(nil)

// NewStateStore returns the state store on db; rec records the buildset
// results (nil: none).
func NewStateStore(db *store.DB, journal *zuul.Journal, rec *results.Recorder) *StateStore {
	return &StateStore{db: db, journal: journal, rec: rec, now: time.Now}
}

// Load returns the saved state, or nil when there is none yet.
func (s *StateStore) Load(ctx context.Context) ([]byte, error) {
	var state string
	err := s.db.QueryRowContext(ctx, `SELECT state FROM pipeline_state WHERE id = 1`).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pipeline: load state: %w", err)
	}
	return []byte(state), nil
}

// Save implements [Persister].
func (s *StateStore) Save(ctx context.Context, snapshot []byte, journalID int64, actions []Action) error {
	now := s.now().UnixNano()
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO pipeline_state (id, state, events, updated_at) VALUES (1, ?, 1, ?)
			ON CONFLICT (id) DO UPDATE SET state = excluded.state, events = pipeline_state.events + 1, updated_at = excluded.updated_at`),
			string(snapshot), now); err != nil {
			return err
		}
		if journalID > 0 {
			if err := s.journal.Done(ctx, tx, journalID); err != nil {
				return err
			}
		}
		for _, a := range actions {
			switch a := a.(type) {
			case Report:
				doc, err := json.Marshal(a)
				if err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO pipeline_reports (report, created_at) VALUES (?, ?)`),
					string(doc), now); err != nil {
					return err
				}
			case RecordBuildsetOutcome:
				if err := s.recordBuildset(ctx, tx, a, now); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pipeline: save state: %w", err)
	}
	return nil
}

// buildsetOutcomes maps a buildset's end to a ResultsDB outcome.
var buildsetOutcomes = map[string]string{
	"SUCCESS": "PASSED", "MERGED": "PASSED", "FAILURE": "FAILED", "MERGE_FAILURE": "FAILED",
}

func (s *StateStore) recordBuildset(ctx context.Context, tx *sql.Tx, r RecordBuildsetOutcome, now int64) error {
	changes, err := json.Marshal(r.Changes)
	if err != nil {
		return err
	}
	var number, patchset any
	if r.Item.Number > 0 {
		number, patchset = r.Item.Number, r.Item.Patchset
	}
	if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO buildsets
		(uuid, pipeline, project, change_no, patchset, changes, result, reason, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (uuid) DO NOTHING`),
		r.Buildset, r.Pipeline, r.Item.Project, number, patchset, string(changes), r.Result, r.Reason, now); err != nil {
		return err
	}
	if s.rec == nil {
		return nil
	}
	outcome, ok := buildsetOutcomes[r.Result]
	if !ok {
		// RESET, SUPERSEDED, DEQUEUED: the buildset stopped before
		// it had anything to say of the change.
		outcome = "INFO"
	}
	ids := make([]string, 0, len(r.Changes))
	for _, c := range r.Changes {
		ids = append(ids, strconv.Itoa(c.Number)+","+strconv.Itoa(c.Patchset))
	}
	data := map[string][]string{
		"item": {r.Item.Key()}, "type": {"sluice_change"}, "project": {r.Item.Project},
		"pipeline": {r.Pipeline}, "buildset": {r.Buildset}, "stage": {"buildset"}, "result": {r.Result},
		"changes": ids, results.SluiceIDKey: {"buildset-" + r.Buildset},
	}
	if r.Item.Number > 0 {
		data["change"], data["patchset"] = []string{strconv.Itoa(r.Item.Number)}, []string{strconv.Itoa(r.Item.Patchset)}
	} else {
		data["item"], data["type"] = []string{r.Item.Project + "~" + r.Item.Commit}, []string{"sluice_commit"}
	}
	if len(ids) == 0 {
		delete(data, "changes")
	}
	note := r.Reason
	if len(note) > 1000 {
		note = note[:1000]
	}
	return s.rec.Record(ctx, tx, &results.Result{Testcase: results.Testcase{Name: "sluice.buildset"},
		Groups: []string{r.Buildset}, Outcome: outcome, Note: note, Data: data})
}

// Unsent implements [Persister].
func (s *StateStore) Unsent(ctx context.Context, limit int) ([]QueuedReport, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT id, report, attempts, posting_at FROM pipeline_reports
		WHERE sent_at IS NULL ORDER BY id LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("pipeline: unsent reports: %w", err)
	}
	defer rows.Close()
	var out []QueuedReport
	for rows.Next() {
		var q QueuedReport
		var doc string
		var posting sql.NullInt64
		if err := rows.Scan(&q.ID, &doc, &q.Attempts, &posting); err != nil {
			return nil, fmt.Errorf("pipeline: unsent reports: %w", err)
		}
		if err := json.Unmarshal([]byte(doc), &q.Report); err != nil {
			return nil, fmt.Errorf("pipeline: report %d: %w", q.ID, err)
		}
		if posting.Valid {
			q.Posting = time.Unix(0, posting.Int64).UTC()
		}
		out = append(out, q)
	}
	return out, rows.Err()
}

// Posting implements [Persister].
func (s *StateStore) Posting(ctx context.Context, id int64) error {
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE pipeline_reports SET posting_at = ? WHERE id = ? AND posting_at IS NULL`),
			s.now().UnixNano(), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("pipeline: mark report %d posting: %w", id, err)
	}
	return nil
}

// Sent implements [Persister].
func (s *StateStore) Sent(ctx context.Context, id int64, sendErr error) error {
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if sendErr == nil {
			_, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE pipeline_reports SET sent_at = ?, last_error = '' WHERE id = ?`),
				s.now().UnixNano(), id)
			return err
		}
		msg := sendErr.Error()
		if len(msg) > 1000 {
			msg = msg[:1000]
		}
		_, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE pipeline_reports SET attempts = attempts + 1, last_error = ? WHERE id = ?`),
			msg, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("pipeline: mark report %d: %w", id, err)
	}
	return nil
}
