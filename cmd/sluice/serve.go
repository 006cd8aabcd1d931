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
	"golang.org/x/sync/errgroup"

	"github.com/sluice-ci/sluice/builder"
	"github.com/sluice-ci/sluice/results"
)

func newServeCmd(log *slog.Logger) *cobra.Command {
	var listen, tokenFile string
	var sf storeFlags
	var gopts gateOptions
	cmd := &cobra.Command{
		Use:   "serve [--config FILE] [--listen ADDR] [--data-dir DIR] [--db DSN] [--token-file FILE]",
		Short: "Serve the ResultsDB v2.0 API (/api/v2.0/) and the artifacts, on the embedded defaults",
		Long: "Serve the ResultsDB-compatible API under /api/v2.0/ from the SQL store (SQLite in the data\n" +
			"directory unless --db or the configuration names PostgreSQL), and the artifact store (build logs,\n" +
			"packages) under /artifacts/SHA256. Reads are open; writes need a bearer token. Tokens come from\n" +
			"--token-file or server.tokens_file (one per line, NAME:SCOPE:TOKEN, SCOPE worker or admin);\n" +
			"without one, an admin token is generated into DATA-DIR/admin-token on first start. With\n" +
			"results.external configured, every result recorded in the store is delivered there too, once.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			e, err := sf.open(cmd, log)
			if err != nil {
				return err
			}
			defer e.close()
			db := e.db
			if !cmd.Flags().Changed("token-file") && e.cfg.Server.TokensFile != "" {
				tokenFile = e.cfg.Server.TokensFile
			}
			tokens, err := loadTokens(tokenFile, e.dataDir, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("listen") && e.cfg.Server.Listen != "" {
				listen = e.cfg.Server.Listen
			}
			arts, err := builder.NewArtifacts(filepath.Join(e.dataDir, "artifacts"))
			if err != nil {
				return err
			}
			defer arts.Close()
			if gopts.workers = e.cfg.Pipeline.Workers; gopts.workers == 0 {
				gopts.workers = 2
			}
			gopts.poll = time.Second
			gopts.tokens = tokens
			gt, err := newGate(ctx, e, gopts, log)
			if err != nil {
				return err
			}
			events := results.NewEvents(e.results, log)
			api := results.NewAPI(e.results, db, tokens, events, log)
			mux := http.NewServeMux()
			mux.Handle("/", api)
			mux.Handle("GET /artifacts/{sha256}", artifactHandler(arts))
			mux.Handle("GET /buildsets/{uuid}/repo/", repoHandler(filepath.Join(e.dataDir, "buildsets")))
			if gt != nil {
				for pattern, h := range gt.handlers {
					mux.Handle(pattern, h)
				}
			}
			srv := &http.Server{
				Handler:           mux,
				ReadHeaderTimeout: 10 * time.Second,
				ReadTimeout:       time.Minute,
				WriteTimeout:      10 * time.Minute, // artifacts can be large; the event stream lifts it
				IdleTimeout:       2 * time.Minute,
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			log.Info("serving", "addr", ln.Addr().String(), "api", "/api/v2.0/", "external_resultsdb", e.sender != nil)
			g, gctx := errgroup.WithContext(ctx)
			g.Go(func() error {
				if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
					return err
				}
				return nil
			})
			g.Go(func() error {
				<-gctx.Done()
				shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				defer cancel()
				return srv.Shutdown(shutdown)
			})
			g.Go(func() error { return events.Run(gctx) })
			if gt != nil {
				gt.start(gctx, g)
			} else {
				log.Info("no source of changes configured (local.projects): serving results only")
			}
			if e.sender != nil {
				g.Go(func() error { return e.sender.Run(gctx) })
			}
			return g.Wait()
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:5001", "address to listen on (loopback by default)")
	f.StringVar(&tokenFile, "token-file", "", "write tokens, one per line: NAME:SCOPE:TOKEN")
	f.DurationVar(&gopts.timeout, "build-timeout", time.Hour, "time limit of one build in the server's stages")
	f.BoolVar(&gopts.rpmNoDeps, "rpm-nodeps", false, "rpm: pass --nodeps to rpmbuild, for hosts whose rpmdb does not describe the system (Debian)")
	f.StringSliceVar(&gopts.rpmHostProvides, "rpm-host-provides", nil, "rpm: BuildRequires the host provides outside the rpmdb (e.g. gcc,make on Debian)")
	sf.register(f)
	return cmd
}

// repoHandler serves the buildsets' test repositories read-only, as the
// test machines' apt and dnf fetch them: DIR/<uuid>/repo/ under
// /buildsets/<uuid>/repo/, confined to that directory.
func repoHandler(dir string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uuid := r.PathValue("uuid")
		if !stageUUIDRE.MatchString(uuid) {
			http.Error(w, "buildset: not a buildset id", http.StatusBadRequest)
			return
		}
		root, err := os.OpenRoot(filepath.Join(dir, uuid, "repo"))
		if err != nil {
			http.Error(w, "buildset: no test repository", http.StatusNotFound)
			return
		}
		defer root.Close()
		w.Header().Set("X-Content-Type-Options", "nosniff")
		http.StripPrefix("/buildsets/"+uuid+"/repo", http.FileServerFS(root.FS())).ServeHTTP(w, r)
	})
}

// artifactHandler serves the artifact store read-only: build logs and
// packages by their SHA-256, as the results' log_url links them.
func artifactHandler(arts *builder.Artifacts) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sha := r.PathValue("sha256")
		f, err := arts.Open(sha)
		switch {
		case errors.Is(err, builder.ErrBadDigest):
			http.Error(w, "artifact: not a SHA-256 digest in lower-case hex", http.StatusBadRequest)
			return
		case errors.Is(err, fs.ErrNotExist):
			http.Error(w, "artifact: not found", http.StatusNotFound)
			return
		case err != nil:
			http.Error(w, "artifact: cannot be read", http.StatusInternalServerError)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			http.Error(w, "artifact: cannot be read", http.StatusInternalServerError)
			return
		}
		// Content never changes under a digest.
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("ETag", `"`+sha+`"`)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		var head [512]byte
		n, _ := io.ReadFull(f, head[:])
		ct := http.DetectContentType(head[:n])
		if !strings.HasPrefix(ct, "text/plain") {
			ct = "application/octet-stream" // never let a browser render what a build wrote as HTML
		}
		w.Header().Set("Content-Type", ct)
		http.ServeContent(w, r, "", st.ModTime(), f)
	})
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
