package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/sluice-ci/sluice/mirror"
)

// mirrorsConfig is the mirrors section: the targets each release
// repository is synced to (`sluice mirror sync NAME`).
//
//	mirrors:
//	  retries: 1                # syncs again by content a target that fails its check
//	  check: full               # or quick (see README: what each reads)
//	  repositories:
//	    - name: stable          # a release repository (releases section, or project~branch)
//	      formats: [deb, rpm]   # default: the release repository's
//	      keyring: /etc/sluice/release.pub.asc  # default: the release key's public key
//	      targets:
//	        - name: local1
//	          type: local
//	          path: /srv/mirror/stable   # each format in PATH/<format>/, serve PATH/<format>/current
//	          keep: 3                    # snapshots kept there
//	        - name: upstream
//	          type: rsync
//	          dest: rsync://mirror.example.org/sluice/stable  # each format in DEST/<format>/
//	          password_file: /etc/sluice/rsync.secret         # or password_env: NAME (never the password)
//	          rsh: [ssh, -i, /etc/sluice/mirror_key]          # for host:path destinations
//	          timeout: 1h
//	          io_timeout: 5m
type mirrorsConfig struct {
	Retries int `yaml:"retries"`
	// Check is how a sync checks the snapshot and the targets:
	// mirror.CheckFull (default: the snapshot read by repo.Verify on every
	// sync, rsync targets compared by content) or mirror.CheckQuick (a
	// snapshot verified once is trusted while its file list stays the
	// same; rsync targets compared by size and mtime, and by content for
	// what the sync wrote and every index and entry file).
	Check        string             `yaml:"check"`
	Repositories []mirrorRepoConfig `yaml:"repositories"`
}

// mirrorRepoConfig is the mirror targets of one release repository.
type mirrorRepoConfig struct {
	Name    string               `yaml:"name"`
	Formats []string             `yaml:"formats"`
	Keyring string               `yaml:"keyring"`
	Targets []mirrorTargetConfig `yaml:"targets"`
}

// mirrorTargetConfig is one target.
type mirrorTargetConfig struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"` // local or rsync
	// local
	Path string `yaml:"path"`
	Keep int    `yaml:"keep"`
	// rsync
	Dest         string        `yaml:"dest"`
	PasswordFile string        `yaml:"password_file"`
	PasswordEnv  string        `yaml:"password_env"`
	RSH          []string      `yaml:"rsh"`
	Timeout      time.Duration `yaml:"timeout"`
	IOTimeout    time.Duration `yaml:"io_timeout"`
	TraceName    string        `yaml:"trace_name"`
}

// Validate checks the section.
func (c *mirrorsConfig) Validate() error {
	if c.Retries < 0 || c.Retries > 10 {
		return fmt.Errorf("mirrors: retries: %d is not 0 (default 1) to 10", c.Retries)
	}
	switch c.Check {
	case "":
		c.Check = mirror.CheckFull
	case mirror.CheckFull, mirror.CheckQuick:
	default:
		return fmt.Errorf("mirrors: check: %q is not %s or %s", c.Check, mirror.CheckFull, mirror.CheckQuick)
	}
	seen := map[string]bool{}
	for i := range c.Repositories {
		r := &c.Repositories[i]
		if err := r.validate(); err != nil {
			return fmt.Errorf("mirrors: repositories[%d]: %w", i, err)
		}
		if seen[r.Name] {
			return fmt.Errorf("mirrors: repositories[%d]: %s given twice", i, r.Name)
		}
		seen[r.Name] = true
	}
	return nil
}

func (r *mirrorRepoConfig) validate() error {
	if err := mirror.CheckName("repository", r.Name); err != nil {
		return err
	}
	for _, f := range r.Formats {
		if !slices.Contains(mirror.Formats, f) {
			return fmt.Errorf("%s: formats: %q is not deb or rpm", r.Name, f)
		}
	}
	if r.Keyring != "" && !filepath.IsAbs(r.Keyring) {
		return fmt.Errorf("%s: keyring %q is not absolute", r.Name, r.Keyring)
	}
	if len(r.Targets) == 0 {
		return fmt.Errorf("%s: targets: none given", r.Name)
	}
	seen := map[string]bool{}
	for i, t := range r.Targets {
		if err := t.validate(); err != nil {
			return fmt.Errorf("%s: targets[%d]: %w", r.Name, i, err)
		}
		if seen[t.Name] {
			return fmt.Errorf("%s: targets[%d]: %s given twice", r.Name, i, t.Name)
		}
		seen[t.Name] = true
	}
	return nil
}

func (t mirrorTargetConfig) validate() error {
	if err := mirror.CheckName("target", t.Name); err != nil {
		return err
	}
	rsyncOnly := t.Dest != "" || t.PasswordFile != "" || t.PasswordEnv != "" || len(t.RSH) > 0 || t.Timeout != 0 || t.IOTimeout != 0 || t.TraceName != ""
	switch t.Type {
	case "local":
		if !filepath.IsAbs(t.Path) {
			return fmt.Errorf("%s: path %q is not absolute", t.Name, t.Path)
		}
		if t.Keep != 0 && t.Keep < 2 {
			return fmt.Errorf("%s: keep %d: at least 2", t.Name, t.Keep)
		}
		if rsyncOnly {
			return fmt.Errorf("%s: dest, password_file, password_env, rsh, timeout, io_timeout and trace_name are for rsync targets", t.Name)
		}
	case "rsync":
		if t.Path != "" || t.Keep != 0 {
			return fmt.Errorf("%s: path and keep are for local targets", t.Name)
		}
		if t.Dest == "" {
			return fmt.Errorf("%s: dest is required", t.Name)
		}
		if t.PasswordFile != "" && !filepath.IsAbs(t.PasswordFile) {
			return fmt.Errorf("%s: password_file %q is not absolute", t.Name, t.PasswordFile)
		}
		if t.PasswordFile != "" && t.PasswordEnv != "" {
			return fmt.Errorf("%s: password_file or password_env, not both", t.Name)
		}
		if t.Timeout < 0 || t.IOTimeout < 0 {
			return fmt.Errorf("%s: negative timeout", t.Name)
		}
		if t.TraceName != "" {
			if err := mirror.CheckName("trace name", t.TraceName); err != nil {
				return fmt.Errorf("%s: %w", t.Name, err)
			}
		}
		// The destination itself is checked by mirror.NewRsync, per
		// format; a bad one is refused here too.
		if _, err := mirror.NewRsync(t.Name, mirror.RsyncConfig{Dest: t.Dest, RSH: t.RSH, ReadbackDir: "/", TraceName: "x"}, nil); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s: type %q (want local or rsync)", t.Name, t.Type)
	}
	return nil
}

// repository returns the mirrors of release repository name.
func (c *mirrorsConfig) repository(name string) (mirrorRepoConfig, error) {
	for _, r := range c.Repositories {
		if r.Name == name {
			return r, nil
		}
	}
	return mirrorRepoConfig{}, fmt.Errorf("mirrors: no targets configured for release repository %q", name)
}
