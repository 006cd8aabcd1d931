package builder

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sluice-ci/sluice/results"
	"github.com/sluice-ci/sluice/store"
)

// RecordStore keeps build records.
type RecordStore interface {
	Save(ctx context.Context, r *Record) error
}

var _ RecordStore = (*Records)(nil)

// ErrNoRecord is returned when no record matches.
var ErrNoRecord = errors.New("builder: no build record")

// Records keeps build records in the SQL store, where the release step
// finds the record that made some bytes by their sha256, and records the
// build's outcome as ResultsDB results in the same transaction.
type Records struct {
	db     *store.DB
	rec    *results.Recorder
	logURL LogURL
}

// NewRecords returns the records of db. When rec is not nil, every saved
// record's [Results] are recorded with it, in the record's transaction;
// logURL (may be nil) gives their log links.
func NewRecords(db *store.DB, rec *results.Recorder, logURL LogURL) *Records {
	return &Records{db: db, rec: rec, logURL: logURL}
}

// Save stores r, its outputs and, with a Recorder, its results in one
// transaction: a build is recorded with its outcome or not at all.
func (rs *Records) Save(ctx context.Context, r *Record) error {
	doc, err := json.Marshal(r)
	if err != nil {
		return err
	}
	nullable := func(n int) any {
		if n == 0 {
			return nil
		}
		return n
	}
	err = rs.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, rs.db.Rebind(`INSERT INTO build_records
			(id, project, url, ref, commit_sha, tree, change_no, patchset, format, backend, outcome, reason, started_at, ended_at, record)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			r.ID, r.Project, r.URL, r.Ref, r.Commit, r.Tree, nullable(r.Change), nullable(r.Patchset),
			r.Format, r.Backend, r.Outcome, r.Reason, r.Start.UnixNano(), r.End.UnixNano(), string(doc))
		if err != nil {
			return err
		}
		for _, o := range r.Outputs {
			var name, evr, arch any
			if o.Package != nil {
				name, evr, arch = o.Package.Name, o.Package.EVR(), o.Package.Arch
			}
			_, err := tx.ExecContext(ctx, rs.db.Rebind(`INSERT INTO build_outputs
				(record_id, name, sha256, size, package_name, package_evr, package_arch) VALUES (?, ?, ?, ?, ?, ?, ?)`),
				r.ID, o.Name, o.SHA256, o.Size, name, evr, arch)
			if err != nil {
				return err
			}
		}
		if rs.rec == nil {
			return nil
		}
		for _, res := range Results(r, rs.logURL) {
			if err := rs.rec.Record(ctx, tx, res); err != nil {
				return fmt.Errorf("result %s: %w", res.Data["item"][0], err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save build record %s: %w", r.ID, err)
	}
	return nil
}

// ByOutput returns the records of the builds that made the bytes with this
// sha256, oldest first: the provenance the release step checks.
func (rs *Records) ByOutput(ctx context.Context, sha256 string) ([]*Record, error) {
	rows, err := rs.db.QueryContext(ctx, rs.db.Rebind(`SELECT r.record FROM build_records r
		JOIN build_outputs o ON o.record_id = r.id WHERE o.sha256 = ? ORDER BY r.started_at, r.id`), sha256)
	if err != nil {
		return nil, fmt.Errorf("build records of %s: %w", sha256, err)
	}
	defer rows.Close()
	var recs []*Record
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var r Record
		if err := json.Unmarshal([]byte(doc), &r); err != nil {
			return nil, fmt.Errorf("build records of %s: %w", sha256, err)
		}
		recs = append(recs, &r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("bytes %s: %w", sha256, ErrNoRecord)
	}
	return recs, nil
}
