package zuul

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata")

// golden compares got with testdata file name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(name, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs; got:\n%s", name, got)
	}
}

func indentJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestParseEventGolden parses samples in the format Gerrit prints
// (testdata/events/*.json) and compares the events with the .golden files
// beside them.
func TestParseEventGolden(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/events/*.json")
	if err != nil || len(files) < 10 {
		t.Fatalf("samples: %v, %d files", err, len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			line, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := ParseEvent(line)
			var got []byte
			if u, ok := errors.AsType[*UnsupportedEventError](err); ok {
				got = []byte("unsupported " + u.Type + "\n")
			} else if err != nil {
				t.Fatalf("ParseEvent: %v", err)
			} else {
				got = indentJSON(t, ev)
			}
			golden(t, strings.TrimSuffix(f, ".json")+".golden", got)
		})
	}
}

// TestParseEventFields checks what each event type carries, beyond the
// golden files.
func TestParseEventFields(t *testing.T) {
	t.Parallel()
	read := func(name string) Event {
		b, err := os.ReadFile("testdata/events/" + name)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := ParseEvent(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return ev
	}
	ca := read("comment-added.json")
	if len(ca.Approvals) != 3 || ca.Approvals[0].Label != "Code-Review" || ca.Approvals[0].Value != 2 ||
		ca.Approvals[0].Old == nil || *ca.Approvals[0].Old != 0 || ca.Approvals[1].Old != nil ||
		ca.Approvals[2].By.Username != "bob" || ca.Account.Username != "bob" {
		t.Errorf("comment-added approvals: %+v", ca.Approvals)
	}
	if v, _ := ca.Change.Vote("Code-Review"); v != 0 || ca.Change.Approvals != nil {
		t.Errorf("comment-added fills the change's approvals: %+v", ca.Change.Approvals)
	}
	if ca.Created.Unix() != 1717493600 || ca.Branch != "main" || ca.Change.Key() != "rpms/curl~12345~2" {
		t.Errorf("comment-added: %+v", ca)
	}
	cm := read("change-merged.json")
	if !isSHA1(cm.NewRev) || cm.NewRev == cm.Change.Commit || cm.Account.Username != "bob" {
		t.Errorf("change-merged: NewRev %q, account %+v", cm.NewRev, cm.Account)
	}
	old := read("draft-published-2.8.json")
	if old.Change.Number != 12345 || old.Change.Patchset != 1 || !old.Created.IsZero() || !old.Change.Current {
		t.Errorf("Gerrit 2.8 draft-published: %+v", old.Change)
	}
	ru := read("ref-updated-2.8.json")
	if ru.RefName != "refs/heads/main" || ru.Branch != "main" || ru.Change != nil {
		t.Errorf("Gerrit 2.8 ref-updated: %+v", ru)
	}
	tag := read("ref-updated-tag.json")
	if tag.RefName != "refs/tags/curl-8.5.0-1" || tag.Branch != "" || tag.OldRev != strings.Repeat("0", 40) {
		t.Errorf("tag ref-updated: %+v", tag)
	}
}

// mutate returns the sample event name with edit applied to its decoded
// JSON object.
func mutate(t *testing.T, name string, edit func(m map[string]any)) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/events/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func obj(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }

func TestParseEventErrors(t *testing.T) {
	t.Parallel()
	ps := "patchset-created.json"
	tests := []struct {
		name  string
		line  []byte
		field string // "" for a line that is not JSON
	}{
		{"not json", []byte(`{"type":"patchset-created",`), ""},
		{"not an object", []byte(`["patchset-created"]`), ""},
		{"empty", nil, ""},
		{"no type", mutate(t, ps, func(m map[string]any) { delete(m, "type") }), "type"},
		{"odd type", mutate(t, ps, func(m map[string]any) { m["type"] = "Patchset Created" }), "type"},
		{"no change", mutate(t, ps, func(m map[string]any) { delete(m, "change") }), "change"},
		{"no patch set", mutate(t, ps, func(m map[string]any) { delete(m, "patchSet") }), "patchSet"},
		{"no project", mutate(t, ps, func(m map[string]any) { delete(obj(m, "change"), "project") }), "change.project"},
		{"project with ..", mutate(t, ps, func(m map[string]any) { obj(m, "change")["project"] = "rpms/../../etc" }), "change.project"},
		{"absolute project", mutate(t, ps, func(m map[string]any) { obj(m, "change")["project"] = "/srv/git/x" }), "change.project"},
		{"project with newline", mutate(t, ps, func(m map[string]any) { obj(m, "change")["project"] = "a\nb" }), "change.project"},
		{"no branch", mutate(t, ps, func(m map[string]any) { delete(obj(m, "change"), "branch") }), "change.branch"},
		{"bad branch", mutate(t, ps, func(m map[string]any) { obj(m, "change")["branch"] = "main..x" }), "change.branch"},
		{"branch with space", mutate(t, ps, func(m map[string]any) { obj(m, "change")["branch"] = "ma in" }), "change.branch"},
		{"no number", mutate(t, ps, func(m map[string]any) { delete(obj(m, "change"), "number") }), "change.number"},
		{"number zero", mutate(t, ps, func(m map[string]any) { obj(m, "change")["number"] = 0 }), "change.number"},
		{"number text", mutate(t, ps, func(m map[string]any) { obj(m, "change")["number"] = "12a" }), "change.number"},
		{"number fraction", mutate(t, ps, func(m map[string]any) { obj(m, "change")["number"] = 1.5 }), "change.number"},
		{"number huge", mutate(t, ps, func(m map[string]any) { obj(m, "change")["number"] = 1e12 }), "change.number"},
		{"bad change id", mutate(t, ps, func(m map[string]any) { obj(m, "change")["id"] = "12345" }), "change.id"},
		{"url not http", mutate(t, ps, func(m map[string]any) { obj(m, "change")["url"] = "javascript:alert(1)" }), "change.url"},
		{"bad status", mutate(t, ps, func(m map[string]any) { obj(m, "change")["status"] = "new; drop" }), "change.status"},
		{"owner not object", mutate(t, ps, func(m map[string]any) { obj(m, "change")["owner"] = "alice" }), "change.owner"},
		{"no patch set number", mutate(t, ps, func(m map[string]any) { delete(obj(m, "patchSet"), "number") }), "patchSet.number"},
		{"no revision", mutate(t, ps, func(m map[string]any) { delete(obj(m, "patchSet"), "revision") }), "patchSet.revision"},
		{"short revision", mutate(t, ps, func(m map[string]any) { obj(m, "patchSet")["revision"] = "c870a0b" }), "patchSet.revision"},
		{"upper-case revision", mutate(t, ps, func(m map[string]any) {
			obj(m, "patchSet")["revision"] = strings.ToUpper(obj(m, "patchSet")["revision"].(string))
		}), "patchSet.revision"},
		{"no ref", mutate(t, ps, func(m map[string]any) { delete(obj(m, "patchSet"), "ref") }), "patchSet.ref"},
		{"ref of another patch set", mutate(t, ps, func(m map[string]any) { obj(m, "patchSet")["ref"] = "refs/changes/45/12345/1" }), "patchSet.ref"},
		{"ref of another change", mutate(t, ps, func(m map[string]any) { obj(m, "patchSet")["ref"] = "refs/changes/46/12346/2" }), "patchSet.ref"},
		{"ref not a change ref", mutate(t, ps, func(m map[string]any) { obj(m, "patchSet")["ref"] = "refs/heads/main" }), "patchSet.ref"},
		{"bad parent", mutate(t, ps, func(m map[string]any) { obj(m, "patchSet")["parents"] = []string{"HEAD~1"} }), "patchSet.parents[0]"},
		{"created not a number", mutate(t, ps, func(m map[string]any) { m["eventCreatedOn"] = "yesterday" }), "eventCreatedOn"},
		{"approval without type", mutate(t, "comment-added.json", func(m map[string]any) {
			delete(m["approvals"].([]any)[1].(map[string]any), "type")
		}), "approvals[1].type"},
		{"approval value text", mutate(t, "comment-added.json", func(m map[string]any) {
			m["approvals"].([]any)[0].(map[string]any)["value"] = "+two"
		}), "approvals[0].value"},
		{"approval without value", mutate(t, "comment-added.json", func(m map[string]any) {
			delete(m["approvals"].([]any)[0].(map[string]any), "value")
		}), "approvals[0].value"},
		{"approval old value text", mutate(t, "comment-added.json", func(m map[string]any) {
			m["approvals"].([]any)[0].(map[string]any)["oldValue"] = "x"
		}), "approvals[0].oldValue"},
		{"approval label odd", mutate(t, "comment-added.json", func(m map[string]any) {
			m["approvals"].([]any)[0].(map[string]any)["type"] = "Code Review"
		}), "approvals[0].type"},
		{"merged newRev short", mutate(t, "change-merged.json", func(m map[string]any) { m["newRev"] = "abc" }), "newRev"},
		{"ref-updated without refUpdate", mutate(t, "ref-updated.json", func(m map[string]any) { delete(m, "refUpdate") }), "refUpdate"},
		{"ref-updated without project", mutate(t, "ref-updated.json", func(m map[string]any) { delete(obj(m, "refUpdate"), "project") }), "refUpdate.project"},
		{"ref-updated without name", mutate(t, "ref-updated.json", func(m map[string]any) { delete(obj(m, "refUpdate"), "refName") }), "refUpdate.refName"},
		{"ref-updated bad name", mutate(t, "ref-updated.json", func(m map[string]any) { obj(m, "refUpdate")["refName"] = "refs/heads/a:b" }), "refUpdate.refName"},
		{"ref-updated lock name", mutate(t, "ref-updated.json", func(m map[string]any) { obj(m, "refUpdate")["refName"] = "refs/heads/x.lock" }), "refUpdate.refName"},
		{"ref-updated bad newRev", mutate(t, "ref-updated.json", func(m map[string]any) { obj(m, "refUpdate")["newRev"] = "" }), "refUpdate.newRev"},
		{"ref-updated bad oldRev", mutate(t, "ref-updated.json", func(m map[string]any) { obj(m, "refUpdate")["oldRev"] = "zz" }), "refUpdate.oldRev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseEvent(tt.line)
			pe, ok := errors.AsType[*ParseError](err)
			if !ok {
				t.Fatalf("ParseEvent: %v (%T), want a *ParseError", err, err)
			}
			if pe.Field != tt.field {
				t.Errorf("field %q, want %q (%v)", pe.Field, tt.field, err)
			}
			if tt.field != "" && !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %s", err, tt.field)
			}
		})
	}
}

func TestParseEventSize(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/events/comment-added.json")
	if err != nil {
		t.Fatal(err)
	}
	pad := func(n int) []byte {
		return mutate(t, "comment-added.json", func(m map[string]any) { m["comment"] = strings.Repeat("x", n) })
	}
	base := len(pad(0))
	if _, err := ParseEvent(pad(MaxEventSize - base)); err != nil {
		t.Errorf("an event of exactly MaxEventSize bytes: %v", err)
	}
	if _, err := ParseEvent(pad(MaxEventSize - base + 1)); !errors.Is(err, errTooLarge) {
		t.Errorf("an event over MaxEventSize: %v", err)
	}
	if _, err := ParseEvent(b); err != nil {
		t.Fatal(err)
	}
}

func TestParseQueryGolden(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/query/open.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	changes, st, err := ParseQuery(f)
	if err != nil {
		t.Fatal(err)
	}
	if st.RowCount != 2 || st.MoreChanges || st.RunningTime.Milliseconds() != 14 {
		t.Errorf("stats %+v", st)
	}
	c := changes[0]
	if cr, _ := c.Vote("Code-Review"); cr != 2 || !c.Current || c.Status != "NEW" || c.Patchset != 2 ||
		!strings.HasPrefix(c.Message, "curl: update to 8.5.0\n") || len(c.Parents) != 1 {
		t.Errorf("first change: %+v", c)
	}
	if w, ok := changes[1].Vote("Workflow"); ok || w != 0 || changes[1].Branch != "stable/1.x" {
		t.Errorf("second change: %+v", changes[1])
	}
	golden(t, "testdata/query/open.golden", indentJSON(t, changes))
}

func TestParseQueryErrors(t *testing.T) {
	t.Parallel()
	sample, err := os.ReadFile("testdata/query/open.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(sample), "\n"), "\n")
	first, second, stats := lines[0], lines[1], lines[2]
	tests := []struct {
		name, out, want string
	}{
		{"no stats line", first + second, "no stats line"},
		{"empty output", "", "no stats line"},
		{"row count disagrees", first + stats, "stats say 2 changes, output has 1"},
		{"line after stats", first + second + stats + "\n" + first, "line 4: output after the stats line"},
		{"error line", `{"type":"error","message":"Unsupported operator foo:bar"}` + "\n", "gerrit query: Unsupported operator foo:bar"},
		{"unknown line type", `{"type":"patchset-created"}` + "\n" + stats, `line 1: gerrit json: type: unexpected "patchset-created"`},
		{"no current patch set", `{"project":"a","branch":"main","number":1}` + "\n" + stats, "line 1: gerrit json: currentPatchSet: missing"},
		{"bad row", strings.Replace(first, `"refs/changes/45/12345/2"`, `"refs/changes/45/12345/3"`, 1) + second + stats, "line 1: gerrit json: currentPatchSet.ref"},
		{"bad approval", strings.Replace(first, `"value":"2"`, `"value":"two"`, 1) + second + stats, "currentPatchSet.approvals[0].value"},
		{"bad row count", `{"type":"stats","rowCount":"x"}` + "\n", "rowCount"},
		{"not json", first + "{oops\n" + stats, "line 2: gerrit json: not JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := ParseQuery(strings.NewReader(tt.out))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseQuery: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestReadLines(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("y", 70<<10) // over the reader's buffer too
	tests := []struct {
		name, in string
		max      int
		want     []string // "!" for a line too long
	}{
		{"plain", "a\nb\n", 10, []string{"a", "b"}},
		{"no final newline", "a\nb", 10, []string{"a", "b"}},
		{"crlf", "a\r\nb\r\n", 10, []string{"a", "b"}},
		{"blank lines kept", "a\n\nb\n", 10, []string{"a", "", "b"}},
		{"exactly max", "abc\n", 3, []string{"abc"}},
		{"over max", "abcd\nok\n", 3, []string{"!", "ok"}},
		{"over max at the end", "ok\nabcd", 3, []string{"ok", "!"}},
		{"long over buffer", "a\n" + long + "\nb\n", 1 << 10, []string{"a", "!", "b"}},
		{"long within max", long + "\n", 80 << 10, []string{long}},
		{"empty", "", 3, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			n := 0
			err := readLines(strings.NewReader(tt.in), tt.max, func(num int, line []byte, tooLong bool) error {
				n++
				if num != n {
					t.Errorf("line numbered %d, want %d", num, n)
				}
				if tooLong {
					got = append(got, "!")
				} else {
					got = append(got, string(line))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("got %d lines %.40q, want %d %.40q", len(got), got, len(tt.want), tt.want)
			}
		})
	}
}

// FuzzParseEvent checks that what ParseEvent accepts keeps its promises.
// Seeds: testdata/fuzz/FuzzParseEvent (the samples of testdata/events).
func FuzzParseEvent(f *testing.F) {
	f.Fuzz(func(t *testing.T, line []byte) {
		ev, err := ParseEvent(line)
		if err != nil {
			if _, ok := errors.AsType[*UnsupportedEventError](err); ok {
				return
			}
			if _, ok := errors.AsType[*ParseError](err); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if validProject(ev.Project) != nil {
			t.Fatalf("project %q accepted", ev.Project)
		}
		switch ev.Type {
		case RefUpdated:
			if ev.Change != nil || validRefName(ev.RefName) != nil || !isSHA1(ev.NewRev) || !isSHA1(ev.OldRev) {
				t.Fatalf("ref-updated accepted: %+v", ev)
			}
		case PatchsetCreated, DraftPublished, CommentAdded, ChangeMerged, ChangeAbandoned:
			c := ev.Change
			if c == nil || c.Number < 1 || c.Patchset < 1 || c.Ref != ChangeRef(c.Number, c.Patchset) ||
				!isSHA1(c.Commit) || c.Project != ev.Project || c.Branch != ev.Branch ||
				validRefName("refs/heads/"+c.Branch) != nil {
				t.Fatalf("%s accepted: %+v", ev.Type, c)
			}
		default:
			t.Fatalf("type %q accepted", ev.Type)
		}
	})
}

// FuzzParseQuery checks that an accepted query output is complete.
// Seeds: testdata/fuzz/FuzzParseQuery.
func FuzzParseQuery(f *testing.F) {
	f.Fuzz(func(t *testing.T, out []byte) {
		changes, st, err := ParseQuery(bytes.NewReader(out))
		if err != nil {
			return
		}
		if len(changes) != st.RowCount {
			t.Fatalf("%d changes, stats say %d", len(changes), st.RowCount)
		}
		for _, c := range changes {
			if !c.Current || c.Ref != ChangeRef(c.Number, c.Patchset) || !isSHA1(c.Commit) || validProject(c.Project) != nil {
				t.Fatalf("change accepted: %+v", c)
			}
		}
	})
}
