package main

import (
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		err      string // a part of the error; "" for none
	}{
		{"empty", "", ""},
		{"full", `data_dir: /var/lib/sluice
database: postgres://sluice@db.example.org/sluice?sslmode=verify-full
server:
  listen: 127.0.0.1:5001
  url: https://ci.example.org
  tokens_file: /etc/sluice/tokens
results:
  additional_outcomes: [QUEUED, RUNNING, ERROR, ABORTED]
  external:
    url: https://resultsdb.example.org/api/v2.0/
    token_env: RESULTSDB_TOKEN
    timeout: 30s
`, ""},
		{"unknown-key", "server:\n  listn: 127.0.0.1:1\n", "field listn not found"},
		{"password-in-dsn", "database: postgres://u:secret@h/db\n", "PGPASSWORD"},
		{"password-param", "database: postgres://u@h/db?password=secret\n", "PGPASSWORD"},
		{"bad-listen", "server:\n  listen: nowhere\n", "server: listen"},
		{"bad-url", "server:\n  url: ftp://x\n", "server: url"},
		{"credentials-in-url", "results:\n  external:\n    url: https://u:p@r/\n    token_env: X\n", "credentials"},
		{"no-token", "results:\n  external:\n    url: https://r/\n", "token_file"},
		{"two-tokens", "results:\n  external:\n    url: https://r/\n    token_env: X\n    token_file: /f\n", "exactly one"},
		{"bad-outcome", "results:\n  additional_outcomes: [lower]\n", "additional_outcomes"},
		{"relative-project-path", "local:\n  projects:\n    - name: hello\n      path: src/hello\n", "not absolute"},
		{"two-documents", "data_dir: /a\n---\ndata_dir: /b\n", "more than one"},
		{"not-a-map", "- a\n- b\n", "cannot unmarshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseConfig(strings.NewReader(tc.in))
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("parseConfig: %v, want an error with %q", err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add("server:\n  listen: 127.0.0.1:5001\n")
	f.Add("results:\n  external:\n    url: https://r/api/v2.0/\n    token_file: /t\n")
	f.Add("database: sqlite:///tmp/x.db\ndata_dir: /tmp\n")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := parseConfig(strings.NewReader(in))
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted a config that does not validate: %v", err)
		}
	})
}
