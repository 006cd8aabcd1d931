package builder

import (
	"errors"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/pgtest"
	"github.com/sluice-ci/sluice/repo"
	"github.com/sluice-ci/sluice/results"
	"github.com/sluice-ci/sluice/store"
)

// TestRecordsInBothStores saves a record in SQLite and in PostgreSQL and
// finds it again by the checksum of an output.
func TestRecordsInBothStores(t *testing.T) {
	t.Parallel()
	for _, tc := range pgtest.Stores {
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			db, err := store.Open(t.Context(), tc.DSN(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			rstore := results.NewStore(db, results.Config{})
			rs := NewRecords(db, results.NewRecorder(rstore, db, false), func(a Artifact) string { return "http://ci/artifacts/" + a.SHA256 })
			sha := "5f8c0e2d6a3b1c4e7f9a0b2c4d6e8f1a3b5c7d9e0f2a4b6c8d0e2f4a6b8c0d2e"
			r := &Record{ID: newID(), Project: "p", URL: "file:///x", Ref: "refs/heads/main", Commit: "c", Tree: "t",
				Change: 12345, Patchset: 2, Pipeline: "check", Buildset: "0f8e2c1a-5b7d-4e3f-9a1b-2c3d4e5f6a7b", Attempt: 2,
				Format: "deb", Backend: "dpkg-buildpackage", Outcome: Passed, Log: Artifact{SHA256: "ab" + sha[2:], Size: 3},
				Start: time.Unix(1793620800, 5).UTC(), End: time.Unix(1793620900, 0).UTC(),
				Outputs: []Output{{Name: "p_1_all.deb", Artifact: Artifact{SHA256: sha, Size: 10},
					Package: &repo.Package{Format: "deb", Name: "p", Version: "1", Arch: "all"}}}}
			if err := rs.Save(t.Context(), r); err != nil {
				t.Fatal(err)
			}
			if err := rs.Save(t.Context(), r); err == nil {
				t.Fatal("a record was saved twice under one id")
			}
			// The results went in with the first save only, in the
			// buildset's group, as DESIGN.md names them.
			got0, _, err := rstore.Results(t.Context(), results.Query{Groups: []string{r.Buildset}, Ascending: true})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"p~12345~2": "sluice_change", "p_1_all": "deb"}
			if len(got0) != len(want) {
				t.Fatalf("%d results, want %d: %+v", len(got0), len(want), got0)
			}
			for _, res := range got0 {
				d := res.Data
				if res.Testcase.Name != "sluice.build" || res.Outcome != "PASSED" || want[d["item"][0]] != d["type"][0] ||
					d["change"][0] != "12345" || d["patchset"][0] != "2" || d["pipeline"][0] != "check" ||
					d["buildset"][0] != r.Buildset || d["attempt"][0] != "2" || d["duration"][0] != "100.000" ||
					d["log_url"][0] != "http://ci/artifacts/ab"+sha[2:] || res.RefURL != d["log_url"][0] || len(d[results.SluiceIDKey]) != 1 {
					t.Errorf("result %+v", res)
				}
			}
			got, err := rs.ByOutput(t.Context(), sha)
			if err != nil || len(got) != 1 || got[0].ID != r.ID || !got[0].Start.Equal(r.Start) || got[0].Outputs[0].Package.Name != "p" {
				t.Fatalf("ByOutput = %+v, %v", got, err)
			}
			if _, err := rs.ByOutput(t.Context(), "00"); !errors.Is(err, ErrNoRecord) {
				t.Fatalf("unknown bytes: err = %v, want ErrNoRecord", err)
			}
		})
	}
}
