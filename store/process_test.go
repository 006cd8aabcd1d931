package store

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/sluice-ci/sluice/internal/proc"
)

// helperDSN names the database of a helper process; see
// testProcessesOpenAndWrite.
const helperDSN = "SLUICE_STORE_HELPER_DSN"

// TestHelperProcess is not a test: it is the body of the processes that
// testProcessesOpenAndWrite starts. Each opens the database, migrating it
// if no other process has, and writes records.
func TestHelperProcess(t *testing.T) {
	dsn := os.Getenv(helperDSN)
	if dsn == "" {
		return
	}
	db, err := Open(t.Context(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range helperRecords {
		r := sampleRecord(fmt.Sprintf("p%d-%d", os.Getpid(), i))
		r.Outputs[0].SHA256 = fmt.Sprintf("%032x%032x", os.Getpid(), i)
		if err := db.Tx(t.Context(), func(tx *sql.Tx) error { return r.insert(t.Context(), db, tx) }); err != nil {
			t.Fatal(err)
		}
	}
}

const helperProcesses, helperRecords = 4, 25

// testProcessesOpenAndWrite opens one fresh database from several processes
// at once, as sluice serve and sluice stage might, and has each write.
func testProcessesOpenAndWrite(t *testing.T, d dialect, dsn string) {
	cmds := make([]*exec.Cmd, helperProcesses)
	outs := make([]bytes.Buffer, helperProcesses)
	for i := range cmds {
		cmd := proc.Command(t.Context(), os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperDSN+"="+dsn)
		cmd.Stdout, cmd.Stderr = &outs[i], &outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("process %d: %v\n%s", i, err, outs[i].String())
		}
	}
	db := openT(t, dsn)
	wantVersions(t, db, embeddedMigrations(t, d.dialect))
	if n := count(t, db, "build_records"); n != helperProcesses*helperRecords {
		t.Errorf("%d records, want %d", n, helperProcesses*helperRecords)
	}
}
