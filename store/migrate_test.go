package store

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestEmbeddedMigrations(t *testing.T) {
	t.Parallel()
	for _, d := range []Dialect{SQLite, Postgres} {
		ms, err := loadMigrations(embedded, "migrations", d)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 || ms[0].name != "build_records" {
			t.Errorf("%v: migrations %v", d, ms)
		}
	}
}

func TestLoadMigrations(t *testing.T) {
	t.Parallel()
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	for _, tc := range []struct {
		name    string
		fsys    fstest.MapFS
		sqlite  []string // the texts in order, or nil for an error
		postgre []string
		err     string
	}{
		{
			name: "common and pair",
			fsys: fstest.MapFS{
				"0001_a.sql":          file("A"),
				"0002_b.sqlite.sql":   file("B lite"),
				"0002_b.postgres.sql": file("B pg"),
				"0003_c.sql":          file("C"),
			},
			sqlite:  []string{"A", "B lite", "C"},
			postgre: []string{"A", "B pg", "C"},
		},
		{name: "none", fsys: fstest.MapFS{}, sqlite: []string{}, postgre: []string{}},
		{name: "gap", fsys: fstest.MapFS{"0001_a.sql": file(""), "0003_c.sql": file("")}, err: "version 0002 is missing"},
		{name: "starts at 2", fsys: fstest.MapFS{"0002_b.sql": file("")}, err: "version 0001 is missing"},
		{name: "one of a pair", fsys: fstest.MapFS{"0001_a.sqlite.sql": file("")}, err: "want 0001_a.sql or both"},
		{name: "common and one of a pair", fsys: fstest.MapFS{"0001_a.sql": file(""), "0001_a.postgres.sql": file("")}, err: "want 0001_a.sql or both"},
		{name: "names differ", fsys: fstest.MapFS{"0001_a.sqlite.sql": file(""), "0001_b.postgres.sql": file("")}, err: "already named"},
		{name: "two names", fsys: fstest.MapFS{"0001_a.sql": file(""), "0001_b.sql": file("")}, err: "already named"},
		{name: "short version", fsys: fstest.MapFS{"001_a.sql": file("")}, err: "001_a.sql: not NNNN_name.sql"},
		{name: "dash", fsys: fstest.MapFS{"0001-a.sql": file("")}, err: "not NNNN_name.sql"},
		{name: "other dialect", fsys: fstest.MapFS{"0001_a.mysql.sql": file("")}, err: "not NNNN_name.sql"},
		{name: "stray file", fsys: fstest.MapFS{"0001_a.sql": file(""), "README": file("")}, err: "README: not NNNN_name.sql"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for d, want := range map[Dialect][]string{SQLite: tc.sqlite, Postgres: tc.postgre} {
				ms, err := loadMigrations(tc.fsys, ".", d)
				if tc.err != "" {
					if err == nil || !strings.Contains(err.Error(), tc.err) {
						t.Errorf("%v: %v, want an error with %q", d, err, tc.err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%v: %v", d, err)
				}
				got := []string{}
				for i, m := range ms {
					if m.version != i+1 {
						t.Errorf("%v: migration %d has version %d", d, i, m.version)
					}
					got = append(got, m.sql)
				}
				if strings.Join(got, "|") != strings.Join(want, "|") {
					t.Errorf("%v: %q, want %q", d, got, want)
				}
			}
		})
	}
}

func TestPending(t *testing.T) {
	t.Parallel()
	ms := []migration{{version: 1, name: "a"}, {version: 2, name: "b"}}
	for _, tc := range []struct {
		name string
		have map[int]string
		next int // 0: none
		err  string
	}{
		{"empty", map[int]string{}, 1, ""},
		{"one", map[int]string{1: "a"}, 2, ""},
		{"all", map[int]string{1: "a", 2: "b"}, 0, ""},
		{"newer", map[int]string{1: "a", 2: "b", 3: "c"}, 0, "newer than this binary"},
		{"renamed", map[int]string{1: "x"}, 0, `migration 1 "x" where this binary has "a"`},
		{"zero", map[int]string{0: "z"}, 0, "which no sluice makes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := pending(ms, tc.have)
			switch {
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("pending = %v, %v; want an error with %q", m, err, tc.err)
				}
			case err != nil:
				t.Fatal(err)
			case tc.next == 0 && m != nil, tc.next != 0 && (m == nil || m.version != tc.next):
				t.Errorf("pending = %+v, want version %d", m, tc.next)
			}
		})
	}
}
