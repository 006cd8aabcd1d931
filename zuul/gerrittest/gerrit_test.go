package gerrittest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/zuul"
	"github.com/sluice-ci/sluice/zuul/gerrittest"
)

// The event shapes of Gerrit's Documentation/cmd-stream-events.txt and
// json.txt, written from the documents, not from the fake: decoding with
// DisallowUnknownFields proves that the fake sends nothing else, and the
// checks below that it sends what the documents name.
type (
	docAccount struct {
		Name     string `json:"name"`
		Email    string `json:"email"`
		Username string `json:"username"`
	}
	docApproval struct {
		Type        string      `json:"type"`
		Description string      `json:"description"`
		Value       string      `json:"value"`
		OldValue    *string     `json:"oldValue"`
		GrantedOn   int64       `json:"grantedOn"`
		By          *docAccount `json:"by"`
	}
	docPatchSet struct {
		Number    int           `json:"number"`
		Revision  string        `json:"revision"`
		Parents   []string      `json:"parents"`
		Ref       string        `json:"ref"`
		Uploader  *docAccount   `json:"uploader"`
		CreatedOn int64         `json:"createdOn"`
		Author    *docAccount   `json:"author"`
		Kind      string        `json:"kind"`
		Approvals []docApproval `json:"approvals"`
		Files     []struct {
			File    string `json:"file"`
			FileOld string `json:"fileOld"`
			Type    string `json:"type"`
		} `json:"files"`
	}
	docDependency struct {
		ID                string `json:"id"`
		Number            int    `json:"number"`
		Revision          string `json:"revision"`
		Ref               string `json:"ref"`
		IsCurrentPatchSet bool   `json:"isCurrentPatchSet"`
	}
	docChange struct {
		Project         string          `json:"project"`
		Branch          string          `json:"branch"`
		Topic           string          `json:"topic"`
		ID              string          `json:"id"`
		Number          int             `json:"number"`
		Subject         string          `json:"subject"`
		Owner           *docAccount     `json:"owner"`
		URL             string          `json:"url"`
		CommitMessage   string          `json:"commitMessage"`
		CreatedOn       int64           `json:"createdOn"`
		LastUpdated     int64           `json:"lastUpdated"`
		Open            *bool           `json:"open"`
		Status          string          `json:"status"`
		Comments        []docMessage    `json:"comments"`
		CurrentPatchSet *docPatchSet    `json:"currentPatchSet"`
		PatchSets       []docPatchSet   `json:"patchSets"`
		DependsOn       []docDependency `json:"dependsOn"`
		NeededBy        []docDependency `json:"neededBy"`
		SubmitRecords   []struct {
			Status string `json:"status"`
			Labels []struct {
				Label  string      `json:"label"`
				Status string      `json:"status"`
				By     *docAccount `json:"by"`
			} `json:"labels"`
		} `json:"submitRecords"`
	}
	docMessage struct {
		Timestamp int64       `json:"timestamp"`
		Reviewer  *docAccount `json:"reviewer"`
		Message   string      `json:"message"`
	}
	docEvent struct {
		Type      string        `json:"type"`
		Change    *docChange    `json:"change"`
		PatchSet  *docPatchSet  `json:"patchSet"`
		Uploader  *docAccount   `json:"uploader"`
		Author    *docAccount   `json:"author"`
		Approvals []docApproval `json:"approvals"`
		Comment   string        `json:"comment"`
		Submitter *docAccount   `json:"submitter"`
		NewRev    string        `json:"newRev"`
		Abandoner *docAccount   `json:"abandoner"`
		Reason    string        `json:"reason"`
		RefUpdate *struct {
			OldRev  string `json:"oldRev"`
			NewRev  string `json:"newRev"`
			RefName string `json:"refName"`
			Project string `json:"project"`
		} `json:"refUpdate"`
		// Gerrit 3 adds these to change events.
		Project   string `json:"project"`
		RefName   string `json:"refName"`
		ChangeKey *struct {
			ID string `json:"id"`
		} `json:"changeKey"`
		EventCreatedOn int64 `json:"eventCreatedOn"`
	}
)

func decodeStrict[T any](t *testing.T, line []byte) T {
	t.Helper()
	var v T
	d := json.NewDecoder(bytes.NewReader(line))
	d.DisallowUnknownFields()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", line, err)
	}
	if bytes.ContainsAny(line, "\n") {
		t.Fatalf("event line holds a newline: %q", line)
	}
	return v
}

var fixed = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

func fixedClock() time.Time { return fixed }

var sha1Re = regexp.MustCompile(`^[0-9a-f]{40}$`)

func reviewer(name string) zuul.Account {
	return zuul.Account{Name: name, Email: name + "@example.org", Username: name}
}

// TestEventsHaveTheDocumentedShape walks a change through upload, votes,
// a push, submit and an abandon, and checks every event line against
// the documents.
func TestEventsHaveTheDocumentedShape(t *testing.T) {
	t.Parallel()
	g := gerrittest.NewGerritWith(t, gerrittest.Options{Now: fixedClock})
	base := g.CreateProject("org/pkg", map[string]string{"README": "hello\n"})
	events, stop := g.Subscribe()
	defer stop()

	c := g.Upload("org/pkg", "master", map[string]string{"pkg.spec": "Name: pkg\n"}, "Add the spec\n\nDepends-On: https://review.example.org/1")
	if !sha1Re.MatchString(c.Commit) || c.Ref != zuul.ChangeRef(c.Number, 1) || c.Patchset != 1 {
		t.Fatalf("upload gave %+v", c)
	}
	if !strings.HasSuffix(c.Message, "Depends-On: https://review.example.org/1\nChange-Id: "+c.ChangeID+"\n") {
		t.Errorf("Change-Id not added to the footers:\n%s", c.Message)
	}
	if got := g.File("org/pkg", c.Ref, "pkg.spec"); got != "Name: pkg\n" {
		t.Errorf("the change ref holds %q", got)
	}
	if got := g.File("org/pkg", c.Commit, "README"); got != "hello\n" {
		t.Errorf("the parent's files are lost: %q", got)
	}
	if !slices.Equal(c.Parents, []string{base}) {
		t.Errorf("parents %v, want %v", c.Parents, base)
	}
	g.Review(c, reviewer("alice"), map[string]int{"Code-Review": 2}, "LGTM")
	g.Review(c, g.Account(), map[string]int{"Verified": 2}, "")
	pushed := g.PushBranch("org/pkg", "master", map[string]string{"NEWS": "x\n"}, "Direct push\n")
	if err := g.Submit(c.Number); err != nil {
		t.Fatal(err)
	}
	tip := g.BranchTip("org/pkg", "master")
	other := g.Upload("org/pkg", "master", map[string]string{"b": "b\n"}, "Another")
	g.Abandon(other.Number, reviewer("alice"), "not needed")

	want := []string{"patchset-created", "comment-added", "comment-added", "ref-updated", "ref-updated", "change-merged", "patchset-created", "change-abandoned"}
	var got []docEvent
	for range want {
		select {
		case line := <-events:
			got = append(got, decodeStrict[docEvent](t, line))
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d events", len(got))
		}
	}
	for i, e := range got {
		if e.Type != want[i] {
			t.Fatalf("event %d is %s, want %s", i, e.Type, want[i])
		}
		if e.EventCreatedOn != fixed.Unix() {
			t.Errorf("event %d: eventCreatedOn %d", i, e.EventCreatedOn)
		}
		if e.Type == "ref-updated" {
			if e.RefUpdate == nil || e.Submitter == nil || e.Change != nil {
				t.Errorf("ref-updated %d: %+v", i, e)
			}
			continue
		}
		ch, ps := e.Change, e.PatchSet
		if ch == nil || ps == nil || ch.Project != "org/pkg" || ch.Branch != "master" || ch.Owner == nil ||
			!strings.HasPrefix(ch.URL, g.URL+"/c/org/pkg/+/") || ch.CreatedOn != fixed.Unix() || ch.Subject == "" ||
			ch.CommitMessage == "" || !sha1Re.MatchString(ps.Revision) || ps.Ref != zuul.ChangeRef(ch.Number, ps.Number) ||
			ps.Uploader == nil || ps.Author == nil || len(ps.Parents) != 1 || ps.Kind != "REWORK" {
			t.Errorf("event %d (%s): change or patchSet incomplete: %+v %+v", i, e.Type, ch, ps)
		}
		if e.Project != ch.Project || e.RefName != "refs/heads/master" || e.ChangeKey == nil || e.ChangeKey.ID != ch.ID {
			t.Errorf("event %d: project/refName/changeKey %q %q %+v", i, e.Project, e.RefName, e.ChangeKey)
		}
	}
	if e := got[0]; e.Uploader == nil || e.Uploader.Username != "owner" || e.Change.Status != "NEW" || e.Change.ID != c.ChangeID || e.Change.Number != c.Number {
		t.Errorf("patchset-created: %+v", e)
	}
	ca := got[1]
	if ca.Author == nil || ca.Author.Username != "alice" || ca.Comment != "Patch Set 1: Code-Review+2\n\nLGTM" {
		t.Errorf("comment-added: author %+v comment %q", ca.Author, ca.Comment)
	}
	// Every label, with the author's value; oldValue only where it changed.
	wantApprovals := map[string][2]string{"Code-Review": {"2", "0"}, "Verified": {"0", ""}, "Workflow": {"0", ""}}
	if len(ca.Approvals) != len(wantApprovals) {
		t.Errorf("approvals %+v", ca.Approvals)
	}
	for _, a := range ca.Approvals {
		w := wantApprovals[a.Type]
		old := ""
		if a.OldValue != nil {
			old = *a.OldValue
		}
		if a.Value != w[0] || old != w[1] || a.Description == "" {
			t.Errorf("approval %s: value %q old %q, want %q %q", a.Type, a.Value, old, w[0], w[1])
		}
	}
	if ru := got[3].RefUpdate; ru.RefName != "refs/heads/master" || ru.OldRev != base || ru.NewRev != pushed || ru.Project != "org/pkg" {
		t.Errorf("ref-updated of the push: %+v", ru)
	}
	if ru := got[4].RefUpdate; ru.OldRev != pushed || ru.NewRev != tip {
		t.Errorf("ref-updated of the submit: %+v (tip %s)", ru, tip)
	}
	if m := got[5]; m.NewRev != tip || m.Submitter == nil || m.Submitter.Username != g.User || m.Change.Status != "MERGED" {
		t.Errorf("change-merged: %+v", m)
	}
	if a := got[7]; a.Abandoner == nil || a.Reason != "not needed" || a.Change.Status != "ABANDONED" {
		t.Errorf("change-abandoned: %+v", a)
	}
	if n := len(g.Events()); n != len(want) {
		t.Errorf("Events() has %d lines, want %d", n, len(want))
	}
}

// TestSubmit covers merge-if-necessary: fast-forward, merge commit, path
// conflict, missing and blocking votes, dependencies.
func TestSubmit(t *testing.T) {
	t.Parallel()
	approve := func(g *gerrittest.Gerrit, c *zuul.Change) {
		g.Review(c, reviewer("core"), map[string]int{"Code-Review": 2, "Verified": 2}, "")
	}
	tests := []struct {
		name string
		// run sets up and submits, returning the submit's error and the
		// commit that must be in the branch after (when no error).
		run     func(t *testing.T, g *gerrittest.Gerrit) (error, string)
		wantErr string
		// merge says the new tip is a merge commit.
		merge bool
	}{
		{
			name: "fast-forward",
			run: func(t *testing.T, g *gerrittest.Gerrit) (error, string) {
				c := g.Upload("p", "master", map[string]string{"a": "A\n"}, "A")
				approve(g, c)
				return g.Submit(c.Number), c.Commit
			},
		},
		{
			name: "merge commit when the branch moved",
			run: func(t *testing.T, g *gerrittest.Gerrit) (error, string) {
				c := g.Upload("p", "master", map[string]string{"a": "A\n"}, "A")
				g.PushBranch("p", "master", map[string]string{"b": "B\n"}, "B")
				approve(g, c)
				return g.Submit(c.Number), c.Commit
			},
			merge: true,
		},
		{
			name: "path conflict",
			run: func(t *testing.T, g *gerrittest.Gerrit) (error, string) {
				c := g.Upload("p", "master", map[string]string{"README": "mine\n"}, "A")
				g.PushBranch("p", "master", map[string]string{"README": "theirs\n"}, "B")
				approve(g, c)
				return g.Submit(c.Number), ""
			},
			wantErr: "409 Failed to submit 1 change due to the following problems:\nChange 1: Change could not be merged due to a path conflict. Please rebase the change locally and upload the rebased commit for review.",
		},
		{
			name: "missing vote",
			run: func(t *testing.T, g *gerrittest.Gerrit) (error, string) {
				c := g.Upload("p", "master", map[string]string{"a": "A\n"}, "A")
				g.Review(c, reviewer("core"), map[string]int{"Code-Review": 2, "Verified": 1}, "")
				return g.Submit(c.Number), ""
			},
			wantErr: "409 Failed to submit 1 change due to the following problems:\nChange 1: submit requirement 'Verified' is unsatisfied.",
		},
		{
			name: "a veto blocks",
			run: func(t *testing.T, g *gerrittest.Gerrit) (error, string) {
				c := g.Upload("p", "master", map[string]string{"a": "A\n"}, "A")
				approve(g, c)
				g.Review(c, reviewer("other"), map[string]int{"Code-Review": -2}, "no")
				return g.Submit(c.Number), ""
			},
			wantErr: "submit requirement 'Code-Review' is unsatisfied.",
		},
		{
			name: "votes on an older patchset do not count",
			run: func(t *testing.T, g *gerrittest.Gerrit) (error, string) {
				c := g.Upload("p", "master", map[string]string{"a": "A\n"}, "A")
				approve(g, c)
				g.UploadPatchset(gerrittest.Patchset{Change: c.Number, Files: map[string]string{"a": "A2\n"}, Message: c.Message})
				return g.Submit(c.Number), ""
			},
			wantErr: "Change 1: submit requirement 'Code-Review' is unsatisfied.\nChange 1: submit requirement 'Verified' is unsatisfied.",
		},
		{
			name: "a dependency is merged with its child",
			run: func(t *testing.T, g *gerrittest.Gerrit) (error, string) {
				a := g.Upload("p", "master", map[string]string{"a": "A\n"}, "A")
				b := g.UploadPatchset(gerrittest.Patchset{Project: "p", Branch: "master", Parent: a.Commit, Files: map[string]string{"b": "B\n"}, Message: "B"})
				approve(g, a)
				approve(g, b)
				err := g.Submit(b.Number)
				if err == nil && (g.Change(a.Number).Status != "MERGED" || g.Change(b.Number).Status != "MERGED") {
					t.Errorf("statuses %s %s", g.Change(a.Number).Status, g.Change(b.Number).Status)
				}
				return err, b.Commit
			},
		},
		{
			name: "a dependency not approved",
			run: func(t *testing.T, g *gerrittest.Gerrit) (error, string) {
				a := g.Upload("p", "master", map[string]string{"a": "A\n"}, "A")
				b := g.UploadPatchset(gerrittest.Patchset{Project: "p", Branch: "master", Parent: a.Commit, Files: map[string]string{"b": "B\n"}, Message: "B"})
				approve(g, b)
				return g.Submit(b.Number), ""
			},
			wantErr: "409 Failed to submit 2 changes due to the following problems:\nChange 1: submit requirement 'Code-Review' is unsatisfied.",
		},
		{
			name: "a dependency on an outdated patchset",
			run: func(t *testing.T, g *gerrittest.Gerrit) (error, string) {
				a := g.Upload("p", "master", map[string]string{"a": "A\n"}, "A")
				b := g.UploadPatchset(gerrittest.Patchset{Project: "p", Branch: "master", Parent: a.Commit, Files: map[string]string{"b": "B\n"}, Message: "B"})
				g.UploadPatchset(gerrittest.Patchset{Change: a.Number, Files: map[string]string{"a": "A2\n"}, Message: a.Message})
				approve(g, b)
				return g.Submit(b.Number), ""
			},
			wantErr: "Depends on change that was not submitted.",
		},
		{
			name: "merged already",
			run: func(t *testing.T, g *gerrittest.Gerrit) (error, string) {
				c := g.Upload("p", "master", map[string]string{"a": "A\n"}, "A")
				approve(g, c)
				if err := g.Submit(c.Number); err != nil {
					t.Fatal(err)
				}
				return g.Submit(c.Number), ""
			},
			wantErr: "409 change is merged",
		},
		{
			name: "abandoned",
			run: func(t *testing.T, g *gerrittest.Gerrit) (error, string) {
				c := g.Upload("p", "master", map[string]string{"a": "A\n"}, "A")
				approve(g, c)
				g.Abandon(c.Number, reviewer("core"), "")
				return g.Submit(c.Number), ""
			},
			wantErr: "409 change is abandoned",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := gerrittest.NewGerrit(t)
			g.CreateProject("p", map[string]string{"README": "base\n"})
			before := g.BranchTip("p", "master")
			err, want := tt.run(t, g)
			after := g.BranchTip("p", "master")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if after == before {
				t.Fatal("the branch did not move")
			}
			parents := strings.Fields(gitOut(t, g, "p", "rev-list", "--parents", "-n", "1", after))[1:]
			if tt.merge {
				if len(parents) != 2 || parents[1] != want {
					t.Errorf("tip %s has parents %v, want a merge of %s", after, parents, want)
				}
				if !strings.HasPrefix(gitOut(t, g, "p", "log", "-1", "--format=%s", after), `Merge "A"`) {
					t.Errorf("merge commit message: %s", gitOut(t, g, "p", "log", "-1", "--format=%B", after))
				}
			} else if after != want {
				t.Errorf("tip %s, want the change's commit %s (fast-forward)", after, want)
			}
		})
	}
}

// gitOut runs git on the project's repository, as a user of the fake
// would through GitDir.
func gitOut(t *testing.T, g *gerrittest.Gerrit, project string, args ...string) string {
	t.Helper()
	return gerrittest.Git(t, g.GitDir(project), args...)
}

func TestQueryJSON(t *testing.T) {
	t.Parallel()
	g := gerrittest.NewGerrit(t)
	g.CreateProject("p", map[string]string{"README": "base\n"})
	g.CreateProject("q", map[string]string{"README": "base\n"})
	a := g.Upload("p", "master", map[string]string{"a": "A\n"}, "A")
	b := g.UploadPatchset(gerrittest.Patchset{Project: "p", Branch: "master", Parent: a.Commit, Files: map[string]string{"b": "B\n"}, Message: "B"})
	g.Review(b, reviewer("core"), map[string]int{"Code-Review": 2}, "ok")
	other := g.Upload("q", "master", map[string]string{"c": "C\n"}, "C")
	g.Abandon(other.Number, reviewer("core"), "")

	type stats struct {
		Type        string `json:"type"`
		RowCount    int    `json:"rowCount"`
		RunTimeMS   int64  `json:"runTimeMilliseconds"`
		MoreChanges bool   `json:"moreChanges"`
	}
	run := func(args ...string) ([]docChange, stats) {
		t.Helper()
		lines, err := g.QueryJSON(args)
		if err != nil {
			t.Fatalf("QueryJSON(%q): %v", args, err)
		}
		var cs []docChange
		for _, l := range lines[:len(lines)-1] {
			cs = append(cs, decodeStrict[docChange](t, l))
		}
		return cs, decodeStrict[stats](t, lines[len(lines)-1])
	}

	cs, st := run("gerrit", "query", "--format", "json", "--current-patch-set", "--all-approvals", "--dependencies",
		"--submit-records", "--commit-message", "--comments", "--files", "change:"+itoa(b.Number))
	if len(cs) != 1 || st.Type != "stats" || st.RowCount != 1 || st.MoreChanges {
		t.Fatalf("got %+v %+v", cs, st)
	}
	c := cs[0]
	if c.Number != b.Number || c.Open == nil || !*c.Open || c.CommitMessage != b.Message || c.CurrentPatchSet == nil ||
		c.CurrentPatchSet.Revision != b.Commit || len(c.PatchSets) != 1 || len(c.Comments) != 2 {
		t.Errorf("change: %+v", c)
	}
	if ap := c.CurrentPatchSet.Approvals; len(ap) != 1 || ap[0].Type != "Code-Review" || ap[0].Value != "2" || ap[0].By == nil || ap[0].By.Username != "core" {
		t.Errorf("approvals %+v", ap)
	}
	if len(c.DependsOn) != 1 || c.DependsOn[0].Number != a.Number || !c.DependsOn[0].IsCurrentPatchSet {
		t.Errorf("dependsOn %+v", c.DependsOn)
	}
	if sr := c.SubmitRecords; len(sr) != 1 || sr[0].Status != "NOT_READY" || len(sr[0].Labels) != 2 ||
		sr[0].Labels[0].Status != "OK" || sr[0].Labels[1].Status != "NEED" {
		t.Errorf("submitRecords %+v", sr)
	}
	if f := c.CurrentPatchSet.Files; len(f) != 2 || f[0].File != "/COMMIT_MSG" || f[1].File != "b" || f[1].Type != "ADDED" {
		t.Errorf("files %+v", f)
	}
	ca, _ := run("--format=JSON", "--dependencies", "change:"+a.ChangeID)
	if len(ca) != 1 || len(ca[0].NeededBy) != 1 || ca[0].NeededBy[0].Number != b.Number || ca[0].CommitMessage != "" {
		t.Errorf("neededBy of %d: %+v", a.Number, ca)
	}

	tests := []struct {
		query string
		want  []int
	}{
		{"status:open", []int{b.Number, a.Number}},
		{"status:open project:p", []int{b.Number, a.Number}},
		{"project:q", []int{other.Number}},
		{"status:abandoned", []int{other.Number}},
		{"is:closed", []int{other.Number}},
		{"-status:open", []int{other.Number}},
		{"status:open -age:1h", []int{b.Number, a.Number}},
		{"age:1h", nil},
		{"project:p limit:1", []int{b.Number}},
		{"branch:master commit:" + a.Commit[:8], []int{a.Number}},
	}
	for _, tt := range tests {
		cs, st := run("--format", "json", tt.query)
		var got []int
		for _, c := range cs {
			got = append(got, c.Number)
		}
		if !slices.Equal(got, tt.want) || st.RowCount != len(tt.want) {
			t.Errorf("%q: %v (rowCount %d), want %v", tt.query, got, st.RowCount, tt.want)
		}
		if tt.query == "project:p limit:1" && !st.MoreChanges {
			t.Errorf("%q: moreChanges false", tt.query)
		}
	}
	for _, bad := range [][]string{
		{"--format", "text", "status:open"},
		{"status:open"},
		{"--format", "json", "--frobnicate", "status:open"},
		{"--format", "json", "owner:self"},
		{"--format", "json"},
		{"--format", "json", "age:soon"},
	} {
		if _, err := g.QueryJSON(bad); err == nil {
			t.Errorf("QueryJSON(%q) did not fail", bad)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestSubscribe checks that a subscriber that reads late gets every
// event in order, that a cancelled one has its channel closed, and that
// neither holds the fake back.
func TestSubscribe(t *testing.T) {
	t.Parallel()
	g := gerrittest.NewGerrit(t)
	g.CreateProject("p", map[string]string{"README": "base\n"})
	late, stopLate := g.Subscribe()
	defer stopLate()
	gone, stopGone := g.Subscribe()
	stopGone()
	if _, ok := <-gone; ok {
		t.Fatal("a cancelled subscription's channel is open")
	}
	var numbers []int
	for range 5 {
		numbers = append(numbers, g.Upload("p", "master", map[string]string{"a": "A\n"}, "A").Number)
	}
	for i, n := range numbers {
		e := decodeStrict[docEvent](t, <-late)
		if e.Type != "patchset-created" || e.Change.Number != n {
			t.Fatalf("event %d: %s of %d, want change %d", i, e.Type, e.Change.Number, n)
		}
	}
	stopLate()
	if _, ok := <-late; ok {
		t.Fatal("channel open after cancel")
	}
}

// TestREST checks the protocol details a client meets: the XSSI line,
// basic auth under /a/, anonymous reads, Gerrit's errors and change ids.
func TestREST(t *testing.T) {
	t.Parallel()
	g := gerrittest.NewGerrit(t)
	g.CreateProject("org/pkg", map[string]string{"README": "base\n"})
	c := g.Upload("org/pkg", "master", map[string]string{"a": "A\n"}, "A")
	tests := []struct {
		name, method, path string
		auth               bool
		body               string
		status             int
		want               string // a prefix of the body
	}{
		{"get by number", "GET", "/a/changes/" + itoa(c.Number), true, "", 200, ")]}'\n{"},
		{"get anonymous", "GET", "/changes/" + itoa(c.Number), false, "", 200, ")]}'\n{"},
		{"get by project~number", "GET", "/a/changes/org%2Fpkg~" + itoa(c.Number) + "?o=CURRENT_REVISION", true, "", 200, ")]}'\n{"},
		{"get by triplet", "GET", "/a/changes/org%2Fpkg~master~" + c.ChangeID, true, "", 200, ")]}'\n{"},
		{"get by Change-Id", "GET", "/a/changes/" + c.ChangeID + "/detail", true, "", 200, ")]}'\n{"},
		{"no such change", "GET", "/a/changes/999", true, "", 404, "Not found: 999"},
		{"wrong project", "GET", "/a/changes/other~" + itoa(c.Number), true, "", 404, "Not found"},
		{"bad option", "GET", "/a/changes/?q=status:open&o=NOPE", true, "", 400, `"NOPE" is not a valid value for "-o"`},
		{"no password", "GET", "/a/changes/?q=status:open", false, "", 401, "Unauthorized"},
		{"write without /a/", "POST", "/changes/" + itoa(c.Number) + "/submit", false, "{}", 403, "Authentication required"},
		{"unknown label", "POST", "/a/changes/" + itoa(c.Number) + "/revisions/current/review", true, `{"labels":{"Nope":1}}`, 400, `label "Nope" is not a configured label`},
		{"value out of range", "POST", "/a/changes/" + itoa(c.Number) + "/revisions/1/review", true, `{"labels":{"Workflow":2}}`, 400, `label "Workflow": 2 is not a valid value`},
		{"bad JSON", "POST", "/a/changes/" + itoa(c.Number) + "/revisions/1/review", true, `{"labels":`, 400, "Invalid json"},
		{"no such revision", "POST", "/a/changes/" + itoa(c.Number) + "/revisions/7/review", true, `{}`, 404, "Not found: 7"},
		{"submit not approved", "POST", "/a/changes/" + itoa(c.Number) + "/submit", true, `{}`, 409, "Failed to submit 1 change due to the following problems:\n"},
		{"review by commit", "POST", "/a/changes/" + itoa(c.Number) + "/revisions/" + c.Commit + "/review", true, `{"message":"hi","labels":{"Verified":1},"tag":"autogenerated:x"}`, 200, ")]}'\n{\"labels\":{\"Verified\":1}}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, g.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.auth {
				req.SetBasicAuth(g.User, g.Password)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.HasPrefix(string(body), tt.want) {
				t.Fatalf("%d %q, want %d %q", resp.StatusCode, body, tt.status, tt.want)
			}
			ct := resp.Header.Get("Content-Type")
			if (tt.status == 200) != strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			if tt.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	rs := g.Reviews(c.Number)
	if len(rs) != 1 || rs[0].Labels["Verified"] != 1 || rs[0].Tag != "autogenerated:x" || rs[0].Message != "hi" || rs[0].By.Username != g.User {
		t.Errorf("reviews %+v", rs)
	}
}

func TestFaultHooks(t *testing.T) {
	t.Parallel()
	g := gerrittest.NewGerrit(t)
	g.CreateProject("p", map[string]string{"README": "base\n"})
	c := g.Upload("p", "master", map[string]string{"a": "A\n"}, "A")
	g.Review(c, reviewer("core"), map[string]int{"Code-Review": 2, "Verified": 2}, "")
	before := g.BranchTip("p", "master")
	g.FailNextSubmit("blocked by a test")
	if err := g.Submit(c.Number); err == nil || !strings.Contains(err.Error(), "409 blocked by a test") {
		t.Fatalf("FailNextSubmit: %v", err)
	}
	g.IgnoreNextSubmit()
	if err := g.Submit(c.Number); err != nil {
		t.Fatalf("IgnoreNextSubmit: %v", err)
	}
	if g.BranchTip("p", "master") != before || g.Change(c.Number).Status != "NEW" {
		t.Fatal("a hooked submit merged")
	}
	if err := g.Submit(c.Number); err != nil {
		t.Fatalf("the hooks outlived one submit: %v", err)
	}
	if g.BranchTip("p", "master") != c.Commit {
		t.Fatal("not merged")
	}
}

var _ gerrittest.StreamBackend = (*gerrittest.Gerrit)(nil)

// TestParsersOfPackageZuulReadTheFake checks the fake against package
// zuul's parsers: every event line and the catch-up query output go
// through zuul.ParseEvent and zuul.ParseQuery into the change the fake
// holds.
func TestParsersOfPackageZuulReadTheFake(t *testing.T) {
	t.Parallel()
	g := gerrittest.NewGerrit(t)
	g.CreateProject("org/pkg", map[string]string{"README": "base\n"})
	c := g.Upload("org/pkg", "master", map[string]string{"a": "A\n"}, "A\n\nDepends-On: https://review.example.org/9")
	g.Review(c, reviewer("core"), map[string]int{"Code-Review": 2, "Verified": 2}, "recheck")
	if err := g.Submit(c.Number); err != nil {
		t.Fatal(err)
	}
	d := g.Upload("org/pkg", "master", map[string]string{"b": "B\n"}, "B")
	g.Abandon(d.Number, reviewer("core"), "gone")
	e := g.Upload("org/pkg", "master", map[string]string{"e": "E\n"}, "E")
	g.Review(e, reviewer("core"), map[string]int{"Verified": -1}, "")

	wantTypes := []zuul.EventType{zuul.PatchsetCreated, zuul.CommentAdded, zuul.RefUpdated, zuul.ChangeMerged,
		zuul.PatchsetCreated, zuul.ChangeAbandoned, zuul.PatchsetCreated, zuul.CommentAdded}
	lines := g.Events()
	if len(lines) != len(wantTypes) {
		t.Fatalf("%d events", len(lines))
	}
	for i, line := range lines {
		ev, err := zuul.ParseEvent(line)
		if err != nil {
			t.Fatalf("event %d: %v\n%s", i, err, line)
		}
		if ev.Type != wantTypes[i] || ev.Project != "org/pkg" {
			t.Errorf("event %d: %s of %s", i, ev.Type, ev.Project)
		}
		if ev.Change != nil {
			if ev.Change.Ref != zuul.ChangeRef(ev.Change.Number, ev.Change.Patchset) || ev.Change.ChangeID == "" || ev.Branch != "master" {
				t.Errorf("event %d: change %+v", i, ev.Change)
			}
		}
	}
	if ev, _ := zuul.ParseEvent(lines[1]); ev.Comment != "Patch Set 1: Code-Review+2 Verified+2\n\nrecheck" || len(ev.Approvals) != 3 {
		t.Errorf("comment-added: %q %+v", ev.Comment, ev.Approvals)
	}
	if ev, _ := zuul.ParseEvent(lines[3]); ev.NewRev != g.BranchTip("org/pkg", "master") {
		t.Errorf("change-merged newRev %s", ev.NewRev)
	}

	out, err := g.QueryJSON(zuul.CatchUpArgs(time.Hour, 0))
	if err != nil {
		t.Fatal(err)
	}
	cs, st, err := zuul.ParseQuery(bytes.NewReader(append(bytes.Join(out, []byte("\n")), '\n')))
	if err != nil {
		t.Fatal(err)
	}
	// No --commit-message in the catch-up arguments: Gerrit, and the
	// fake, leave the message out.
	if len(cs) != 1 || st.RowCount != 1 || cs[0].Number != e.Number || cs[0].Commit != e.Commit {
		t.Fatalf("catch-up query: %+v %+v", cs, st)
	}
	if v, ok := cs[0].Vote("Verified"); !ok || v != -1 {
		t.Errorf("Verified %d %v", v, ok)
	}
}
