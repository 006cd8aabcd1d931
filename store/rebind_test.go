package store

import "testing"

func TestRebind(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"none", `SELECT 1`, `SELECT 1`},
		{"two", `SELECT * FROM t WHERE a = ? AND b = ?`, `SELECT * FROM t WHERE a = $1 AND b = $2`},
		{"adjacent", `VALUES (?,?,?)`, `VALUES ($1,$2,$3)`},
		{"string", `SELECT '?', ?`, `SELECT '?', $1`},
		{"doubled quote", `SELECT 'it''s ?', ?`, `SELECT 'it''s ?', $1`},
		{"escape string", `SELECT E'it\'s ?', ?`, `SELECT E'it\'s ?', $1`},
		{"not an escape string", `SELECT 'a\', ?`, `SELECT 'a\', $1`},
		{"identifier", `SELECT "a?""b", ?`, `SELECT "a?""b", $1`},
		{"line comment", "SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2"},
		{"line comment at the end", "SELECT ? -- why?", "SELECT $1 -- why?"},
		{"block comment", `SELECT /* ? /* ? */ ? */ ?`, `SELECT /* ? /* ? */ ? */ $1`},
		{"dollar quote", `SELECT $$?$$, $x$ $$ ? $x$, ?`, `SELECT $$?$$, $x$ $$ ? $x$, $1`},
		{"numbered already", `SELECT $1, ?`, `SELECT $1, $1`},
		{"unterminated string", `SELECT ?, 'abc`, `SELECT $1, 'abc`},
		{"unterminated escape", `SELECT ?, E'abc\`, `SELECT $1, E'abc\`},
		{"unterminated comment", `SELECT ? /* ?`, `SELECT $1 /* ?`},
		{"ten", `? ? ? ? ? ? ? ? ? ? ?`, `$1 $2 $3 $4 $5 $6 $7 $8 $9 $10 $11`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := (&DB{dialect: Postgres}).Rebind(tc.in); got != tc.want {
				t.Errorf("Rebind(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if got := (&DB{dialect: SQLite}).Rebind(tc.in); got != tc.in {
				t.Errorf("SQLite Rebind(%q) = %q", tc.in, got)
			}
		})
	}
}

func FuzzRebind(f *testing.F) {
	for _, s := range []string{`SELECT ?`, `'?'`, `E'\'?'`, `/* ? */ ?`, `$$?$$ ?`, `"?" ?`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		_ = rebindDollar(q) // must not panic
	})
}
