package zuul

import (
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/pgtest"
	"github.com/sluice-ci/sluice/store"
)

// TestJournal appends events, reads them back pending in order, and marks
// them done in the applying transaction: a rolled-back application leaves
// the event pending, a second Done is refused.
func TestJournal(t *testing.T) {
	t.Parallel()
	for _, tc := range pgtest.Stores {
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			db, err := store.Open(t.Context(), tc.DSN(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			j := NewJournal(db)
			ch := &Change{Project: "hello", Branch: "main", Number: 12345, Patchset: 2, Ref: ChangeRef(12345, 2),
				Commit: "0123456789abcdef0123456789abcdef01234567"}
			events := []*Event{
				{Type: PatchsetCreated, Project: "hello", Branch: "main", Change: ch, Created: time.Unix(1793620800, 0).UTC()},
				{Type: CommentAdded, Project: "hello", Branch: "main", Change: ch, Comment: "recheck",
					Approvals: []Approval{{Label: "Code-Review", Value: 2}}},
			}
			for _, ev := range events {
				if _, err := j.AppendOne(t.Context(), "gerrit", ev); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := j.AppendOne(t.Context(), "", events[0]); err == nil {
				t.Error("an event without a source was journalled")
			}
			got, err := j.Pending(t.Context(), 10)
			if err != nil || len(got) != 2 || got[0].Event.Type != PatchsetCreated || got[1].Event.Comment != "recheck" ||
				got[0].Event.Change.Ref != "refs/changes/45/12345/2" || !got[0].Event.Created.Equal(events[0].Created) {
				t.Fatalf("Pending = %+v, %v", got, err)
			}
			applyErr := errors.New("scheduler failed")
			err = db.Tx(t.Context(), func(tx *sql.Tx) error {
				if err := j.Done(t.Context(), tx, got[0].ID); err != nil {
					return err
				}
				return applyErr
			})
			if !errors.Is(err, applyErr) {
				t.Fatal(err)
			}
			if p, _ := j.Pending(t.Context(), 10); len(p) != 2 {
				t.Fatalf("after a rolled-back application: %d pending, want 2", len(p))
			}
			done := func(id int64) error {
				return db.Tx(t.Context(), func(tx *sql.Tx) error { return j.Done(t.Context(), tx, id) })
			}
			if err := done(got[0].ID); err != nil {
				t.Fatal(err)
			}
			if err := done(got[0].ID); err == nil {
				t.Fatal("an event was marked done twice")
			}
			if p, _ := j.Pending(t.Context(), 10); len(p) != 1 || p[0].ID != got[1].ID {
				t.Fatalf("pending after Done: %+v", p)
			}
		})
	}
}

// TestJournalSkipsCaughtUpDuplicates: an event a catch-up query made up
// again is not journalled twice; a new one is.
func TestJournalSkipsCaughtUpDuplicates(t *testing.T) {
	t.Parallel()
	db, err := store.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "sluice.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	j := NewJournal(db)
	at := time.Unix(1793620800, 0).UTC()
	ch := &Change{Project: "hello", Number: 3, Patchset: 1}
	ev := Event{Type: CommentAdded, Project: "hello", Change: ch, Account: Account{Username: "core"}, Created: at}
	if _, err := j.AppendOne(t.Context(), "gerrit", &ev); err != nil {
		t.Fatal(err)
	}
	again := ev
	again.Synthetic, again.Created = true, at.Add(time.Second)
	if _, err := j.AppendOne(t.Context(), "gerrit", &again); !errors.Is(err, ErrDuplicateEvent) {
		t.Fatalf("the caught-up copy: %v", err)
	}
	later := again
	later.Created = at.Add(time.Minute)
	if _, err := j.AppendOne(t.Context(), "gerrit", &later); err != nil {
		t.Fatalf("a later vote: %v", err)
	}
	other := again
	other.Account = Account{Username: "someone"}
	if _, err := j.AppendOne(t.Context(), "gerrit", &other); err != nil {
		t.Fatalf("another account's vote: %v", err)
	}
	if p, _ := j.Pending(t.Context(), 10); len(p) != 3 {
		t.Fatalf("%d pending, want 3", len(p))
	}
}
