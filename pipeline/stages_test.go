package pipeline

import (
	"slices"
	"testing"
)

func TestNewRunsMirror(t *testing.T) {
	t.Parallel()
	names := func(runs []*StageRun) (out []string) {
		for _, r := range runs {
			out = append(out, r.Stage)
		}
		return out
	}
	p := Project{Name: "p", Formats: []string{"deb"}, Stages: []string{StageLint, StageMirror}, Attempts: 1}
	post := newRuns(p, true)
	if got, want := names(post), []string{"build.deb", StageRelease, StageMirror}; !slices.Equal(got, want) {
		t.Fatalf("post runs %v, want %v", got, want)
	}
	if m := post[2]; !slices.Equal(m.Needs, []string{StageRelease}) {
		t.Errorf("mirror needs %v, want [release]", m.Needs)
	}
	if got, want := names(newRuns(p, false)), []string{"build.deb", StagePublish, StageLint}; !slices.Equal(got, want) {
		t.Errorf("check runs %v, want %v", got, want)
	}
	p.Stages = []string{StageLint}
	if got, want := names(newRuns(p, true)), []string{"build.deb", StageRelease}; !slices.Equal(got, want) {
		t.Errorf("post runs without mirror %v, want %v", got, want)
	}
}
