package builder

import (
	"errors"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/pgtest"
	"github.com/sluice-ci/sluice/repo"
	"github.com/sluice-ci/sluice/store"
)

// TestRecordsInBothStores saves a record in SQLite and in PostgreSQL and
// finds it again by the checksum of an output.
func TestRecordsInBothStores(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return "sqlite://" + t.TempDir() + "/sluice.db" }},
		{"postgres", func(t *testing.T) string { return pgtest.NewDatabase(t, pgtest.Start(t)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, err := store.Open(t.Context(), tc.dsn(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			rs := NewRecords(db)
			sha := "5f8c0e2d6a3b1c4e7f9a0b2c4d6e8f1a3b5c7d9e0f2a4b6c8d0e2f4a6b8c0d2e"
			r := &Record{ID: newID(), Project: "p", URL: "file:///x", Ref: "refs/heads/main", Commit: "c", Tree: "t",
				Format: "deb", Backend: "dpkg-buildpackage", Outcome: Passed,
				Start: time.Unix(1793620800, 5).UTC(), End: time.Unix(1793620900, 0).UTC(),
				Outputs: []Output{{Name: "p_1_all.deb", Artifact: Artifact{SHA256: sha, Size: 10},
					Package: &repo.Package{Format: "deb", Name: "p", Version: "1", Arch: "all"}}}}
			if err := rs.Save(t.Context(), r); err != nil {
				t.Fatal(err)
			}
			if err := rs.Save(t.Context(), r); err == nil {
				t.Fatal("a record was saved twice under one id")
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
