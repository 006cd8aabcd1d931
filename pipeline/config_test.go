package pipeline

import (
	"strings"
	"testing"
)

const sampleConfig = `
- sluice:
    zuul-url: https://sluice.example.org/p
- pipeline:
    name: check
    manager: independent
    trigger:
      gerrit:
        - event: patchset-created
        - event: comment-added
          comment: (?i)^(Patch Set [0-9]+:)?( [\w\\+-]*)*(\n\n)?\s*recheck
    require:
      gerrit:
        open: true
        current-patchset: true
    success:
      gerrit:
        Verified: 1
    failure:
      gerrit:
        Verified: -1
- pipeline:
    name: gate
    manager: dependent
    trigger:
      gerrit:
        - event: comment-added
          approval:
            - Workflow: 1
    require:
      gerrit:
        open: true
        current-patchset: true
        approval:
          - Code-Review: 2
          - Workflow: 1
    start:
      gerrit:
        Verified: 0
    success:
      gerrit:
        Verified: 2
        submit: true
    failure:
      gerrit:
        Verified: -2
    window: 10
    window-decrease-type: linear
    window-decrease-factor: 1
- pipeline:
    name: post
    manager: supercedent
    trigger:
      gerrit:
        - event: [ref-updated, change-merged]
- project:
    name: packages/hello
    queue: integrated
    formats: [deb]
    stages: [install]
`

func TestParseConfig(t *testing.T) {
	t.Parallel()
	c, err := ParseConfig(strings.NewReader(sampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	g := c.pipeline("gate")
	if *g.Window != 10 || *g.WindowFloor != 3 || *g.WindowIncreaseType != Linear || *g.WindowIncreaseFactor != 1 ||
		*g.WindowDecreaseType != Linear || *g.WindowDecreaseFactor != 1 {
		t.Errorf("gate window settings: %d %d %s %d %s %d", *g.Window, *g.WindowFloor, *g.WindowIncreaseType,
			*g.WindowIncreaseFactor, *g.WindowDecreaseType, *g.WindowDecreaseFactor)
	}
	if v, submit := g.Success.Votes(); v["Verified"] != 2 || !submit {
		t.Errorf("gate success = %v submit %v", v, submit)
	}
	if v, _ := g.MergeFailure.Votes(); v["Verified"] != -2 {
		t.Errorf("gate merge-failure defaults to failure, got %v", v)
	}
	p := c.project("packages/hello")
	if p.Queue != "integrated" || len(p.Formats) != 1 || len(p.Stages) != 1 || p.Attempts != 3 {
		t.Errorf("project = %+v", p)
	}
	if c.ZuulURL != "https://sluice.example.org/p" {
		t.Errorf("zuul-url = %q", c.ZuulURL)
	}
	// The sample is the default config, but for the window and the project.
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
}

func TestParseConfigErrors(t *testing.T) {
	t.Parallel()
	base := "- pipeline:\n    name: gate\n    manager: dependent\n    trigger:\n      gerrit:\n        - event: comment-added\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown field", base + "    windw: 3\n", "windw"},
		{"unknown manager", strings.Replace(base, "dependent", "serial", 1), "manager"},
		{"unknown event", strings.Replace(base, "comment-added", "comment-edited", 1), "trigger.gerrit[0].event"},
		{"bad comment regexp", base + "          comment: '(['\n", "trigger.gerrit[0].comment"},
		{"bad window type", base + "    window-increase-type: quadratic\n", "window-increase-type"},
		{"floor zero", base + "    window-floor: 0\n", "window-floor"},
		{"ceiling below floor", base + "    window-ceiling: 2\n", "window-ceiling"},
		{"bad vote", base + "    success:\n      gerrit:\n        Verified: lots\n", "success.gerrit.Verified"},
		{"submit not bool", base + "    success:\n      gerrit:\n        submit: 1\n", "success.gerrit.submit"},
		{"no trigger", "- pipeline:\n    name: x\n    manager: independent\n", "trigger.gerrit"},
		{"bad project", "- project:\n    name: ../etc\n" + base, "projects[0]"},
		{"bad format", "- project:\n    name: p\n    formats: [apk]\n" + base, "formats"},
		{"bad stage", "- project:\n    name: p\n    stages: [fuzz]\n" + base, "stages"},
		{"two kinds in one entry", "- project:\n    name: p\n  pipeline:\n    name: q\n", "exactly one"},
		{"duplicate pipeline", base + base, "defined twice"},
		{"no pipelines", "[]", "no pipelines"},
		{"not yaml", "- pipeline: [", "decode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseConfig(strings.NewReader(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add(sampleConfig)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConfig(strings.NewReader(s))
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed config does not validate: %v", err)
		}
		if _, err := NewScheduler(c, nil, "fuzz"); err != nil {
			t.Fatalf("parsed config rejected by the scheduler: %v", err)
		}
	})
}
