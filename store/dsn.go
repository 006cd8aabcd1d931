package store

import (
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// sqliteBusyTimeout is how long a SQLite statement waits for a lock another
// process holds before it fails with SQLITE_BUSY, in milliseconds.
const sqliteBusyTimeout = 5000

// config is a parsed DSN.
type config struct {
	dialect Dialect
	target  string // for errors and logs: the file, or the server and database

	sqliteWriter, sqliteReader string // modernc.org/sqlite DSNs

	pg *pgx.ConnConfig
}

func (c config) openPostgres() *sql.DB { return stdlib.OpenDB(*c.pg) }

// errDSN is wrapped by the errors about a DSN's form.
var errDSN = errors.New("store: bad DSN")

func parseDSN(dsn string) (config, error) {
	scheme, _, isURL := strings.Cut(dsn, "://")
	switch {
	case dsn == "":
		return config{}, fmt.Errorf("%w: empty", errDSN)
	case !isURL:
		return sqliteConfig(dsn)
	case scheme == "sqlite":
		u, err := url.Parse(dsn)
		if err != nil {
			return config{}, fmt.Errorf("%w: %w", errDSN, err)
		}
		if u.Host != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || !filepath.IsAbs(u.Path) {
			return config{}, fmt.Errorf("%w: %q: want sqlite:///absolute/path", errDSN, dsn)
		}
		return sqliteConfig(u.Path)
	case scheme == "postgres" || scheme == "postgresql":
		return postgresConfig(dsn)
	}
	return config{}, fmt.Errorf("%w: unknown scheme %q (want sqlite, postgres or postgresql)", errDSN, scheme)
}

func sqliteConfig(path string) (config, error) {
	scheme, _, _ := strings.Cut(path, ":")
	switch {
	case path == ":memory:" || scheme == "file" || scheme == "sqlite" || scheme == "postgres" || scheme == "postgresql":
		return config{}, fmt.Errorf("%w: %q: want sqlite:///absolute/path, a file path or postgres://", errDSN, path)
	case strings.Contains(path, "="):
		// pgx's "host=... dbname=..." form, not a file name.
		return config{}, fmt.Errorf("%w: %q: key=value DSNs are not supported, use postgres://", errDSN, path)
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return config{}, fmt.Errorf("%w: %w", errDSN, err)
	}
	// SQLite says "unable to open database file" alone; name the cause.
	if fi, err := os.Stat(filepath.Dir(path)); err != nil {
		return config{}, fmt.Errorf("store %s: %w", path, err)
	} else if !fi.IsDir() {
		return config{}, fmt.Errorf("store %s: %s is not a directory", path, filepath.Dir(path))
	}
	conn := func(q url.Values) string {
		q.Add("_pragma", "busy_timeout("+strconv.Itoa(sqliteBusyTimeout)+")")
		q.Add("_pragma", "foreign_keys(1)")
		// A file: URI, so that the path may hold any character.
		return (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String()
	}
	return config{
		dialect: SQLite,
		target:  path,
		sqliteWriter: conn(url.Values{
			"_journal_mode": {"WAL"},
			"_synchronous":  {"FULL"},
			"_txlock":       {"immediate"},
		}),
		sqliteReader: conn(url.Values{
			"_query_only": {"1"},
		}),
	}, nil
}

func postgresConfig(dsn string) (config, error) {
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's error holds the DSN with its password masked.
		return config{}, fmt.Errorf("%w: %w", errDSN, err)
	}
	target := "postgres://" + pc.Host + ":" + strconv.Itoa(int(pc.Port)) + "/" + pc.Database
	if strings.HasPrefix(pc.Host, "/") {
		target = "postgres:///" + pc.Database + "?host=" + pc.Host
	}
	return config{dialect: Postgres, target: target, pg: pc}, nil
}
