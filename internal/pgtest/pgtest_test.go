package pgtest

import (
	"database/sql"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// TestStart starts a cluster, makes two databases in it and checks that
// they are distinct and answer.
func TestStart(t *testing.T) {
	t.Parallel()
	cluster := Start(t)
	a, b := NewDatabase(t, cluster), NewDatabase(t, cluster)
	if a == b {
		t.Fatalf("NewDatabase gave %s twice", a)
	}
	for _, dsn := range []string{cluster, a, b} {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var name, version string
		if err := db.QueryRowContext(t.Context(), "SELECT current_database(), current_setting('server_version')").Scan(&name, &version); err != nil {
			t.Fatalf("%s: %v", dsn, err)
		}
		var fsync string
		if err := db.QueryRowContext(t.Context(), "SHOW fsync").Scan(&fsync); err != nil || fsync != "off" {
			t.Errorf("%s: fsync = %q, %v; want off", dsn, fsync, err)
		}
		t.Logf("%s: database %s, PostgreSQL %s", dsn, name, version)
	}
}
