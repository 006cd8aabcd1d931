package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-ci/sluice/results"
	"github.com/sluice-ci/sluice/zuul"
)

// config is sluice's configuration file (--config): one YAML document,
// decoded strictly, every field optional. Secrets are never in it, only
// the files or environment variables that hold them.
type config struct {
	// DataDir holds the SQLite database, git caches, artifacts.
	DataDir string `yaml:"data_dir"`
	// Database is a DSN: sqlite:///path or postgres://user@host/db. A
	// PostgreSQL password comes from PGPASSWORD or PGPASSFILE, as libpq
	// reads them, never from this file.
	Database string        `yaml:"database"`
	Server   serverConfig  `yaml:"server"`
	Results  resultsConfig `yaml:"results"`
	Signing  signingConfig `yaml:"signing"`
	Local    localConfig   `yaml:"local"`
	Pipeline pipelineConf  `yaml:"pipeline"`
	// Gerrit is the Gerrit server whose changes sluice gates; the local
	// source's projects when absent.
	Gerrit *gerritConfig `yaml:"gerrit"`
	// Systest holds the bases of test environments and the install
	// stage's settings (stage_install.go).
	Systest systestConfig `yaml:"systest"`
	// Releases are the release repositories (config_release.go).
	Releases releasesConfig `yaml:"releases"`
	// Mirrors are the release repositories' mirror targets (config_mirror.go).
	Mirrors mirrorsConfig `yaml:"mirrors"`
}

// pipelineConf is the gating engine's section.
type pipelineConf struct {
	// Config is a file of pipelines and projects in Zuul's form (- pipeline:,
	// - project:); without one, Zuul's reference check, gate and post
	// pipelines and every local project.
	Config string `yaml:"config"`
	// Workers is how many stage runs go at once in the server.
	Workers int `yaml:"workers"`
	// Dispatch is where stage runs go: inprocess (the default: the
	// server's own pool of Workers) or gearman (the job servers of
	// Gearman, to `sluice worker` processes).
	Dispatch string `yaml:"dispatch"`
	// Gearman are the job servers (host:port) of dispatch gearman.
	Gearman []string `yaml:"gearman"`
}

// Validate checks the pipeline section.
func (p pipelineConf) Validate() error {
	if p.Workers < 0 || p.Workers > 256 {
		return fmt.Errorf("pipeline: workers: %d is not 0 (default) to 256", p.Workers)
	}
	switch p.Dispatch {
	case "", "inprocess":
		if len(p.Gearman) > 0 {
			return errors.New("pipeline: gearman: job servers given, and dispatch is not gearman")
		}
	case "gearman":
		if len(p.Gearman) == 0 {
			return errors.New("pipeline: dispatch gearman: give the job servers in gearman: [host:port, ...]")
		}
		if err := checkGearmanServers(p.Gearman); err != nil {
			return fmt.Errorf("pipeline: gearman: %w", err)
		}
	default:
		return fmt.Errorf("pipeline: dispatch %q: want inprocess or gearman", p.Dispatch)
	}
	return nil
}

// checkGearmanServers checks job server addresses: host:port each.
func checkGearmanServers(addrs []string) error {
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			return fmt.Errorf("%q: want host:port", a)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: port %q", a, port)
		}
	}
	return nil
}

// localConfig is the local source: projects that are git repositories on
// this machine, whose changes `sluice change` proposes, reviews and
// merges as Gerrit would.
type localConfig struct {
	Projects []zuul.LocalProject `yaml:"projects"`
}

// Validate checks the local projects.
func (l localConfig) Validate() error {
	seen := map[string]bool{}
	for i, p := range l.Projects {
		if p.Name == "" || p.Path == "" {
			return fmt.Errorf("local: projects[%d]: name and path are required", i)
		}
		if !filepath.IsAbs(p.Path) {
			// The merger and the builds fetch from it, from other
			// directories.
			return fmt.Errorf("local: projects[%d] (%s): path %q is not absolute", i, p.Name, p.Path)
		}
		if seen[p.Name] {
			return fmt.Errorf("local: projects[%d]: %s given twice", i, p.Name)
		}
		seen[p.Name] = true
	}
	return nil
}

// signingConfig names the key that signs the buildsets' test
// repositories. Without one, a key made on first use is kept in the data
// directory (keys/test-signing-key.asc, 0600, not encrypted): test
// repositories are for the machines of the tests.
type signingConfig struct {
	TestKey            string `yaml:"test_key"`
	TestPassphraseFile string `yaml:"test_passphrase_file"`
	// ReleaseKey signs the release repositories the post pipeline
	// publishes; without one, keys/release-signing-key.asc in the data
	// directory, made on first use.
	ReleaseKey            string `yaml:"release_key"`
	ReleasePassphraseFile string `yaml:"release_passphrase_file"`
}

// serverConfig is what `sluice serve` listens on and who may write.
type serverConfig struct {
	Listen string `yaml:"listen"`
	// URL is how others reach this server (log links in results);
	// http://LISTEN when empty.
	URL string `yaml:"url"`
	// TokensFile holds the write tokens, NAME:SCOPE:TOKEN per line.
	TokensFile string `yaml:"tokens_file"`
	// WorkerHosts are the networks (CIDR, or addresses) workers' failure
	// reports may come from; loopback when empty.
	WorkerHosts []string `yaml:"worker_hosts"`
}

// resultsConfig is the results section: outcomes beside upstream's, and
// the external ResultsDB results are delivered to, if any.
type resultsConfig struct {
	results.Config `yaml:",inline"`
	External       *externalConfig `yaml:"external"`
}

// externalConfig names an external ResultsDB (upstream's or another
// sluice's).
type externalConfig struct {
	// URL is the API root, https://resultsdb.example.org/api/v2.0/.
	URL string `yaml:"url"`
	// TokenFile or TokenEnv holds the bearer token for writes.
	TokenFile string        `yaml:"token_file"`
	TokenEnv  string        `yaml:"token_env"`
	Timeout   time.Duration `yaml:"timeout"`
}

// maxConfigSize bounds a configuration file.
const maxConfigSize = 1 << 20

// parseConfig decodes and validates a configuration file.
func parseConfig(r io.Reader) (*config, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxConfigSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("larger than %d bytes", maxConfigSize)
	}
	var c config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// loadConfig reads the configuration file at path; "" means none, all
// defaults.
func loadConfig(path string) (*config, error) {
	if path == "" {
		return &config{}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	c, err := parseConfig(f)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Validate checks every section, naming the field at fault.
func (c *config) Validate() error {
	if c.Database != "" {
		u, err := url.Parse(c.Database)
		if err == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				return errors.New("database: holds a password; give it in PGPASSWORD or a PGPASSFILE instead")
			}
		}
		if err == nil && strings.Contains(u.RawQuery, "password=") {
			return errors.New("database: holds a password; give it in PGPASSWORD or a PGPASSFILE instead")
		}
	}
	if err := c.Server.Validate(); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if err := c.Results.Config.Validate(); err != nil {
		return err
	}
	if err := c.Local.Validate(); err != nil {
		return err
	}
	if err := c.Systest.Validate(); err != nil {
		return err
	}
	if c.Gerrit != nil {
		if len(c.Local.Projects) > 0 {
			return errors.New("gerrit and local.projects: give one source of changes")
		}
		if err := c.Gerrit.Validate(); err != nil {
			return err
		}
	}
	if err := c.Pipeline.Validate(); err != nil {
		return err
	}
	if err := c.Releases.Validate(); err != nil {
		return err
	}
	if err := c.Mirrors.Validate(); err != nil {
		return err
	}
	if c.Results.External != nil {
		if err := c.Results.External.Validate(); err != nil {
			return fmt.Errorf("results: external: %w", err)
		}
	}
	return nil
}

// Validate checks the server section.
func (s serverConfig) Validate() error {
	if s.Listen != "" {
		if _, _, err := net.SplitHostPort(s.Listen); err != nil {
			return fmt.Errorf("listen: %q is not host:port", s.Listen)
		}
	}
	if s.URL != "" {
		if err := checkHTTPURL(s.URL); err != nil {
			return fmt.Errorf("url: %w", err)
		}
	}
	if _, err := workerHosts(s.WorkerHosts); err != nil {
		return fmt.Errorf("worker_hosts: %w", err)
	}
	return nil
}

// Validate checks the external ResultsDB section.
func (e externalConfig) Validate() error {
	if err := checkHTTPURL(e.URL); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if (e.TokenFile == "") == (e.TokenEnv == "") {
		return errors.New("give exactly one of token_file and token_env")
	}
	if e.Timeout < 0 {
		return errors.New("timeout: negative")
	}
	return nil
}

// token reads the external ResultsDB's token from its file or variable.
func (e externalConfig) token() (string, error) {
	if e.TokenEnv != "" {
		v := strings.TrimSpace(os.Getenv(e.TokenEnv))
		if v == "" {
			return "", fmt.Errorf("results: external: token_env: $%s is empty", e.TokenEnv)
		}
		return v, nil
	}
	data, err := os.ReadFile(e.TokenFile)
	if err != nil {
		return "", fmt.Errorf("results: external: token_file: %w", err)
	}
	v := strings.TrimSpace(string(data))
	if v == "" || strings.ContainsAny(v, "\n\r") {
		return "", fmt.Errorf("results: external: token_file %s: want one token on one line", e.TokenFile)
	}
	return v, nil
}

// checkHTTPURL accepts an absolute http(s) URL without credentials.
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return err
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("%q is not an http:// or https:// URL", s)
	case u.User != nil:
		return fmt.Errorf("%q holds credentials; use a token file", u.Redacted())
	}
	return nil
}
