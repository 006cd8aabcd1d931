package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluice-ci/sluice/results"
	"github.com/sluice-ci/sluice/store"
)

// storeFlags are the flags every command that opens the store shares:
// --config, --data-dir and --db, flags winning over the file.
type storeFlags struct {
	config, dataDir, dsn string
}

func (f *storeFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "configuration file (YAML; see README); without one, the embedded defaults")
	fs.StringVar(&f.dataDir, "data-dir", "", "sluice's data directory: the SQLite database, git caches, artifacts (default "+defaultDataDir()+")")
	fs.StringVar(&f.dsn, "db", "", "database: postgres://user@host/db (password from PGPASSWORD/PGPASSFILE); default SQLite in the data directory")
}

// env is what a command works with: the configuration, the data
// directory and the open store with its results.
type env struct {
	cfg     *config
	dataDir string
	db      *store.DB
	results *results.Store
	// recorder records results; they are queued for sender when an
	// external ResultsDB is configured (sender is nil otherwise).
	recorder *results.Recorder
	sender   *results.Sender
}

// load reads the configuration and settles the data directory and DSN.
func (f *storeFlags) load(cmd *cobra.Command) (cfg *config, dataDir, dsn string, err error) {
	cfg, err = loadConfig(f.config)
	if err != nil {
		return nil, "", "", err
	}
	dataDir = cfg.DataDir
	if cmd.Flags().Changed("data-dir") || dataDir == "" {
		dataDir = f.dataDir
	}
	if dataDir == "" {
		dataDir = defaultDataDir()
	}
	dsn = cfg.Database
	if cmd.Flags().Changed("db") || dsn == "" {
		dsn = f.dsn
	}
	if dsn == "" {
		dsn = "sqlite://" + filepath.Join(dataDir, "sluice.db")
	}
	return cfg, dataDir, dsn, nil
}

// open loads the configuration, makes the data directory and opens the
// store (applying migrations), and the results client side when an
// external ResultsDB is configured.
func (f *storeFlags) open(cmd *cobra.Command, log *slog.Logger) (*env, error) {
	cfg, dataDir, dsn, err := f.load(cmd)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	db, err := store.Open(cmd.Context(), dsn, log)
	if err != nil {
		return nil, err
	}
	e := &env{cfg: cfg, dataDir: dataDir, db: db, results: results.NewStore(db, cfg.Results.Config)}
	ext := cfg.Results.External
	e.recorder = results.NewRecorder(e.results, db, ext != nil)
	if ext != nil {
		token, err := ext.token()
		if err != nil {
			db.Close()
			return nil, err
		}
		c, err := results.NewClient(results.ClientConfig{BaseURL: ext.URL, Token: token, Timeout: ext.Timeout}, log)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("results: external: %w", err)
		}
		e.sender = results.NewSender(db, e.results, c, log)
	}
	return e, nil
}

// push delivers what the outbox holds, for at most timeout, when an
// external ResultsDB is configured: what is left stays queued for the
// next push or for `sluice serve` on the same database.
func (e *env) push(ctx context.Context, timeout time.Duration, log *slog.Logger) {
	if e.sender == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	n, err := e.sender.Flush(ctx)
	if err != nil {
		log.Warn("results outbox push stopped; the rest stays queued", "delivered", n, "err", err)
		return
	}
	log.Info("results outbox pushed", "delivered", n)
}

func (e *env) close() { e.db.Close() }
