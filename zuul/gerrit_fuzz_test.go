package zuul

import (
	"bytes"
	"strings"
	"testing"
)

const fuzzBase = "https://review.example.org/"

// FuzzParseChangeInfo feeds answers of GET changes/{id} to the parser:
// it never panics, and what it accepts holds together; the same object in
// a list parses the same.
func FuzzParseChangeInfo(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := parseChangeInfo(body, fuzzBase)
		list, _, lerr := parseChangeInfos(append(append([]byte("[ "), stripXSSI(body)...), ']'), fuzzBase)
		if err != nil {
			if lerr == nil && len(list) == 1 {
				t.Fatalf("the list parses what the single parser refused (%v)", err)
			}
			return
		}
		switch {
		case c.Number < 1 || c.Patchset < 1:
			t.Fatalf("number %d patchset %d", c.Number, c.Patchset)
		case c.Ref != ChangeRef(c.Number, c.Patchset):
			t.Fatalf("ref %q of %s", c.Ref, c)
		case !restSHA1(c.Commit) || !restChangeID(c.ChangeID):
			t.Fatalf("commit %q change id %q", c.Commit, c.ChangeID)
		case !restProjectName(c.Project) || c.Branch == "" || strings.HasPrefix(c.Branch, "refs/heads/"):
			t.Fatalf("project %q branch %q", c.Project, c.Branch)
		case c.Status != "NEW" && c.Status != "MERGED" && c.Status != "ABANDONED":
			t.Fatalf("status %q", c.Status)
		case strings.ContainsAny(c.Subject, "\r\n"):
			t.Fatalf("subject %q", c.Subject)
		}
		for _, p := range c.Parents {
			if !restSHA1(p) {
				t.Fatalf("parent %q", p)
			}
		}
		for _, a := range c.Approvals {
			if a.Value == 0 || !restLabelName(a.Label) {
				t.Fatalf("approval %+v", a)
			}
		}
		if lerr != nil || len(list) != 1 || list[0].Commit != c.Commit || len(list[0].Approvals) != len(c.Approvals) {
			t.Fatalf("as a list: %v %v", list, lerr)
		}
	})
}

func TestParseChangeInfo(t *testing.T) {
	t.Parallel()
	const ok = `{"project":"org/pkg","branch":"master","change_id":"I8473b95934b5732ac55d26311a706c9c2bde9940","subject":"S","status":"NEW","_number":12345,
"owner":{"_account_id":1,"name":"O","email":"o@example.org","username":"o"},
"labels":{"Verified":{"all":[{"_account_id":2,"username":"ci","value":-1},{"_account_id":3,"value":0}]},"Code-Review":{"all":[{"_account_id":4,"username":"core","value":2}]}},
"current_revision":"674ac754f91e64a0efb8087e59a176484bd534d1",
"revisions":{"674ac754f91e64a0efb8087e59a176484bd534d1":{"_number":2,"ref":"refs/changes/45/12345/2",
"commit":{"parents":[{"commit":"1eee2c9d8f352483781e772f35dc586a69ff5646"}],"subject":"Subject","message":"Subject\n\nBody\n"}}}}`
	c, err := parseChangeInfo([]byte(")]}'\n"+ok), fuzzBase)
	if err != nil {
		t.Fatal(err)
	}
	if c.Number != 12345 || c.Patchset != 2 || c.Subject != "Subject" || c.URL != fuzzBase+"c/org/pkg/+/12345" ||
		len(c.Parents) != 1 || c.Owner.Username != "o" || !c.Current || c.Message != "Subject\n\nBody\n" {
		t.Errorf("parsed %+v", c)
	}
	// Labels in name order, reviewers without a vote left out.
	if len(c.Approvals) != 2 || c.Approvals[0].Label != "Code-Review" || c.Approvals[1].Value != -1 || c.Approvals[1].By.Username != "ci" {
		t.Errorf("approvals %+v", c.Approvals)
	}
	bad := []struct{ name, from, to string }{
		{"no number", `"_number":12345`, `"_number":0`},
		{"project dot-dot", `"project":"org/pkg"`, `"project":"org/../x"`},
		{"branch with space", `"branch":"master"`, `"branch":"a b"`},
		{"change id", `I8473b95934b5732ac55d26311a706c9c2bde9940`, `I847`},
		{"status", `"status":"NEW"`, `"status":"DRAFT"`},
		{"short revision", `"current_revision":"674ac754f91e64a0efb8087e59a176484bd534d1"`, `"current_revision":"674ac754"`},
		{"ref of another change", `refs/changes/45/12345/2`, `refs/changes/45/12346/2`},
		{"revision missing", `"revisions":{"674ac754f91e64a0efb8087e59a176484bd534d1"`, `"revisions":{"774ac754f91e64a0efb8087e59a176484bd534d1"`},
		{"parent", `"commit":"1eee2c9d8f352483781e772f35dc586a69ff5646"`, `"commit":"HEAD"`},
		{"label name", `"Verified":{`, `"Veri fied":{`},
		{"vote range", `"value":2}`, `"value":1000}`},
		{"two-line subject", `"subject":"Subject"`, `"subject":"Sub\nject"`},
		{"no commit", `"commit":{"parents"`, `"kommit":{"parents"`},
	}
	for _, tt := range bad {
		body := strings.Replace(ok, tt.from, tt.to, 1)
		if body == ok {
			t.Fatalf("%s: the edit did not apply", tt.name)
		}
		if _, err := parseChangeInfo([]byte(body), fuzzBase); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
	if _, _, err := parseChangeInfos([]byte(")]}'\n[{}]"), fuzzBase); err == nil {
		t.Error("an empty ChangeInfo in a list was accepted")
	}
	if got := stripXSSI([]byte(")]}'\n[]")); !bytes.Equal(got, []byte("[]")) {
		t.Errorf("stripXSSI: %q", got)
	}
}
