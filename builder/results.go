package builder

import (
	"strconv"

	"github.com/sluice-ci/sluice/results"
)

// Stage is the stage name of builds; their results' testcase is
// "sluice." + Stage.
const Stage = "build"

// Result item types (the data key "type") of the results a build makes.
const (
	// ItemChange: item is <project>~<change>~<patchset>, a test build.
	ItemChange = "sluice_change"
	// ItemCommit: item is <project>~<commit>, a build of a branch or tag
	// (change 0), as the post pipeline makes.
	ItemCommit = "sluice_commit"
	// ItemRPM: item is the package's NEVRA, name-[epoch:]version-release.arch.
	ItemRPM = "rpm"
	// ItemDeb: item is name_[epoch:]version_arch.
	ItemDeb = "deb"
)

// LogURL returns the URL of a stored artifact, or "" when there is none
// to give (no server to read artifacts from).
type LogURL func(a Artifact) string

// Results are the ResultsDB results of a build record, following
// DESIGN.md's conventions: one for the build of the change (or commit) in
// r's format, then one per binary package it made. All are in the
// buildset's group when r names one, and carry the same stage data.
func Results(r *Record, logURL LogURL) []*results.Result {
	base := map[string]string{
		"project": r.Project, "format": r.Format, "stage": Stage, "commit": r.Commit,
		"build_record": r.ID, "duration": strconv.FormatFloat(r.End.Sub(r.Start).Seconds(), 'f', 3, 64),
	}
	if r.Change > 0 {
		base["change"], base["patchset"] = strconv.Itoa(r.Change), strconv.Itoa(r.Patchset)
	}
	if r.Pipeline != "" {
		base["pipeline"] = r.Pipeline
	}
	if r.Buildset != "" {
		base["buildset"] = r.Buildset
	}
	attempt := r.Attempt
	if attempt == 0 {
		attempt = 1
	}
	base["attempt"] = strconv.Itoa(attempt)
	if r.Log.SHA256 != "" {
		base["log_sha256"] = r.Log.SHA256
		if logURL != nil {
			if u := logURL(r.Log); u != "" {
				base["log_url"] = u
			}
		}
	}
	var groups []string
	if r.Buildset != "" {
		groups = []string{r.Buildset}
	}
	mk := func(item, typ string, extra map[string]string) *results.Result {
		data := map[string][]string{"item": {item}, "type": {typ}}
		for k, v := range base {
			data[k] = []string{v}
		}
		for k, v := range extra {
			data[k] = []string{v}
		}
		note := r.Reason
		if len(note) > 1000 {
			note = note[:1000]
		}
		return &results.Result{
			Testcase: results.Testcase{Name: "sluice." + Stage},
			Groups:   groups, Outcome: r.Outcome, Note: note, RefURL: base["log_url"],
			SubmitTime: r.End, Data: data,
		}
	}
	rev := r.Commit
	if rev == "" { // the checkout failed: the ref is all there is
		rev = r.Ref
	}
	item, typ := r.Project+"~"+rev, ItemCommit
	if r.Change > 0 {
		item, typ = r.Project+"~"+strconv.Itoa(r.Change)+"~"+strconv.Itoa(r.Patchset), ItemChange
	}
	out := []*results.Result{mk(item, typ, nil)}
	for _, o := range r.Outputs {
		p := o.Package
		if p == nil {
			continue
		}
		extra := map[string]string{"arch": p.Arch, "sha256": o.SHA256, "package": p.Name}
		switch p.Format {
		case "rpm":
			item, typ = p.Name+"-"+p.EVR()+"."+p.Arch, ItemRPM
		default:
			item, typ = p.Name+"_"+p.EVR()+"_"+p.Arch, ItemDeb
		}
		out = append(out, mk(item, typ, extra))
	}
	return out
}
