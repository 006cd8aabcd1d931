package results

// This file is the outbox of results bound for an external ResultsDB: a
// Recorder adds a result and its outbox row in the caller's transaction,
// and a Sender delivers the rows, with back-off, once each.

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/sluice-ci/sluice/store"
)

// Back-off of a delivery that failed, doubling from the first to the cap.
const (
	DefaultOutboxBackoffMin = 5 * time.Second
	DefaultOutboxBackoffMax = 10 * time.Minute
)

// Bounds of the sender: rows read at a time, and the bytes of an error
// kept in last_error.
const (
	outboxBatch    = 100
	maxErrorInRow  = 1000
	maxSluiceIDLen = 200
)

// Recorder records results: in the local store, in the caller's
// transaction, and, when an external ResultsDB is configured, in the
// outbox from which a [Sender] delivers them.
type Recorder struct {
	store    *Store
	db       *store.DB
	external bool
}

// NewRecorder returns a Recorder that creates results in s, on db, and
// queues them for the external ResultsDB when external is true.
func NewRecorder(s *Store, db *store.DB, external bool) *Recorder {
	return &Recorder{store: s, db: db, external: external}
}

// Record creates res in tx, as [Store.Create], with a [SluiceIDKey] data
// value: the one res has, or a new random one, which Record sets in a
// copy of res.Data that replaces it. When the ResultsDB is external, it
// also queues res for the [Sender] in tx, so that the result is sent if
// and only if tx commits; call [Sender.Notify] after the commit to send
// it without waiting.
func (r *Recorder) Record(ctx context.Context, tx *sql.Tx, res *Result) error {
	id, err := sluiceID(res.Data)
	if err != nil {
		return err
	}
	data := maps.Clone(res.Data)
	if data == nil {
		data = map[string][]string{}
	}
	data[SluiceIDKey] = []string{id}
	res.Data = data
	if err := r.store.Create(ctx, tx, res); err != nil {
		return err
	}
	if !r.external {
		return nil
	}
	now := time.Now().UnixNano()
	if _, err := tx.ExecContext(ctx, r.db.Rebind(`
		INSERT INTO results_outbox (result_id, sluice_id, created_at, next_attempt_at) VALUES (?, ?, ?, ?)`),
		res.ID, id, now, now); err != nil {
		return fmt.Errorf("results: queue result %d (%s %s): %w", res.ID, SluiceIDKey, id, err)
	}
	return nil
}

// sluiceID returns the sluice id that data gives, or a new one.
func sluiceID(data map[string][]string) (string, error) {
	vs, ok := data[SluiceIDKey]
	if !ok {
		return rand.Text(), nil
	}
	if len(vs) != 1 || vs[0] == "" || len(vs[0]) > maxSluiceIDLen || strings.Contains(vs[0], ",") {
		return "", invalid("data", "%s must be one value of 1 to %d bytes without a comma", SluiceIDKey, maxSluiceIDLen)
	}
	return vs[0], nil
}

// Sender delivers the results that a [Recorder] queued to an external
// ResultsDB, each once. Before it posts a result, it asks the external
// side whether the result, by its [SluiceIDKey] value, is already there:
// an earlier post may have landed though its answer was lost. For the
// same reason it posts without the client's retries, which would post
// again blindly; a failed delivery is tried again by the Sender, later,
// after that check. Its lookups keep the client's retries.
//
// Several Senders may serve one database (a server and stage processes):
// each claims the rows it delivers for a lease (a couple of minutes), so
// a row is never delivered by two at once, and a sender that dies holds
// its rows only until the lease ends.
type Sender struct {
	db    *store.DB
	store *Store
	find  *Client // the caller's client, with its retries
	post  *Client // the same, without retries
	log   *slog.Logger
	wake  chan struct{}
	pass  sync.Mutex // one pass at a time: Run's or Flush's

	// Settable by tests of this package.
	backoffMin, backoffMax time.Duration
	now                    func() time.Time
}

// NewSender returns a Sender of the outbox on db, whose results s holds,
// to the ResultsDB of c. A nil log discards.
func NewSender(db *store.DB, s *Store, c *Client, log *slog.Logger) *Sender {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sender{
		db: db, store: s, find: c, post: withoutRetries(c), log: log,
		wake:       make(chan struct{}, 1),
		backoffMin: DefaultOutboxBackoffMin,
		backoffMax: DefaultOutboxBackoffMax,
		now:        time.Now,
	}
}

// withoutRetries returns a Client like c that makes one attempt per
// request.
func withoutRetries(c *Client) *Client {
	h := c.http
	return &Client{base: c.base, name: c.name, token: c.token, http: &retryablehttp.Client{
		HTTPClient:      h.HTTPClient,
		Logger:          h.Logger,
		RetryWaitMin:    h.RetryWaitMin,
		RetryWaitMax:    h.RetryWaitMax,
		RetryMax:        0,
		RequestLogHook:  h.RequestLogHook,
		ResponseLogHook: h.ResponseLogHook,
		CheckRetry:      h.CheckRetry,
		Backoff:         h.Backoff,
		ErrorHandler:    h.ErrorHandler,
		PrepareRetry:    h.PrepareRetry,
	}}
}

// Notify wakes Run to send what is due now, such as the results of a
// transaction that just committed. It never blocks.
func (s *Sender) Notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run sends the outbox until ctx ends, then returns nil. It makes a pass
// when a failed delivery is due again, when Notify is called, and at
// least every back-off cap, in case a Notify was missed.
func (s *Sender) Run(ctx context.Context) error {
	for {
		_, err := s.Flush(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wait := s.backoffMin
		if err != nil {
			s.log.Error("results outbox pass failed", "err", err)
		} else if wait, err = s.untilDue(ctx); err != nil {
			s.log.Error("results outbox pass failed", "err", err)
			wait = s.backoffMin
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// untilDue returns how long until the next undelivered row is due, at
// most the back-off cap; the first back-off step when none is queued.
func (s *Sender) untilDue(ctx context.Context) (time.Duration, error) {
	var next sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MIN(next_attempt_at) FROM results_outbox WHERE delivered_at IS NULL`).Scan(&next); err != nil {
		return 0, fmt.Errorf("results: outbox: next due: %w", err)
	}
	if !next.Valid {
		// Nothing queued: look again soon, since other processes on
		// the database (stages) queue results without a Notify.
		return s.backoffMin, nil
	}
	return min(max(time.Duration(next.Int64-s.now().UnixNano()), 0), s.backoffMax), nil
}

// outboxRow is an undelivered row of the outbox.
type outboxRow struct {
	resultID int64
	sluiceID string
	attempts int
}

// Flush makes one pass over the outbox: it tries to deliver every row
// that is due, in the order of the results' ids, and returns how many it
// delivered. A delivery that fails is logged and tried again after a
// back-off; the error returned is the store's or ctx's.
func (s *Sender) Flush(ctx context.Context) (delivered int, err error) {
	s.pass.Lock()
	defer s.pass.Unlock()
	var after int64
	for {
		rows, err := s.due(ctx, after)
		if err != nil || len(rows) == 0 {
			return delivered, err
		}
		var done []int64
		var failed []failure
		claimed := s.now()
		for i, row := range rows {
			if s.now().Sub(claimed) > outboxLease/2 {
				// The lease runs out: give the rest back rather
				// than race another sender for them.
				if err := errors.Join(s.mark(ctx, done, failed), s.release(ctx, rows[i:])); err != nil {
					return delivered, err
				}
				return delivered + len(done), nil
			}
			after = row.resultID
			err := s.deliver(ctx, row)
			if ctx.Err() != nil {
				// A result delivered but not marked is found, not
				// posted, next time; the rows are due again when
				// their lease ends.
				return delivered, ctx.Err()
			}
			if err != nil {
				failed = append(failed, failure{row, err})
				continue
			}
			done = append(done, row.resultID)
		}
		if err := s.mark(ctx, done, failed); err != nil {
			return delivered, err
		}
		delivered += len(done)
	}
}

// failure is a delivery that failed.
type failure struct {
	row outboxRow
	err error
}

// outboxLease is how long a sender holds the rows it claimed: another
// sender (a stage process on the same database, a second server) leaves
// them alone until then, and takes them over if the first one died.
const outboxLease = 2 * time.Minute

// due claims the next batch of due rows whose result ids follow after:
// their next attempt is moved a lease ahead, in one statement, so that two
// senders on one database never deliver the same row at once. Rows
// another sender claimed first are not returned.
func (s *Sender) due(ctx context.Context, after int64) ([]outboxRow, error) {
	now := s.now().UnixNano()
	var out []outboxRow
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, s.db.Rebind(`
			UPDATE results_outbox SET next_attempt_at = ?
			WHERE result_id IN (
				SELECT result_id FROM results_outbox
				WHERE delivered_at IS NULL AND next_attempt_at <= ? AND result_id > ?
				ORDER BY result_id LIMIT ?)
			AND delivered_at IS NULL AND next_attempt_at <= ?
			RETURNING result_id, sluice_id, attempts`), now+int64(outboxLease), now, after, outboxBatch, now)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r outboxRow
			if err := rows.Scan(&r.resultID, &r.sluiceID, &r.attempts); err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("results: outbox: claim due rows: %w", err)
	}
	slices.SortFunc(out, func(a, b outboxRow) int { return cmp.Compare(a.resultID, b.resultID) })
	return out, nil
}

// release gives back claimed rows that were not tried: they are due
// again at once.
func (s *Sender) release(ctx context.Context, rows []outboxRow) error {
	if len(rows) == 0 {
		return nil
	}
	ids := make([]any, 0, len(rows)+1)
	ids = append(ids, s.now().UnixNano())
	for _, r := range rows {
		ids = append(ids, r.resultID)
	}
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE results_outbox SET next_attempt_at = ?
			WHERE delivered_at IS NULL AND result_id IN (`+marks(len(rows))+`)`), ids...)
		return err
	})
	if err != nil {
		return fmt.Errorf("results: outbox: release %d rows: %w", len(rows), err)
	}
	return nil
}

// deliver makes sure that the external side holds row's result.
func (s *Sender) deliver(ctx context.Context, row outboxRow) error {
	_, err := s.find.FindBySluiceID(ctx, row.sluiceID)
	if err == nil {
		return nil
	}
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	res, err := s.store.Result(ctx, row.resultID)
	if err != nil {
		return err
	}
	_, err = s.post.Create(ctx, &res)
	return err
}

// mark records a batch's deliveries and failures in one transaction.
func (s *Sender) mark(ctx context.Context, done []int64, failed []failure) error {
	now := s.now()
	type update struct {
		id, attempts int64
		next         int64
		msg          string
	}
	updates := make([]update, len(failed))
	for i, f := range failed {
		attempts := f.row.attempts + 1
		wait := s.backoff(attempts)
		s.log.Warn("results outbox delivery failed",
			"result", f.row.resultID, SluiceIDKey, f.row.sluiceID, "attempts", attempts, "retry_in", wait, "err", f.err)
		msg := f.err.Error()
		if len(msg) > maxErrorInRow {
			msg = msg[:maxErrorInRow]
		}
		updates[i] = update{f.row.resultID, int64(attempts), now.Add(wait).UnixNano(), strings.ToValidUTF8(msg, "?")}
	}
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		for _, id := range done {
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`
				UPDATE results_outbox SET delivered_at = ?, last_error = '' WHERE result_id = ?`),
				now.UnixNano(), id); err != nil {
				return err
			}
		}
		for _, u := range updates {
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`
				UPDATE results_outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE result_id = ?`),
				u.attempts, u.next, u.msg, u.id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("results: outbox: mark %d delivered, %d failed: %w", len(done), len(failed), err)
	}
	return nil
}

// backoff returns the wait after the attempts-th failure: backoffMin,
// doubling, up to backoffMax.
func (s *Sender) backoff(attempts int) time.Duration {
	d := s.backoffMin
	for i := 1; i < attempts && d < s.backoffMax; i++ {
		d *= 2
	}
	return min(d, s.backoffMax)
}

// Pending returns how many results wait in the outbox.
func (s *Sender) Pending(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM results_outbox WHERE delivered_at IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("results: outbox: pending: %w", err)
	}
	return n, nil
}
