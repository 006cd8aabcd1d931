package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sluice-ci/sluice/repo"
)

// releasesConfig is the releases section: the release repositories the
// post pipeline and `sluice release` publish into. A project and branch
// with none configured releases into a default repository named
// <project>~<branch> ('/' written '+'), with both formats.
//
//	releases:
//	  keep: 5                 # versions of each package kept, default 5
//	  repositories:
//	    - name: stable
//	      branch: main        # packages must be built from commits on it
//	      projects: [hello-sh, libfoo]
//	      formats: [deb, rpm] # default both
//	      codename: stable    # deb; default the name
//	      origin: Example     # deb; Label defaults to Origin
type releasesConfig struct {
	Keep         int                 `yaml:"keep"`
	Repositories []releaseRepoConfig `yaml:"repositories"`
}

// releaseRepoConfig is one release repository.
type releaseRepoConfig struct {
	Name string `yaml:"name"`
	// Branch is the release branch: a package enters only if it was built
	// from a commit on it.
	Branch string `yaml:"branch"`
	// Projects whose packages the repository takes; the post pipeline
	// releases a project's branch into each repository that lists the
	// project and has that branch.
	Projects []string `yaml:"projects"`
	Formats  []string `yaml:"formats"`
	Keep     int      `yaml:"keep"`
	// APT distribution (deb).
	Codename      string        `yaml:"codename"`
	Suite         string        `yaml:"suite"`
	Component     string        `yaml:"component"`
	Origin        string        `yaml:"origin"`
	Label         string        `yaml:"label"`
	Architectures []string      `yaml:"architectures"`
	ValidFor      time.Duration `yaml:"valid_for"`
}

// Validate checks the section and fills the repositories' defaults.
func (c *releasesConfig) Validate() error {
	if c.Keep < 0 || c.Keep > 1000 {
		return fmt.Errorf("releases: keep: %d is not 0 (default %d) to 1000", c.Keep, repo.DefaultKeep)
	}
	seen := map[string]bool{}
	for i := range c.Repositories {
		r := &c.Repositories[i]
		if r.Keep == 0 {
			r.Keep = c.Keep
		}
		if err := r.validate(); err != nil {
			return fmt.Errorf("releases: repositories[%d]: %w", i, err)
		}
		if seen[r.Name] {
			return fmt.Errorf("releases: repositories[%d]: %s given twice", i, r.Name)
		}
		seen[r.Name] = true
	}
	return nil
}

func (r *releaseRepoConfig) validate() error {
	if !repo.ValidReleaseName(r.Name) || strings.Contains(r.Name, "~") {
		// '~' is kept for the default repositories' names.
		return fmt.Errorf("name %q: want letters, digits and . _ + -", r.Name)
	}
	if err := checkBranchForPath(r.Branch); err != nil {
		return fmt.Errorf("%s: %w", r.Name, err)
	}
	if len(r.Projects) == 0 {
		return fmt.Errorf("%s: projects: none given", r.Name)
	}
	for _, p := range r.Projects {
		if !stageNameRE.MatchString(p) || strings.Contains(p, "..") {
			return fmt.Errorf("%s: projects: %q is not a project name", r.Name, p)
		}
	}
	if len(r.Formats) == 0 {
		r.Formats = []string{"deb", "rpm"}
	}
	for _, f := range r.Formats {
		if f != "deb" && f != "rpm" {
			return fmt.Errorf("%s: formats: %q is not deb or rpm", r.Name, f)
		}
	}
	slices.Sort(r.Formats)
	r.Formats = slices.Compact(r.Formats)
	for _, f := range r.Formats {
		c := r.repoConfig(f)
		if err := c.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// repoConfig is the repo package's config of the repository's format f.
func (r *releaseRepoConfig) repoConfig(f string) repo.ReleaseConfig {
	c := repo.ReleaseConfig{Name: r.Name, Format: f, Keep: r.Keep}
	if f == "deb" {
		codename := r.Codename
		if codename == "" {
			codename = r.Name
		}
		c.APT = repo.APTConfig{Codename: codename, Suite: r.Suite, Component: r.Component, Origin: r.Origin,
			Label: r.Label, Architectures: r.Architectures, ValidFor: r.ValidFor}
	}
	return c
}

// hasProject tells whether the repository takes project's packages.
func (r *releaseRepoConfig) hasProject(project string) bool {
	return slices.Contains(r.Projects, project)
}

// defaultReleaseName is the name of the release repository of a project's
// branch that none is configured for: <project>~<branch>, '/' written
// '+'. Neither '~' nor '+' occurs in a project or branch name that sluice
// accepts, so the name says which project and branch it is.
func defaultReleaseName(project, branch string) string {
	return strings.ReplaceAll(project, "/", "+") + "~" + strings.ReplaceAll(branch, "/", "+")
}

// defaultRelease is the release repository of a project's branch that none
// is configured for.
func (c *releasesConfig) defaultRelease(project, branch string) releaseRepoConfig {
	r := releaseRepoConfig{Name: defaultReleaseName(project, branch), Branch: branch, Projects: []string{project},
		Formats: []string{"deb", "rpm"}, Keep: c.Keep,
		// APT names allow neither '~' nor '/'.
		Codename: strings.NewReplacer("/", "-", "~", "-", "_", "-").Replace(branch), Origin: "sluice"}
	return r
}

// releasesFor returns the release repositories a project's branch
// releases into: those configured for it, or its default one.
func (c *releasesConfig) releasesFor(project, branch string) []releaseRepoConfig {
	var out []releaseRepoConfig
	for _, r := range c.Repositories {
		if r.Branch == branch && r.hasProject(project) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		out = append(out, c.defaultRelease(project, branch))
	}
	return out
}

// release returns the release repository called name: a configured one,
// or the default one of the project and branch its name gives.
func (c *releasesConfig) release(name string) (releaseRepoConfig, error) {
	for _, r := range c.Repositories {
		if r.Name == name {
			return r, nil
		}
	}
	p, b, ok := strings.Cut(name, "~")
	if ok && !strings.Contains(b, "~") {
		project, branch := strings.ReplaceAll(p, "+", "/"), strings.ReplaceAll(b, "+", "/")
		if stageNameRE.MatchString(project) && !strings.Contains(project, "..") && checkBranchForPath(branch) == nil {
			return c.defaultRelease(project, branch), nil
		}
	}
	return releaseRepoConfig{}, fmt.Errorf("release repository %q: not configured (releases.repositories), nor a project~branch", name)
}

// releaseDir is where the repository's format f lives:
// DATA-DIR/releases/<name>/<format>.
func releaseDir(dataDir, name, f string) string {
	return filepath.Join(dataDir, "releases", name, f)
}
