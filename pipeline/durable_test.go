package pipeline

import (
	"errors"
	"testing"

	"github.com/sluice-ci/sluice/internal/pgtest"
	"github.com/sluice-ci/sluice/results"
	"github.com/sluice-ci/sluice/store"
	"github.com/sluice-ci/sluice/zuul"
)

// TestStateStore saves state, reports and a buildset's end with a
// journalled event, on SQLite and PostgreSQL: all or nothing.
func TestStateStore(t *testing.T) {
	t.Parallel()
	for _, tc := range pgtest.Stores {
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			db, err := store.Open(t.Context(), tc.DSN(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			j := zuul.NewJournal(db)
			rs := results.NewStore(db, results.Config{})
			st := NewStateStore(db, j, results.NewRecorder(rs, db, false))
			if snap, err := st.Load(t.Context()); err != nil || snap != nil {
				t.Fatalf("Load of nothing = %q, %v", snap, err)
			}
			ch := zuul.Change{Project: "hello", Branch: "main", Number: 7, Patchset: 2, Ref: zuul.ChangeRef(7, 2)}
			id, err := j.AppendOne(t.Context(), "local", &zuul.Event{Type: zuul.PatchsetCreated, Project: "hello", Change: &ch})
			if err != nil {
				t.Fatal(err)
			}
			const bs = "0f8e2c1a5b7d4e3f9a1b2c3d4e5f6a7b"
			actions := []Action{
				Report{Pipeline: "check", Change: ch, Action: "success", Votes: map[string]int{"Verified": 1}, Message: "Build succeeded (check pipeline)."},
				DispatchStage{Pipeline: "check", Buildset: bs, Stage: "build.deb", Attempt: 1},
				RecordBuildsetOutcome{Pipeline: "check", Buildset: bs, Item: ch, Changes: []zuul.Change{ch}, Result: "SUCCESS"},
			}
			// A save naming an event that is not pending changes nothing.
			if err := st.Save(t.Context(), []byte(`{"seq":1}`), id+100, actions); err == nil {
				t.Fatal("Save with an unknown journal entry succeeded")
			}
			if snap, _ := st.Load(t.Context()); snap != nil {
				t.Fatalf("a failed save left state %s", snap)
			}
			if err := st.Save(t.Context(), []byte(`{"seq":1}`), id, actions); err != nil {
				t.Fatal(err)
			}
			if err := st.Save(t.Context(), []byte(`{"seq":2}`), 0, nil); err != nil {
				t.Fatal(err)
			}
			if snap, err := st.Load(t.Context()); err != nil || string(snap) != `{"seq":2}` {
				t.Fatalf("Load = %s, %v", snap, err)
			}
			if p, _ := j.Pending(t.Context(), 10); len(p) != 0 {
				t.Fatalf("the event is still pending: %+v", p)
			}
			qs, err := st.Unsent(t.Context(), 10)
			if err != nil || len(qs) != 1 || qs[0].Report.Votes["Verified"] != 1 || qs[0].Report.Change.Number != 7 {
				t.Fatalf("Unsent = %+v, %v", qs, err)
			}
			if err := st.Sent(t.Context(), qs[0].ID, errors.New("gerrit down")); err != nil {
				t.Fatal(err)
			}
			if qs, _ := st.Unsent(t.Context(), 10); len(qs) != 1 || qs[0].Attempts != 1 {
				t.Fatalf("after a failed post: %+v", qs)
			}
			if err := st.Sent(t.Context(), qs[0].ID, nil); err != nil {
				t.Fatal(err)
			}
			if qs, _ := st.Unsent(t.Context(), 10); len(qs) != 0 {
				t.Fatalf("after the post: %+v", qs)
			}
			got, _, err := rs.Results(t.Context(), results.Query{Groups: []string{bs}})
			if err != nil || len(got) != 1 || got[0].Testcase.Name != "sluice.buildset" || got[0].Outcome != "PASSED" ||
				got[0].Data["item"][0] != "hello~7~2" || got[0].Data["result"][0] != "SUCCESS" {
				t.Fatalf("buildset result %+v, %v", got, err)
			}
		})
	}
}
