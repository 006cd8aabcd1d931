package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/results"
	"github.com/sluice-ci/sluice/store"
)

func newServeCmd(log *slog.Logger) *cobra.Command {
	var listen, dataDir, dsn, tokenFile string
	cmd := &cobra.Command{
		Use:   "serve [--listen ADDR] [--data-dir DIR] [--db DSN] [--token-file FILE]",
		Short: "Serve the ResultsDB v2.0 API (/api/v2.0/) on the embedded defaults",
		Long: "Serve the ResultsDB-compatible API under /api/v2.0/ from the SQL store (SQLite in the data\n" +
			"directory unless --db names PostgreSQL). Reads are open; writes need a bearer token. Tokens come\n" +
			"from --token-file (one per line, NAME:SCOPE:TOKEN, SCOPE worker or admin); without one, an admin\n" +
			"token is generated into DATA-DIR/admin-token on first start.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := os.MkdirAll(dataDir, 0o755); err != nil {
				return err
			}
			tokens, err := loadTokens(tokenFile, dataDir, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if dsn == "" {
				dsn = "sqlite://" + filepath.Join(dataDir, "sluice.db")
			}
			db, err := store.Open(ctx, dsn, log)
			if err != nil {
				return err
			}
			defer db.Close()
			api := results.NewAPI(results.NewStore(db, results.Config{}), db, tokens, log)
			srv := &http.Server{
				Handler:           api,
				ReadHeaderTimeout: 10 * time.Second,
				ReadTimeout:       time.Minute,
				WriteTimeout:      time.Minute,
				IdleTimeout:       2 * time.Minute,
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			log.Info("serving", "addr", ln.Addr().String(), "api", "/api/v2.0/")
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(shutdown); err != nil {
				return err
			}
			if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:5001", "address to listen on (loopback by default)")
	f.StringVar(&dataDir, "data-dir", defaultDataDir(), "sluice's data directory (the SQLite database, the generated admin token)")
	f.StringVar(&dsn, "db", "", "database: postgres://... (default: SQLite in the data directory)")
	f.StringVar(&tokenFile, "token-file", "", "write tokens, one per line: NAME:SCOPE:TOKEN")
	return cmd
}

var tokenLineRE = regexp.MustCompile(`^([A-Za-z0-9._-]+):(worker|admin):([A-Za-z0-9._~+/=-]{16,})$`)

// parseTokens reads a token file: one NAME:SCOPE:TOKEN per line; blank
// lines and lines starting with # are skipped. Errors name the line, never
// the token.
func parseTokens(r io.Reader) (results.StaticTokens, error) {
	tokens := results.StaticTokens{}
	names := map[string]bool{}
	sc := bufio.NewScanner(io.LimitReader(r, 1<<20))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := tokenLineRE.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("token file line %d: want NAME:SCOPE:TOKEN, SCOPE worker or admin, TOKEN at least 16 characters", n)
		}
		if names[m[1]] {
			return nil, fmt.Errorf("token file line %d: name %s given twice", n, m[1])
		}
		if _, dup := tokens[m[3]]; dup {
			return nil, fmt.Errorf("token file line %d (%s): the same token as an earlier line", n, m[1])
		}
		names[m[1]] = true
		tokens[m[3]] = m[2]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	return tokens, nil
}

// loadTokens reads the token file, or without one the generated admin
// token of the data directory (made on first start; its path, not the
// token, is printed).
func loadTokens(file, dataDir string, w io.Writer) (results.StaticTokens, error) {
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return parseTokens(f)
	}
	path := filepath.Join(dataDir, "admin-token")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		var b [32]byte
		rand.Read(b[:])
		data = []byte(hex.EncodeToString(b[:]) + "\n")
		if err := writeFile(path, data, 0o600); err != nil {
			return nil, err
		}
		fmt.Fprintf(w, "generated an admin token for writes: %s\n", path)
	} else if err != nil {
		return nil, err
	}
	return results.StaticTokens{strings.TrimSpace(string(data)): "admin"}, nil
}
